//! Reading files into one JSON value: imports, dotted keys, command-line overrides.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::ConfigError;

/// Sections whose keys are names, not paths: a dot there is part of the name.
const NAME_SECTIONS: [&str; 3] = ["parameters", "env", "values"];

/// The most parts a dotted key (in a file or an override) may have. The YAML and TOML parsers
/// limit how deep a file nests; without this, a key of thousands of parts would nest the tree
/// deep enough to overflow the stack in the recursive steps that follow (merging, reading it
/// into the schema, dropping it).
const MAX_KEY_PARTS: usize = 64;

/// The file at `path` with its imports merged under it, dotted keys expanded.
pub(crate) fn load_tree(path: &Path, chain: &mut Vec<PathBuf>) -> Result<Value, ConfigError> {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if chain.contains(&canonical) {
        return Err(ConfigError::file(
            path,
            format!("imports form a cycle through {}", path.display()),
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::file(path, format!("cannot read the study file: {e}")))?;
    let mut value = parse(path, &text)?;
    let Value::Object(map) = &mut value else {
        return Err(ConfigError::file(
            path,
            "a study file must be a mapping of keys to values".into(),
        ));
    };
    let imports = match map.remove("imports") {
        None => Vec::new(),
        Some(Value::String(one)) => vec![one],
        Some(Value::Array(list)) => list
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(ConfigError::at(
                    path,
                    &text,
                    "imports",
                    format!("expected file names, found {other}"),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(ConfigError::at(
                path,
                &text,
                "imports",
                format!("expected a list of files, found {other}"),
            ));
        }
    };
    expand_dotted(&mut value, false).map_err(|message| ConfigError::file(path, message))?;
    chain.push(canonical);
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut merged = Value::Object(Map::new());
    for import in imports {
        let imported = load_tree(&dir.join(&import), chain)?;
        merge(&mut merged, imported);
    }
    chain.pop();
    merge(&mut merged, value);
    Ok(merged)
}

/// YAML (strict booleans: `[yes, no]` stay strings) or TOML by extension.
fn parse(path: &Path, text: &str) -> Result<Value, ConfigError> {
    let toml = path.extension().is_some_and(|e| e == "toml");
    if toml {
        return toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start].lines().count().max(1));
            ConfigError {
                file: path.to_path_buf(),
                line,
                key: None,
                message: e.message().to_owned(),
            }
        });
    }
    parse_yaml(text).map_err(|message| {
        // serde-saphyr's messages carry "line N column M"; keep the line for the prefix.
        let line = message
            .split("line ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok());
        ConfigError {
            file: path.to_path_buf(),
            line,
            key: None,
            message: format!("malformed YAML: {message}"),
        }
    })
}

/// One YAML document (or scalar) as JSON.
pub(crate) fn parse_yaml(text: &str) -> Result<Value, String> {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    let value: Value =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| e.to_string())?;
    Ok(if value.is_null() && text.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        value
    })
}

/// `model.hidden: 512` becomes `model: {hidden: 512}`, merged with the other keys of `model`.
fn expand_dotted(value: &mut Value, names: bool) -> Result<(), String> {
    let Value::Object(map) = value else {
        return Ok(());
    };
    if !names && map.keys().any(|k| k.contains('.')) {
        let old = std::mem::take(map);
        for (key, v) in old {
            let mut nested = v;
            let mut parts: Vec<&str> = key.split('.').collect();
            if parts.len() > MAX_KEY_PARTS {
                let start: String = key.chars().take(40).collect();
                return Err(format!(
                    "the dotted key `{start}…` has more than {MAX_KEY_PARTS} parts"
                ));
            }
            let first = parts.remove(0).to_owned();
            for part in parts.into_iter().rev() {
                let mut m = Map::new();
                m.insert(part.to_owned(), nested);
                nested = Value::Object(m);
            }
            match map.get_mut(&first) {
                Some(existing) => merge(existing, nested),
                None => {
                    map.insert(first, nested);
                }
            }
        }
    }
    for (key, v) in map.iter_mut() {
        expand_dotted(v, NAME_SECTIONS.contains(&key.as_str()))?;
    }
    Ok(())
}

/// Merges `over` into `base`: mappings key by key (deeply), anything else replaced.
pub(crate) fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

/// Applies `key.path=value` (the value read as YAML: `50` is a number, `[1, 2]` a list).
pub(crate) fn apply_override(tree: &mut Value, text: &str) -> Result<(), String> {
    let (path, raw) = text
        .split_once('=')
        .ok_or_else(|| format!("override `{text}` is not key.path=value"))?;
    let path = path.trim();
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(format!("override `{text}` has an empty key"));
    }
    if path.split('.').count() > MAX_KEY_PARTS {
        return Err(format!(
            "override `{text}` has more than {MAX_KEY_PARTS} parts in its key"
        ));
    }
    let value = parse_yaml(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
    let mut node = tree;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let Value::Object(map) = node else {
            return Err(format!(
                "override `{path}`: `{}` is not a mapping",
                parts[..i].join(".")
            ));
        };
        if i == parts.len() - 1 {
            map.insert((*part).to_owned(), value);
            return Ok(());
        }
        node = map
            .entry((*part).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    Ok(())
}

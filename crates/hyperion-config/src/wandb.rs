//! W&B Sweeps files, rewritten into Hyperion's own form so they run unmodified.

use serde_json::{Map, Value, json};

/// Keys only a W&B Sweeps file has at its top level.
const WANDB_ONLY: [&str; 5] = ["program", "early_terminate", "run_cap", "project", "entity"];

/// Whether `tree` reads as a W&B Sweeps file: a W&B-only key, `method: bayes`, or parameters
/// written as `values` / `value` / `min` + `max` / `distribution` rather than with a `type`.
pub(crate) fn is_wandb(tree: &Value) -> bool {
    let Some(map) = tree.as_object() else {
        return false;
    };
    // W&B has no pipelines: a file with stages is Hyperion's, whatever its parameters look like.
    if map.contains_key("stages") {
        return false;
    }
    if WANDB_ONLY.iter().any(|k| map.contains_key(*k)) || map.get("method") == Some(&json!("bayes"))
    {
        return true;
    }
    let params = map.get("parameters").and_then(Value::as_object);
    params.is_some_and(|p| {
        p.values().any(|spec| {
            spec.as_object().is_some_and(|s| {
                !s.contains_key("type")
                    && ["values", "value", "min", "max", "distribution"]
                        .iter()
                        .any(|k| s.contains_key(*k))
            })
        })
    })
}

/// Rewrites a W&B Sweeps file; `notes` collects what the user should know. A file without a
/// `name` is named after itself (`a.yaml` → `a`): two sweep files in one directory must never
/// continue each other's study.
pub(crate) fn convert(
    tree: Value,
    stem: &str,
    notes: &mut Vec<String>,
) -> Result<Value, (String, String)> {
    let Value::Object(mut map) = tree else {
        return Ok(tree);
    };
    let mut out = Map::new();
    let name = map.remove("name").unwrap_or_else(|| json!(stem));
    out.insert("name".into(), name);
    for key in ["description", "project", "entity"] {
        map.remove(key);
    }

    let program = map.remove("program");
    let command = match map.remove("command") {
        Some(Value::Array(items)) => items,
        Some(other) => return Err(("command".into(), format!("expected a list, found {other}"))),
        None => vec![
            json!("${env}"),
            json!("${interpreter}"),
            json!("${program}"),
            json!("${args}"),
        ],
    };
    let program_text = program.as_ref().and_then(Value::as_str).map(str::to_owned);
    let mut argv = Vec::new();
    for item in command {
        let Some(text) = item.as_str() else {
            return Err(("command".into(), format!("expected strings, found {item}")));
        };
        match text {
            "${env}" => argv.push(json!("/usr/bin/env")),
            "${interpreter}" => match program_text.as_deref() {
                Some(p) if p.ends_with(".py") => argv.push(json!("python3")),
                Some(p) if p.ends_with(".sh") => argv.push(json!("bash")),
                _ => {}
            },
            "${program}" => match &program_text {
                Some(p) => argv.push(json!(p)),
                None => {
                    return Err((
                        "command".into(),
                        "uses ${program} but the file has no `program`".into(),
                    ));
                }
            },
            "${args}" | "${args_no_boolean_flags}" => argv.push(json!("{args}")),
            "${args_no_hyphens}" => argv.push(json!("{args_no_hyphens}")),
            other if other.contains("${") => {
                return Err((
                    "command".into(),
                    format!("`{other}` is not a W&B macro Hyperion knows"),
                ));
            }
            other => argv.push(json!(other.replace('{', "{{").replace('}', "}}"))),
        }
    }
    out.insert("command".into(), Value::Array(argv));

    let method = match map.remove("method").as_ref().and_then(Value::as_str) {
        Some("bayes") => {
            notes.push("method `bayes` runs with Hyperion's TPE sampler".into());
            "tpe".to_owned()
        }
        Some(m) => m.to_owned(),
        None => "random".to_owned(),
    };
    out.insert("method".into(), json!(method));

    let mut budget = Map::new();
    if let Some(cap) = map.remove("run_cap") {
        budget.insert("max_trials".into(), cap);
    }
    if let Some(Value::Object(mut metric)) = map.remove("metric") {
        if let Some(target) = metric.remove("target") {
            budget.insert("target".into(), target);
        }
        metric.entry("goal").or_insert_with(|| json!("minimize"));
        out.insert("metric".into(), Value::Object(metric));
    }
    if !budget.is_empty() {
        out.insert("budget".into(), Value::Object(budget));
    }
    if let Some(early) = map.remove("early_terminate") {
        let early = early_terminate(early, notes).map_err(|e| ("early_terminate".to_owned(), e))?;
        out.insert("early_stopping".into(), early);
    }

    let mut params = Map::new();
    if let Some(Value::Object(wandb)) = map.remove("parameters") {
        for (name, spec) in wandb {
            let converted = parameter(&spec).map_err(|e| (format!("parameters.{name}"), e))?;
            params.insert(name, converted);
        }
    }
    out.insert("parameters".into(), Value::Object(params));
    // Anything else is either Hyperion's own key (kept) or an unknown key (reported later).
    for (key, value) in map {
        match (out.get_mut(&key), value) {
            // `budget.max_trials=50` beside `run_cap`: both go into `budget`, the override's last.
            (Some(Value::Object(converted)), Value::Object(own)) => converted.extend(own),
            (_, value) => {
                out.insert(key, value);
            }
        }
    }
    Ok(Value::Object(out))
}

fn parameter(spec: &Value) -> Result<Value, String> {
    let Some(s) = spec.as_object() else {
        return Ok(json!({"type": "constant", "value": spec}));
    };
    if s.contains_key("type") {
        return Ok(spec.clone());
    }
    if s.contains_key("parameters") {
        return Err("nested parameters are not supported; flatten them into dotted names".into());
    }
    if s.contains_key("probabilities") {
        return Err("`probabilities` is not supported: choices are equally likely".into());
    }
    let get = |k: &str| s.get(k).cloned().ok_or_else(|| format!("needs `{k}`"));
    let is_int = |v: &Value| v.is_i64() || v.is_u64();
    let both_int = s.get("min").is_some_and(is_int) && s.get("max").is_some_and(is_int);
    let distribution = match s.get("distribution").and_then(Value::as_str) {
        Some(d) => d.to_owned(),
        None if s.contains_key("value") => "constant".into(),
        None if s.contains_key("values") => "categorical".into(),
        None if both_int => "int_uniform".into(),
        None => "uniform".into(),
    };
    let ln_bound = |k: &str| -> Result<f64, String> {
        get(k)?
            .as_f64()
            .map(f64::exp)
            .ok_or_else(|| format!("`{k}` must be a number"))
    };
    Ok(match distribution.as_str() {
        "constant" => json!({"type": "constant", "value": get("value")?}),
        "categorical" => json!({"type": "categorical", "choices": get("values")?}),
        "int_uniform" => json!({"type": "int", "low": get("min")?, "high": get("max")?}),
        "uniform" => json!({"type": "float", "low": get("min")?, "high": get("max")?}),
        "q_uniform" => {
            let q = s.get("q").cloned().unwrap_or(json!(1.0));
            json!({"type": "float", "low": get("min")?, "high": get("max")?, "step": q})
        }
        "log_uniform_values" => {
            json!({"type": "float", "low": get("min")?, "high": get("max")?, "log": true})
        }
        // W&B's log_uniform takes ln of the bounds.
        "log_uniform" => {
            json!({"type": "float", "low": ln_bound("min")?, "high": ln_bound("max")?, "log": true})
        }
        other => {
            return Err(format!(
                "distribution `{other}` is not supported (use a bounded one)"
            ));
        }
    })
}

/// W&B's `early_terminate: {type: hyperband, min_iter | max_iter + s, eta}` as an
/// `early_stopping` section. W&B stops a run at the milestones `min_iter · eta^k` (or
/// `max_iter / eta^k`, k = 1..s) when it ranks below the best 1/eta there: that is asynchronous
/// successive halving with one bracket, so it maps onto `asha` and behaves as it did in W&B.
fn early_terminate(early: Value, notes: &mut Vec<String>) -> Result<Value, String> {
    let Value::Object(mut map) = early else {
        return Err("must be a mapping like {type: hyperband, min_iter: 3}".into());
    };
    match map.remove("type").as_ref().and_then(Value::as_str) {
        Some("hyperband") => {}
        Some(other) => {
            return Err(format!(
                "type `{other}` is not a W&B early_terminate type (W&B has `hyperband`)"
            ));
        }
        None => return Err("needs `type: hyperband`".into()),
    }
    let int = |map: &mut Map<String, Value>, key: &str| -> Result<Option<u64>, String> {
        match map.remove(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|&n| n > 0)
                .map(Some)
                .ok_or_else(|| format!("{key} must be a positive integer, not {v}")),
        }
    };
    let eta = int(&mut map, "eta")?.unwrap_or(3);
    let min_iter = int(&mut map, "min_iter")?;
    let max_iter = int(&mut map, "max_iter")?;
    let s = int(&mut map, "s")?;
    if let Some(key) = map.keys().next() {
        return Err(format!(
            "unknown key `{key}` (W&B's hyperband takes min_iter, max_iter, eta and s)"
        ));
    }
    if eta < 2 {
        return Err(format!("eta is {eta}; it must be at least 2"));
    }
    let mut asha = Map::new();
    asha.insert("type".into(), json!("asha"));
    match (min_iter, max_iter, s) {
        (Some(min), _, _) => {
            asha.insert("min_resource".into(), json!(min));
            match max_iter {
                Some(max) => {
                    asha.insert("max_resource".into(), json!(max));
                }
                None => notes.push(format!(
                    "early_terminate has no max_iter: a trial can be stopped at every milestone \
                     {min}, {}, {}, … without end (as in W&B); a trial that exits after its last \
                     report before a stop reaches it completes with its value",
                    min * eta,
                    min * eta * eta
                )),
            }
        }
        (None, Some(max), Some(s)) => {
            let Some(min) = u32::try_from(s)
                .ok()
                .and_then(|s| eta.checked_pow(s))
                .map(|p| max / p)
            else {
                return Err(format!("s = {s} is too large"));
            };
            if min == 0 {
                return Err(format!(
                    "max_iter {max} is smaller than eta^s = {eta}^{s}: no milestone is left"
                ));
            }
            asha.insert("min_resource".into(), json!(min));
            asha.insert("max_resource".into(), json!(max));
        }
        (None, Some(_), None) => return Err("max_iter needs s (the number of milestones)".into()),
        (None, None, _) => return Err("needs min_iter, or max_iter and s".into()),
    }
    asha.insert("reduction_factor".into(), json!(eta));
    notes.push(
        "early_terminate `hyperband` runs as `early_stopping: {type: asha}`: W&B stops runs at its \
         milestones the way asynchronous successive halving does"
            .into(),
    );
    Ok(Value::Object(asha))
}

//! A stage's cache key: the blake3 of the canonical JSON of everything the stage reads, and
//! nothing about the trial, the attempt, the machine or the resources.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Bumped when the recipe of [`KeyMaterial`] changes, so old entries stop matching.
pub const SCHEMA: u32 = 1;

/// What a stage's key hashes. Maps are sorted, so equal definitions give equal bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyMaterial {
    pub schema: u32,
    pub stage: String,
    /// The command's template, before any placeholder is filled.
    pub argv: Vec<String>,
    pub shell: bool,
    /// The environment the stage declares.
    pub env: BTreeMap<String, String>,
    /// The declared params' values, typed as the space types them.
    pub params: BTreeMap<String, serde_json::Value>,
    /// Each `code` path's digest.
    pub code: BTreeMap<String, String>,
    /// Each `inputs` path's digest.
    pub inputs: BTreeMap<String, String>,
    /// Each upstream stage's *output* digest: a stage that reruns and writes the same bytes
    /// does not invalidate what follows.
    pub upstream: BTreeMap<String, String>,
    /// The user's salt (`cache: {version: …}`).
    pub version: Option<String>,
}

impl KeyMaterial {
    /// `b3:` and 64 hex digits.
    pub fn key(&self) -> String {
        crate::digest::of_bytes(&serde_json::to_vec(self).expect("key material serializes"))
    }

    /// What differs from `earlier`, one line a field (`params.lr: 0.1 → 0.2`), for
    /// `hyperion cache explain`.
    pub fn differences(&self, earlier: &KeyMaterial) -> Vec<String> {
        let mut out = Vec::new();
        let mut plain = |name: &str, now: String, then: String| {
            if now != then {
                out.push(format!("{name}: {then} → {now}"));
            }
        };
        plain(
            "schema",
            self.schema.to_string(),
            earlier.schema.to_string(),
        );
        plain("argv", self.argv.join(" "), earlier.argv.join(" "));
        plain("shell", self.shell.to_string(), earlier.shell.to_string());
        plain(
            "version",
            format!("{:?}", self.version),
            format!("{:?}", earlier.version),
        );
        map_differences("env", &self.env, &earlier.env, &mut out);
        let text = |m: &BTreeMap<String, serde_json::Value>| -> BTreeMap<String, String> {
            m.iter().map(|(k, v)| (k.clone(), v.to_string())).collect()
        };
        map_differences(
            "params",
            &text(&self.params),
            &text(&earlier.params),
            &mut out,
        );
        map_differences("code", &self.code, &earlier.code, &mut out);
        map_differences("inputs", &self.inputs, &earlier.inputs, &mut out);
        map_differences("upstream", &self.upstream, &earlier.upstream, &mut out);
        out
    }
}

fn map_differences(
    field: &str,
    now: &BTreeMap<String, String>,
    then: &BTreeMap<String, String>,
    out: &mut Vec<String>,
) {
    let short = |v: &str| v.chars().take(15).collect::<String>();
    for (name, value) in now {
        match then.get(name) {
            None => out.push(format!("{field}.{name}: added ({})", short(value))),
            Some(old) if old != value => {
                out.push(format!("{field}.{name}: {} → {}", short(old), short(value)))
            }
            _ => {}
        }
    }
    for name in then.keys().filter(|k| !now.contains_key(*k)) {
        out.push(format!("{field}.{name}: removed"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn material() -> KeyMaterial {
        KeyMaterial {
            schema: SCHEMA,
            stage: "train".into(),
            argv: vec!["python".into(), "train.py".into(), "{lr}".into()],
            shell: false,
            env: BTreeMap::new(),
            params: [("lr".to_string(), serde_json::json!(0.1))].into(),
            code: [("train.py".to_string(), "b3:aaa".to_string())].into(),
            inputs: BTreeMap::new(),
            upstream: BTreeMap::new(),
            version: None,
        }
    }

    #[test]
    fn the_key_changes_with_what_the_stage_reads_and_names_the_change() {
        let a = material();
        assert_eq!(a.key(), material().key());
        let mut b = material();
        b.params.insert("lr".into(), serde_json::json!(0.2));
        b.code.insert("train.py".into(), "b3:bbb".into());
        assert_ne!(a.key(), b.key());
        assert_eq!(
            b.differences(&a),
            vec!["params.lr: 0.1 → 0.2", "code.train.py: b3:aaa → b3:bbb"]
        );
        // An int is not a float: the space types the values.
        let mut c = material();
        c.params.insert("lr".into(), serde_json::json!(1));
        let mut d = material();
        d.params.insert("lr".into(), serde_json::json!(1.0));
        assert_ne!(c.key(), d.key());
    }
}

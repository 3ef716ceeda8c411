//! What each run of a study was: when, where, with which code, as `hyperion runs` lists it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// One run of a study (a `hyperion run`), recorded when it starts and again when it ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunManifest {
    /// Unique among the study's runs: the host, the process and its start.
    pub id: String,
    pub started_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    pub host: String,
    /// The command line, as typed.
    pub command: Vec<String>,
    /// The `key=value` overrides of the study file among them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    /// The commit of the working directory's git repository, and whether files differed from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitState>,
    /// The digest of each code file the trials run (a pipeline's `code:`, or the files a
    /// command names), by path as written.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub code: BTreeMap<String, String>,
    /// Hyperion's version.
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitState {
    pub commit: String,
    pub dirty: bool,
}

impl RunManifest {
    /// Each code file whose digest differs from `earlier`'s, as `path: before → now`
    /// (`absent` for a file one of them does not have).
    pub fn code_changes(&self, earlier: &RunManifest) -> Vec<String> {
        let short = |d: Option<&String>| match d {
            Some(d) => d.chars().take(15).collect(),
            None => "absent".to_string(),
        };
        let mut paths: Vec<&String> = self.code.keys().chain(earlier.code.keys()).collect();
        paths.sort();
        paths.dedup();
        paths
            .into_iter()
            .filter(|p| self.code.get(*p) != earlier.code.get(*p))
            .map(|p| {
                format!(
                    "{p}: {} → {}",
                    short(earlier.code.get(p)),
                    short(self.code.get(p))
                )
            })
            .collect()
    }
}

//! A trial as a pipeline of stages (prepare → train → eval), as a study file's `stages:`
//! declares it: checked when the file loads (`hyperion-config`), run by
//! [`crate::local::PipelineDispatcher`], each cached stage's output kept by its key in a
//! [`hyperion_cache::Cache`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hyperion_cache::KeyMaterial;
use hyperion_core::Params;

/// The stages of a study's trials, in an order where each comes after those it needs. Kept in
/// the study's settings (with its trial template), so that a worker runs them as `run` does.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PipelineConfig {
    pub stages: Vec<StageConfig>,
    /// The stage whose metrics are the trial's: its objective and its intermediate values (the
    /// early-stopping rules read those).
    pub reporter: usize,
    /// Where the cache's entries and index are (`cache.dir`, by default `.hyperion/cache` next
    /// to the study file).
    pub cache_dir: PathBuf,
    /// The stages this run computes again rather than take from the cache (`--from-stage`):
    /// each key once per run. A property of one run: never recorded.
    #[serde(skip)]
    pub force: Vec<bool>,
}

impl PipelineConfig {
    /// The digest of every stage's code and input paths, by path.
    pub fn digests(&self) -> Result<BTreeMap<PathBuf, String>, String> {
        let mut digests = BTreeMap::new();
        for stage in &self.stages {
            for (name, path) in stage.code.iter().chain(&stage.inputs) {
                let digest = hyperion_cache::digest::of_path(path).map_err(|e| {
                    format!(
                        "stage `{}`: cannot read `{name}` ({}): {e}",
                        stage.name,
                        path.display()
                    )
                })?;
                digests.insert(path.clone(), digest);
            }
        }
        Ok(digests)
    }

    /// The same pipeline with every path absolute, for a worker started elsewhere.
    pub fn absolute(mut self) -> Self {
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        self.cache_dir = absolute(&self.cache_dir);
        for stage in &mut self.stages {
            for (_, path) in stage.code.iter_mut().chain(stage.inputs.iter_mut()) {
                *path = absolute(path);
            }
        }
        self
    }

    /// Computes stage `name` and every stage after it (that needs it, directly or not) again in
    /// this run, instead of taking them from the cache.
    pub fn force_from(&mut self, name: &str) -> Result<(), String> {
        if !self
            .stages
            .iter()
            .any(|s| s.name == name || s.group() == name)
        {
            let names: Vec<&str> = self.stages.iter().map(|s| s.group()).collect();
            let mut names = names;
            names.dedup();
            return Err(format!(
                "--from-stage {name}: no such stage (the stages: {})",
                names.join(", ")
            ));
        }
        self.force = vec![false; self.stages.len()];
        // Stages come after those they need: one pass finds everything downstream.
        for i in 0..self.stages.len() {
            let stage = &self.stages[i];
            self.force[i] = stage.name == name
                || stage.group() == name
                || stage.needs.iter().any(|&n| self.force[n]);
        }
        Ok(())
    }

    /// The process of stage `index` for `trial`, to run in `dir` (its output `dir/out`): the
    /// params it may see (a cached stage only its own), `{out}` and its `{in.STAGE}` inputs.
    pub fn command(
        &self,
        index: usize,
        process: &crate::protocol::ProcessConfig,
        trial: &TrialRef,
        dir: &Path,
    ) -> Result<std::process::Command, String> {
        let stage = &self.stages[index];
        let params = match stage.cache {
            true => stage.own_params(trial.params),
            false => trial.params.clone(),
        };
        let mut extra = vec![("out".to_string(), dir.join("out").display().to_string())];
        extra.extend(self.inputs(index, trial.dir));
        let vars = crate::protocol::Placeholders {
            params: &params,
            space: trial.space,
            trial_dir: trial.dir,
            number: trial.number,
            id: trial.id,
            study: trial.study,
            extra: &extra,
        };
        stage.command(process, &vars, dir)
    }

    /// The output digests of the stages that stage `index` needs, by name, from the trial's
    /// directory `trial_dir` (where the run that ran them put them).
    pub fn upstream_in(
        &self,
        index: usize,
        trial_dir: &Path,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut upstream = BTreeMap::new();
        for &need in &self.stages[index].needs {
            let need = &self.stages[need];
            let dir = need.trial_path(trial_dir);
            let digest = hyperion_cache::output_digest(&dir).map_err(|e| {
                format!(
                    "no output of stage `{}` here ({}): {e}",
                    need.name,
                    dir.display()
                )
            })?;
            upstream.insert(need.name.clone(), digest);
        }
        Ok(upstream)
    }

    /// The `{in.STAGE}` placeholders of stage `index` in the trial directory `trial_dir`: a
    /// stage it needs as its `out/` there, a foreach stage as the directory of its items (each
    /// `VALUE/out`).
    pub fn inputs(&self, index: usize, trial_dir: &Path) -> Vec<(String, String)> {
        let mut inputs: Vec<(String, String)> = Vec::new();
        for &need in &self.stages[index].needs {
            let need = &self.stages[need];
            let (name, path) = match &need.item {
                Some(item) => (&item.stage, trial_dir.join(&item.stage)),
                None => (&need.name, trial_dir.join(&need.name).join("out")),
            };
            let placeholder = format!("in.{name}");
            if !inputs.iter().any(|(p, _)| *p == placeholder) {
                inputs.push((placeholder, path.display().to_string()));
            }
        }
        inputs
    }
}

/// A trial as its stages' commands see it.
#[derive(Clone, Copy, Debug)]
pub struct TrialRef<'a> {
    pub study: &'a str,
    pub space: &'a hyperion_core::SearchSpace,
    pub number: hyperion_core::TrialNumber,
    pub id: u64,
    pub params: &'a Params,
    /// The trial's directory, where its stages' outputs are (or link to).
    pub dir: &'a Path,
}

/// One stage: a command with what it reads and writes.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StageConfig {
    pub name: String,
    /// The template: today's placeholders, `{out}` (its output directory) and `{in.STAGE}`
    /// (the output of a stage it needs, read-only).
    pub argv: Vec<String>,
    pub shell: bool,
    pub env: BTreeMap<String, String>,
    /// The stages it needs, as indices into [`PipelineConfig::stages`] (all earlier).
    pub needs: Vec<usize>,
    /// The parameters that reach its command and environment, and its key.
    pub params: Vec<String>,
    /// Files and directories whose content matters, as written (relative to the working
    /// directory) and resolved.
    pub code: Vec<(String, PathBuf)>,
    pub inputs: Vec<(String, PathBuf)>,
    /// Paths under `{out}` that must exist when it exits 0.
    pub outputs: Vec<String>,
    /// False for a stage with side effects: it runs for every trial, in the trial's directory.
    pub cache: bool,
    /// The user's salt of the key.
    pub version: Option<String>,
    /// Its processes at once, across trials (none: only the study's limit).
    pub max_concurrent: Option<usize>,
    /// Runs after a failure, in all (not once per trial waiting for it).
    pub retries: u32,
    /// Among stages ready to run, a higher priority goes first (then the one ready first).
    pub priority: i32,
    /// GPUs of the study's `resources.gpus` each of its processes holds
    /// (`CUDA_VISIBLE_DEVICES`); none for most stages. A Slurm stage asks Slurm for them.
    #[serde(default)]
    pub gpus: usize,
    /// Where its processes run: `local`, or `slurm` (each a batch job, with the study's
    /// `slurm:` options).
    #[serde(default = "local")]
    pub executor: String,
    /// For one item of a `foreach` stage (named `stage[text]`): which.
    pub item: Option<Item>,
}

fn local() -> String {
    "local".into()
}

/// One item of a `foreach` stage: its variable's value.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Item {
    /// The foreach stage's name, as the study file gives it.
    pub stage: String,
    pub var: String,
    pub value: serde_json::Value,
    /// The value as its placeholder and its directory write it.
    pub text: String,
}

impl StageConfig {
    /// The stage's name in the study file: an item's foreach stage.
    pub fn group(&self) -> &str {
        self.item.as_ref().map_or(&self.name, |i| &i.stage)
    }

    /// Where the stage's directory is in a trial's directory: `STAGE`, or `STAGE/VALUE` for an
    /// item (a link to its cache entry, or the directory an uncached stage runs in).
    pub fn trial_path(&self, trial_dir: &Path) -> PathBuf {
        match &self.item {
            Some(item) => trial_dir.join(&item.stage).join(&item.text),
            None => trial_dir.join(&self.name),
        }
    }

    /// The key material of this stage for a trial with `params`, given each code and input
    /// path's digest and the output digests of the stages it needs (by name).
    pub fn material(
        &self,
        params: &Params,
        digests: &BTreeMap<PathBuf, String>,
        upstream: BTreeMap<String, String>,
    ) -> KeyMaterial {
        let paths = |list: &[(String, PathBuf)]| -> BTreeMap<String, String> {
            list.iter()
                .map(|(name, path)| (name.clone(), digests.get(path).cloned().unwrap_or_default()))
                .collect()
        };
        let mut own: BTreeMap<String, serde_json::Value> = self
            .params
            .iter()
            .filter_map(|p| {
                let value = serde_json::to_value(params.get(p)?).ok()?;
                Some((p.clone(), value))
            })
            .collect();
        if let Some(item) = &self.item {
            own.insert(item.var.clone(), item.value.clone());
        }
        KeyMaterial {
            schema: hyperion_cache::key::SCHEMA,
            stage: self.group().to_owned(),
            argv: self.argv.clone(),
            shell: self.shell,
            env: self.env.clone(),
            params: own,
            code: paths(&self.code),
            inputs: paths(&self.inputs),
            upstream,
            version: self.version.clone(),
        }
    }

    /// The stage's process for the trial `vars` describes, to run in `dir` (its output goes to
    /// `dir/out`, its metrics file is `dir/metrics.jsonl`): the argv filled in, the working
    /// directory and the environment. Only an uncached stage learns which trial it is.
    pub fn command(
        &self,
        process: &crate::protocol::ProcessConfig,
        vars: &crate::protocol::Placeholders,
        dir: &std::path::Path,
    ) -> Result<std::process::Command, String> {
        let mut extra = vars.extra.to_vec();
        if let Some(item) = &self.item {
            extra.push((item.var.clone(), item.text.clone()));
        }
        let vars = crate::protocol::Placeholders {
            extra: &extra,
            ..*vars
        };
        let argv = crate::protocol::render_argv(&self.argv, self.shell, &vars)?;
        let mut command = std::process::Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .current_dir(&process.workdir)
            .envs(&process.env)
            .envs(&self.env)
            .env("HYPERION_STUDY", vars.study)
            .env("HYPERION_STAGE", &self.name)
            .env(
                "HYPERION_ITEM",
                self.item.as_ref().map_or("", |i| i.text.as_str()),
            )
            .env("HYPERION_OUT", dir.join("out"))
            .env(
                "HYPERION_PARAMS",
                serde_json::to_string(vars.params).unwrap_or_default(),
            )
            .env("HYPERION_METRICS_FILE", dir.join("metrics.jsonl"))
            .stdin(std::process::Stdio::null());
        if !self.cache {
            command
                .env("HYPERION_TRIAL_ID", vars.id.to_string())
                .env("HYPERION_TRIAL_NUMBER", vars.number.to_string())
                .env("HYPERION_TRIAL_DIR", vars.trial_dir);
        }
        Ok(command)
    }

    /// The trial's params this stage declares: all it sees.
    pub fn own_params(&self, params: &Params) -> Params {
        self.params
            .iter()
            .filter_map(|p| Some((p.clone(), params.get(p)?.clone())))
            .collect()
    }
}

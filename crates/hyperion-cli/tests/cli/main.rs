//! The real `hyperion` binary on real scripts, each test in its own directory.

mod analysis;
mod bad_input;
mod cluster;
mod controller;
mod early_stopping;
mod first_hour;
mod pipeline;
mod protocol;
mod resume;
mod slurm;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A temporary directory to run `hyperion` in; its store is `.hyperion/hyperion.db` there.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (executable if it is a script).
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).unwrap();
        if name.ends_with(".sh") || name.ends_with(".py") {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        path
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hyperion"));
        command
            .args(args)
            .current_dir(self.path())
            .env_remove("HYPERION_STORAGE");
        command
    }

    fn hyperion(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// `hyperion run study.yaml ARGS…`, which must succeed.
    fn run(&self, study: &str, args: &[&str]) -> Output {
        self.write("study.yaml", study);
        let mut all = vec!["run", "study.yaml"];
        all.extend(args);
        let output = self.hyperion(&all);
        assert!(
            output.status.success(),
            "hyperion run failed:\n{}",
            stderr(&output)
        );
        output
    }

    /// `hyperion run study.yaml`, which must fail; its error message.
    fn run_error(&self, study: &str) -> String {
        self.write("study.yaml", study);
        let output = self.hyperion(&["run", "study.yaml"]);
        assert!(
            !output.status.success(),
            "hyperion run should have failed:\n{}",
            stderr(&output)
        );
        stderr(&output)
    }

    fn trials(&self, study: &str) -> Vec<Value> {
        let output = self.hyperion(&["trials", study, "--format", "json"]);
        assert!(output.status.success(), "{}", stderr(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// `hyperion ARGS…`, which must succeed and print JSON.
    fn hyperion_json(&self, args: &[&str]) -> Vec<Value> {
        let output = self.hyperion(args);
        assert!(output.status.success(), "{}", stderr(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    }

    fn trial_dir(&self, study: &str, number: u64) -> PathBuf {
        self.path()
            .join(".hyperion")
            .join(study)
            .join("trials")
            .join(number.to_string())
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn state(trial: &Value) -> &str {
    trial["state"]["state"].as_str().unwrap()
}

fn error(trial: &Value) -> &str {
    trial["state"]["error"].as_str().unwrap_or_default()
}

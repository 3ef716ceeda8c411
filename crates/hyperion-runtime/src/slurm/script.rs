//! What Hyperion hands `sbatch`: the options of a study's `slurm:` section, and the job script,
//! which it writes itself. Values reach the script only single-quoted, one word each.

use std::path::Path;

use super::SlurmConfig;
use super::commands::time_limit;
use crate::protocol::shell_quote;

/// The job of trial `number` of `study`: `hyperion-<study>-<number>`, with every character
/// Slurm's name lists cannot hold (`,`, spaces, …) as `_`.
pub(crate) fn job_name(study: &str, number: impl std::fmt::Display) -> String {
    let study: String = study
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("hyperion-{study}-{number}")
}

/// A path in an `--output` or `--error` option: `%` starts Slurm's patterns.
pub(super) fn output_path(path: &Path) -> String {
    path.display().to_string().replace('%', "%%")
}

/// The `sbatch` options of the `slurm:` section, for a job with this `time` limit.
pub(crate) fn resource_options(
    slurm: &SlurmConfig,
    time: Option<std::time::Duration>,
) -> Vec<String> {
    let mut options = Vec::new();
    let mut option = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            options.push(format!("--{name}={value}"));
        }
    };
    option("partition", slurm.partition.clone());
    option("account", slurm.account.clone());
    option("qos", slurm.qos.clone());
    option("time", time.map(time_limit));
    option("cpus-per-task", slurm.cpus_per_task.map(|n| n.to_string()));
    option("mem", slurm.mem.clone());
    option(
        "gres",
        slurm
            .gres
            .clone()
            .or_else(|| slurm.gpus_per_trial.map(|n| format!("gpu:{n}"))),
    );
    option("constraint", slurm.constraint.clone());
    option("nodes", slurm.nodes.map(|n| n.to_string()));
    options.extend(slurm.extra_args.iter().cloned());
    options
}

/// The options of a job named `name` whose logs go to `dir`, working in `workdir`.
pub(crate) fn job_options(name: &str, dir: &Path, workdir: &Path) -> Vec<String> {
    vec![
        "--parsable".to_owned(),
        format!("--job-name={name}"),
        format!("--output={}", output_path(&dir.join("stdout.log"))),
        format!("--error={}", output_path(&dir.join("stderr.log"))),
        format!("--chdir={}", workdir.display()),
    ]
}

/// The job script: the `setup` lines as written (they are the user's shell), then the
/// trial's environment and its argv, every value quoted, run with `exec` so that the job's
/// exit status and signals are the command's.
pub(crate) fn job_script(
    what: &str,
    setup: &[String],
    env: &[(String, String)],
    argv: &[String],
) -> String {
    let mut script = format!("#!/bin/bash\n# Written by Hyperion for {what}.\n");
    for line in setup {
        script.push_str(line);
        script.push('\n');
    }
    for (name, value) in env {
        script.push_str(&format!("export {name}={}\n", shell_quote(value)));
    }
    let words: Vec<String> = argv.iter().map(|w| shell_quote(w)).collect();
    script.push_str(&format!("exec {}\n", words.join(" ")));
    script
}

/// Whether `name` can be exported by a shell: an environment variable's name.
pub(crate) fn exportable(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_reach_the_script_as_single_words() {
        let hostile = "x'; rm -rf / #$(reboot)`id`\n";
        let script = job_script(
            "trial 3",
            &["module load cuda/12".into()],
            &[("HYPERION_PARAMS".into(), hostile.into())],
            &["python".into(), format!("--lr={hostile}")],
        );
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(script.replace("module load cuda/12\n", "").replace(
                "exec 'python'",
                "printf '%s\\n' \"$HYPERION_PARAMS\"; printf '<%s>' ",
            ))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text, format!("{hostile}\n<--lr={hostile}>"));
        assert!(script.contains("module load cuda/12\n"));
    }

    #[test]
    fn names_and_paths_are_what_slurm_reads() {
        assert_eq!(job_name("lr sweep,2", 7), "hyperion-lr_sweep_2-7");
        assert_eq!(
            output_path(Path::new("/scratch/100%/3/stdout.log")),
            "/scratch/100%%/3/stdout.log"
        );
        let slurm = SlurmConfig {
            partition: Some("gpu".into()),
            gpus_per_trial: Some(2),
            extra_args: vec!["--exclusive".into()],
            ..SlurmConfig::default()
        };
        assert_eq!(
            resource_options(&slurm, Some(std::time::Duration::from_secs(90))),
            [
                "--partition=gpu",
                "--time=0-00:02:00",
                "--gres=gpu:2",
                "--exclusive"
            ]
        );
    }
}

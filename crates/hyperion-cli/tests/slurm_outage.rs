//! A study on Slurm while `slurmctld` stops answering for half a minute. Alone in its test
//! binary: it stops the test cluster's controller, which the other tests of a binary would see.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// Starts `slurmctld` again when dropped, whatever the test did.
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        let _ = Command::new("/usr/sbin/slurmctld").status();
        for _ in 0..100 {
            let ping = Command::new("scontrol").arg("ping").output();
            if ping.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("UP")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn a_run_waits_out_a_controller_that_stops_answering_and_fails_no_trial() {
    if std::env::var("HYPERION_TEST_SLURM").as_deref() == Ok("skip") {
        eprintln!("skipped: HYPERION_TEST_SLURM=skip");
        return;
    }
    let pid = std::fs::read_to_string("/run/slurm/slurmctld.pid").expect(
        "no Slurm here: start one with `infra/slurm-up.sh` (root), or set HYPERION_TEST_SLURM=skip",
    );
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("nap.sh"),
        "sleep 2\necho \"HYPERION_METRIC {\\\"loss\\\": $1}\"\n",
    )
    .unwrap();
    let study = format!("outage{}", std::process::id());
    std::fs::write(
        home.path().join("study.yaml"),
        format!(
            "name: {study}\ncommand: [sh, nap.sh, '{{x}}']\n\
             parameters: {{x: {{type: float, low: 0.0, high: 1.0}}}}\nmetric: {{name: loss}}\n\
             budget: {{max_trials: 9}}\nresources: {{max_concurrent: 3, executor: slurm}}\n\
             slurm: {{time: 10m}}\n"
        ),
    )
    .unwrap();
    let hyperion = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hyperion"));
        command
            .args(args)
            .current_dir(home.path())
            .env_remove("HYPERION_STORAGE");
        command
    };
    let run = hyperion(&["run", "study.yaml", "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let restart = Restart;
    let status = Command::new("kill").arg(pid.trim()).status().unwrap();
    assert!(status.success());
    // Longer than squeue's own retries (MessageTimeout), so the run sees the outage.
    std::thread::sleep(Duration::from_secs(35));
    drop(restart);
    let output = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: Slurm does not answer"),
        "{stderr}"
    );
    assert!(stderr.contains("note: Slurm answers again"), "{stderr}");
    let trials = hyperion(&["trials", &study, "--format", "json"])
        .output()
        .unwrap();
    let trials: Vec<Value> = serde_json::from_slice(&trials.stdout).unwrap();
    assert_eq!(trials.len(), 9);
    for t in &trials {
        assert_eq!(t["state"]["state"], "completed", "{t}");
    }
}

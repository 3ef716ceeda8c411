//! Workers on one PostgreSQL study while the server restarts and their connections are killed
//! server-side. Alone in its test binary: it restarts the test server, which the other tests
//! of a binary would see.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hyperion_store::pg::testing::{DEFAULT_URL, TestSchema};
use serde_json::Value;

fn hyperion(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hyperion"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("HYPERION_STORAGE");
    command
}

#[test]
fn workers_outlive_a_server_restart_and_killed_connections_and_lose_nothing() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let trial = home.path().join("trial.sh");
    std::fs::write(
        &trial,
        "sleep 0.3\necho \"HYPERION_METRIC {\\\"loss\\\": $1}\"\n",
    )
    .unwrap();
    std::fs::write(
        home.path().join("study.yaml"),
        format!(
            "name: outage\ncommand: [sh, {}, '{{x}}']\n\
             parameters: {{x: {{type: float, low: 0.0, high: 1.0}}}}\n\
             metric: {{name: loss, goal: minimize}}\nbudget: {{max_trials: 240}}\n\
             resources: {{max_concurrent: 2}}\n",
            trial.display()
        ),
    )
    .unwrap();
    let created = hyperion(
        home.path(),
        &["create", "study.yaml", "--storage", &schema.url],
    )
    .output()
    .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );

    let machines: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let workers: Vec<Child> = machines
        .iter()
        .map(|m| {
            hyperion(
                m.path(),
                &["worker", "outage", "--storage", &schema.url, "-q"],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();

    std::thread::sleep(Duration::from_secs(1));
    // The server restarts (only the one infra/postgres-up.sh runs can be restarted here).
    let server = std::env::var("HYPERION_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_URL.into());
    let restarted = server == DEFAULT_URL;
    if restarted {
        let status = Command::new("pg_ctlcluster")
            .args(["15", "main", "restart", "-m", "fast"])
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctlcluster restart");
    }
    std::thread::sleep(Duration::from_secs(1));
    // Every connection of the workers is killed server-side.
    let killed: i64 = schema
        .client()
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = 'hyperion' AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(killed > 0, "the workers had connections");

    let mut said = 0;
    for worker in workers {
        let out = worker.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "a worker failed:\n{stderr}");
        assert!(
            !stderr.lines().any(|l| l.starts_with("error")),
            "an error reached a worker:\n{stderr}"
        );
        let losses = stderr.matches("reconnecting").count();
        // Once for each outage it noticed, not once per failed operation.
        assert!(losses <= 2, "{stderr}");
        said += losses;
    }
    assert!(said > 0, "the workers noticed the outages");

    let listed = hyperion(
        home.path(),
        &[
            "trials",
            "outage",
            "--format",
            "json",
            "--storage",
            &schema.url,
        ],
    )
    .output()
    .unwrap();
    assert!(listed.status.success());
    let trials: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
    let numbers: BTreeSet<u64> = trials
        .iter()
        .map(|t| t["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers.len(), trials.len(), "no duplicate numbers");
    let completed = trials
        .iter()
        .filter(|t| t["state"]["state"] == "completed")
        .count();
    assert_eq!(
        completed, 240,
        "the whole budget completed (restarted: {restarted})"
    );
}

//! One study shared by workers through a PostgreSQL store (`hyperion create`, `hyperion worker`).

use std::collections::BTreeSet;

use hyperion_store::pg::testing::TestSchema;

use crate::{Sandbox, state, stderr};

const STUDY: &str = "name: shared\ncommand: [sh, trial.sh, '{x}']\n\
    parameters: {x: {type: float, low: 0.0, high: 1.0}}\n\
    metric: {name: loss, goal: minimize}\nmethod: tpe\nseed: 7\n\
    budget: {max_trials: 60}\nresources: {max_concurrent: 3}\n";

#[test]
fn workers_on_one_postgresql_study_run_its_budget_exactly_once() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let s = Sandbox::new();
    s.write(
        "trial.sh",
        "sleep 0.05\necho \"HYPERION_METRIC {\\\"loss\\\": $1}\"\n",
    );
    s.write("study.yaml", STUDY);
    let created = s.hyperion(&["create", "study.yaml", "--storage", &schema.url]);
    assert!(created.status.success(), "{}", stderr(&created));
    let said = String::from_utf8_lossy(&created.stdout);
    assert!(said.contains("study \"shared\" created"), "{said}");
    assert!(
        !said.contains(":hyperion@"),
        "the password is hidden: {said}"
    );

    // Four workers in other directories, as on other machines: no study file there.
    let machines: Vec<Sandbox> = (0..4).map(|_| Sandbox::new()).collect();
    let workers: Vec<_> = machines
        .iter()
        .map(|m| {
            m.write(
                "trial.sh",
                "sleep 0.05\necho \"HYPERION_METRIC {\\\"loss\\\": $1}\"\n",
            );
            m.command(&["worker", "shared", "--storage", &schema.url, "-q"])
                .stderr(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for worker in workers {
        let out = worker.wait_with_output().unwrap();
        assert!(out.status.success(), "a worker failed:\n{}", stderr(&out));
    }
    let trials = s.hyperion_json(&[
        "trials",
        "shared",
        "--format",
        "json",
        "--storage",
        &schema.url,
    ]);
    let numbers: BTreeSet<u64> = trials
        .iter()
        .map(|t| t["number"].as_u64().unwrap())
        .collect();
    assert_eq!(trials.len(), 60, "exactly the budget");
    assert_eq!(numbers.len(), 60, "no duplicate numbers");
    assert!(trials.iter().all(|t| state(t) == "completed"), "{trials:?}");
    // Every worker ran some: they shared the study.
    for m in &machines {
        let dir = m.path().join(".hyperion/shared/trials");
        assert!(
            std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0) > 0,
            "{}",
            dir.display()
        );
    }

    // Rerunning `create` with the same file changes nothing; with a new budget, says so.
    let again = s.hyperion(&[
        "create",
        "study.yaml",
        "--storage",
        &schema.url,
        "budget.max_trials=80",
    ]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("updated"));
    assert!(
        stderr(&again).contains("max_trials: 60 → 80"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn a_worker_names_what_is_wrong() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let s = Sandbox::new();
    let out = s.hyperion(&["worker", "nowhere", "--storage", &schema.url]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("study \"nowhere\" not found"),
        "{}",
        stderr(&out)
    );

    let wrong = schema.url.replacen(":hyperion@", ":wr0ng@", 1);
    let out = s.hyperion(&["worker", "shared", "--storage", &wrong]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("refused the login"), "{e}");
    assert!(!e.contains("wr0ng"), "the password is hidden: {e}");
}

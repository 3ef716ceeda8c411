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
    for m in &machines {
        m.write(
            "trial.sh",
            "sleep 0.05\necho \"HYPERION_METRIC {\\\"loss\\\": $1}\"\n",
        );
    }
    finish(
        machines
            .iter()
            .map(|m| start_worker(m, &schema.url, "shared"))
            .collect(),
    );
    let (trials, numbers) = listed(&s, &schema.url, "shared");
    assert_eq!(trials.len(), 60, "exactly the budget");
    assert_eq!(numbers, 60, "no duplicate numbers");
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

    // From the machine that created it, a trial says which machine ran it, and where.
    let trial = s.hyperion(&["trial", "shared", "7", "--json", "--storage", &schema.url]);
    assert!(trial.status.success(), "{}", stderr(&trial));
    let trial: serde_json::Value = serde_json::from_slice(&trial.stdout).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(trial["host"].as_str(), Some(host.trim()));
    let dir = std::path::PathBuf::from(trial["directory"].as_str().unwrap());
    assert!(
        machines
            .iter()
            .any(|m| dir == m.path().join(".hyperion/shared/trials/7")),
        "{}",
        dir.display()
    );

    // A page of the listing, and the counts, from the store's indexes.
    let page = s.hyperion_json(&[
        "trials",
        "shared",
        "--format",
        "json",
        "--limit",
        "5",
        "--from",
        "10",
        "--storage",
        &schema.url,
    ]);
    let numbers: Vec<u64> = page.iter().map(|t| t["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [10, 11, 12, 13, 14]);
    let status = s.hyperion_json(&["status", "shared", "--json", "--storage", &schema.url]);
    assert_eq!(
        (
            status[0]["trials"].as_u64(),
            status[0]["completed"].as_u64()
        ),
        (Some(60), Some(60))
    );
    let best = status[0]["best"][0]["values"][0].as_f64().unwrap();
    let lowest = trials
        .iter()
        .map(|t| t["values"][0].as_f64().unwrap())
        .fold(f64::INFINITY, f64::min);
    assert_eq!(best, lowest);

    // The study copied to an SQLite file reads the same there.
    let copied = s.hyperion(&[
        "copy",
        "shared",
        "--from",
        &schema.url,
        "--to",
        "copy.db",
        "--as",
        "mine",
    ]);
    assert!(copied.status.success(), "{}", stderr(&copied));
    assert!(String::from_utf8_lossy(&copied.stdout).contains("60 trials"));
    let local = s.hyperion_json(&["trials", "mine", "--format", "json", "--storage", "copy.db"]);
    let values = |ts: &[serde_json::Value]| -> Vec<serde_json::Value> {
        ts.iter().map(|t| t["values"].clone()).collect()
    };
    assert_eq!(values(&local), values(&trials));
    let again = s.hyperion(&[
        "copy",
        "shared",
        "--from",
        &schema.url,
        "--to",
        "copy.db",
        "--as",
        "mine",
    ]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists there"),
        "{}",
        stderr(&again)
    );

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

/// `hyperion worker STUDY` in its own directory, as on another machine.
fn start_worker(machine: &Sandbox, url: &str, study: &str) -> std::process::Child {
    machine
        .command(&["worker", study, "--storage", url, "-q"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Every worker's exit, which must be a success with nothing said on stderr but notes.
fn finish(workers: Vec<std::process::Child>) {
    for worker in workers {
        let out = worker.wait_with_output().unwrap();
        let said = stderr(&out);
        assert!(out.status.success(), "a worker failed:\n{said}");
        assert!(
            !said.lines().any(|l| l.starts_with("error")),
            "an error reached a worker:\n{said}"
        );
    }
}

fn create(s: &Sandbox, url: &str, study: &str) {
    s.write("study.yaml", study);
    let created = s.hyperion(&["create", "study.yaml", "--storage", url]);
    assert!(created.status.success(), "{}", stderr(&created));
}

/// Study `name` on `url`: `max_trials` trials of a script that sleeps `sleep` seconds, two at
/// a time on each worker; `more` is added to its file.
fn sleeping_study(s: &Sandbox, url: &str, name: &str, sleep: f64, max_trials: u64, more: &str) {
    let trial = s.write(
        "trial.sh",
        &format!("sleep {sleep}\necho \"HYPERION_METRIC {{\\\"loss\\\": $1}}\"\n"),
    );
    create(
        s,
        url,
        &format!(
            "name: {name}\ncommand: [sh, {}, '{{x}}']\n\
             parameters: {{x: {{type: float, low: 0.0, high: 1.0}}}}\n\
             metric: {{name: loss, goal: minimize}}\nbudget: {{max_trials: {max_trials}}}\n\
             resources: {{max_concurrent: 2}}\n{more}",
            trial.display()
        ),
    );
}

/// The trials of `study` on `url`, and how many numbers they have (a duplicate counts once).
fn listed(s: &Sandbox, url: &str, study: &str) -> (Vec<serde_json::Value>, usize) {
    let trials = s.hyperion_json(&["trials", study, "--format", "json", "--storage", url]);
    let numbers: BTreeSet<u64> = trials
        .iter()
        .map(|t| t["number"].as_u64().unwrap())
        .collect();
    (trials, numbers.len())
}

#[test]
fn thirty_two_workers_share_one_study_without_duplicates_or_errors() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let s = Sandbox::new();
    // Trials that sleep: 2 cores suffice for 32 workers of 2 trials each.
    sleeping_study(&s, &schema.url, "wide", 0.2, 640, "");
    let machines: Vec<Sandbox> = (0..32).map(|_| Sandbox::new()).collect();
    let workers = machines
        .iter()
        .map(|m| start_worker(m, &schema.url, "wide"))
        .collect();
    finish(workers);
    let (trials, numbers) = listed(&s, &schema.url, "wide");
    let odd: Vec<&serde_json::Value> = trials.iter().filter(|t| state(t) != "completed").collect();
    assert_eq!(trials.len(), 640, "{odd:?}");
    assert_eq!(numbers, 640, "no duplicate numbers");
    let completed = trials.iter().filter(|t| state(t) == "completed").count();
    assert_eq!(completed, 640, "every trial completed");
}

#[test]
fn sigkilled_workers_lose_nothing_and_their_trials_are_retried_once() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let s = Sandbox::new();
    let recovery = "recovery: {heartbeat: 0.3s, grace: 1.5s, max_retries: 3}\n";
    sleeping_study(&s, &schema.url, "killed", 0.3, 300, recovery);
    let machines: Vec<Sandbox> = (0..8).map(|_| Sandbox::new()).collect();
    let mut workers: Vec<(usize, std::process::Child)> = machines
        .iter()
        .enumerate()
        .map(|(i, m)| (i, start_worker(m, &schema.url, "killed")))
        .collect();
    // SIGKILL a worker every 250 ms, ten times, and start another in its place.
    let mut random: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..10 {
        std::thread::sleep(std::time::Duration::from_millis(250));
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        let victim = (random % workers.len() as u64) as usize;
        let (machine, mut child) = workers.swap_remove(victim);
        child.kill().unwrap();
        child.wait().unwrap();
        workers.push((
            machine,
            start_worker(&machines[machine], &schema.url, "killed"),
        ));
    }
    finish(workers.into_iter().map(|(_, c)| c).collect());

    let (trials, numbers) = listed(&s, &schema.url, "killed");
    assert_eq!(numbers, trials.len(), "no duplicate numbers");
    let stale: Vec<u64> = trials
        .iter()
        .filter(|t| {
            t["state"]["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("stale"))
        })
        .map(|t| t["number"].as_u64().unwrap())
        .collect();
    assert!(!stale.is_empty(), "the kills left trials running");
    for number in &stale {
        let retries = trials
            .iter()
            .filter(|t| t["retry_of"].as_u64() == Some(*number))
            .count();
        assert_eq!(retries, 1, "trial {number} is retried once");
    }
    let completed = trials.iter().filter(|t| state(t) == "completed").count();
    assert_eq!(completed, 300, "the whole budget completed: {trials:?}");
}

#[test]
fn a_worker_can_take_a_share_of_the_budget_and_work_on_an_sqlite_study_too() {
    let s = Sandbox::new();
    s.write("trial.sh", "echo \"HYPERION_METRIC {\\\"loss\\\": $1}\"\n");
    create(
        &s,
        "study.db",
        &STUDY.replace("max_trials: 60", "max_trials: 10"),
    );
    for expected in [3, 6] {
        let out = s.hyperion(&[
            "worker",
            "shared",
            "--storage",
            "study.db",
            "--max-trials-here",
            "3",
            "-q",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("ran its --max-trials-here trials"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let trials = s.hyperion_json(&[
            "trials",
            "shared",
            "--format",
            "json",
            "--storage",
            "study.db",
        ]);
        assert_eq!(trials.len(), expected);
    }
    // Without a share, it runs the rest of the budget and leaves.
    let out = s.hyperion(&["worker", "shared", "--storage", "study.db", "-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let trials = s.hyperion_json(&[
        "trials",
        "shared",
        "--format",
        "json",
        "--storage",
        "study.db",
    ]);
    assert_eq!(trials.len(), 10);
}

#[test]
fn a_worker_follows_a_budget_raised_while_it_runs() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let s = Sandbox::new();
    sleeping_study(&s, &schema.url, "grows", 1.0, 4, "");
    let worker = start_worker(&s, &schema.url, "grows");
    // Once it has started trials, the study gets a bigger budget from another process.
    let start = std::time::Instant::now();
    while listed(&s, &schema.url, "grows").0.is_empty() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "no trial started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    sleeping_study(&s, &schema.url, "grows", 1.0, 9, "");
    finish(vec![worker]);
    let (trials, numbers) = listed(&s, &schema.url, "grows");
    assert_eq!(
        (trials.len(), numbers),
        (9, 9),
        "the worker ran the raised budget"
    );
    assert!(trials.iter().all(|t| t["state"]["state"] == "completed"));
}

//! `hyperion-bench postgres`: ask+tell cycles on one PostgreSQL study shared by 1, 8 and 32
//! processes (each its own connection pool, as workers on many machines would be), with the
//! errors that reached them and the duplicate numbers counted; then a study of 10⁶ trials
//! (created in bulk with COPY) and how fast it reads and grows.

use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Instant;

use hyperion::core::{Change, Params, Timestamp, TrialId, TrialNumber, TrialState};
use hyperion::store::PgStore;
use hyperion::{Outcome, Store};
use serde_json::json;

use crate::{median_ms, open_study, work_on};

/// The server both sides use (`bench/run` exports it).
fn server() -> String {
    std::env::var("HYPERION_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgresql://hyperion:hyperion@127.0.0.1:5432/hyperion".into())
}

fn url(schema: &str) -> String {
    let server = server();
    let joiner = if server.contains('?') { '&' } else { '?' };
    format!("{server}{joiner}schema={schema}")
}

fn drop_schema(schema: &str) {
    let mut client = postgres::Client::connect(&server(), postgres::NoTls).expect("the server");
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .expect("drop the benchmark schema");
}

pub fn run(quick: bool) {
    let sizes: &[(usize, u64)] = if quick {
        &[(1, 300), (8, 1_000), (32, 1_600)]
    } else {
        &[(1, 2_000), (8, 8_000), (32, 16_000)]
    };
    let exe = std::env::current_exe().expect("own path");
    for &(processes, total) in sizes {
        let schema = format!("bench_{}_{processes}", std::process::id());
        drop_schema(&schema);
        let url = url(&schema);
        // The study exists before the workers start, as `hyperion create` makes it.
        open_study(Arc::new(
            PgStore::open(&url).expect("open the benchmark store"),
        ));
        let started = Instant::now();
        let children: Vec<_> = (0..processes)
            .map(|_| {
                Command::new(&exe)
                    .args(["pg-worker", &url, &total.to_string()])
                    .stdout(Stdio::piped())
                    .spawn()
            })
            .collect::<Result<_, _>>()
            .expect("spawn workers");
        let mut errors = 0;
        let mut retries = 0;
        for child in children {
            let out = child.wait_with_output().expect("wait");
            if !out.status.success() {
                errors += 1;
            }
            retries += String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<u64>()
                .unwrap_or(0);
        }
        let seconds = started.elapsed().as_secs_f64();
        let store = PgStore::open(&url).expect("reopen");
        let id = store.study("bench").expect("the study").id;
        let trials = store.trials(id).expect("the trials");
        let numbers: std::collections::BTreeSet<u64> = trials.iter().map(|t| t.number.0).collect();
        let completed = trials.iter().filter(|t| t.values.is_some()).count();
        println!(
            "{}",
            json!({"impl": "hyperion", "suite": "postgres", "processes": processes,
                   "cycles": completed, "seconds": seconds, "per_s": completed as f64 / seconds,
                   "errors": errors + (total as usize - completed),
                   "duplicates": trials.len() - numbers.len(), "retries": retries})
        );
        drop(store);
        drop_schema(&schema);
    }
    million(if quick { 100_000 } else { 1_000_000 });
}

/// `pg-worker URL TOTAL`: one of the processes sharing the study; prints the operations its
/// store retried.
pub fn worker(args: &[String]) -> ExitCode {
    let [url, total] = args else {
        return ExitCode::from(2);
    };
    let store = Arc::new(PgStore::open(url).expect("open the shared store"));
    work_on(store.clone(), total);
    println!("{}", store.retries());
    ExitCode::SUCCESS
}

/// A study of `n` completed trials, made in bulk, then: the time of `hyperion status`, of the
/// best trial, of the first page of `hyperion trials`, and of ask+tell on it.
fn million(n: u64) {
    let schema = format!("bench_{}_million", std::process::id());
    drop_schema(&schema);
    let url = url(&schema);
    let started = Instant::now();
    let store = Arc::new(PgStore::open(&url).expect("open"));
    let study = open_study(store.clone());
    bulk_complete(&schema, study.record_id().0, n);
    let built = started.elapsed().as_secs_f64();
    drop(study);

    // Reads from a fresh process, as a user runs them.
    let hyperion = std::env::current_exe()
        .expect("own path")
        .with_file_name("hyperion");
    let cli = |args: &[&str]| {
        let out = Command::new(&hyperion)
            .arg("--storage")
            .arg(&url)
            .args(args)
            .output()
            .expect("run hyperion");
        assert!(
            out.status.success(),
            "hyperion {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let status_ms = median_ms(3, || cli(&["status", "bench"]));
    let page_ms = median_ms(3, || cli(&["trials", "bench", "--limit", "20"]));
    let store = PgStore::open(&url).expect("reopen");
    let id = store.study("bench").expect("the study").id;
    let best_ms = median_ms(9, || {
        store.best_trial(id).expect("best").expect("a best trial");
    });
    // Ask+tell against the same loop on a study of 10³ trials: the cost of a trial must not
    // grow with the study. In turns, after a checkpoint, so that both meet the same server.
    let small = format!("bench_{}_thousand", std::process::id());
    drop_schema(&small);
    let small_store = Arc::new(PgStore::open(&self::url(&small)).expect("open"));
    bulk_complete(&small, open_study(small_store.clone()).record_id().0, 1_000);
    checkpoint();
    let (big_store, mut big, mut thousand) = (Arc::new(store), Vec::new(), Vec::new());
    for _ in 0..3 {
        thousand.push(ask_tell_rate(small_store.clone()));
        big.push(ask_tell_rate(big_store.clone()));
    }
    drop((small_store, big_store));
    drop_schema(&small);
    drop_schema(&schema);
    println!(
        "{}",
        json!({"impl": "hyperion", "suite": "postgres", "big": n, "build_s": built,
               "status_ms": status_ms, "page_ms": page_ms, "best_ms": best_ms,
               "per_s_at_size": median(&mut big), "per_s_at_1k": median(&mut thousand)})
    );
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Writes the bulk loads' dirty pages out now rather than during a measurement (the
/// benchmark's user has `pg_checkpoint`, which `infra/postgres-up.sh` grants).
fn checkpoint() {
    let mut client = postgres::Client::connect(&server(), postgres::NoTls).expect("the server");
    if let Err(e) = client.batch_execute("CHECKPOINT") {
        eprintln!("note: no checkpoint before the measurements ({e})");
    }
}

/// Ask+tell cycles per second on the study of `store`, one after the other.
fn ask_tell_rate(store: Arc<PgStore>) -> f64 {
    let study = open_study(store);
    let cycles = 500;
    let t = Instant::now();
    for _ in 0..cycles {
        let trial = study.ask().expect("ask");
        let number = trial.number();
        drop(trial);
        study
            .tell(number, Outcome::Completed(vec![1.0]))
            .expect("tell");
    }
    cycles as f64 / t.elapsed().as_secs_f64()
}

/// Appends `n` completed trials to the study and its log with COPY, as the store would have
/// written them one by one.
fn bulk_complete(schema: &str, study: u64, n: u64) {
    use std::io::Write;
    let mut client = postgres::Client::connect(&server(), postgres::NoTls).expect("the server");
    client
        .batch_execute(&format!("SET search_path TO {schema}"))
        .expect("search path");
    let at = Timestamp::now();
    let mut trials = client
        .copy_in(
            "COPY trials (study_id, number, state, params, objective_values, value0, created_at, \
             started_at, finished_at) FROM STDIN",
        )
        .expect("copy trials");
    let params_of = |i: u64| {
        let mut params = Params::new();
        params.insert("x0".into(), ((i % 1000) as f64 / 100.0 - 5.0).into());
        params
    };
    for i in 0..n {
        let value = ((i * 7919) % 1_000_003) as f64;
        let params = serde_json::to_string(&params_of(i)).expect("json");
        writeln!(
            trials,
            "{study}\t{i}\tcompleted\t{params}\t[{value}]\t{value}\t{t}\t{t}\t{t}",
            t = at.0
        )
        .expect("a trial row");
    }
    trials.finish().expect("copy trials");
    let first_id: i64 = client
        .query_one(
            "SELECT min(id) FROM trials WHERE study_id = $1",
            &[&(study as i64)],
        )
        .expect("ids")
        .get(0);
    // After what the log holds already (the study's settings).
    let last_seq: i64 = client
        .query_one(
            "SELECT last_seq FROM studies WHERE id = $1",
            &[&(study as i64)],
        )
        .expect("the log's end")
        .get(0);
    let mut changes = client
        .copy_in("COPY changes (study_id, seq, at, kind, change) FROM STDIN")
        .expect("copy changes");
    let escape = |json: String| json.replace('\\', "\\\\");
    for i in 0..n {
        let number = TrialNumber(i);
        let created = Change::TrialCreated {
            id: TrialId(first_id as u64 + i),
            number,
            state: TrialState::Running,
            params: Arc::new(params_of(i)),
            parent: None,
            depth: 0,
            retry_of: None,
        };
        let value = ((i * 7919) % 1_000_003) as f64;
        let finished = Change::TrialFinished {
            number,
            state: TrialState::Completed,
            values: Some(vec![value]),
        };
        for (k, change) in [created, finished].into_iter().enumerate() {
            let json = escape(serde_json::to_string(&change).expect("json"));
            writeln!(
                changes,
                "{study}\t{}\t{}\t{}\t{json}",
                last_seq as u64 + 2 * i + k as u64 + 1,
                at.0,
                change.kind()
            )
            .expect("a change row");
        }
    }
    changes.finish().expect("copy changes");
    client
        .execute(
            "UPDATE studies SET n_trials = $2, last_seq = $3 WHERE id = $1",
            &[&(study as i64), &(n as i64), &(last_seq + 2 * n as i64)],
        )
        .expect("counters");
    // What autovacuum would soon do to tables that grew this much: done now, so that it does
    // not run during the measurements.
    for table in ["trials", "changes"] {
        client
            .batch_execute(&format!("VACUUM ANALYZE {table}"))
            .expect("vacuum");
    }
}

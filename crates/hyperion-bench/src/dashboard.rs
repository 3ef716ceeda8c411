//! `hyperion-bench dashboard`: `hyperion dashboard` over a large SQLite study (10⁵ trials, 10
//! parameters, learning curves of 20 steps for a tenth of them; 10⁴ with `--quick`): the first
//! request (the study folded from its log), the p95 of each API request the study page makes,
//! the server's memory, and the time from a `tell` to its event on the stream.
//!
//! The server is the real `hyperion` binary (beside this one in `target/release`), so its
//! memory is its own. With `HYPERION_BENCH_KEEP_DB=PATH` the study is kept there (and reused
//! by the next run), for `bench/dashboard.py`, which measures the first paint in Chromium and
//! optuna-dashboard beside it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hyperion::runtime::{Outcome, Study};
use hyperion::{FloatDistribution, SamplerConfig, SearchSpace, SqliteStore, Store};
use serde_json::json;

const PARAMS: usize = 10;

pub fn run(quick: bool) {
    let n = if quick { 10_000 } else { 100_000 };
    let dir = std::env::temp_dir().join(format!("hyperion-dashboard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keep = std::env::var_os("HYPERION_BENCH_KEEP_DB").map(std::path::PathBuf::from);
    let db = keep.clone().unwrap_or_else(|| dir.join("dashboard.db"));
    if filled(&db) >= n {
        eprintln!("reusing the study of {n} trials in {}", db.display());
    } else {
        let _ = std::fs::remove_file(&db);
        let started = Instant::now();
        fill(&db, n);
        eprintln!(
            "filled {n} trials in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }

    let exe = std::env::current_exe().unwrap();
    let hyperion = exe.with_file_name("hyperion");
    let mut server = Command::new(&hyperion)
        .args(["dashboard", "--bind", "127.0.0.1:0", "--storage"])
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", hyperion.display()));
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .split_whitespace()
        .last()
        .unwrap()
        .trim_end_matches('/')
        .to_owned();

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    let get = |path: &str| -> f64 {
        let t = Instant::now();
        let mut r = agent.get(&format!("{base}{path}")).call().unwrap();
        let _ = r
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap();
        t.elapsed().as_secs_f64() * 1e3
    };
    let first_ms = get("/api/v1/studies/dash");
    // What the study page asks for, and what a person does next: sort, filter, page, open.
    let requests = [
        ("studies", "/api/v1/studies".to_owned()),
        ("study", "/api/v1/studies/dash".to_owned()),
        ("page", "/api/v1/studies/dash/trials?limit=50".to_owned()),
        (
            "sorted",
            "/api/v1/studies/dash/trials?limit=50&sort=value".to_owned(),
        ),
        (
            "filtered",
            "/api/v1/studies/dash/trials?limit=50&range=param:x0:0:1&sort=param:x1&order=desc"
                .to_owned(),
        ),
        (
            "late_page",
            format!("/api/v1/studies/dash/trials?limit=50&offset={}", n - 50),
        ),
        (
            "history",
            "/api/v1/studies/dash/plots/history?width=1200".to_owned(),
        ),
        ("trial", "/api/v1/studies/dash/trials/10".to_owned()),
    ]
    .map(|(name, path)| (name.to_owned(), path))
    .into_iter()
    .chain(
        // Each plot as the study page asks for it: drawn, at its width.
        [
            "history",
            "parallel",
            "slice",
            "contour",
            "intermediate",
            "importance",
            "timeline",
        ]
        .map(|kind| {
            (
                format!("plot_{kind}"),
                format!("/api/v1/studies/dash/plots/{kind}?format=svg&width=1200"),
            )
        }),
    )
    .collect::<Vec<_>>();
    let mut all = Vec::new();
    let mut each = serde_json::Map::new();
    for (name, path) in &requests {
        let mut times: Vec<f64> = (0..40).map(|_| get(path)).collect();
        // The first is drawn; the others, with no change since, are the server's copy of it.
        if name.starts_with("plot_") {
            each.insert(format!("{name}_first_ms"), json!(round(times[0])));
        }
        times.sort_by(f64::total_cmp);
        each.insert(format!("{name}_p95_ms"), json!(round(p95(&times))));
        all.extend(times);
    }
    all.sort_by(f64::total_cmp);
    let rss_mb = rss_mb(server.id());

    // From the end of a tell (another process could have made it) to its event.
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).unwrap());
    let study = Study::open(store, "dash").unwrap();
    let response = agent
        .get(&format!("{base}/api/v1/studies/dash/events"))
        .call()
        .unwrap();
    let (seen, finished) = mpsc::channel::<Instant>();
    std::thread::spawn(move || {
        let reader = BufReader::new(response.into_body().into_reader());
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if line.contains("\"change\":\"trial_finished\"") && seen.send(Instant::now()).is_err()
            {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut sse: Vec<f64> = (0..20)
        .map(|_| {
            let trial = study.ask().unwrap();
            let number = trial.number();
            drop(trial);
            study.tell(number, Outcome::Completed(vec![1.0])).unwrap();
            let told = Instant::now();
            let at = finished.recv_timeout(Duration::from_secs(10)).unwrap();
            at.saturating_duration_since(told).as_secs_f64() * 1e3
        })
        .collect();
    sse.sort_by(f64::total_cmp);
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    if keep.is_none() {
        let _ = std::fs::remove_file(&db);
    }

    let mut result = json!({
        "suite": "dashboard",
        "trials": n,
        "first_load_ms": round(first_ms),
        "api_p95_ms": round(p95(&all)),
        "rss_mb": round(rss_mb),
        "sse_ms": round(sse[sse.len() / 2]),
        "sse_p95_ms": round(p95(&sse)),
        "paint_ms_100k": null,
        "optuna_dashboard_paint_ms_10k": null,
        "optuna_dashboard_paint_ms_100k": null,
    });
    result.as_object_mut().unwrap().extend(each);
    println!("{result}");
}

/// How many trials study `dash` in `db` has (0 without the file or the study).
fn filled(db: &std::path::Path) -> usize {
    if !db.exists() {
        return 0;
    }
    let Ok(store) = SqliteStore::open(db) else {
        return 0;
    };
    let store: Arc<dyn Store> = Arc::new(store);
    Study::open(store, "dash").map_or(0, |s| s.view().map_or(0, |v| v.trials().len()))
}

/// A study of `n` random trials; every tenth reports a curve of 20 steps.
fn fill(db: &std::path::Path, n: usize) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(db).unwrap());
    let mut space = SearchSpace::builder();
    for i in 0..PARAMS {
        space = space.param(&format!("x{i}"), FloatDistribution::new(-5.0, 5.0));
    }
    let study = Study::builder("dash")
        .minimize("loss")
        .space(space.build().unwrap())
        .sampler(SamplerConfig::Random)
        .seed(1)
        .store(store)
        .open()
        .unwrap();
    for i in 0..n {
        let trial = study.ask().unwrap();
        let number = trial.number();
        let loss: f64 = trial
            .params()
            .values()
            .filter_map(|v| v.as_f64())
            .map(|x| x * x)
            .sum();
        drop(trial);
        if i % 10 == 0 {
            for step in 0..20 {
                study
                    .report(number, step, &[loss * (1.0 + 1.0 / (step + 1) as f64)])
                    .unwrap();
            }
        }
        study.tell(number, Outcome::Completed(vec![loss])).unwrap();
    }
}

fn p95(sorted: &[f64]) -> f64 {
    sorted[(sorted.len() * 95 / 100).min(sorted.len() - 1)]
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The resident memory of process `pid`, from `/proc`.
fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

//! `hyperion-bench pipeline-engine`: what the stage cache costs a stage, apart from the stage's
//! own work: its key, the lookup that claims it, the commit of its output, and a later hit.
//! `bench/pipeline.py` runs the sweep end to end beside DVC and quotes these figures.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hyperion_cache::{Cache, KeyMaterial, Lookup};
use serde_json::json;

const LEASE: Duration = Duration::from_secs(30);

pub fn run(quick: bool) {
    let stages = if quick { 200 } else { 2_000 };
    let dir = tempfile_dir();
    let cache = Cache::open(&dir).expect("the cache opens");
    let mut misses = Vec::with_capacity(stages);
    let mut hits = Vec::with_capacity(stages);
    for i in 0..stages {
        let material = material(i);
        let started = Instant::now();
        let Lookup::Run(claim) = cache.lookup(&material, LEASE, 0, "bench/0").unwrap() else {
            panic!("a new key is claimed");
        };
        let looked_up = started.elapsed();
        // The stage's own work, not timed: one small output file.
        std::fs::write(claim.out().join("features.txt"), format!("{i}\n")).unwrap();
        let started = Instant::now();
        cache.commit(&claim, &["features.txt".into()]).unwrap();
        cache.unpin("bench/0").unwrap();
        misses.push(looked_up + started.elapsed());
    }
    for i in 0..stages {
        let material = material(i);
        let started = Instant::now();
        let found = cache.lookup(&material, LEASE, 0, "bench/1").unwrap();
        hits.push(started.elapsed());
        assert!(matches!(found, Lookup::Hit(_)));
    }
    cache.unpin("bench/1").unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    for (what, mut times) in [("miss", misses), ("hit", hits)] {
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mean = times.iter().map(|d| ms(*d)).sum::<f64>() / times.len() as f64;
        println!(
            "{}",
            json!({
                "suite": "pipeline-engine",
                "stage": what,
                "stages": times.len(),
                "median_ms": ms(times[times.len() / 2]),
                "p95_ms": ms(times[times.len() * 95 / 100]),
                "mean_ms": mean,
            })
        );
    }
}

/// A prepare stage's key material, as the runtime makes it: a command, a declared param, a code
/// digest and no upstream.
fn material(i: usize) -> KeyMaterial {
    KeyMaterial {
        schema: hyperion_cache::key::SCHEMA,
        stage: "prepare".into(),
        argv: vec![
            "python".into(),
            "prep.py".into(),
            "{n}".into(),
            "{out}".into(),
        ],
        shell: false,
        env: BTreeMap::new(),
        params: [("n".to_string(), json!(i))].into(),
        code: [("prep.py".to_string(), "b3:00".repeat(13))].into(),
        inputs: BTreeMap::new(),
        upstream: BTreeMap::new(),
        version: None,
    }
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hyperion-bench-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

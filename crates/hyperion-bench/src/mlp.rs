//! The sanity check of the `pruning` suite: a real scikit-learn MLP (`bench/mlp.py`) trained as
//! trial processes through `hyperion run`, without early stopping and with ASHA.

use std::path::Path;
use std::time::Instant;

use hyperion::Store;
use hyperion::store::SqliteStore;
use serde_json::json;

/// Trials without early stopping; ASHA gets twice as many.
fn trials(quick: bool) -> u64 {
    if quick { 8 } else { 20 }
}

pub fn run(quick: bool) {
    let bench = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench");
    let python = std::env::var("HYPERION_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let dir = crate::scratch_dir();
    for (strategy, n) in [("none", trials(quick)), ("asha", 2 * trials(quick))] {
        let early = match strategy {
            "asha" => {
                "early_stopping: {type: asha, min_resource: 1, max_resource: 27, reduction_factor: 3}\n"
            }
            _ => "",
        };
        let study = dir.join(format!("mlp-{strategy}.yaml"));
        std::fs::write(
            &study,
            format!(
                "name: mlp\ncommand: ['{python}', '{}', '{{lr}}', '{{alpha}}', '{{hidden}}']\n\
                 parameters:\n  lr: {{type: float, low: 1.0e-4, high: 1.0, log: true}}\n\
                 \x20 alpha: {{type: float, low: 1.0e-6, high: 0.1, log: true}}\n\
                 \x20 hidden: {{type: int, low: 8, high: 128}}\n\
                 metric: {{name: val_loss, goal: minimize}}\nseed: 0\n\
                 budget: {{max_trials: {n}}}\nresources: {{max_concurrent: 2}}\n{early}",
                bench.join("mlp.py").display()
            ),
        )
        .expect("write the study file");
        let db = dir.join(format!("mlp-{strategy}.db"));
        let started = Instant::now();
        crate::hyperion_run(&db, &study, &[]);
        let store = SqliteStore::open(&db).expect("the store");
        let trials = store
            .trials(store.study("mlp").expect("the study").id)
            .expect("trials");
        if let Some(failed) = trials.iter().find(|t| t.state.name() == "failed") {
            panic!(
                "an MLP trial failed (set HYPERION_BENCH_PYTHON to a Python with scikit-learn): {:?}",
                failed.state
            );
        }
        let epochs: usize = trials.iter().map(|t| t.intermediate.len()).sum();
        let best = trials
            .iter()
            .filter_map(|t| t.value())
            .fold(f64::INFINITY, f64::min);
        let pruned = trials.iter().filter(|t| t.state.name() == "pruned").count();
        println!(
            "{}",
            json!({"impl": "hyperion", "suite": "pruning", "problem": "mlp", "strategy": strategy,
                   "trials": n, "pruned": pruned, "epochs": epochs, "best": best,
                   "seconds": started.elapsed().as_secs_f64()})
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

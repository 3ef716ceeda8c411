use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyperion_core::{
    CategoricalDistribution, IntDistribution, SearchSpace, StopReason, TrialState,
};
use hyperion_runtime::{Budget, OptimizeConfig, Study, TrialError};
use hyperion_samplers::SamplerConfig;
use hyperion_store::{MemoryStore, Store};

use crate::{box_space, sphere};

fn config(budget: Budget, threads: usize) -> OptimizeConfig {
    OptimizeConfig::new(budget).threads(threads)
}

#[test]
fn concurrent_optimize_loses_and_duplicates_no_trial() {
    for threads in [2, 3, 4, 8] {
        let study = Study::builder("s")
            .minimize("loss")
            .space(box_space(10))
            .open()
            .unwrap();
        let calls = AtomicU64::new(0);
        let summary = study
            .optimize(&config(Budget::trials(500), threads), |t| {
                calls.fetch_add(1, Ordering::Relaxed);
                Ok::<_, TrialError>(sphere(t.params()))
            })
            .unwrap();
        assert_eq!(summary.reason, StopReason::MaxTrials);
        assert_eq!(
            (summary.trials_run, calls.load(Ordering::Relaxed)),
            (500, 500),
            "{threads} threads"
        );
        let trials = study.trials().unwrap();
        let numbers: BTreeSet<u64> = trials.iter().map(|t| t.number.0).collect();
        assert_eq!(numbers, (0..500).collect(), "{threads} threads");
        assert!(trials.iter().all(|t| t.state == TrialState::Completed));
        let best = trials
            .iter()
            .map(|t| t.value().unwrap())
            .fold(f64::INFINITY, f64::min);
        assert_eq!(summary.best.unwrap().value(), Some(best));
    }
}

#[test]
fn errors_and_panics_become_failed_trials_and_the_study_goes_on() {
    let study = Study::builder("s").open().unwrap();
    let summary = study
        .optimize(&config(Budget::trials(30), 3), |t| match t.number().0 % 3 {
            0 => Err(TrialError::from(std::io::Error::other("disk full"))),
            1 => panic!("boom in trial {}", t.number()),
            _ => Ok(1.0),
        })
        .unwrap();
    assert_eq!(summary.trials_run, 30);
    let trials = study.trials().unwrap();
    assert_eq!(
        trials[0].state,
        TrialState::Failed {
            error: "disk full".into()
        }
    );
    assert_eq!(
        trials[1].state,
        TrialState::Failed {
            error: "the objective panicked: boom in trial 1".into()
        }
    );
    assert_eq!(trials[2].state, TrialState::Completed);
    assert_eq!(study.view().unwrap().counts().failed, 20);
}

#[test]
fn max_trials_counts_earlier_runs_so_a_resumed_study_runs_the_rest() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let open = || Study::builder("s").store(store.clone()).open().unwrap();
    open()
        .optimize(&config(Budget::trials(7), 2), |_| Ok::<_, TrialError>(0.0))
        .unwrap();
    let summary = open()
        .optimize(&config(Budget::trials(20), 4), |_| Ok::<_, TrialError>(0.0))
        .unwrap();
    assert_eq!(summary.trials_run, 13);
    assert_eq!(open().trials().unwrap().len(), 20);
}

#[test]
fn a_target_value_ends_the_study() {
    let study = Study::builder("s")
        .space(box_space(1))
        .seed(5)
        .open()
        .unwrap();
    let summary = study
        .optimize(
            &config(
                Budget {
                    target: Some(0.5),
                    max_trials: Some(10_000),
                    ..Budget::default()
                },
                1,
            ),
            |t| Ok::<_, TrialError>(sphere(t.params())),
        )
        .unwrap();
    assert_eq!(summary.reason, StopReason::TargetReached);
    assert!(summary.best.unwrap().value().unwrap() <= 0.5);
    assert!(summary.trials_run < 10_000);
    // Single-threaded, the study stops right after the first trial that reaches the target.
    let trials = study.trials().unwrap();
    assert!(
        trials[..trials.len() - 1]
            .iter()
            .all(|t| t.value().unwrap() > 0.5)
    );
}

#[test]
fn max_failures_ends_the_study() {
    let study = Study::builder("s").open().unwrap();
    let summary = study
        .optimize(
            &config(
                Budget {
                    max_failures: Some(4),
                    ..Budget::default()
                },
                1,
            ),
            |_| Err::<f64, _>(TrialError::Failed("nope".into())),
        )
        .unwrap();
    assert_eq!(
        (summary.reason, summary.trials_run),
        (StopReason::MaxFailures, 4)
    );
}

#[test]
fn max_time_ends_the_study() {
    let study = Study::builder("s").open().unwrap();
    let summary = study
        .optimize(
            &config(
                Budget {
                    max_time: Some(Duration::from_millis(100)),
                    ..Budget::default()
                },
                2,
            ),
            |_| {
                std::thread::sleep(Duration::from_millis(10));
                Ok::<_, TrialError>(1.0)
            },
        )
        .unwrap();
    assert_eq!(summary.reason, StopReason::MaxTime);
    assert!(summary.trials_run >= 2);
}

#[test]
fn an_exhausted_grid_ends_the_study_with_every_point_once() {
    let space = SearchSpace::builder()
        .param("a", IntDistribution::new(1, 4))
        .param("b", CategoricalDistribution::new([true, false]))
        .build()
        .unwrap();
    let study = Study::builder("s")
        .space(space)
        .sampler(SamplerConfig::grid())
        .open()
        .unwrap();
    let summary = study
        .optimize(&config(Budget::default(), 4), |_| Ok::<_, TrialError>(0.0))
        .unwrap();
    assert_eq!(
        (summary.reason, summary.trials_run),
        (StopReason::SpaceExhausted, 8)
    );
}

#[test]
fn stop_lets_running_trials_finish() {
    let study = Study::builder("s").open().unwrap();
    let summary = study
        .optimize(&config(Budget::default(), 2), |t| {
            if t.number() == 5 {
                study.stop().unwrap();
            }
            Ok::<_, TrialError>(1.0)
        })
        .unwrap();
    assert_eq!(summary.reason, StopReason::Stopped);
    let trials = study.trials().unwrap();
    assert!(
        trials.len() <= 7,
        "at most the trial on the other thread starts after the stop"
    );
    assert!(trials.iter().all(|t| t.state == TrialState::Completed));
}

#[test]
fn the_objective_can_prune_itself() {
    let study = Study::builder("s").open().unwrap();
    study
        .optimize(&config(Budget::trials(3), 1), |t| {
            t.report(0, 10.0)?;
            Err::<f64, _>(TrialError::pruned("diverged"))
        })
        .unwrap();
    let trials = study.trials().unwrap();
    assert_eq!(
        trials[2].state,
        TrialState::Pruned {
            step: Some(0),
            reason: "diverged".into()
        }
    );
}

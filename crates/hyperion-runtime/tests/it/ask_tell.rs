use std::sync::Arc;

use hyperion_core::{
    CategoricalDistribution, Condition, FloatDistribution, IntDistribution, ParamValue, Params,
    SearchSpace, StudyView, Trial, TrialState,
};
use hyperion_runtime::{Budget, Error, Outcome, Study};
use hyperion_samplers::SamplerConfig;
use hyperion_schedulers::{Action, Scheduler, Verdict};
use hyperion_store::{MemoryStore, Store};

use crate::{box_space, sphere};

#[test]
fn ask_returns_params_in_the_space_and_tell_records_the_value() {
    let study = Study::builder("s")
        .minimize("loss")
        .space(box_space(3))
        .open()
        .unwrap();
    let trial = study.ask().unwrap();
    assert_eq!(trial.number(), 0);
    assert_eq!(trial.params().len(), 3);
    let value = sphere(trial.params());
    let stored = study
        .tell(trial.number(), Outcome::Completed(vec![value]))
        .unwrap();
    assert_eq!(stored.state, TrialState::Completed);
    assert_eq!(study.best_trial().unwrap().unwrap().value(), Some(value));
}

#[test]
fn a_nan_objective_fails_the_trial_and_never_becomes_best() {
    let study = Study::builder("s").minimize("loss").open().unwrap();
    let n = study.ask().unwrap().number();
    let trial = study.tell(n, Outcome::Completed(vec![f64::NAN])).unwrap();
    assert_eq!(
        trial.state,
        TrialState::Failed {
            error: "objective \"loss\" is NaN".into()
        }
    );
    let m = study.ask().unwrap().number();
    study
        .tell(m, Outcome::Completed(vec![f64::NEG_INFINITY]))
        .unwrap();
    assert_eq!(study.best_trial().unwrap(), None);
}

#[test]
fn a_wrong_number_of_values_is_an_error_and_the_trial_stays_running() {
    let study = Study::builder("s")
        .minimize("loss")
        .maximize("acc")
        .open()
        .unwrap();
    let n = study.ask().unwrap().number();
    let e = study.tell(n, Outcome::Completed(vec![1.0])).unwrap_err();
    assert_eq!(e.to_string(), "trial 0: 1 value for 2 objectives");
    assert_eq!(study.trials().unwrap()[0].state, TrialState::Running);
    study.tell(n, Outcome::Completed(vec![1.0, 0.5])).unwrap();
    let e = study
        .tell(
            n,
            Outcome::Failed {
                error: "again".into(),
            },
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "trial 0 is completed, not running");
}

#[test]
fn several_objectives_give_a_pareto_front() {
    let study = Study::builder("s")
        .minimize("loss")
        .maximize("acc")
        .open()
        .unwrap();
    for values in [[1.0, 0.5], [0.5, 0.4], [2.0, 0.3], [0.4, 0.6]] {
        let n = study.ask().unwrap().number();
        study.tell(n, Outcome::Completed(values.to_vec())).unwrap();
    }
    let front: Vec<u64> = study
        .pareto_front()
        .unwrap()
        .iter()
        .map(|t| t.number.0)
        .collect();
    assert_eq!(front, [3]);
}

#[test]
fn define_by_run_suggestions_behave_as_in_optuna() {
    let study = Study::builder("s").minimize("loss").open().unwrap();
    let mut trial = study.ask().unwrap();
    let lr = trial.suggest_float_log("lr", 1e-5, 1e-1).unwrap();
    assert!((1e-5..=1e-1).contains(&lr));
    assert_eq!(
        trial.suggest_float_log("lr", 1e-5, 1e-1).unwrap(),
        lr,
        "asking again gives the same value"
    );
    let layers = trial.suggest_int("layers", 1, 4).unwrap();
    let units = trial
        .suggest_i64("units", IntDistribution::new(16, 256).step(16))
        .unwrap();
    assert!((1..=4).contains(&layers) && units % 16 == 0);
    let opt = trial.suggest_categorical("opt", ["adam", "sgd"]).unwrap();
    assert!(matches!(opt.as_str(), Some("adam" | "sgd")));

    let e = trial.suggest_float("lr", 0.0, 1.0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "parameter \"lr\" is already defined as float 0.00001..0.1 log in this study; it cannot now be float 0..1 \
         (use another name, or a new study)"
    );
    let e = trial.suggest_float_log("wd", 0.0, 1.0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "parameter \"wd\": low (0) must be > 0 for a log scale"
    );
    let number = trial.number();
    drop(trial);
    study.tell(number, Outcome::Completed(vec![lr])).unwrap();

    let stored = &study.trials().unwrap()[0];
    assert_eq!(stored.params["lr"], ParamValue::Float(lr));
    assert_eq!(stored.params.len(), 4);
    // The next trial may not redefine "lr" either.
    let mut next = study.ask().unwrap();
    assert!(next.suggest_float("lr", 1e-4, 1e-1).is_err());
}

#[test]
fn declared_parameters_are_returned_and_checked() {
    let space = SearchSpace::builder()
        .param("opt", CategoricalDistribution::new(["adam", "sgd"]))
        .param_if(
            "momentum",
            FloatDistribution::new(0.0, 1.0),
            Condition::new("opt", ["sgd"]),
        )
        .build()
        .unwrap();
    let study = Study::builder("s").space(space).open().unwrap();
    study
        .enqueue(Params::from([("opt".to_owned(), ParamValue::from("adam"))]))
        .unwrap();
    let mut trial = study.ask().unwrap();
    assert_eq!(
        trial.suggest_categorical("opt", ["adam", "sgd"]).unwrap(),
        ParamValue::from("adam")
    );
    assert!(
        trial
            .suggest_categorical("opt", ["adam"])
            .unwrap_err()
            .to_string()
            .contains("already defined")
    );
    let e = trial.suggest_float("momentum", 0.0, 1.0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "parameter \"momentum\": inactive in trial 0: its condition is not met"
    );
}

#[test]
fn enqueued_trials_run_first_with_their_params() {
    let study = Study::builder("s").space(box_space(2)).open().unwrap();
    let fixed = Params::from([
        ("x0".to_owned(), ParamValue::Float(1.0)),
        ("x1".to_owned(), ParamValue::Float(2.0)),
    ]);
    assert_eq!(
        study.enqueue(fixed.clone()).unwrap().state,
        TrialState::Pending
    );
    let bad = Params::from([
        ("x0".to_owned(), ParamValue::Float(9.0)),
        ("x1".to_owned(), ParamValue::Float(2.0)),
    ]);
    assert_eq!(
        study.enqueue(bad).unwrap_err().to_string(),
        "parameter \"x0\": 9 is not in float -5..5"
    );
    let first = study.ask().unwrap();
    assert_eq!((first.number().0, first.params()), (0, &fixed));
    assert_eq!(study.ask().unwrap().number(), 1);
}

#[test]
fn the_same_seed_gives_the_same_trials() {
    let run = |seed: u64| -> Vec<Params> {
        let study = Study::builder("s")
            .space(box_space(4))
            .sampler(SamplerConfig::Sobol)
            .seed(seed)
            .open()
            .unwrap();
        (0..20)
            .map(|_| study.ask().unwrap().params().clone())
            .collect()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn a_reopened_grid_continues_without_repeating_a_point() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let space = SearchSpace::builder()
        .param("a", IntDistribution::new(1, 3))
        .param("b", CategoricalDistribution::new(["x", "y", "z"]))
        .build()
        .unwrap();
    let open = || {
        Study::builder("grid")
            .space(space.clone())
            .sampler(SamplerConfig::grid())
            .store(store.clone())
            .open()
            .unwrap()
    };
    let mut seen = Vec::new();
    for _ in 0..4 {
        let study = open();
        seen.push(study.ask().unwrap().params().clone());
    }
    let study = open();
    while let Ok(trial) = study.ask() {
        seen.push(trial.params().clone());
    }
    assert!(matches!(study.ask(), Err(Error::Exhausted)));
    let mut unique: Vec<String> = seen
        .iter()
        .map(|p| serde_json::to_string(p).unwrap())
        .collect();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (9, 9));
}

/// Stops a trial whose latest report is above a threshold.
#[derive(Debug)]
struct Threshold(f64);

impl Scheduler for Threshold {
    fn decide(&self, _: &StudyView, trial: &Trial, step: u64) -> Option<Verdict> {
        let value = trial.intermediate[&step];
        let action = if value > self.0 {
            Action::Stop
        } else {
            Action::Continue
        };
        Some(Verdict {
            policy: "threshold",
            action,
            rationale: format!("{value} against {} at step {step}", self.0),
        })
    }
}

#[test]
fn reports_ask_the_scheduler_log_its_decisions_and_pruned_trials_keep_their_step() {
    let study = Study::builder("s")
        .custom_scheduler(Box::new(Threshold(1.0)))
        .open()
        .unwrap();
    let mut trial = study.ask().unwrap();
    trial.report(0, 0.5).unwrap();
    assert!(!trial.should_prune());
    assert_eq!(trial.check_pruned(), Ok(()));
    trial.report(1, 2.0).unwrap();
    let reason = trial.prune_reason().unwrap().to_owned();
    assert_eq!(reason, "2 against 1 at step 1");
    assert!(trial.check_pruned().is_err());
    let number = trial.number();
    let stored = study
        .tell(
            number,
            Outcome::Pruned {
                reason: reason.clone(),
            },
        )
        .unwrap();
    assert_eq!(
        stored.state,
        TrialState::Pruned {
            step: Some(1),
            reason
        }
    );
    assert_eq!(stored.intermediate.len(), 2);
    let log = study.store().decisions(study.view().unwrap().id()).unwrap();
    let actions: Vec<(&str, String)> = log
        .iter()
        .map(|d| (d.policy.as_str(), d.action.to_string()))
        .collect();
    assert_eq!(
        actions,
        [
            ("threshold", "continue".into()),
            ("threshold", "stop".into())
        ]
    );
    assert_eq!(log[1].trial, Some(number));
}

#[test]
fn studies_sharing_a_store_are_isolated_and_reopened_with_their_trials() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let a = Study::builder("a").store(store.clone()).open().unwrap();
    let b = Study::builder("b").store(store.clone()).open().unwrap();
    let n = a.ask().unwrap().number();
    a.tell(n, Outcome::Completed(vec![1.0])).unwrap();
    assert_eq!(b.ask().unwrap().number(), 0);
    let again = Study::builder("a").store(store.clone()).open().unwrap();
    assert_eq!(again.trials().unwrap().len(), 1);
    let e = Study::builder("a")
        .maximize("acc")
        .store(store)
        .open()
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("study \"a\" already exists with other objectives"),
        "{e}"
    );
}

/// An Optuna user's define-by-run objective: four shared floats, and (with `branch`) a branch
/// that `kind` picks. The trials as stored, and the best value.
fn define_by_run(
    sampler: SamplerConfig,
    branch: bool,
    seed: u64,
    trials: usize,
) -> (Vec<Trial>, f64) {
    let study = Study::builder("dbr")
        .minimize("loss")
        .sampler(sampler)
        .seed(seed)
        .open()
        .unwrap();
    for _ in 0..trials {
        let mut trial = study.ask().unwrap();
        let mut loss: f64 = (0..4)
            .map(|i| {
                trial
                    .suggest_float(&format!("x{i}"), -5.0, 5.0)
                    .unwrap()
                    .powi(2)
            })
            .sum();
        if branch {
            loss += match trial
                .suggest_categorical("kind", ["a", "b"])
                .unwrap()
                .as_str()
            {
                Some("a") => (trial.suggest_float("a", -5.0, 5.0).unwrap() - 1.0).powi(2),
                _ => 1.0 + trial.suggest_int("b", 0, 10).unwrap() as f64,
            };
        }
        let number = trial.number();
        drop(trial);
        study.tell(number, Outcome::Completed(vec![loss])).unwrap();
    }
    let best = study.best_trial().unwrap().unwrap().value().unwrap();
    (study.trials().unwrap(), best)
}

#[test]
fn define_by_run_tpe_draws_the_shared_parameters_together_and_stores_only_what_was_suggested() {
    let tpe = || SamplerConfig::Tpe(Default::default());
    let (trials, tpe_best) = define_by_run(tpe(), true, 7, 150);
    for trial in &trials {
        let mut names: Vec<&str> = trial.params.keys().map(String::as_str).collect();
        names.sort_unstable();
        let branch = match trial.params["kind"].as_str() {
            Some("a") => "a",
            _ => "b",
        };
        let mut expected = vec![branch, "kind", "x0", "x1", "x2", "x3"];
        expected.sort_unstable();
        assert_eq!(names, expected, "trial {}", trial.number);
    }
    let (_, random_best) = define_by_run(SamplerConfig::Random, true, 7, 150);
    // Drawn one parameter at a time, TPE ends near 2 here; drawn together, near 0.04.
    assert!(
        tpe_best < random_best / 10.0,
        "TPE's best {tpe_best} should be far below random sampling's {random_best}"
    );
    let params = |trials: &[Trial]| trials.iter().map(|t| t.params.clone()).collect::<Vec<_>>();
    assert_eq!(
        params(&trials),
        params(&define_by_run(tpe(), true, 7, 150).0)
    );
}

#[test]
fn define_by_run_cmaes_moves_the_shared_parameters() {
    let cmaes = || SamplerConfig::Cmaes(Default::default());
    let (trials, cmaes_best) = define_by_run(cmaes(), false, 7, 150);
    let (_, random_best) = define_by_run(SamplerConfig::Random, false, 7, 150);
    // Sampled uniformly, near 3; moved by CMA-ES, near 0.01 (0.2 when the empty declared
    // space's proposals overwrote the joint space's state).
    assert!(
        cmaes_best < random_best / 100.0,
        "CMA-ES's best {cmaes_best} should be far below random sampling's {random_best}"
    );
    let params = |trials: &[Trial]| trials.iter().map(|t| t.params.clone()).collect::<Vec<_>>();
    assert_eq!(
        params(&trials),
        params(&define_by_run(cmaes(), false, 7, 150).0)
    );
}

/// The completed trials' params of a study of `sampler` over `space` with a budget of `max`
/// trials, in which the trials numbered in `fail` (of the first `started` asked at once) fail
/// and are retried.
fn completed_with_retries(
    sampler: SamplerConfig,
    space: &SearchSpace,
    max: u64,
    started: u64,
    fail: &[u64],
) -> Vec<String> {
    let study = Study::builder("seq")
        .minimize("loss")
        .space(space.clone())
        .sampler(sampler)
        .seed(5)
        .budget(Budget::trials(max))
        .open()
        .unwrap();
    let first: Vec<_> = (0..started)
        .map(|_| study.ask().unwrap().number())
        .collect();
    for number in first {
        let outcome = match fail.contains(&number.0) {
            true => Outcome::Failed {
                error: "killed".into(),
            },
            false => Outcome::Completed(vec![1.0]),
        };
        study.tell(number, outcome).unwrap();
        if fail.contains(&number.0) {
            study.retry(number).unwrap();
        }
    }
    loop {
        match study.ask() {
            Ok(trial) => {
                let number = trial.number();
                drop(trial);
                study.tell(number, Outcome::Completed(vec![1.0])).unwrap();
            }
            Err(Error::BudgetSpent { .. } | Error::Exhausted) => break,
            Err(e) => panic!("{e}"),
        }
    }
    let mut done: Vec<String> = (study.trials().unwrap().iter())
        .filter(|t| t.state == TrialState::Completed)
        .map(|t| serde_json::to_string(&t.params).unwrap())
        .collect();
    done.sort();
    done
}

#[test]
fn a_retried_trial_skips_no_point_of_a_sobol_sequence_or_a_grid() {
    let space = box_space(2);
    let sobol = |fail: &[u64]| completed_with_retries(SamplerConfig::Sobol, &space, 12, 4, fail);
    let whole = sobol(&[]);
    assert_eq!(whole.len(), 12);
    assert_eq!(
        sobol(&[2, 3]),
        whole,
        "the retries carry points 2 and 3; 4.. follow"
    );

    let grid_space = SearchSpace::builder()
        .param("a", IntDistribution::new(1, 3))
        .param("b", CategoricalDistribution::new(["x", "y"]))
        .build()
        .unwrap();
    let grid =
        |fail: &[u64]| completed_with_retries(SamplerConfig::grid(), &grid_space, 100, 3, fail);
    let every = grid(&[]);
    assert_eq!(every.len(), 6);
    assert_eq!(
        grid(&[0, 2]),
        every,
        "every point completes once, none is skipped"
    );
}

#[test]
fn concurrent_workers_with_their_own_views_take_every_grid_point_once() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(hyperion_store::SqliteStore::open(dir.path().join("g.db")).unwrap());
    let space = SearchSpace::builder()
        .param("a", IntDistribution::new(0, 4))
        .param("b", IntDistribution::new(0, 3))
        .build()
        .unwrap();
    Study::builder("g")
        .space(space)
        .sampler(SamplerConfig::grid())
        .store(store.clone())
        .open()
        .unwrap();
    std::thread::scope(|scope| {
        for worker in 0..4 {
            let store = store.clone();
            scope.spawn(move || {
                // A handle of its own, as another process has: its view lags the others'.
                let study = Study::open(store, "g").unwrap();
                let mut asked = 0;
                loop {
                    let trial = match study.ask() {
                        Ok(trial) => trial,
                        Err(Error::Exhausted) => break,
                        Err(e) => panic!("worker {worker}: {e}"),
                    };
                    let number = trial.number();
                    drop(trial);
                    asked += 1;
                    // The trial's work, so that the workers interleave.
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    if asked == 1 {
                        let error = "crashed".into();
                        study.tell(number, Outcome::Failed { error }).unwrap();
                        study.retry(number).unwrap();
                    } else {
                        study.tell(number, Outcome::Completed(vec![0.0])).unwrap();
                    }
                }
            });
        }
    });
    let trials = Study::open(store, "g").unwrap().trials().unwrap();
    let mut completed: Vec<String> = (trials.iter())
        .filter(|t| t.state == TrialState::Completed)
        .map(|t| serde_json::to_string(&t.params).unwrap())
        .collect();
    completed.sort();
    let count = completed.len();
    completed.dedup();
    assert_eq!(
        (count, completed.len()),
        (20, 20),
        "each of the 20 points once"
    );
    // Each worker fails the first trial it gets; every failure has its retry.
    let failed = (trials.iter())
        .filter(|t| matches!(t.state, TrialState::Failed { .. }))
        .count();
    assert!(failed >= 1);
    assert_eq!(
        trials.len(),
        20 + failed,
        "a retry per failure, no extra point"
    );
}

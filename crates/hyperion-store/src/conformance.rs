//! The conformance suite: what every [`Store`] backend must do. Each case takes a fresh, empty
//! store and panics on a violation; [`conformance_tests!`](crate::conformance_tests) turns every
//! case into a `#[test]` for a backend:
//!
//! ```text
//! hyperion_store::conformance_tests!(hyperion_store::MemoryStore::new());
//! ```
//!
//! The expression is evaluated once per test and must dereference to the store (a fixture that
//! owns a temporary directory can `Deref` to its store).

use std::collections::BTreeSet;
use std::sync::Barrier;
use std::time::Duration;

use hyperion_core::{
    Change, Condition, Decision, Distribution, FloatDistribution, IntDistribution, Objective,
    ParamValue, Params, Proposal, SearchSpace, StudyId, StudySpec, StudyView, TrialNumber,
    TrialState,
};

use crate::{Created, Finish, NewTrial, Store, StoreError, Succession};

/// Generates one `#[test]` per conformance case, each with a store from `$make`.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            reopening_a_study_with_the_same_spec_returns_it,
            reopening_a_study_with_another_spec_is_refused,
            unknown_studies_are_named_in_the_error,
            deleted_studies_are_gone,
            trial_numbers_are_dense_and_per_study,
            concurrent_creates_never_share_a_number,
            max_trials_is_exact_under_concurrency,
            a_declined_proposal_uses_no_number,
            finishing_and_creating_at_once_does_both_in_order,
            finishing_records_state_values_and_times,
            a_finished_trial_keeps_its_first_result,
            completion_needs_one_finite_value_per_objective,
            intermediate_values_are_kept_by_step,
            intermediate_values_of_several_objectives_are_kept_together,
            pending_trials_are_claimed_once_in_order,
            define_by_run_params_keep_their_distribution,
            user_attrs_and_lineage_are_kept,
            the_change_log_rebuilds_the_trials,
            best_trial_follows_the_direction,
            a_revision_replaces_a_completed_trials_values_and_the_best_follows,
            stale_trials_fail_and_are_retried_up_to_max_retries,
            heartbeats_keep_trials_alive,
            a_retry_takes_the_place_of_the_trial_it_retries_in_the_budget,
            a_child_takes_the_place_of_the_member_it_continues_in_the_budget,
            decisions_and_sampler_state_are_logged,
            settings_and_stop_requests_are_logged_and_trial_changes_are_refused,
            a_heartbeat_renews_a_lease_for_its_own_length,
            sampler_state_comes_with_its_trial_in_one_transaction,
            every_metric_a_trial_reported_is_kept,
            counts_and_pages_agree_with_the_whole_listing,
            last_activity_is_the_time_of_the_last_change,
            any_text_is_stored_as_it_was_given
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let fixture = $make;
                $crate::conformance::$case(&*fixture);
            }
        )*
    };
}

fn spec(name: &str) -> StudySpec {
    let space = SearchSpace::builder()
        .param("x", FloatDistribution::new(-1.0, 1.0))
        .param("n", IntDistribution::new(1, 4))
        .build()
        .unwrap();
    StudySpec::new(name, vec![Objective::minimize("loss")], space)
}

fn point(x: f64) -> Params {
    Params::from([
        ("x".to_owned(), ParamValue::Float(x)),
        ("n".to_owned(), ParamValue::Int(2)),
    ])
}

fn create(store: &dyn Store, study: StudyId) -> TrialNumber {
    match store
        .create_trial(study, &NewTrial::running(), None, &mut |_| {
            Some(point(0.0).into())
        })
        .unwrap()
    {
        Created::Trial(t) => t.number,
        other => panic!("expected a trial, got {other:?}"),
    }
}

fn complete(store: &dyn Store, study: StudyId, value: f64) -> TrialNumber {
    let number = create(store, study);
    store
        .finish_trial(study, number, TrialState::Completed, Some(vec![value]))
        .unwrap();
    number
}

pub fn reopening_a_study_with_the_same_spec_returns_it(store: &dyn Store) {
    let first = store.create_study(&spec("s")).unwrap();
    let again = store.create_study(&spec("s")).unwrap();
    assert_eq!(first, again);
    assert_eq!(store.study("s").unwrap(), first);
    assert_eq!(store.studies().unwrap().len(), 1);
}

pub fn reopening_a_study_with_another_spec_is_refused(store: &dyn Store) {
    let study = store.create_study(&spec("s")).unwrap();
    complete(store, study.id, 1.0);
    let mut changed = spec("s");
    changed.space = SearchSpace::builder()
        .param("x", FloatDistribution::new(-2.0, 1.0))
        .param("n", IntDistribution::new(1, 4))
        .build()
        .unwrap();
    let e = store.create_study(&changed).unwrap_err();
    assert!(matches!(e, StoreError::SpecMismatch { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "study \"s\" already exists with another search space (parameter \"x\" was float -1..1, now float -2..1); \
         use another study name"
    );
    let mut maximize = spec("s");
    maximize.objectives = vec![Objective::maximize("loss")];
    assert!(
        store
            .create_study(&maximize)
            .unwrap_err()
            .to_string()
            .contains("objectives")
    );
    // Nothing stored was touched.
    assert_eq!(store.trials(study.id).unwrap().len(), 1);
}

pub fn unknown_studies_are_named_in_the_error(store: &dyn Store) {
    let e = store.study("mnist").unwrap_err();
    assert_eq!(e.to_string(), "study \"mnist\" not found");
    assert!(store.delete_study("mnist").is_err());
    assert!(
        store
            .create_study(&StudySpec::new(
                "",
                vec![Objective::minimize("l")],
                SearchSpace::default()
            ))
            .is_err()
    );
}

pub fn deleted_studies_are_gone(store: &dyn Store) {
    let study = store.create_study(&spec("a")).unwrap();
    store.create_study(&spec("b")).unwrap();
    complete(store, study.id, 1.0);
    store.delete_study("a").unwrap();
    assert!(matches!(
        store.study("a"),
        Err(StoreError::StudyNotFound { .. })
    ));
    assert!(store.trials(study.id).is_err());
    let names: Vec<String> = store
        .studies()
        .unwrap()
        .into_iter()
        .map(|s| s.spec.name)
        .collect();
    assert_eq!(names, ["b"]);
    // The name can be used again, for a fresh study.
    let again = store.create_study(&spec("a")).unwrap();
    assert!(store.trials(again.id).unwrap().is_empty());
}

pub fn last_activity_is_the_time_of_the_last_change(store: &dyn Store) {
    let study = store.create_study(&spec("a")).unwrap().id;
    let other = store.create_study(&spec("b")).unwrap().id;
    let before = store.last_activity(study).unwrap();
    complete(store, study, 1.0);
    let last = store.changes_since(study, 0).unwrap().last().unwrap().at;
    assert_eq!(store.last_activity(study).unwrap(), Some(last));
    assert!(before.is_none_or(|at| at <= last));
    // Another study's writes are not this one's activity.
    complete(store, other, 2.0);
    assert_eq!(store.last_activity(study).unwrap(), Some(last));
    store.delete_study("a").unwrap();
    assert!(store.last_activity(study).is_err());
}

pub fn trial_numbers_are_dense_and_per_study(store: &dyn Store) {
    let a = store.create_study(&spec("a")).unwrap().id;
    let b = store.create_study(&spec("b")).unwrap().id;
    assert_eq!(
        [
            create(store, a),
            create(store, a),
            create(store, b),
            create(store, a)
        ],
        [0, 1, 0, 2]
    );
    let ids: BTreeSet<_> = store
        .trials(a)
        .unwrap()
        .iter()
        .chain(&store.trials(b).unwrap())
        .map(|t| t.id)
        .collect();
    assert_eq!(ids.len(), 4, "trial ids are unique across studies");
}

pub fn concurrent_creates_never_share_a_number(store: &dyn Store) {
    let study = store.create_study(&spec("s")).unwrap().id;
    let barrier = Barrier::new(8);
    let numbers: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    (0..100).map(|_| create(store, study)).collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .map(|n: TrialNumber| n.0)
            .collect()
    });
    let unique: BTreeSet<u64> = numbers.iter().copied().collect();
    assert_eq!(unique.len(), 800);
    assert_eq!(unique.last(), Some(&799));
}

pub fn max_trials_is_exact_under_concurrency(store: &dyn Store) {
    let study = store.create_study(&spec("s")).unwrap().id;
    let barrier = Barrier::new(8);
    let created: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let mut mine = 0;
                    loop {
                        match store.create_trial(study, &NewTrial::running(), Some(50), &mut |_| {
                            Some(point(0.5).into())
                        }) {
                            Ok(Created::Trial(_)) => mine += 1,
                            Ok(Created::LimitReached) => return mine,
                            other => panic!("{other:?}"),
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(created, 50);
    assert_eq!(store.trials(study).unwrap().len(), 50);
}

pub fn a_declined_proposal_uses_no_number(store: &dyn Store) {
    let study = store.create_study(&spec("s")).unwrap().id;
    let mut asked = Vec::new();
    let outcome = store
        .create_trial(study, &NewTrial::running(), None, &mut |n| {
            asked.push(n);
            None
        })
        .unwrap();
    assert_eq!(outcome, Created::Declined);
    assert_eq!(asked, [0]);
    assert_eq!(create(store, study), 0);
}

pub fn finishing_and_creating_at_once_does_both_in_order(store: &dyn Store) {
    let spec = spec("s");
    let study = store.create_study(&spec).unwrap().id;
    let first = create(store, study);
    store.report(study, first, 3, &[0.75]).unwrap();
    let done = |number, value| Finish {
        number,
        state: TrialState::Completed,
        values: Some(vec![value]),
    };
    let asked = std::cell::RefCell::new(Vec::new());
    let mut propose = |n: TrialNumber| {
        asked.borrow_mut().push(n);
        Some(point(n.0 as f64 / 10.0).into())
    };
    let Succession {
        finished,
        created,
        changes,
    } = store
        .finish_and_create(
            study,
            done(first, 0.5),
            &NewTrial::running(),
            None,
            1,
            &mut propose,
        )
        .unwrap();
    assert_eq!(finished.values, Some(vec![0.5]));
    assert_eq!(finished.state, TrialState::Completed);
    assert_eq!(
        finished.intermediate.get(&3),
        Some(&0.75),
        "with what it reported"
    );
    assert_eq!(finished, store.trial(study, first).unwrap());
    let Created::Trial(next) = created else {
        panic!("expected a trial, got {created:?}");
    };
    assert_eq!(next.number, TrialNumber(1));
    assert_eq!(*next.params, point(0.1), "the proposal made for its number");
    assert_eq!(next, store.trial(study, next.number).unwrap());
    let after = store.changes_since(study, 1).unwrap();
    assert_eq!(
        changes, after,
        "the changes after the cursor, up to its own"
    );
    let kinds: Vec<&str> = after.iter().map(|c| c.change.kind()).collect();
    assert_eq!(
        kinds[kinds.len() - 2..],
        ["trial_finished", "trial_created"]
    );
    assert_eq!(
        after.len(),
        store.changes_since(study, 0).unwrap().len() - 1
    );

    // Others created trials meanwhile: the next one gets the study's next number.
    let (two, three) = (create(store, study), create(store, study));
    let cursor = store.changes_since(study, 0).unwrap().len() as u64;
    let succession = store
        .finish_and_create(
            study,
            done(two, 0.25),
            &NewTrial::running(),
            Some(5),
            0,
            &mut propose,
        )
        .unwrap();
    assert_eq!(succession.changes, store.changes_since(study, 0).unwrap());
    assert_eq!(succession.changes.len() as u64, cursor + 2);
    let created = succession.created;
    assert!(
        matches!(&created, Created::Trial(t) if t.number == TrialNumber(4)
        && *t.params == point(0.4))
    );
    let asked = asked.borrow().clone();
    let distinct: BTreeSet<_> = asked.iter().collect();
    assert_eq!(
        distinct.len(),
        asked.len(),
        "each number is proposed for once"
    );

    // The budget is spent: the trial ends, nothing is created.
    let cursor = store.changes_since(study, 0).unwrap().len() as u64;
    let succession = store
        .finish_and_create(
            study,
            done(three, 1.0),
            &NewTrial::running(),
            Some(5),
            cursor,
            &mut propose,
        )
        .unwrap();
    assert_eq!(succession.created, Created::LimitReached);
    assert_eq!(succession.finished.values, Some(vec![1.0]));
    assert_eq!(
        succession.changes,
        store.changes_since(study, cursor).unwrap()
    );
    assert_eq!(succession.changes.len(), 1, "the finish alone");

    // A finish that fails writes nothing.
    let before = store.changes_since(study, 0).unwrap();
    let again = store.finish_and_create(
        study,
        done(first, 9.0),
        &NewTrial::running(),
        None,
        0,
        &mut propose,
    );
    assert!(
        matches!(again, Err(StoreError::NotRunning { .. })),
        "{again:?}"
    );
    let missing = Finish {
        values: None,
        ..done(TrialNumber(4), 0.0)
    };
    let bad = store.finish_and_create(study, missing, &NewTrial::running(), None, 0, &mut propose);
    assert!(
        matches!(bad, Err(StoreError::InvalidValues { .. })),
        "{bad:?}"
    );
    assert_eq!(store.changes_since(study, 0).unwrap(), before);
    assert_eq!(store.trial(study, first).unwrap().values, Some(vec![0.5]));

    let mut view = StudyView::new(study, spec);
    for change in &before {
        view.apply(change, &mut Vec::new()).unwrap();
    }
    assert_eq!(view.trials(), store.trials(study).unwrap().as_slice());
}

pub fn finishing_records_state_values_and_times(store: &dyn Store) {
    let study = store.create_study(&spec("s")).unwrap().id;
    let n = create(store, study);
    let running = store.trial(study, n).unwrap();
    assert_eq!(running.state, TrialState::Running);
    assert_eq!(*running.params, point(0.0));
    assert!(running.started_at.is_some() && running.finished_at.is_none());
    let done = store
        .finish_trial(study, n, TrialState::Completed, Some(vec![0.25]))
        .unwrap();
    assert_eq!(done.values, Some(vec![0.25]));
    assert!(done.finished_at >= done.started_at);
    assert_eq!(store.trial(study, n).unwrap(), done);

    let p = create(store, study);
    let pruned = TrialState::Pruned {
        step: Some(3),
        reason: "below the median".into(),
    };
    store.finish_trial(study, p, pruned.clone(), None).unwrap();
    let f = create(store, study);
    let failed = TrialState::Failed {
        error: "CUDA out of memory".into(),
    };
    store.finish_trial(study, f, failed.clone(), None).unwrap();
    assert_eq!(store.trial(study, p).unwrap().state, pruned);
    assert_eq!(store.trial(study, f).unwrap().state, failed);
    assert!(matches!(
        store.trial(study, TrialNumber(99)),
        Err(StoreError::TrialNotFound {
            number: TrialNumber(99)
        })
    ));
}

pub fn a_finished_trial_keeps_its_first_result(store: &dyn Store) {
    let study = store.create_study(&spec("s")).unwrap().id;
    let n = complete(store, study, 1.0);
    let e = store
        .finish_trial(study, n, TrialState::Completed, Some(vec![0.0]))
        .unwrap_err();
    assert_eq!(e.to_string(), "trial 0 is completed, not running");
    let e = store
        .finish_trial(
            study,
            n,
            TrialState::Failed {
                error: "late".into(),
            },
            None,
        )
        .unwrap_err();
    assert!(matches!(e, StoreError::NotRunning { .. }));
    assert!(store.report(study, n, 1, &[0.5]).is_err());
    assert_eq!(store.trial(study, n).unwrap().values, Some(vec![1.0]));
}

pub fn completion_needs_one_finite_value_per_objective(store: &dyn Store) {
    let study = store.create_study(&spec("s")).unwrap().id;
    let n = create(store, study);
    for (values, reason) in [
        (
            Some(vec![f64::NAN]),
            "objective 0 is NaN, not a finite number",
        ),
        (
            Some(vec![f64::INFINITY]),
            "objective 0 is inf, not a finite number",
        ),
        (Some(vec![1.0, 2.0]), "2 values for 1 objective"),
        (None, "completed without values"),
    ] {
        let e = store
            .finish_trial(study, n, TrialState::Completed, values)
            .unwrap_err();
        assert_eq!(e.to_string(), format!("trial 0: {reason}"));
    }
    // The trial is untouched: still running, and it can still complete.
    assert_eq!(store.trial(study, n).unwrap().state, TrialState::Running);
    assert!(store.best_trial(study).unwrap().is_none());
    store
        .finish_trial(study, n, TrialState::Completed, Some(vec![2.0]))
        .unwrap();
}

pub fn intermediate_values_are_kept_by_step(store: &dyn Store) {
    let study = store.create_study(&spec("s")).unwrap().id;
    let n = create(store, study);
    store.report(study, n, 0, &[0.9]).unwrap();
    store.report(study, n, 1, &[0.7]).unwrap();
    store.report(study, n, 1, &[0.6]).unwrap();
    assert!(store.report(study, n, 2, &[f64::NAN]).is_err());
    let trial = store.trial(study, n).unwrap();
    assert_eq!(
        trial.intermediate.into_iter().collect::<Vec<_>>(),
        [(0, 0.9), (1, 0.6)]
    );
}

pub fn intermediate_values_of_several_objectives_are_kept_together(store: &dyn Store) {
    let mut two = spec("mo");
    two.objectives.push(Objective::maximize("accuracy"));
    let study = store.create_study(&two).unwrap().id;
    let n = create(store, study);
    store.report(study, n, 0, &[0.9, 0.5]).unwrap();
    store.report(study, n, 1, &[0.7]).unwrap();
    let e = store
        .report(study, n, 2, &[0.6, 0.7, 0.8])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("3 intermediate values at step 2 for 2 objectives"),
        "{e}"
    );
    assert!(store.report(study, n, 2, &[0.6, f64::INFINITY]).is_err());
    let trial = store.trial(study, n).unwrap();
    assert_eq!(trial.intermediate_point(0, 2), Some(vec![0.9, 0.5]));
    assert_eq!(
        trial.intermediate_point(1, 2),
        None,
        "only the first objective at step 1"
    );
    assert_eq!(trial.intermediate.get(&1), Some(&0.7));
    assert!(
        !trial.intermediate.contains_key(&2),
        "a refused report records nothing"
    );
    let mut view = StudyView::new(study, two);
    for change in store.changes_since(study, 0).unwrap() {
        view.apply(&change, &mut Vec::new()).unwrap();
    }
    assert_eq!(
        view.trial(n),
        Some(&trial),
        "the log rebuilds the same trial"
    );
    assert_eq!(store.trials(study).unwrap()[0], trial);
}

pub fn pending_trials_are_claimed_once_in_order(store: &dyn Store) {
    let study = store.create_study(&spec("s")).unwrap().id;
    for i in 0..20 {
        let created = store.create_trial(study, &NewTrial::pending(), None, &mut |_| {
            Some(point(i as f64 / 20.0).into())
        });
        assert!(matches!(created, Ok(Created::Trial(ref t)) if t.state == TrialState::Pending));
    }
    let claimed: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    std::iter::from_fn(|| store.claim_pending(study, Some(GRACE)).unwrap())
                        .map(|t| t.number)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .map(|n: TrialNumber| n.0)
            .collect()
    });
    let unique: BTreeSet<u64> = claimed.iter().copied().collect();
    assert_eq!((claimed.len(), unique.len()), (20, 20));
    assert!(
        store
            .trials(study)
            .unwrap()
            .iter()
            .all(|t| t.state == TrialState::Running)
    );
    assert_eq!(store.claim_pending(study, Some(GRACE)).unwrap(), None);
}

pub fn define_by_run_params_keep_their_distribution(store: &dyn Store) {
    let study = store.create_study(&spec("s")).unwrap().id;
    let lr: Distribution = FloatDistribution::new(1e-5, 1e-1).log().into();
    let n = create(store, study);
    store
        .set_param(study, n, "lr", &ParamValue::Float(1e-3), &lr)
        .unwrap();
    let m = create(store, study);
    store
        .set_param(study, m, "lr", &ParamValue::Float(1e-2), &lr)
        .unwrap();
    let other: Distribution = FloatDistribution::new(1e-4, 1.0).log().into();
    let e = store
        .set_param(study, m, "lr2", &ParamValue::Float(5.0), &other)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "parameter \"lr2\": 5 is not in float 0.0001..1 log"
    );
    let k = create(store, study);
    let e = store
        .set_param(study, k, "lr", &ParamValue::Float(1e-3), &other)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "parameter \"lr\" is already defined as float 0.00001..0.1 log in this study; it cannot now be \
         float 0.0001..1 log (use another name, or a new study)"
    );
    assert!(!store.trial(study, k).unwrap().params.contains_key("lr"));
    assert_eq!(
        store.trial(study, m).unwrap().params["lr"],
        ParamValue::Float(1e-2)
    );
}

pub fn user_attrs_and_lineage_are_kept(store: &dyn Store) {
    let study = store.create_study(&spec("s")).unwrap().id;
    let parent = complete(store, study, 1.0);
    let new = NewTrial {
        parent: Some(parent),
        depth: 1,
        retry_of: Some(parent),
        ..NewTrial::running()
    };
    let Created::Trial(child) = store
        .create_trial(study, &new, None, &mut |_| Some(point(0.1).into()))
        .unwrap()
    else {
        panic!()
    };
    store
        .set_user_attr(study, child.number, "host", &serde_json::json!("gpu-3"))
        .unwrap();
    let child = store.trial(study, child.number).unwrap();
    assert_eq!(
        (child.parent, child.depth, child.retry_of),
        (Some(parent), 1, Some(parent))
    );
    assert_eq!(child.user_attrs["host"], serde_json::json!("gpu-3"));
}

pub fn the_change_log_rebuilds_the_trials(store: &dyn Store) {
    let space = SearchSpace::builder()
        .param(
            "opt",
            hyperion_core::CategoricalDistribution::new(["adam", "sgd"]),
        )
        .param_if(
            "momentum",
            FloatDistribution::new(0.0, 1.0),
            Condition::new("opt", ["sgd"]),
        )
        .build()
        .unwrap();
    let spec = StudySpec::new("s", vec![Objective::minimize("loss")], space);
    let study = store.create_study(&spec).unwrap().id;
    complete(store, study, 3.0);
    let n = create(store, study);
    store.report(study, n, 0, &[1.5]).unwrap();
    store
        .set_param(
            study,
            n,
            "wd",
            &ParamValue::Float(0.5),
            &FloatDistribution::new(0.0, 1.0).into(),
        )
        .unwrap();
    store
        .finish_trial(
            study,
            n,
            TrialState::Pruned {
                step: Some(0),
                reason: "r".into(),
            },
            None,
        )
        .unwrap();
    store
        .create_trial(study, &NewTrial::pending(), None, &mut |_| {
            Some(point(0.3).into())
        })
        .unwrap();
    let launched = create(store, study);
    let launch = hyperion_core::Launch {
        host: "gpu-3".into(),
        boot_id: "b".into(),
        pgid: 42,
        start_time: 7,
        dir: Some("/scratch/trials/4".into()),
        job: Some(hyperion_core::Job {
            name: "hyperion-s-4".into(),
            id: Some("1234".into()),
        }),
    };
    store
        .log(
            study,
            &Change::TrialLaunched {
                number: launched,
                launch: launch.clone(),
            },
        )
        .unwrap();
    assert_eq!(
        store.trial(study, launched).unwrap().launch,
        Some(launch),
        "where a trial runs is kept with it"
    );
    let stage = |stage: &str, status| hyperion_core::StageRun {
        stage: stage.into(),
        status,
        cached: stage == "prepare",
        key: Some(format!("b3:{stage}")),
    };
    use hyperion_core::StageStatus::{Done, Queued, Running};
    for stages in [
        vec![stage("prepare", Done), stage("train", Queued)],
        vec![stage("prepare", Done), stage("train", Running)],
    ] {
        let change = Change::StagesRecorded {
            number: launched,
            stages,
        };
        store.log(study, &change).unwrap();
    }
    let trial = store.trial(study, launched).unwrap();
    assert_eq!(
        trial.stages,
        [stage("prepare", Done), stage("train", Running)],
        "a pipeline trial's stages are kept with it, the latest replacing the others"
    );
    assert_eq!(trial.phase().as_deref(), Some("IN_TRAINING"));
    assert_eq!(
        store.phases(study).unwrap(),
        [("IN_TRAINING".to_string(), 1)].into(),
        "running trials are counted by their lifecycle state"
    );

    let log = store.changes_since(study, 0).unwrap();
    let seqs: Vec<u64> = log.iter().map(|c| c.seq).collect();
    assert_eq!(
        seqs,
        (1..=log.len() as u64).collect::<Vec<_>>(),
        "sequence numbers have no gaps"
    );
    let mut view = StudyView::new(study, spec);
    for change in &log {
        view.apply(change, &mut Vec::new()).unwrap();
    }
    assert_eq!(view.trials(), store.trials(study).unwrap().as_slice());
    assert_eq!(store.changes_since(study, 3).unwrap(), log[3..]);
    assert!(
        store
            .changes_since(study, log.len() as u64)
            .unwrap()
            .is_empty()
    );
}

pub fn a_revision_replaces_a_completed_trials_values_and_the_best_follows(store: &dyn Store) {
    let study = store.create_study(&spec("min")).unwrap().id;
    let first = complete(store, study, 1.0);
    let second = complete(store, study, 2.0);
    assert_eq!(store.best_trial(study).unwrap().unwrap().number, first);
    store.revise_values(study, second, &[0.5], 1).unwrap();
    store.revise_values(study, first, &[3.0], 1).unwrap();
    let best = store.best_trial(study).unwrap().unwrap();
    assert_eq!(
        (best.number, best.values, best.objective_version),
        (second, Some(vec![0.5]), 1)
    );

    let running = create(store, study);
    let refused = store.revise_values(study, running, &[0.1], 1).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("it is running: only a completed trial"),
        "{refused}"
    );
    assert!(store.revise_values(study, second, &[f64::NAN], 2).is_err());
    assert!(store.revise_values(study, second, &[1.0, 2.0], 2).is_err());
    assert_eq!(store.trial(study, second).unwrap().values, Some(vec![0.5]));

    let mut view = StudyView::new(study, spec("min"));
    for change in store.changes_since(study, 0).unwrap() {
        view.apply(&change, &mut Vec::new()).unwrap();
    }
    assert_eq!(
        view.best_trial().unwrap().number,
        second,
        "the log replays the revisions"
    );
    assert_eq!(view.trials(), store.trials(study).unwrap().as_slice());
}

pub fn best_trial_follows_the_direction(store: &dyn Store) {
    let study = store.create_study(&spec("min")).unwrap().id;
    assert!(store.best_trial(study).unwrap().is_none());
    complete(store, study, 2.0);
    let best = complete(store, study, -1.0);
    complete(store, study, -1.0);
    complete(store, study, 5.0);
    assert_eq!(store.best_trial(study).unwrap().unwrap().number, best);

    let mut max = spec("max");
    max.objectives = vec![Objective::maximize("acc")];
    let study = store.create_study(&max).unwrap().id;
    complete(store, study, 0.2);
    let best = complete(store, study, 0.9);
    assert_eq!(store.best_trial(study).unwrap().unwrap().number, best);
}

const GRACE: Duration = Duration::from_millis(40);

fn wait_past_grace() {
    std::thread::sleep(GRACE + Duration::from_millis(30));
}

pub fn stale_trials_fail_and_are_retried_up_to_max_retries(store: &dyn Store) {
    let study = store.create_study(&spec("s")).unwrap().id;
    let done = complete(store, study, 1.0);
    let Created::Trial(original) = store
        .create_trial(
            study,
            &NewTrial {
                parent: Some(done),
                depth: 1,
                lease: Some(GRACE),
                ..NewTrial::running()
            },
            None,
            &mut |_| Some(point(0.7).into()),
        )
        .unwrap()
    else {
        panic!()
    };
    wait_past_grace();
    assert_eq!(store.fail_stale(study, 2).unwrap(), [original.number]);
    let failed = store.trial(study, original.number).unwrap();
    assert!(
        matches!(&failed.state, TrialState::Failed { error } if error.starts_with(crate::STALE))
    );
    assert_eq!(
        store.trial(study, done).unwrap().state,
        TrialState::Completed,
        "finished trials are never stale"
    );

    let mut chain = vec![original.number];
    for _ in 0..2 {
        let retry = store
            .claim_pending(study, Some(GRACE))
            .unwrap()
            .expect("a retry is pending");
        assert_eq!(retry.retry_of, Some(*chain.last().unwrap()));
        assert_eq!(
            (retry.params.clone(), retry.parent, retry.depth),
            (original.params.clone(), Some(done), 1)
        );
        chain.push(retry.number);
        wait_past_grace();
        assert_eq!(store.fail_stale(study, 2).unwrap(), [retry.number]);
    }
    assert_eq!(
        store.claim_pending(study, Some(GRACE)).unwrap(),
        None,
        "two retries, then no more"
    );
    assert_eq!(store.trials(study).unwrap().len(), 4);
}

fn create_watched(store: &dyn Store, study: StudyId) -> TrialNumber {
    let new = NewTrial {
        lease: Some(GRACE),
        ..NewTrial::running()
    };
    match store
        .create_trial(study, &new, None, &mut |_| Some(point(0.0).into()))
        .unwrap()
    {
        Created::Trial(t) => t.number,
        other => panic!("expected a trial, got {other:?}"),
    }
}

pub fn heartbeats_keep_trials_alive(store: &dyn Store) {
    let study = store.create_study(&spec("s")).unwrap().id;
    let (a, b) = (create_watched(store, study), create_watched(store, study));
    let unwatched = create(store, study);
    for _ in 0..3 {
        std::thread::sleep(GRACE / 2);
        store.heartbeat(study, &[a], GRACE).unwrap();
    }
    assert_eq!(store.fail_stale(study, 0).unwrap(), [b]);
    assert_eq!(store.trial(study, a).unwrap().state, TrialState::Running);
    assert_eq!(
        store.trial(study, unwatched).unwrap().state,
        TrialState::Running,
        "a trial without a lease is never stale"
    );
    assert_eq!(
        store.claim_pending(study, Some(GRACE)).unwrap(),
        None,
        "max_retries 0 retries nothing"
    );
}

pub fn a_retry_takes_the_place_of_the_trial_it_retries_in_the_budget(store: &dyn Store) {
    let study = store.create_study(&spec("s")).unwrap().id;
    let limit = Some(2);
    let new = |store: &dyn Store| {
        let new = NewTrial {
            lease: Some(GRACE),
            ..NewTrial::running()
        };
        store.create_trial(study, &new, limit, &mut |_| Some(point(0.1).into()))
    };
    assert!(matches!(new(store), Ok(Created::Trial(_))));
    assert!(matches!(new(store), Ok(Created::Trial(_))));
    wait_past_grace();
    assert_eq!(store.fail_stale(study, 1).unwrap(), [0, 1]);
    assert_eq!(new(store).unwrap(), Created::LimitReached);
    let trials = store.trials(study).unwrap();
    let retries: Vec<_> = trials.iter().filter_map(|t| t.retry_of).collect();
    assert_eq!(
        (trials.len(), retries),
        (4, vec![TrialNumber(0), TrialNumber(1)])
    );
    let mut view = StudyView::new(study, spec("s"));
    for change in store.changes_since(study, 0).unwrap() {
        view.apply(&change, &mut Vec::new()).unwrap();
    }
    assert_eq!(view.budget_used(), 2);
}

pub fn a_child_takes_the_place_of_the_member_it_continues_in_the_budget(store: &dyn Store) {
    let study = store.create_study(&spec("s")).unwrap().id;
    let limit = Some(2);
    let (a, b) = (create(store, study), create(store, study));
    let child = NewTrial {
        pending: true,
        parent: Some(a),
        depth: 1,
        ..NewTrial::default()
    };
    let created = store.create_trial(study, &child, limit, &mut |_| Some(point(0.2).into()));
    let Ok(Created::Trial(child)) = created else {
        panic!("a PBT child is created past the limit: {created:?}");
    };
    assert_eq!(
        (child.parent, child.depth, child.number),
        (Some(a), 1, TrialNumber(2))
    );
    let plain = store.create_trial(study, &NewTrial::running(), limit, &mut |_| {
        Some(point(0.3).into())
    });
    assert_eq!(
        plain.unwrap(),
        Created::LimitReached,
        "members {a} and {b} fill the budget"
    );
    let mut view = StudyView::new(study, spec("s"));
    for change in store.changes_since(study, 0).unwrap() {
        view.apply(&change, &mut Vec::new()).unwrap();
    }
    assert_eq!(view.budget_used(), 2);
}

pub fn decisions_and_sampler_state_are_logged(store: &dyn Store) {
    let study = store.create_study(&spec("s")).unwrap().id;
    let n = create(store, study);
    let decision = Decision {
        trial: Some(n),
        policy: "asha".into(),
        action: hyperion_core::DecisionAction::Stop,
        rationale: "0.9 is below the rung-1 cutoff 0.7".into(),
    };
    store.record_decision(study, &decision).unwrap();
    let state = serde_json::json!({"mean": [0.1, 0.2], "generation": 3});
    store.set_sampler_state(study, "cmaes", &state).unwrap();
    assert_eq!(store.decisions(study).unwrap(), [decision]);
    let mut view = StudyView::new(study, spec("s"));
    let mut events = Vec::new();
    for change in store.changes_since(study, 0).unwrap() {
        view.apply(&change, &mut events).unwrap();
    }
    assert_eq!(view.sampler_state("cmaes"), Some(&state));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, hyperion_core::Event::DecisionRecorded(_)))
    );
}

pub fn settings_and_stop_requests_are_logged_and_trial_changes_are_refused(store: &dyn Store) {
    let study = store.create_study(&spec("s")).unwrap().id;
    let n = create(store, study);
    let settings = serde_json::json!({"seed": 3});
    store
        .log(
            study,
            &Change::SettingsRecorded {
                settings: settings.clone(),
            },
        )
        .unwrap();
    store
        .log(
            study,
            &Change::StopRequested {
                kill: true,
                by: "test".into(),
            },
        )
        .unwrap();
    let mut run = hyperion_core::RunManifest {
        id: "gpu-3-42-7".into(),
        started_at: hyperion_core::Timestamp(7),
        ended_at: None,
        host: "gpu-3".into(),
        command: vec!["hyperion".into(), "run".into(), "study.yaml".into()],
        overrides: vec!["budget.max_trials=4".into()],
        git: Some(hyperion_core::GitState {
            commit: "0123abcd".into(),
            dirty: true,
        }),
        code: [("train.py".to_string(), "b3:00ff".to_string())].into(),
        version: "0.1.0".into(),
    };
    store
        .log(study, &Change::RunRecorded { run: run.clone() })
        .unwrap();
    run.ended_at = Some(hyperion_core::Timestamp(9));
    store
        .log(study, &Change::RunRecorded { run: run.clone() })
        .unwrap();
    let before = store.changes_since(study, 0).unwrap().len();
    let forged = Change::TrialFinished {
        number: n,
        state: TrialState::Completed,
        values: Some(vec![1.0]),
    };
    assert!(matches!(
        store.log(study, &forged),
        Err(StoreError::Inconsistent(_))
    ));
    assert_eq!(
        store.changes_since(study, 0).unwrap().len(),
        before,
        "nothing written"
    );
    assert_eq!(store.trial(study, n).unwrap().state, TrialState::Running);
    let mut view = StudyView::new(study, spec("s"));
    for change in store.changes_since(study, 0).unwrap() {
        view.apply(&change, &mut Vec::new()).unwrap();
    }
    assert_eq!(view.settings(), Some(&settings));
    assert_eq!(view.runs(), [run], "a run's end replaces its start");
    assert_eq!(
        view.stop_requested_since(0),
        Some(hyperion_core::StopRequest::Kill)
    );
    assert_eq!(
        view.stop_requested_since(view.cursor()),
        None,
        "later runs are not bound"
    );
}

pub fn a_heartbeat_renews_a_lease_for_its_own_length(store: &dyn Store) {
    let study = store.create_study(&spec("s")).unwrap().id;
    let short = create_watched(store, study);
    let long = create_watched(store, study);
    // One trial's lease is renewed for much longer than the other's (an asked trial's).
    store.heartbeat(study, &[long], GRACE * 50).unwrap();
    wait_past_grace();
    assert_eq!(store.fail_stale(study, 0).unwrap(), [short]);
    assert_eq!(store.trial(study, long).unwrap().state, TrialState::Running);
}

pub fn sampler_state_comes_with_its_trial_in_one_transaction(store: &dyn Store) {
    let study = store.create_study(&spec("s")).unwrap().id;
    let state = serde_json::json!({"mean": [0.5], "sigma": 0.3});
    let with_state = |store: &dyn Store, state: &serde_json::Value| {
        store.create_trial(study, &NewTrial::running(), Some(1), &mut |_| {
            Some(hyperion_core::Proposal {
                params: point(0.5),
                state: vec![("cmaes".into(), state.clone())],
            })
        })
    };
    assert!(matches!(with_state(store, &state), Ok(Created::Trial(_))));
    // Refused by the budget: neither the trial nor its state is written.
    let refused = serde_json::json!("refused");
    assert_eq!(with_state(store, &refused).unwrap(), Created::LimitReached);
    let changes = store.changes_since(study, 0).unwrap();
    let kinds: Vec<&str> = changes.iter().map(|c| c.change.kind()).collect();
    assert_eq!(kinds, ["trial_created", "sampler_state_set"]);
    let mut view = StudyView::new(study, spec("s"));
    for change in &changes {
        view.apply(change, &mut Vec::new()).unwrap();
    }
    assert_eq!(view.sampler_state("cmaes"), Some(&state));
}

pub fn every_metric_a_trial_reported_is_kept(store: &dyn Store) {
    let study = store.create_study(&spec("s")).unwrap().id;
    let n = create(store, study);
    let metrics = std::collections::BTreeMap::from([
        ("loss".to_owned(), 0.5),
        ("train_loss".to_owned(), 0.25),
        ("lr".to_owned(), 1e-3),
    ]);
    store.keep_metrics(study, n, &metrics).unwrap();
    store
        .finish_trial(
            study,
            n,
            TrialState::Pruned {
                step: Some(3),
                reason: "r".into(),
            },
            None,
        )
        .unwrap();
    assert_eq!(
        store.trial(study, n).unwrap().metrics,
        metrics,
        "a pruned trial keeps them"
    );
    assert_eq!(store.trials(study).unwrap()[0].metrics, metrics);
    let mut view = StudyView::new(study, spec("s"));
    for change in store.changes_since(study, 0).unwrap() {
        view.apply(&change, &mut Vec::new()).unwrap();
    }
    assert_eq!(
        view.trial(n).unwrap().metrics,
        metrics,
        "the log rebuilds them"
    );
    assert!(store.keep_metrics(study, TrialNumber(9), &metrics).is_err());
}

pub fn counts_and_pages_agree_with_the_whole_listing(store: &dyn Store) {
    let study = store.create_study(&spec("s")).unwrap().id;
    let other = store.create_study(&spec("t")).unwrap().id;
    create(store, other);
    let numbers: Vec<TrialNumber> = (0..7).map(|_| create(store, study)).collect();
    store.report(study, numbers[1], 0, &[0.5]).unwrap();
    store
        .set_user_attr(study, numbers[2], "k", &serde_json::json!("v"))
        .unwrap();
    let ends = [
        (0, TrialState::Completed, Some(vec![1.0])),
        (3, TrialState::Failed { error: "e".into() }, None),
        (
            4,
            TrialState::Pruned {
                step: Some(0),
                reason: "r".into(),
            },
            None,
        ),
    ];
    for (i, state, values) in ends {
        store
            .finish_trial(study, numbers[i], state, values)
            .unwrap();
    }
    let all = store.trials(study).unwrap();
    let mut counts = hyperion_core::Counts::default();
    all.iter().for_each(|t| counts.add(&t.state));
    assert_eq!(store.counts(study).unwrap(), counts);
    assert_eq!(counts.running, 4);
    assert_eq!(store.trials_page(study, 1, 3).unwrap(), all[1..4]);
    assert_eq!(store.trials_page(study, 0, 100).unwrap(), all);
    assert!(store.trials_page(study, 7, 5).unwrap().is_empty());
}

/// Quotes, backslashes, dollar signs, SQL and unicode in params, attributes, messages and the
/// log come back as they were given (a server-backed store writes some of them as literals).
pub fn any_text_is_stored_as_it_was_given(store: &dyn Store) {
    let hostile = [
        "it's",
        "''; DROP TABLE trials; --",
        "back\\slash \\' \\\\",
        "$$ $tag$ E'\\n'",
        "naïve — 日本語 🎯",
        "line\nbreak\ttab\u{1}",
    ];
    let study = store.create_study(&spec("s")).unwrap().id;
    for text in hostile {
        let params = Params::from([("x".to_owned(), ParamValue::Str(text.to_owned()))]);
        let proposal = Proposal {
            params: params.clone(),
            state: vec![(text.to_owned(), serde_json::json!(text))],
        };
        let mut proposal = Some(proposal);
        let Created::Trial(trial) = store
            .create_trial(study, &NewTrial::running(), None, &mut |_| proposal.take())
            .unwrap()
        else {
            panic!("created")
        };
        store
            .set_user_attr(study, trial.number, text, &serde_json::json!(text))
            .unwrap();
        let failed = TrialState::Failed {
            error: text.to_owned(),
        };
        store
            .finish_trial(study, trial.number, failed.clone(), None)
            .unwrap();
        let back = store.trial(study, trial.number).unwrap();
        assert_eq!(back.params, params.into(), "{text:?}");
        assert_eq!(back.user_attrs[text], serde_json::json!(text));
        assert_eq!(back.state, failed);
    }
    let log = store.changes_since(study, 0).unwrap();
    let states: Vec<&serde_json::Value> = log
        .iter()
        .filter_map(|c| match &c.change {
            Change::SamplerStateSet { value, .. } => Some(value),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        hostile
            .map(|t| serde_json::json!(t))
            .iter()
            .collect::<Vec<_>>()
    );
    assert!(
        store.trials(study).unwrap().len() == hostile.len(),
        "nothing else was run"
    );
}

use super::*;
use crate::{Objective, SearchSpace, Timestamp, TrialId, TrialNumber};

struct Log {
    view: StudyView,
    seq: u64,
    events: Vec<Event>,
}

impl Log {
    fn new(objectives: Vec<Objective>) -> Self {
        let spec = StudySpec::new("s", objectives, SearchSpace::default());
        Log {
            view: StudyView::new(StudyId(1), spec),
            seq: 0,
            events: Vec::new(),
        }
    }
    fn push(&mut self, change: Change) {
        self.seq += 1;
        let logged = LoggedChange {
            seq: self.seq,
            at: Timestamp(self.seq),
            change,
        };
        self.view.apply(&logged, &mut self.events).unwrap();
    }
    fn run(&mut self, number: u64, state: TrialState, values: Option<Vec<f64>>) {
        let number = TrialNumber(number);
        self.push(Change::TrialCreated {
            id: TrialId(number.0 + 100),
            number,
            state: TrialState::Running,
            params: Default::default(),
            parent: None,
            depth: 0,
            retry_of: None,
        });
        self.push(Change::TrialFinished {
            number,
            state,
            values,
        });
    }
}

#[test]
fn best_trial_follows_the_direction_and_keeps_the_earliest_of_equals() {
    let mut log = Log::new(vec![Objective::maximize("acc")]);
    log.run(0, TrialState::Completed, Some(vec![0.5]));
    log.run(1, TrialState::Completed, Some(vec![0.9]));
    log.run(2, TrialState::Completed, Some(vec![0.9]));
    log.run(
        3,
        TrialState::Failed {
            error: "boom".into(),
        },
        None,
    );
    assert_eq!(log.view.best_trial().unwrap().number, 1);
    let c = log.view.counts();
    assert_eq!((c.completed, c.failed, c.running), (3, 1, 0));
}

#[test]
fn a_non_finite_value_never_becomes_the_best() {
    let mut log = Log::new(vec![Objective::minimize("loss")]);
    log.run(0, TrialState::Completed, Some(vec![f64::NAN]));
    log.run(1, TrialState::Completed, Some(vec![f64::NEG_INFINITY]));
    assert!(log.view.best_trial().is_none());
    log.run(2, TrialState::Completed, Some(vec![3.0]));
    assert_eq!(log.view.best_trial().unwrap().number, 2);
}

#[test]
fn pareto_front_holds_the_non_dominated_trials() {
    let mut log = Log::new(vec![
        Objective::minimize("loss"),
        Objective::maximize("acc"),
    ]);
    log.run(0, TrialState::Completed, Some(vec![1.0, 0.5]));
    log.run(1, TrialState::Completed, Some(vec![0.5, 0.4])); // trade-off: joins
    log.run(2, TrialState::Completed, Some(vec![2.0, 0.3])); // dominated by 0 and 1
    log.run(3, TrialState::Completed, Some(vec![0.4, 0.6])); // dominates 0 and 1
    log.run(4, TrialState::Completed, Some(vec![0.3, 0.1])); // trade-off with 3
    let mut front: Vec<u64> = log.view.pareto_front().iter().map(|t| t.number.0).collect();
    front.sort();
    assert_eq!(front, [3, 4]);
    assert!(log.view.best_trial().is_none());
}

#[test]
fn progress_counts_every_finished_trial_in_order() {
    let mut log = Log::new(vec![Objective::minimize("loss")]);
    log.view.set_total(Some(3));
    log.run(0, TrialState::Completed, Some(vec![2.0]));
    log.run(
        1,
        TrialState::Pruned {
            step: Some(3),
            reason: "median".into(),
        },
        None,
    );
    log.run(2, TrialState::Completed, Some(vec![1.0]));
    let progress: Vec<(u64, Option<f64>)> = log
        .events
        .iter()
        .filter_map(|e| match e {
            Event::StudyProgress {
                finished,
                total,
                best,
                ..
            } => {
                assert_eq!(*total, Some(3));
                Some((*finished, *best))
            }
            _ => None,
        })
        .collect();
    assert_eq!(progress, [(1, Some(2.0)), (2, Some(2.0)), (3, Some(1.0))]);
}

#[test]
fn a_gap_in_the_log_is_an_error_and_a_repeat_is_skipped() {
    let mut log = Log::new(vec![Objective::minimize("loss")]);
    log.run(0, TrialState::Completed, Some(vec![1.0]));
    let repeat = LoggedChange {
        seq: 1,
        at: Timestamp(1),
        change: Change::TrialStarted {
            number: TrialNumber(0),
        },
    };
    log.view.apply(&repeat, &mut Vec::new()).unwrap();
    assert_eq!(log.view.cursor(), 2);
    let gap = LoggedChange {
        seq: 9,
        at: Timestamp(9),
        change: Change::TrialStarted {
            number: TrialNumber(0),
        },
    };
    let e = log.view.apply(&gap, &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("change 9 follows change 2"), "{e}");
}

#[test]
fn a_study_name_is_a_name_never_a_path() {
    for good in [
        "mnist",
        "resnet-50_v2.1",
        "lr=1e-3 sweep",
        "méthode",
        "a@b+c",
    ] {
        crate::check_name(good).unwrap();
    }
    for bad in [
        "",
        "../../escape",
        "a/b",
        "a\\b",
        ".hidden",
        "..",
        " pad",
        "tab\t",
        "x\ny",
    ] {
        let e = crate::check_name(bad).unwrap_err().to_string();
        assert!(bad.is_empty() || e.contains("use letters"), "{bad:?}: {e}");
    }
    assert!(crate::check_name(&"x".repeat(129)).is_err());
}

#[test]
fn timestamps_read_as_rfc3339() {
    assert_eq!(Timestamp(0).rfc3339(), "1970-01-01T00:00:00.000000Z");
    // 2024-02-29T12:34:56.789012Z, a leap day.
    assert_eq!(
        Timestamp(1_709_210_096_789_012).rfc3339(),
        "2024-02-29T12:34:56.789012Z"
    );
    assert_eq!(
        Timestamp(4_102_444_799_000_000).rfc3339(),
        "2099-12-31T23:59:59.000000Z"
    );
}

#[test]
fn a_failure_that_runs_again_is_not_one_of_the_studys_failures() {
    let mut log = Log::new(vec![Objective::minimize("loss")]);
    log.run(
        0,
        TrialState::Failed {
            error: "killed".into(),
        },
        None,
    );
    log.run(
        1,
        TrialState::Failed {
            error: "boom".into(),
        },
        None,
    );
    assert_eq!(log.view.failures(), 2);
    log.push(Change::TrialCreated {
        id: TrialId(200),
        number: TrialNumber(2),
        state: TrialState::Pending,
        params: Default::default(),
        parent: None,
        depth: 0,
        retry_of: Some(TrialNumber(0)),
    });
    assert_eq!((log.view.counts().failed, log.view.failures()), (2, 1));
}

#[test]
fn common_params_are_the_define_by_run_ones_every_completed_trial_has() {
    let mut log = Log::new(vec![Objective::minimize("loss")]);
    let float = Distribution::from(crate::FloatDistribution::new(0.0, 1.0));
    for name in ["x", "a", "b"] {
        log.push(Change::ParamRegistered {
            name: name.into(),
            distribution: float.clone(),
        });
    }
    let common = |view: &StudyView| {
        view.common_params()
            .map(|(n, _)| n.to_owned())
            .collect::<Vec<_>>()
    };
    // Trial `number` suggests `names`, then ends as `state`.
    let mut trial = |number: u64, names: &[&str], state: TrialState| {
        log.push(Change::TrialCreated {
            id: TrialId(number + 100),
            number: TrialNumber(number),
            state: TrialState::Running,
            params: Default::default(),
            parent: None,
            depth: 0,
            retry_of: None,
        });
        for name in names {
            log.push(Change::ParamSet {
                number: TrialNumber(number),
                name: (*name).into(),
                value: crate::ParamValue::Float(0.5),
            });
        }
        let values = (state == TrialState::Completed).then(|| vec![1.0]);
        log.push(Change::TrialFinished {
            number: TrialNumber(number),
            state,
            values,
        });
        common(&log.view)
    };
    let failed = || TrialState::Failed {
        error: "boom".into(),
    };
    assert!(
        trial(0, &["x"], failed()).is_empty(),
        "no completed trial yet"
    );
    assert_eq!(trial(1, &["x", "a"], TrialState::Completed), ["a", "x"]);
    assert_eq!(
        trial(2, &["b"], failed()),
        ["a", "x"],
        "a failed trial does not count"
    );
    assert_eq!(trial(3, &["x", "b"], TrialState::Completed), ["x"]);
}

//! Schedulers on hand-made histories: the changes a store would log, folded into a view and the
//! scheduler's index as the runtime does.

use std::sync::Arc;

use hyperion_core::{
    Change, FloatDistribution, LoggedChange, Objective, Params, SearchSpace, StudyId, StudySpec,
    StudyView, Timestamp, TrialId, TrialNumber, TrialState,
};
use hyperion_schedulers::{
    Action, Asha, AshaConfig, Hyperband, HyperbandConfig, Pbt, PbtConfig, PercentileConfig,
    PercentileRule, Pipeline, Scheduler, Verdict, hyperband_brackets,
};

struct History<S> {
    view: StudyView,
    scheduler: S,
}

impl<S: Scheduler> History<S> {
    fn new(scheduler: S, objective: Objective) -> Self {
        Self::with_objectives(scheduler, vec![objective])
    }

    fn with_objectives(scheduler: S, objectives: Vec<Objective>) -> Self {
        let space = SearchSpace::builder()
            .param("lr", FloatDistribution::new(1e-4, 1.0).log())
            .build()
            .unwrap();
        let spec = StudySpec::new("s", objectives, space);
        History {
            view: StudyView::new(StudyId(1), spec),
            scheduler,
        }
    }

    fn apply(&mut self, change: Change) {
        let logged = LoggedChange {
            seq: self.view.cursor() + 1,
            at: Timestamp(0),
            change,
        };
        self.view.apply(&logged, &mut Vec::new()).unwrap();
        self.scheduler.observe(&self.view, &logged.change);
    }

    fn start(&mut self, lr: f64) -> TrialNumber {
        let number = TrialNumber(self.view.trials().len() as u64);
        let mut params = Params::new();
        params.insert("lr".into(), lr.into());
        self.apply(Change::TrialCreated {
            id: TrialId(number.0),
            number,
            state: TrialState::Running,
            params: Arc::new(params),
            parent: None,
            depth: 0,
            retry_of: None,
        });
        number
    }

    /// Reports and asks for the decision, as `ActiveTrial::report` does.
    fn report(&mut self, number: TrialNumber, step: u64, value: f64) -> Option<Verdict> {
        self.report_point(number, step, &[value])
    }

    fn report_point(&mut self, number: TrialNumber, step: u64, point: &[f64]) -> Option<Verdict> {
        self.apply(Change::MetricReported {
            number,
            step,
            value: point[0],
            others: point[1..].to_vec(),
        });
        let trial = self.view.trial(number).unwrap();
        self.scheduler.decide(&self.view, trial, step)
    }

    fn complete(&mut self, number: TrialNumber, value: f64) {
        self.complete_point(number, &[value]);
    }

    fn complete_point(&mut self, number: TrialNumber, point: &[f64]) {
        self.apply(Change::TrialFinished {
            number,
            state: TrialState::Completed,
            values: Some(point.to_vec()),
        });
    }
}

fn stops(v: &Option<Verdict>) -> bool {
    v.as_ref().is_some_and(Verdict::stops)
}

#[test]
fn asha_promotes_the_best_third_of_each_rung() {
    let asha = Asha::new(AshaConfig {
        min_resource: 1,
        max_resource: Some(9),
        reduction_factor: 3,
        brackets: 1,
    })
    .unwrap();
    let mut h = History::new(asha, Objective::minimize("loss"));
    // Rung 0 is step 1, rung 1 is step 3; step 9 is the end, not a rung.
    let values = [0.5, 0.9, 0.3, 0.8, 0.7, 0.2];
    let mut verdicts = Vec::new();
    for v in values {
        let t = h.start(0.1);
        assert_eq!(
            h.report(t, 0, v + 1.0),
            None,
            "step 0 is below the first rung"
        );
        verdicts.push(h.report(t, 1, v));
    }
    // With n values at the rung, the best max(1, n/3) go on.
    let went_on: Vec<bool> = verdicts.iter().map(|v| !stops(v)).collect();
    assert_eq!(went_on, [true, false, true, false, false, true]);
    let v = verdicts[5].as_ref().unwrap();
    assert_eq!(v.policy, "asha");
    assert!(v.rationale.contains("rung 0 (step 1)"), "{}", v.rationale);
    assert!(v.rationale.contains("ranks 1 of 6"), "{}", v.rationale);

    // Trial 0 reaches rung 1 (step 3) first: alone there, it goes on; trial 2 then ranks
    // behind it with 2 values (keep 1) and stops; a step between rungs decides nothing.
    assert_eq!(h.report(TrialNumber(0), 2, 0.45), None);
    assert!(!stops(&h.report(TrialNumber(0), 3, 0.4)));
    assert!(stops(&h.report(TrialNumber(2), 3, 0.41)));
    // Skipping over a rung still decides at it.
    let v = h
        .report(TrialNumber(5), 5, 0.1)
        .expect("step 5 passes rung 1 (step 3)");
    assert!(
        !v.stops() && v.rationale.contains("rung 1"),
        "{}",
        v.rationale
    );
}

#[test]
fn asha_reads_maximized_metrics_the_other_way() {
    let asha = Asha::new(AshaConfig::default()).unwrap();
    let mut h = History::new(asha, Objective::maximize("accuracy"));
    let a = h.start(0.1);
    let b = h.start(0.1);
    assert!(!stops(&h.report(a, 1, 0.9)));
    assert!(
        stops(&h.report(b, 1, 0.5)),
        "lower accuracy ranks second of two"
    );
}

#[test]
fn hyperband_brackets_match_the_paper() {
    // Table 1 of Li et al. (2018): R = 81, eta = 3.
    let brackets = hyperband_brackets(1, 81, 3);
    let table: Vec<(u32, u64, u64)> = brackets.iter().map(|b| (b.s, b.n, b.r)).collect();
    assert_eq!(
        table,
        [(4, 81, 1), (3, 34, 3), (2, 15, 9), (1, 8, 27), (0, 5, 81)]
    );
    assert_eq!(brackets[0].rungs, [1, 3, 9, 27]);
    assert_eq!(brackets[3].rungs, [27]);
    assert!(
        brackets[4].rungs.is_empty(),
        "the last bracket never stops a trial"
    );

    let brackets = hyperband_brackets(10, 100, 2);
    let table: Vec<(u32, u64, u64)> = brackets.iter().map(|b| (b.s, b.n, b.r)).collect();
    assert_eq!(table, [(3, 8, 10), (2, 6, 20), (1, 4, 40), (0, 4, 80)]);
}

/// Found by hyperion-fuzz: `(s_max + 1) · eta^s` overflowed u64 (a panic in debug builds, a
/// wrong bracket size in release ones).
#[test]
fn hyperband_brackets_near_u64_max_are_exact() {
    let max = i64::MAX as u64;
    let brackets = hyperband_brackets(1, max, 3);
    assert_eq!(brackets.len(), 40);
    assert_eq!((brackets[0].s, brackets[0].n), (39, 3u64.pow(39)));
    assert_eq!(brackets[1].n, (40 * 3u128.pow(38)).div_ceil(39) as u64);
    assert!(brackets.iter().all(|b| b.r <= max));
    // This one never returned: min · eta^k saturated at u64::MAX, which is <= max.
    assert_eq!(hyperband_brackets(1, u64::MAX, 2)[0].n, 1 << 63);
}

/// Found reading the code hyperion-fuzz pointed at: listing u64::MAX brackets never ended.
#[test]
fn asha_takes_at_most_64_brackets() {
    let with = |brackets| {
        Asha::new(AshaConfig {
            brackets,
            ..AshaConfig::default()
        })
    };
    assert!(with(64).is_ok());
    for brackets in [0, 65, u64::MAX] {
        let e = with(brackets).unwrap_err().to_string();
        assert!(
            e.contains(&format!("brackets is {brackets}; it must be from 1 to 64")),
            "{e}"
        );
    }
}

#[test]
fn hyperband_spreads_trials_over_brackets_by_their_size() {
    let hb = Hyperband::new(HyperbandConfig {
        min_resource: 1,
        max_resource: 81,
        reduction_factor: 3,
    })
    .unwrap();
    let mut h = History::new(hb, Objective::minimize("loss"));
    // 143 trials (the brackets' total) report a poor value at step 1 after a good first one:
    // only trials of the most aggressive bracket (rung at step 1) can be decided there.
    let first = h.start(0.1);
    h.report(first, 1, 0.0);
    let mut decided = 0;
    for _ in 1..143 {
        let t = h.start(0.1);
        if h.report(t, 1, 1.0).is_some() {
            decided += 1;
        }
    }
    // Bracket s=4 holds 81 of 143 trials.
    assert!(
        (70..=90).contains(&decided),
        "{decided} trials decided at step 1"
    );
}

#[test]
fn median_rule_waits_for_startup_trials_and_warm_up_steps() {
    let rule = PercentileRule::new(PercentileConfig {
        n_startup_trials: 2,
        n_warmup_steps: 3,
        ..PercentileConfig::default()
    })
    .unwrap();
    let mut h = History::new(rule, Objective::minimize("loss"));
    let a = h.start(0.1);
    for step in 0..6 {
        assert_eq!(
            h.report(a, step, 1.0 - step as f64 * 0.1),
            None,
            "no completed trial yet"
        );
    }
    h.complete(a, 0.5);
    let b = h.start(0.1);
    for step in 0..6 {
        h.report(b, step, 0.9 - step as f64 * 0.1);
    }
    h.complete(b, 0.4);

    let bad = h.start(0.1);
    for step in 0..3 {
        assert_eq!(
            h.report(bad, step, 5.0),
            None,
            "step {step} is in the warm-up"
        );
    }
    let v = h.report(bad, 3, 5.0).expect("decides after the warm-up");
    assert_eq!(v.action, Action::Stop);
    assert_eq!(v.policy, "median");
    assert!(
        v.rationale.contains("worse than the 50th percentile 0.6"),
        "{}",
        v.rationale
    );

    let good = h.start(0.1);
    h.report(good, 2, 0.1);
    let v = h.report(good, 3, 0.9).unwrap();
    assert_eq!(
        v.action,
        Action::Continue,
        "its best so far (0.1) counts: {}",
        v.rationale
    );
}

#[test]
fn pbt_replaces_the_bottom_quantile_with_explored_children_of_the_top() {
    let config = PbtConfig {
        population_size: Some(4),
        perturbation_interval: 2,
        quantile_fraction: 0.25,
        resample_probability: 0.0,
        perturbation_factors: [0.8, 1.2],
    };
    let run = |seed| {
        let mut h = History::new(
            Pbt::new(config.clone(), seed).unwrap(),
            Objective::minimize("loss"),
        );
        let trials: Vec<TrialNumber> = [0.1, 0.2, 0.3, 0.4].iter().map(|&lr| h.start(lr)).collect();
        let mut verdicts = Vec::new();
        for step in 0..=1 {
            for (i, &t) in trials.iter().enumerate() {
                let v = h.report(t, step, i as f64 + 1.0 / (step as f64 + 1.0));
                verdicts.push((t, step, v));
            }
        }
        verdicts
    };
    let verdicts = run(7);
    // Nothing before a trial has trained perturbation_interval (2) steps: 0 and 1.
    assert!(
        verdicts
            .iter()
            .filter(|(_, s, _)| *s < 1)
            .all(|(_, _, v)| v.is_none())
    );
    let at_two: Vec<&Option<Verdict>> = verdicts
        .iter()
        .filter(|(_, s, _)| *s == 1)
        .map(|(_, _, v)| v)
        .collect();
    for v in &at_two[..3] {
        assert_eq!(v.as_ref().unwrap().action, Action::Continue);
    }
    let Action::Exploit { parent, params } = &at_two[3].as_ref().unwrap().action else {
        panic!("the worst trial is exploited: {:?}", at_two[3]);
    };
    assert_eq!(*parent, 0, "the top quarter of 4 is trial 0");
    let lr = params["lr"].as_f64().unwrap();
    assert!(
        (lr - 0.08).abs() < 1e-12 || (lr - 0.12).abs() < 1e-12,
        "the parent's lr 0.1, perturbed by 0.8 or 1.2: {lr}"
    );
    assert_eq!(run(7), verdicts, "same seed, same decisions");
}

fn two_objectives() -> Vec<Objective> {
    vec![Objective::minimize("loss"), Objective::maximize("accuracy")]
}

#[test]
fn asha_stops_a_trial_dominated_at_a_rung_with_several_objectives() {
    let asha = Asha::new(AshaConfig::default()).unwrap();
    let mut h = History::with_objectives(asha, two_objectives());
    let a = h.start(0.1);
    assert!(!stops(&h.report_point(a, 1, &[1.0, 0.8])));
    // Worse on both: dominated by trial a, with 2 at the rung only 1 may dominate nothing.
    let b = h.start(0.1);
    let v = h.report_point(b, 1, &[2.0, 0.7]).unwrap();
    assert_eq!(v.action, Action::Stop);
    assert!(
        v.rationale
            .contains("values (2, 0.7) are dominated by 1 of 2"),
        "{}",
        v.rationale
    );
    // Worse loss but better accuracy: a trade-off, not dominated.
    let c = h.start(0.1);
    assert!(!stops(&h.report_point(c, 1, &[3.0, 0.9])));
    // A report of the first objective alone cannot be ranked: nothing is decided.
    let d = h.start(0.1);
    assert_eq!(h.report(d, 1, 0.1), None);
}

#[test]
fn the_median_rule_stops_a_trial_the_median_dominates_with_several_objectives() {
    let rule = PercentileRule::new(PercentileConfig {
        n_startup_trials: 3,
        ..PercentileConfig::default()
    })
    .unwrap();
    let mut h = History::with_objectives(rule, two_objectives());
    for (loss, accuracy) in [(1.0, 0.9), (2.0, 0.8), (3.0, 0.7)] {
        let t = h.start(0.1);
        h.report_point(t, 0, &[loss, accuracy]);
        h.complete_point(t, &[loss, accuracy]);
    }
    // The median point is (2, 0.8).
    let worse = h.start(0.1);
    let v = h.report_point(worse, 0, &[2.5, 0.75]).unwrap();
    assert_eq!(v.action, Action::Stop, "{}", v.rationale);
    assert!(
        v.rationale
            .contains("(2.5, 0.75) are dominated by the 50th percentile (2, 0.8)"),
        "{}",
        v.rationale
    );
    let trade_off = h.start(0.1);
    let v = h.report_point(trade_off, 0, &[2.5, 0.85]).unwrap();
    assert_eq!(v.action, Action::Continue, "{}", v.rationale);
}

#[test]
fn a_pipeline_lets_the_first_stop_decide() {
    let pipeline = Pipeline(vec![
        Box::new(PercentileRule::new(PercentileConfig::default()).unwrap()),
        Box::new(Asha::new(AshaConfig::default()).unwrap()),
    ]);
    let mut h = History::new(pipeline, Objective::minimize("loss"));
    let a = h.start(0.1);
    // The median rule has no completed trial yet: ASHA's "promoted" is the decision.
    let v = h.report(a, 1, 0.5).unwrap();
    assert_eq!((v.policy, v.action), ("asha", Action::Continue));
    let b = h.start(0.1);
    let v = h.report(b, 1, 0.9).unwrap();
    assert_eq!((v.policy, v.action), ("asha", Action::Stop));
}

use hyperion_core::{Event, EventKind, StopReason};
use hyperion_runtime::{Budget, OptimizeConfig, Study, TrialError};

use crate::{box_space, sphere};

#[test]
fn events_arrive_in_the_order_a_user_expects() {
    let study = Study::builder("s")
        .space(box_space(2))
        .seed(3)
        .open()
        .unwrap();
    let all = study.subscribe_all();
    let config = OptimizeConfig::new(Budget::trials(5)).threads(1);
    study
        .optimize(&config, |t| {
            t.report(0, 9.0)?;
            Ok::<_, TrialError>(sphere(t.params()))
        })
        .unwrap();
    let events: Vec<Event> = all.try_iter().collect();
    let names: Vec<String> = events.iter().map(|e| format!("{:?}", e.kind())).collect();
    assert_eq!(names.first().map(String::as_str), Some("StudyStarted"));
    assert_eq!(
        events.last(),
        Some(&Event::StudyCompleted {
            study: "s".into(),
            reason: StopReason::MaxTrials
        })
    );
    // Per trial: started, metric, completed, maybe best, progress.
    let mut finished = 0;
    for window in names[1..names.len() - 1].split_inclusive(|n| n == "StudyProgress") {
        assert_eq!(
            &window[..3],
            ["TrialStarted", "MetricReported", "TrialCompleted"]
        );
        assert_eq!(window.last().unwrap(), "StudyProgress");
        finished += 1;
    }
    assert_eq!(finished, 5);
    let progress: Vec<(u64, Option<u64>)> = events
        .iter()
        .filter_map(|e| match e {
            Event::StudyProgress {
                finished, total, ..
            } => Some((*finished, *total)),
            _ => None,
        })
        .collect();
    assert_eq!(progress, (1..=5).map(|i| (i, Some(5))).collect::<Vec<_>>());
}

#[test]
fn best_updated_fires_only_on_improvement() {
    let study = Study::builder("s").open().unwrap();
    let best = study.subscribe(EventKind::BestUpdated);
    for value in [3.0, 5.0, 1.0, 1.0, 2.0, 0.5] {
        let n = study.ask().unwrap().number();
        study
            .tell(n, hyperion_runtime::Outcome::Completed(vec![value]))
            .unwrap();
    }
    let got: Vec<(u64, f64)> = best
        .try_iter()
        .map(|e| match e {
            Event::BestUpdated { number, values } => (number.0, values[0]),
            other => panic!("subscribed to BestUpdated only, got {other:?}"),
        })
        .collect();
    assert_eq!(got, [(0, 3.0), (2, 1.0), (5, 0.5)]);
}

#[test]
fn progress_counts_one_to_n_with_many_threads() {
    let study = Study::builder("s").open().unwrap();
    let progress = study.subscribe(EventKind::StudyProgress);
    let config = OptimizeConfig::new(Budget::trials(200)).threads(8);
    study
        .optimize(&config, |t| Ok::<_, TrialError>(t.number().0 as f64))
        .unwrap();
    let finished: Vec<u64> = progress
        .try_iter()
        .map(|e| match e {
            Event::StudyProgress { finished, .. } => finished,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(finished, (1..=200).collect::<Vec<_>>());
}

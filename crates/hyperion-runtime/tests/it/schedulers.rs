//! Early stopping in process: the objective reports, the scheduler decides, the closure ends
//! the trial as pruned; PBT children continue from their parent.

use std::collections::HashMap;

use hyperion_core::{FloatDistribution, SearchSpace, TrialState};
use hyperion_runtime::{Budget, OptimizeConfig, Outcome, Study};
use hyperion_samplers::SamplerConfig;
use hyperion_schedulers::{AshaConfig, PbtConfig, SchedulerConfig};

fn space() -> SearchSpace {
    SearchSpace::builder()
        .param("x", FloatDistribution::new(0.0, 1.0))
        .build()
        .unwrap()
}

#[test]
fn asha_prunes_closures_at_rungs_and_logs_each_decision() {
    let study = Study::builder("asha")
        .space(space())
        .sampler(SamplerConfig::Sobol)
        .early_stopping(SchedulerConfig::Asha(AshaConfig {
            min_resource: 1,
            max_resource: Some(27),
            reduction_factor: 3,
            brackets: 1,
        }))
        .open()
        .unwrap();
    let config = OptimizeConfig::new(Budget::trials(40)).threads(2);
    study
        .optimize(&config, |trial| {
            let x = trial.suggest_float("x", 0.0, 1.0)?;
            let mut loss = f64::NAN;
            for epoch in 1..=27 {
                loss = (x - 0.3).powi(2) + 1.0 / epoch as f64;
                trial.report(epoch, loss)?;
                trial.check_pruned()?;
            }
            Ok(loss)
        })
        .unwrap();
    let trials = study.trials().unwrap();
    let pruned: Vec<_> = trials
        .iter()
        .filter_map(|t| match &t.state {
            TrialState::Pruned { step, .. } => Some((t.number, step.unwrap())),
            _ => None,
        })
        .collect();
    assert!(
        pruned.len() >= 20,
        "most of 40 trials stop early: {}",
        pruned.len()
    );
    assert!(
        pruned.iter().all(|(_, step)| [1, 3, 9].contains(step)),
        "{pruned:?}"
    );
    let epochs: usize = trials.iter().map(|t| t.intermediate.len()).sum();
    assert!(epochs < 40 * 27 / 2, "{epochs} epochs of {}", 40 * 27);

    let log = study.store().decisions(study.view().unwrap().id()).unwrap();
    for (number, _) in &pruned {
        let stops = log
            .iter()
            .filter(|d| d.trial == Some(*number) && d.action == hyperion_core::DecisionAction::Stop)
            .count();
        assert_eq!(stops, 1, "trial {number}");
    }
    // Every trial that reached step 1 was decided there.
    let at_first_rung = log
        .iter()
        .filter(|d| d.rationale.contains("rung 0 "))
        .count();
    assert_eq!(at_first_rung, 40);
    // The best trial ran to the end.
    let best = study.best_trial().unwrap().unwrap();
    assert_eq!(best.intermediate.len(), 27);
}

/// A trained "model": w shrinks by (1 - lr) per step. Checkpoints are kept by trial number.
#[test]
fn pbt_children_continue_from_their_parent_in_process() {
    let run = || {
        let study = Study::builder("pbt")
            .space(
                SearchSpace::builder()
                    .param("lr", FloatDistribution::new(0.01, 0.5))
                    .build()
                    .unwrap(),
            )
            .seed(11)
            .early_stopping(SchedulerConfig::Pbt(PbtConfig {
                population_size: Some(4),
                perturbation_interval: 3,
                quantile_fraction: 0.25,
                resample_probability: 0.25,
                perturbation_factors: [0.8, 1.2],
            }))
            .open()
            .unwrap();
        let mut checkpoints: HashMap<hyperion_core::TrialNumber, (u64, f64)> = HashMap::new();
        let mut population: Vec<_> = (0..4).map(|_| study.ask().unwrap()).collect();
        // Lockstep: every member trains one step, then the next.
        for _ in 0..12 {
            for member in population.iter_mut() {
                let number = member.number();
                let (step, w) = checkpoints
                    .get(&number)
                    .copied()
                    .unwrap_or_else(|| member.trial().parent.map_or((0, 5.0), |p| checkpoints[&p]));
                let lr = member.params()["lr"].as_f64().unwrap();
                let w = w * (1.0 - lr);
                checkpoints.insert(number, (step + 1, w));
                member.report(step + 1, w * w).unwrap();
            }
            for member in population.iter_mut() {
                if let Some(reason) = member.prune_reason() {
                    let reason = reason.to_owned();
                    study
                        .tell(member.number(), Outcome::Pruned { reason })
                        .unwrap();
                    *member = study.ask().unwrap();
                    assert!(member.trial().parent.is_some(), "the child comes next");
                }
            }
        }
        for member in population {
            let number = member
                .trial()
                .parent
                .filter(|_| !checkpoints.contains_key(&member.number()));
            let (_, w) = checkpoints[&number.unwrap_or(member.number())];
            study
                .tell(member.number(), Outcome::Completed(vec![w * w]))
                .unwrap();
        }
        study
    };
    let study = run();
    let trials = study.trials().unwrap();
    let children: Vec<_> = trials.iter().filter(|t| t.parent.is_some()).collect();
    assert!(!children.is_empty());
    assert_eq!(study.view().unwrap().budget_used(), 4);
    for child in &children {
        let parent = &trials[child.parent.unwrap().index()];
        assert_eq!(child.depth, parent.depth + 1);
        let Some((&first, _)) = child.intermediate.first_key_value() else {
            continue; // created at the last step
        };
        assert!(first > 1, "child {} starts at step {first}", child.number);
        assert!(parent.intermediate.contains_key(&(first - 1)));
    }
    let again: Vec<_> = run()
        .trials()
        .unwrap()
        .into_iter()
        .map(|t| (t.params, t.parent))
        .collect();
    let first: Vec<_> = trials.into_iter().map(|t| (t.params, t.parent)).collect();
    assert_eq!(again, first, "same seed, same population history");
}

use std::collections::BTreeMap;

use hyperion_core::{
    CategoricalDistribution, Condition, Distribution, FloatDistribution, IntDistribution, Param,
    ParamValue, SearchSpace,
};
use hyperion_samplers::{SampleContext, SamplerConfig};
use proptest::prelude::*;

use crate::view;

fn distribution() -> impl Strategy<Value = Distribution> {
    prop_oneof![
        (-100.0..100.0f64, 1e-3..1e3f64).prop_map(|(low, span)| FloatDistribution::new(
            low,
            low + span
        )
        .into()),
        (1e-6..10.0f64, 1.01..1e6f64)
            .prop_map(|(low, f)| FloatDistribution::new(low, low * f).log().into()),
        (-100i32..100, 1u32..50, 1e-3..10.0f64).prop_map(|(low, k, step)| {
            let low = low as f64;
            FloatDistribution::new(low, low + k as f64 * step)
                .step(step)
                .into()
        }),
        (-100i64..100, 1i64..10, 1i64..100).prop_map(|(low, step, count)| IntDistribution::new(
            low,
            low + step * count
        )
        .step(step)
        .into()),
        (1i64..100, 1i64..10_000)
            .prop_map(|(low, span)| IntDistribution::new(low, low + span).log().into()),
        prop::collection::btree_set(0i64..20, 1..6).prop_map(|set| {
            // Mix strings, numbers and booleans among the choices.
            let choices: Vec<ParamValue> = set
                .into_iter()
                .map(|i| match i % 3 {
                    0 => ParamValue::Int(i),
                    1 => ParamValue::Str(format!("c{i}")),
                    _ => ParamValue::Float(i as f64 + 0.5),
                })
                .collect();
            CategoricalDistribution { choices }.into()
        }),
        any::<bool>().prop_map(Distribution::constant),
    ]
}

/// Spaces of 1–6 parameters; some conditional on an earlier categorical parameter.
fn space() -> impl Strategy<Value = SearchSpace> {
    prop::collection::vec(
        (distribution(), any::<prop::sample::Index>(), any::<bool>()),
        1..7,
    )
    .prop_map(|specs| {
        let mut params: Vec<Param> = Vec::new();
        for (i, (distribution, pick, conditional)) in specs.into_iter().enumerate() {
            let parents: Vec<&Param> = params
                .iter()
                .filter(|p| matches!(p.distribution, Distribution::Categorical(_)))
                .collect();
            let condition = match (conditional, parents.is_empty()) {
                (true, false) => {
                    let parent = pick.get(&parents);
                    let Distribution::Categorical(c) = &parent.distribution else {
                        unreachable!()
                    };
                    Some(Condition {
                        parent: parent.name.clone(),
                        values: vec![pick.get(&c.choices).clone()],
                    })
                }
                _ => None,
            };
            params.push(Param {
                name: format!("p{i}"),
                distribution,
                condition,
            });
        }
        SearchSpace::new(params).expect("generated spaces are valid")
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn every_suggestion_is_a_point_of_the_space(space in space(), seed in any::<u64>()) {
        let view = view(&space);
        let configs = [
            SamplerConfig::Random,
            SamplerConfig::Sobol,
            SamplerConfig::grid(),
            SamplerConfig::Cmaes(Default::default()),
            SamplerConfig::Nsga2(Default::default()),
        ];
        for config in configs {
            let sampler = config.build(seed).unwrap();
            for trial_number in [0, 1, 2, 3, 7, 100, 65_537] {
                let ctx = SampleContext { view: &view, trial_number };
                let Some(params) = sampler.suggest(&space, &ctx).unwrap() else { continue };
                if let Err(e) = space.check_point(&params) {
                    panic!("{config:?} trial {trial_number}: {e}\nspace: {space:?}\nparams: {params:?}");
                }
            }
        }
    }

    #[test]
    fn define_by_run_values_lie_in_their_distribution(d in distribution(), seed in any::<u64>(), n in 0u64..100_000) {
        let space = SearchSpace::default();
        let view = view(&space);
        for config in [SamplerConfig::Random, SamplerConfig::Sobol] {
            let value = config.build(seed).unwrap()
                .suggest_param("x", &d, &SampleContext { view: &view, trial_number: n }).unwrap();
            prop_assert!(d.contains(&value), "{config:?}: {value} not in {d}");
        }
    }
}

#[test]
fn grid_never_repeats_and_covers_the_whole_grid() {
    let space = SearchSpace::builder()
        .param("lr", FloatDistribution::new(1e-4, 1e-1).log())
        .param("layers", IntDistribution::new(1, 3))
        .param("opt", CategoricalDistribution::new(["adam", "sgd"]))
        .param_if(
            "momentum",
            CategoricalDistribution::new([0.5, 0.9]),
            Condition::new("opt", ["sgd"]),
        )
        .build()
        .unwrap();
    let view = view(&space);
    let sampler = SamplerConfig::Grid {
        points: 4,
        values: BTreeMap::new(),
    }
    .build(0)
    .unwrap();
    let mut seen = Vec::new();
    for trial_number in 0.. {
        match sampler
            .suggest(
                &space,
                &SampleContext {
                    view: &view,
                    trial_number,
                },
            )
            .unwrap()
        {
            Some(p) => seen.push(serde_json::to_string(&p).unwrap()),
            None => break,
        }
    }
    // 4 learning rates × 3 layer counts × (adam + sgd with 2 momenta) = 36 points.
    assert_eq!(seen.len(), 36);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 36, "a grid point repeated");
}

#[test]
fn grid_refuses_define_by_run_parameters_by_name() {
    let space = SearchSpace::default();
    let view = view(&space);
    let e = SamplerConfig::grid()
        .build(0)
        .unwrap()
        .suggest_param(
            "lr",
            &FloatDistribution::new(0.0, 1.0).into(),
            &SampleContext {
                view: &view,
                trial_number: 0,
            },
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"parameter "lr": the grid sampler needs it declared in the search space"#
    );
}

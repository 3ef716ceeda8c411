use super::*;
use crate::{CategoricalDistribution, FloatDistribution, IntDistribution};

fn build_err(builder: SearchSpaceBuilder) -> String {
    builder.build().unwrap_err().to_string()
}

#[test]
fn errors_name_the_parameter() {
    let e = build_err(SearchSpace::builder().param("lr", FloatDistribution::new(0.0, 1.0).log()));
    assert_eq!(e, r#"parameter "lr": low (0) must be > 0 for a log scale"#);
    let e = build_err(SearchSpace::builder().param("x", FloatDistribution::new(2.0, 1.0)));
    assert_eq!(e, r#"parameter "x": low (2) must be < high (1)"#);
    let e = build_err(
        SearchSpace::builder()
            .param("x", IntDistribution::new(1, 3))
            .param("x", IntDistribution::new(1, 3)),
    );
    assert_eq!(e, r#"parameter "x" is declared twice"#);
    let e = build_err(
        SearchSpace::builder().param("opt", CategoricalDistribution::new(Vec::<String>::new())),
    );
    assert_eq!(e, r#"parameter "opt": choices must not be empty"#);
}

#[test]
fn conditions_must_name_a_real_parent_and_a_possible_value() {
    let e = build_err(SearchSpace::builder().param_if(
        "momentum",
        FloatDistribution::new(0.0, 1.0),
        Condition::new("optimiser", ["sgd"]),
    ));
    assert_eq!(
        e,
        r#"parameter "momentum": its condition names an unknown parent "optimiser""#
    );
    let e = build_err(
        SearchSpace::builder()
            .param("optimizer", CategoricalDistribution::new(["adam", "sgd"]))
            .param_if(
                "momentum",
                FloatDistribution::new(0.0, 1.0),
                Condition::new("optimizer", ["rmsprop"]),
            ),
    );
    assert_eq!(
        e,
        r#"parameter "momentum": its condition needs "optimizer" = rmsprop, which is not in categorical [adam, sgd]"#
    );
}

#[test]
fn cycles_are_rejected() {
    let e = build_err(
        SearchSpace::builder()
            .param_if(
                "a",
                CategoricalDistribution::new([1, 2]),
                Condition::new("b", [1]),
            )
            .param_if(
                "b",
                CategoricalDistribution::new([1, 2]),
                Condition::new("a", [1]),
            ),
    );
    assert_eq!(e, "the conditions form a cycle: a -> b -> a");
    let e = build_err(SearchSpace::builder().param_if(
        "a",
        IntDistribution::new(1, 2),
        Condition::new("a", [1]),
    ));
    assert_eq!(e, "the conditions form a cycle: a -> a");
}

#[test]
fn sampling_order_puts_parents_first() {
    let space = SearchSpace::builder()
        .param_if(
            "momentum",
            FloatDistribution::new(0.0, 1.0),
            Condition::new("optimizer", ["sgd"]),
        )
        .param("optimizer", CategoricalDistribution::new(["adam", "sgd"]))
        .build()
        .unwrap();
    let names: Vec<_> = space.sampling_order().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["optimizer", "momentum"]);
}

#[test]
fn serde_form_round_trips_and_validates() {
    let json = r#"[
        {"name": "lr", "type": "float", "low": 1e-5, "high": 0.1, "log": true},
        {"name": "optimizer", "type": "categorical", "choices": ["adam", "sgd"]},
        {"name": "momentum", "type": "float", "low": 0.0, "high": 0.99,
         "condition": {"parent": "optimizer", "values": ["sgd"]}},
        {"name": "epochs", "type": "constant", "value": 10}
    ]"#;
    let space: SearchSpace = serde_json::from_str(json).unwrap();
    assert_eq!(space.len(), 4);
    let again: SearchSpace = serde_json::from_str(&serde_json::to_string(&space).unwrap()).unwrap();
    assert_eq!(again, space);

    let bad = r#"[{"name": "lr", "type": "float", "low": 0, "high": 0.1, "log": true}]"#;
    let e = serde_json::from_str::<SearchSpace>(bad)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(r#"parameter "lr": low (0) must be > 0 for a log scale"#),
        "{e}"
    );
}

#[test]
fn check_point_accepts_points_of_the_space_only() {
    let space = SearchSpace::builder()
        .param("optimizer", CategoricalDistribution::new(["adam", "sgd"]))
        .param_if(
            "momentum",
            FloatDistribution::new(0.0, 1.0),
            Condition::new("optimizer", ["sgd"]),
        )
        .build()
        .unwrap();
    let point = |pairs: &[(&str, ParamValue)]| -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    };
    space
        .check_point(&point(&[("optimizer", "adam".into())]))
        .unwrap();
    space
        .check_point(&point(&[
            ("optimizer", "sgd".into()),
            ("momentum", 0.9.into()),
        ]))
        .unwrap();
    let e = space.check_point(&point(&[
        ("optimizer", "adam".into()),
        ("momentum", 0.9.into()),
    ]));
    assert!(e.unwrap_err().to_string().contains("condition is not met"));
    let e = space.check_point(&point(&[("optimizer", "sgd".into())]));
    assert_eq!(
        e.unwrap_err().to_string(),
        r#"parameter "momentum": missing"#
    );
}

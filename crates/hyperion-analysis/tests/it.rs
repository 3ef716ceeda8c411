//! The plots and the importance of real studies, made through the engine.

use std::sync::Arc;

use hyperion_analysis::plots::{self, Kind, Options, Plot};
use hyperion_analysis::{importance, report, svg};
use hyperion_core::{
    CategoricalDistribution, FloatDistribution, IntDistribution, Objective, ParamValue, Params,
    SearchSpace, StudyView,
};
use hyperion_runtime::{Outcome, Study};
use hyperion_store::{MemoryStore, Store};

fn frac(v: f64) -> f64 {
    v - v.floor()
}

/// The trials of `/tmp/golden/ped.py` (see `importance_matches_optuna`): `x` matters most,
/// then the categorical `c`, then `lr`, `k` a little and `noise` not at all.
fn point(i: u64) -> (Params, f64) {
    let f = i as f64;
    let x = -5.0 + 10.0 * frac(f * 0.6180339887);
    let lr = (1e-3f64.ln() + 1000f64.ln() * frac(f * 0.4142135623)).exp();
    let k = ((i * 7) % 11) as i64;
    let c = ["a", "b", "c"][((i * i + i / 3) % 3) as usize];
    let noise = frac(f * 0.7320508075);
    let value = x * x
        + 0.3 * (lr.log10() + 2.0).powi(2)
        + if c == "b" { 2.0 } else { 0.0 }
        + 0.05 * k as f64;
    let params = Params::from([
        ("x".to_owned(), ParamValue::Float(x)),
        ("lr".to_owned(), ParamValue::Float(lr)),
        ("k".to_owned(), ParamValue::Int(k)),
        ("c".to_owned(), ParamValue::Str(c.to_owned())),
        ("noise".to_owned(), ParamValue::Float(noise)),
    ]);
    (params, value)
}

fn space() -> SearchSpace {
    SearchSpace::builder()
        .param("x", FloatDistribution::new(-5.0, 5.0))
        .param("lr", FloatDistribution::new(1e-3, 1.0).log())
        .param("k", IntDistribution::new(0, 10))
        .param("c", CategoricalDistribution::new(["a", "b", "c"]))
        .param("noise", FloatDistribution::new(0.0, 1.0))
        .build()
        .unwrap()
}

/// A study of `n` trials of `point`, completed with its value.
fn study(n: u64, objective: Objective) -> Study {
    study_of(n, objective, |_, value| value)
}

/// A study of `n` trials of `point`, completed with `value(params, point's value)`.
fn study_of(n: u64, objective: Objective, value: impl Fn(&Params, f64) -> f64) -> Study {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let study = Study::builder("s")
        .objectives(vec![objective])
        .space(space())
        .store(store)
        .open()
        .unwrap();
    for i in 0..n {
        let (params, v) = point(i);
        let v = value(&params, v);
        study.enqueue(params).unwrap();
        let trial = study.ask().unwrap();
        let number = trial.number();
        drop(trial);
        study.tell(number, Outcome::Completed(vec![v])).unwrap();
    }
    study
}

fn view(study: &Study) -> Arc<StudyView> {
    study.view().unwrap().clone()
}

/// Golden figures from Optuna 5.0's `get_param_importances` (PED-ANOVA) on the same 300 trials,
/// made by `tests/ped_anova_golden.py`:
/// `create_trial(params=point(i), value=…)` for i in 0..300, `target=lambda t: t.value`, and
/// `-t.value` for the maximized study, as optuna-dashboard does.
#[test]
fn importance_matches_optuna() {
    let cases = [
        (
            Objective::minimize("loss"),
            [
                ("x", 0.938790023),
                ("c", 0.033004844),
                ("lr", 0.018087989),
                ("k", 0.008605359),
                ("noise", 0.001511784),
            ],
        ),
        (
            Objective::maximize("score"),
            [
                ("x", 0.832673345),
                ("c", 0.070789559),
                ("lr", 0.038932139),
                ("noise", 0.03826917),
                ("k", 0.019335788),
            ],
        ),
    ];
    for (objective, expected) in cases {
        let study = study(300, objective);
        let got = importance::ped_anova(&view(&study), 0);
        assert_eq!(got.completed, 300);
        assert_eq!(got.top, 30);
        let names: Vec<&str> = got.params.iter().map(|p| p.name.as_str()).collect();
        let want: Vec<&str> = expected.iter().map(|e| e.0).collect();
        assert_eq!(names, want, "ranking: {got:?}");
        for ((_, want), p) in expected.iter().zip(&got.params) {
            assert!(
                (p.importance - want).abs() < 1e-5,
                "{}: {} vs Optuna's {want}",
                p.name,
                p.importance
            );
        }
        let sum: f64 = got.params.iter().map(|p| p.importance).sum();
        assert!((sum - 1.0).abs() < 1e-9);
    }
}

#[test]
fn spearman_gives_the_direction_of_a_parameter() {
    // The value grows with k and falls with lr, whatever the others are.
    let study = study_of(300, Objective::minimize("loss"), |p, _| {
        p["k"].as_f64().unwrap() - p["lr"].as_f64().unwrap().ln()
    });
    let got = importance::ped_anova(&view(&study), 0);
    let rho = |name: &str| got.params.iter().find(|p| p.name == name).unwrap().spearman;
    assert!(rho("k").unwrap() > 0.3, "{:?}", rho("k"));
    assert!(rho("lr").unwrap() < -0.3, "{:?}", rho("lr"));
    assert!(rho("noise").unwrap().abs() < 0.2, "{:?}", rho("noise"));
    assert_eq!(rho("c"), None);
}

#[test]
fn importance_of_a_study_without_trials_is_equal_shares() {
    let study = study(1, Objective::minimize("loss"));
    let got = importance::ped_anova(&view(&study), 0);
    assert_eq!(got.params.len(), 5);
    assert!(
        got.params
            .iter()
            .all(|p| (p.importance - 0.2).abs() < 1e-12)
    );
}

#[test]
fn every_plot_is_bounded_by_its_width_however_large_the_study() {
    let study = study(3000, Objective::minimize("loss"));
    let view = view(&study);
    let options = Options {
        width: 200,
        ..Options::default()
    };
    let Plot::History(h) = plots::plot(&view, Kind::History, &options).unwrap() else {
        panic!()
    };
    assert_eq!(h.completed, 3000);
    assert!(h.points.number.len() <= 800, "{}", h.points.number.len());
    let Plot::Parallel(p) = plots::plot(&view, Kind::Parallel, &options).unwrap() else {
        panic!()
    };
    assert_eq!(p.lines.len(), 200);
    assert_eq!(p.axes.len(), 5);
    assert_eq!(p.completed, 3000);
    // The best trial is always among the lines.
    let best = view.best_trial().unwrap();
    assert_eq!(p.lines[0].number, best.number.0);
    let Plot::Slice(s) = plots::plot(&view, Kind::Slice, &options).unwrap() else {
        panic!()
    };
    for param in &s.params {
        assert!(param.x.len() <= 48 * 36 && !param.x.is_empty());
    }
    // k has 11 values: its slice has at most that many columns of points.
    let k = s.params.iter().find(|p| p.axis.name == "k").unwrap();
    assert!(k.x.len() <= 11 * 36);
    let Plot::Contour(c) = plots::plot(&view, Kind::Contour, &options).unwrap() else {
        panic!()
    };
    assert_eq!((c.x.name.as_str(), c.y.name.as_str()), ("x", "lr"));
    assert_eq!(c.grid.len(), 24 * 24);
    assert!(c.points.0.len() <= 80 * 80);
}

#[test]
fn a_contour_cell_holds_the_mean_of_its_trials() {
    let study = study(500, Objective::minimize("loss"));
    let view = view(&study);
    let options = Options {
        x: Some("noise".into()),
        y: Some("k".into()),
        ..Options::default()
    };
    let Plot::Contour(c) = plots::plot(&view, Kind::Contour, &options).unwrap() else {
        panic!()
    };
    // The cell of the lowest noise and k = 0.
    let inside: Vec<f64> = view
        .completed()
        .filter(|t| {
            t.params["noise"].as_f64().unwrap() < 1.0 / 24.0 && t.params["k"].as_i64() == Some(0)
        })
        .map(|t| t.value().unwrap())
        .collect();
    let mean = inside.iter().sum::<f64>() / inside.len() as f64;
    assert!(!inside.is_empty());
    assert!((c.grid[0].unwrap() - mean).abs() < 1e-9);
}

#[test]
fn plots_refuse_what_the_study_does_not_have() {
    let study = study(10, Objective::minimize("loss"));
    let view = view(&study);
    let bad =
        |options: Options, kind: Kind| plots::plot(&view, kind, &options).unwrap_err().to_string();
    assert_eq!(
        bad(
            Options {
                objective: 1,
                ..Options::default()
            },
            Kind::History
        ),
        "objective 1: the study has 1 objective(s), numbered from 0"
    );
    assert_eq!(
        bad(
            Options {
                x: Some("nope".into()),
                ..Options::default()
            },
            Kind::Contour
        ),
        "unknown parameter `nope` (the study has: x, lr, k, c, noise)"
    );
    assert_eq!(
        bad(
            Options {
                x: Some("x".into()),
                y: Some("x".into()),
                ..Options::default()
            },
            Kind::Contour
        ),
        "a contour needs two different numeric or categorical parameters"
    );
    assert!(bad(Options::default(), Kind::Pareto).contains("two objectives"));
    assert!(
        "bogus"
            .parse::<Kind>()
            .unwrap_err()
            .to_string()
            .contains("history, parallel")
    );
}

#[test]
fn the_pareto_front_and_learning_curves_of_a_two_objective_study() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let study = Study::builder("mo")
        .objectives(vec![Objective::minimize("a"), Objective::minimize("b")])
        .space(
            SearchSpace::builder()
                .param("x", FloatDistribution::new(0.0, 1.0))
                .build()
                .unwrap(),
        )
        .store(store)
        .seed(3)
        .open()
        .unwrap();
    for i in 0..400u64 {
        let trial = study.ask().unwrap();
        let number = trial.number();
        let x = trial.params()["x"].as_f64().unwrap();
        drop(trial);
        if i % 4 == 0 {
            for step in 0..30 {
                study
                    .report(number, step, &[x + 1.0 / (step + 1) as f64, 0.0])
                    .unwrap();
            }
        }
        let outcome = if i == 399 {
            // Left running: its curve is drawn as a running one.
            continue;
        } else if i % 8 == 4 {
            Outcome::Pruned {
                reason: "test".into(),
            }
        } else {
            Outcome::Completed(vec![x, (1.0 - x).powi(2) + (i % 5) as f64 * 0.1])
        };
        study.tell(number, outcome).unwrap();
    }
    let view = view(&study);
    let options = Options {
        width: 100,
        ..Options::default()
    };
    let Plot::Pareto(p) = plots::plot(&view, Kind::Pareto, &options).unwrap() else {
        panic!()
    };
    assert_eq!(p.front.len(), view.pareto_front().len());
    assert!(p.front.len() >= 2 && p.others.len() == 100);
    assert!(
        p.front
            .windows(2)
            .all(|w| w[0].values[0] <= w[1].values[0] && w[0].values[1] >= w[1].values[1])
    );
    let Plot::Intermediate(c) = plots::plot(&view, Kind::Intermediate, &options).unwrap() else {
        panic!()
    };
    assert_eq!(c.reporting, 100);
    assert_eq!(c.curves.len(), 100);
    assert!(c.curves.iter().any(|c| c.state == "pruned"));
    // Trial 399 never reported (399 % 4 != 0), so no curve is running.
    assert!(c.curves.iter().all(|c| c.state != "running"));
    assert_eq!(c.band.steps, (0..30).collect::<Vec<u64>>());
    assert!(c.band.p10.iter().zip(&c.band.p90).all(|(a, b)| a <= b));
    let Plot::Timeline(t) = plots::plot(&view, Kind::Timeline, &options).unwrap() else {
        panic!()
    };
    assert_eq!(t.trials, 400);
    assert_eq!(t.lanes, vec!["in-process #1".to_owned()]);
    assert_eq!(t.bars.iter().map(|b| b.count).sum::<u64>(), 400);
    assert!(t.bars.iter().any(|b| b.state == "running"));
}

#[test]
fn svg_marks_match_the_plot_data() {
    let study = study(300, Objective::minimize("loss"));
    let view = view(&study);
    for kind in Kind::ALL.into_iter().filter(|k| k.applies_to(&view)) {
        let plot = plots::plot(&view, kind, &Options::default()).unwrap();
        let drawn = svg::draw(&plot, 900, true);
        assert!(
            drawn.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{kind}"
        );
        assert!(drawn.contains(&format!("data-kind=\"{kind}\"")));
        let count = |needle: &str| drawn.matches(needle).count();
        match &plot {
            Plot::History(h) => assert_eq!(count("<circle class=\"dot\""), h.points.number.len()),
            Plot::Parallel(p) => assert_eq!(count("<path class=\"line\""), p.lines.len()),
            Plot::Slice(s) => assert_eq!(
                count("<circle"),
                s.params.iter().map(|p| p.x.len()).sum::<usize>()
            ),
            Plot::Importance(i) => assert_eq!(count("<rect class=\"bar\""), i.params.len()),
            _ => {}
        }
    }
}

#[test]
fn the_report_is_one_file_with_every_plot_and_no_script() {
    let study = study(200, Objective::minimize("loss"));
    let html = report::html(&view(&study), 900, "today");
    assert!(html.starts_with("<!doctype html>"));
    assert!(!html.contains("<script"));
    for kind in [
        "history",
        "parallel",
        "slice",
        "contour",
        "intermediate",
        "importance",
        "timeline",
    ] {
        assert!(html.contains(&format!("data-kind=\"{kind}\"")), "{kind}");
    }
    assert!(!html.contains("data-kind=\"pareto\""));
    assert!(html.contains("Best trials"));
}

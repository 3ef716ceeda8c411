//! `hyperion plot`, `report STUDY -o`, `importance` and `compare` on studies that real
//! processes ran.

use serde_json::Value;

use crate::{Sandbox, stderr};

/// A training script: the loss falls by epoch towards (x - 0.3)², and `noise` does nothing.
const TRAIN: &str = r#"import json, os, sys
x, noise = float(sys.argv[1]), float(sys.argv[2])
with open(os.environ["HYPERION_METRICS_FILE"], "a") as out:
    for epoch in range(1, 6):
        out.write(json.dumps({"step": epoch, "loss": (x - 0.3) ** 2 + 1.0 / epoch}) + "\n")
    out.write(json.dumps({"loss": (x - 0.3) ** 2}) + "\n")
"#;

fn study(name: &str, method: &str, trials: u32) -> String {
    format!(
        "name: {name}\ncommand: [python3, train.py, '{{x}}', '{{noise}}']\n\
         parameters: {{x: {{type: float, low: 0.0, high: 1.0}}, noise: {{type: float, low: 0.0, high: 1.0}}}}\n\
         metric: {{name: loss, goal: minimize}}\nmethod: {method}\nseed: 2\n\
         budget: {{max_trials: {trials}}}\nresources: {{max_concurrent: 4}}\n"
    )
}

fn ran(s: &Sandbox, args: &[&str]) -> String {
    let output = s.hyperion(args);
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    String::from_utf8(output.stdout).unwrap()
}

fn failed(s: &Sandbox, args: &[&str]) -> String {
    let output = s.hyperion(args);
    assert!(!output.status.success(), "{args:?} should fail");
    stderr(&output)
}

#[test]
fn plots_reports_and_importance_of_a_run_study() {
    let s = Sandbox::new();
    s.write("train.py", TRAIN);
    s.run(&study("sweep", "random", 40), &["-q"]);

    for kind in [
        "history",
        "parallel",
        "slice",
        "contour",
        "intermediate",
        "importance",
        "timeline",
    ] {
        let file = format!("{kind}.svg");
        ran(
            &s,
            &[
                "plot", "sweep", "--kind", kind, "-o", &file, "--width", "800",
            ],
        );
        let svg = std::fs::read_to_string(s.path().join(&file)).unwrap();
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{kind}"
        );
        assert!(svg.contains(&format!("data-kind=\"{kind}\"")) && svg.contains("<style>"));
    }
    let history = std::fs::read_to_string(s.path().join("history.svg")).unwrap();
    assert!(
        history.contains("data-points=\"40\""),
        "every completed trial is drawn"
    );
    let curves = std::fs::read_to_string(s.path().join("intermediate.svg")).unwrap();
    assert!(curves.contains("data-curves=\"40\""));
    // The trials ran as processes on this machine: the timeline's lanes are its slots.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let timeline = std::fs::read_to_string(s.path().join("timeline.svg")).unwrap();
    assert!(
        timeline.contains(&format!("{} #1", host.trim())),
        "{timeline}"
    );
    assert!(
        !timeline.contains(&format!("{} #5", host.trim())),
        "at most 4 at once"
    );

    ran(&s, &["report", "sweep", "-o", "report.html"]);
    let html = std::fs::read_to_string(s.path().join("report.html")).unwrap();
    assert!(html.contains("<h1>Study sweep</h1>") && !html.contains("<script"));
    assert_eq!(
        html.matches("<svg ").count(),
        7,
        "every plot but the Pareto front"
    );

    // x decides the loss, noise nothing: x comes first.
    let table = ran(&s, &["importance", "sweep"]);
    assert!(
        table.starts_with("importance for loss (PED-ANOVA"),
        "{table}"
    );
    let rows: Vec<&str> = table
        .lines()
        .skip_while(|l| !l.starts_with("parameter"))
        .skip(1)
        .collect();
    assert!(
        rows[0].starts_with("x ") && rows[1].starts_with("noise "),
        "{table}"
    );
    let json: Value = serde_json::from_str(&ran(&s, &["importance", "sweep", "--json"])).unwrap();
    let shares: Vec<f64> = json["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["importance"].as_f64().unwrap())
        .collect();
    assert!(
        (shares.iter().sum::<f64>() - 1.0).abs() < 1e-9 && shares[0] > shares[1],
        "{json}"
    );
    assert_eq!(json["completed"], 40);
}

#[test]
fn compare_puts_studies_side_by_side() {
    let s = Sandbox::new();
    s.write("train.py", TRAIN);
    s.run(&study("tpe", "tpe", 20), &["-q"]);
    s.run(&study("grid", "sobol", 12), &["-q"]);
    let table = ran(&s, &["compare", "tpe", "grid", "-o", "both.svg"]);
    for (name, trials) in [("tpe", 20), ("grid", 12)] {
        let best: Value = serde_json::from_str(&ran(&s, &["best", name, "--json"])).unwrap();
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap();
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[1], trials.to_string(), "{table}");
        let shown: f64 = cells[cells.len() - 2].parse().unwrap();
        let value = best["values"][0].as_f64().unwrap();
        assert!(
            (shown - value).abs() <= value.abs() * 1e-3 + 1e-12,
            "{table}"
        );
        assert_eq!(cells[cells.len() - 1], best["number"].to_string());
    }
    let svg = std::fs::read_to_string(s.path().join("both.svg")).unwrap();
    assert_eq!(svg.matches("class=\"study\"").count(), 2);
}

#[test]
fn bad_requests_say_what_is_wrong() {
    let s = Sandbox::new();
    s.write("train.py", TRAIN);
    s.run(&study("one", "random", 3), &["-q"]);
    let error = failed(&s, &["plot", "one", "--kind", "pareto", "-o", "p.svg"]);
    assert!(
        error.contains("study \"one\": pareto plot: a Pareto front needs two objectives"),
        "{error}"
    );
    assert!(!s.path().join("p.svg").exists());
    let error = failed(&s, &["plot", "one", "--kind", "pie", "-o", "p.svg"]);
    assert!(
        error.contains("unknown plot `pie` (history, parallel"),
        "{error}"
    );
    let error = failed(
        &s,
        &[
            "plot", "one", "--kind", "contour", "--x", "lr", "-o", "p.svg",
        ],
    );
    assert!(
        error.contains("unknown parameter `lr` (the study has: x, noise)"),
        "{error}"
    );
    let error = failed(&s, &["importance", "one", "--objective", "2"]);
    assert!(
        error.contains("--objective 2: study \"one\" has 1 objective(s)"),
        "{error}"
    );
    let error = failed(&s, &["compare", "one", "two"]);
    assert!(error.contains("two"), "{error}");
    let error = failed(&s, &["report", "one"]);
    assert!(error.contains("--output"), "{error}");
}

//! The dashboard in headless Chromium, over a study that is being written while it watches:
//! what a person sees on each page, live updates, sorting and filtering, the stop button, the
//! token. `HYPERION_SCREENSHOTS=DIR` saves a picture of each page there.

use hyperion_core::Change;
use serde_json::Value;

use crate::Served;
use crate::webdriver::{Browser, browser};

/// With `HYPERION_SCREENSHOTS=DIR`, a picture of the whole page (the window made as tall as
/// it, then back).
fn screenshot(browser: &Browser, name: &str) {
    if let Ok(dir) = std::env::var("HYPERION_SCREENSHOTS") {
        let height = browser
            .run("return document.documentElement.scrollHeight")
            .as_u64()
            .unwrap_or(1000);
        browser.resize(1300, (height as u32 + 120).min(6000));
        std::thread::sleep(std::time::Duration::from_millis(800));
        browser.screenshot(&std::path::Path::new(&dir).join(format!("{name}.png")));
        browser.resize(1300, 1000);
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

/// How many elements match `selector`.
fn count(browser: &Browser, selector: &str) -> u64 {
    browser
        .run(&format!(
            "return document.querySelectorAll({selector:?}).length"
        ))
        .as_u64()
        .unwrap()
}

fn text(browser: &Browser, selector: &str) -> String {
    browser
        .run(&format!(
            "const e = document.querySelector({selector:?}); return e ? e.textContent : null;"
        ))
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_person_sees_the_studies_their_trials_and_a_running_study_change_live() {
    let Some(browser) = browser() else { return };
    let served = Served::new();
    served.complete(20);
    served.fail();

    // The study list: one row, its counts and best.
    browser.open(&served.url);
    let cells = browser.wait(
        "document.querySelector('#study-list tr[data-study=\"demo\"]')",
        "[...document.querySelectorAll('#study-list tr[data-study=\"demo\"] td')].map(td => td.textContent)",
        20,
    );
    assert_eq!(cells[1], "demo");
    assert_eq!(cells[3], "21");
    assert_eq!(cells[4], "20");
    assert_eq!(cells[7], "1");
    let best = served.study.best_trial().unwrap().unwrap();
    assert!(
        cells[8]
            .as_str()
            .unwrap()
            .contains(&format!("#{}", best.number.0)),
        "{cells}"
    );
    screenshot(&browser, "dashboard-studies");

    // The study page: counts, every completed trial on the history, a page of the table.
    browser.open(&format!("{}/#/s/demo", served.base));
    browser.wait(
        "document.body.dataset.ready === '#/s/demo' && document.getElementById('live') && !document.getElementById('live').hidden",
        "document.body.dataset.ready",
        20,
    );
    assert_eq!(text(&browser, "#count-completed"), "20");
    assert_eq!(text(&browser, "#count-failed"), "1");
    assert_eq!(count(&browser, "#plot-history svg circle.dot"), 20);
    assert_eq!(count(&browser, "#trials tbody tr.row"), 21);
    screenshot(&browser, "dashboard-study");

    // A run goes on: the page follows without a reload.
    browser.run("window.sameDocument = true; return null;");
    served.complete(5);
    browser.wait(
        "document.getElementById('count-completed').textContent === '25' && document.querySelectorAll('#plot-history circle.dot').length === 25",
        "[document.getElementById('count-completed').textContent, document.querySelectorAll('#plot-history circle.dot').length]",
        10,
    );
    assert_eq!(browser.run("return window.sameDocument === true"), true);
    // The other plots follow within a second: 25 lines across the parallel axes.
    browser.wait(
        "document.querySelectorAll('#plot-parallel path.line').length === 25",
        "document.querySelectorAll('#plot-parallel path.line').length",
        10,
    );
    browser.wait(
        "document.querySelectorAll('#trials tbody tr.row').length === 26",
        "document.querySelectorAll('#trials tbody tr.row').length",
        10,
    );

    // Sorted by value: the best trial first; filtered to failures: the one.
    browser.run("document.querySelector('#trials th[data-key=\"value\"]').click(); return null;");
    let best = served
        .study
        .best_trial()
        .unwrap()
        .unwrap()
        .number
        .0
        .to_string();
    browser.wait(
        &format!("document.querySelector('#trials tbody tr.row').dataset.number === '{best}'"),
        "document.querySelector('#trials tbody tr.row').dataset.number",
        10,
    );
    browser.run(
        "const s = document.getElementById('state-filter'); s.value = 'failed'; \
         s.dispatchEvent(new Event('change')); return null;",
    );
    let rows = browser.wait(
        "document.querySelectorAll('#trials tbody tr.row').length === 1",
        "[...document.querySelectorAll('#trials tbody tr.row td:nth-child(2)')].map(td => td.textContent)",
        10,
    );
    assert_eq!(rows, Value::from(vec!["failed"]));

    // A trial's page: its params and result.
    browser.open(&format!("{}/#/s/demo/t/{best}", served.base));
    browser.wait(
        &format!("document.body.dataset.ready === '#/s/demo/t/{best}'"),
        "document.body.dataset.ready",
        10,
    );
    assert_eq!(text(&browser, "#trial-state"), "completed");
    let params = text(&browser, "#trial-params");
    assert!(params.contains('x') && params.contains('n'), "{params}");
    screenshot(&browser, "dashboard-trial");
}

#[test]
fn the_stop_button_asks_the_studys_runs_to_stop() {
    let Some(browser) = browser() else { return };
    let served = Served::new();
    served.complete(2);
    browser.open(&format!("{}/#/s/demo", served.base));
    browser.wait(
        "document.body.dataset.ready === '#/s/demo'",
        "document.body.dataset.ready",
        20,
    );
    browser.run("document.getElementById('stop').click(); return null;");
    browser.wait(
        "document.getElementById('stop-note').textContent !== ''",
        "document.getElementById('stop-note').textContent",
        10,
    );
    let changes = served
        .store
        .changes_since(served.study.record_id(), 0)
        .unwrap();
    assert!(
        changes
            .iter()
            .any(|c| matches!(c.change, Change::StopRequested { kill: false, .. }))
    );
}

#[test]
fn with_a_token_the_page_is_refused_without_it_and_opens_from_the_printed_url() {
    let Some(browser) = browser() else { return };
    let served = Served::with(hyperion_server::Options {
        bind: "127.0.0.1:0".parse().unwrap(),
        token: Some("0123456789abcdef".into()),
        ..Default::default()
    });
    served.complete(1);
    browser.open(&format!("{}/", served.base));
    let body = browser.run("return document.body.innerText");
    assert!(body.as_str().unwrap().contains("token_required"), "{body}");
    browser.open(&served.url);
    browser.wait(
        "document.querySelector('#study-list tr[data-study=\"demo\"]')",
        "document.body.innerText",
        20,
    );
    // The token left the address bar for a cookie.
    let address = browser.run("return location.href");
    assert!(!address.as_str().unwrap().contains("token"), "{address}");
}

/// The JSON at `path` of the served API.
fn api(served: &Served, path: &str) -> Value {
    ureq::get(&format!("{}{path}", served.base))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap()
}

/// Completes `n` trials that report a learning curve of `steps` steps first.
fn complete_with_curves(served: &Served, n: usize, steps: u64) {
    for _ in 0..n {
        let trial = served.study.ask().unwrap();
        let number = trial.number();
        let x = trial.params()["x"].as_f64().unwrap();
        drop(trial);
        for step in 0..steps {
            served
                .study
                .report(number, step, &[x * x + 1.0 / (step + 1) as f64])
                .unwrap();
        }
        served
            .study
            .tell(number, hyperion_runtime::Outcome::Completed(vec![x * x]))
            .unwrap();
    }
}

#[test]
fn every_plot_draws_what_the_api_says_and_parallel_coordinates_brush() {
    let Some(browser) = browser() else { return };
    let served = Served::new();
    served.complete(30);
    complete_with_curves(&served, 10, 8);
    browser.open(&format!("{}/#/s/demo", served.base));
    browser.wait(
        "document.body.dataset.ready === '#/s/demo'",
        "document.body.dataset.ready",
        20,
    );
    // The data at the width the page drew each plot.
    let plot = |kind: &str| {
        let width = browser.run(&format!(
            "return document.querySelector('#plot-{kind} svg').getAttribute('width')"
        ));
        let width = width.as_str().unwrap();
        api(
            &served,
            &format!("/api/v1/studies/demo/plots/{kind}?width={width}"),
        )
    };
    let len = |v: &Value| v.as_array().unwrap().len() as u64;
    assert_eq!(
        count(&browser, "#plot-history circle.dot"),
        len(&plot("history")["points"]["number"])
    );
    assert_eq!(count(&browser, "#plot-parallel path.line"), 40);
    let slice = plot("slice");
    let points: u64 = slice["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| len(&p["x"]))
        .sum();
    assert_eq!(count(&browser, "#plot-slice circle.dot"), points);
    assert_eq!(
        count(&browser, "#plot-contour circle.dot"),
        len(&plot("contour")["points"][0])
    );
    assert_eq!(count(&browser, "#plot-importance rect.bar"), 2);
    assert_eq!(count(&browser, "#plot-intermediate path.curve"), 10);
    assert_eq!(
        count(&browser, "#plot-timeline rect[class^=tl-]"),
        len(&plot("timeline")["bars"])
    );
    // A study of one objective has no Pareto front to show.
    assert_eq!(count(&browser, "#plot-pareto"), 0);

    // Brush the upper half of the x axis (x from 0 to 1): only those trials' lines stay.
    browser.run(
        "const h = document.querySelector('#plot-parallel g.paxis[data-axis=\"0\"] rect.brush');
         const r = h.getBoundingClientRect(); const x = r.left + r.width / 2;
         const at = (type, y, target) => target.dispatchEvent(new PointerEvent(type, {clientX: x, clientY: y, bubbles: true}));
         at('pointerdown', r.top + 1, h); at('pointermove', r.top + r.height / 2, window); at('pointerup', r.top + r.height / 2, window);
         return null;",
    );
    let kept: Vec<u64> = serde_json::from_value(browser.run(
        "return [...document.querySelectorAll('#plot-parallel path.line:not(.dim)')].map(p => Number(p.dataset.n))",
    ))
    .unwrap();
    let trials = served.study.trials().unwrap();
    let x = |n: u64| trials[n as usize].params["x"].as_f64().unwrap();
    let upper = trials
        .iter()
        .filter(|t| t.params["x"].as_f64().unwrap() > 0.02)
        .count();
    assert!(!kept.is_empty() && kept.len() < 40, "{kept:?}");
    assert!(kept.iter().all(|&n| x(n) > -0.02), "{kept:?}");
    assert!(
        kept.len() >= upper,
        "{} kept, {upper} trials have x > 0.02",
        kept.len()
    );
    assert_eq!(
        text(&browser, "#parallel-selected"),
        format!("{} of 40 lines selected", kept.len())
    );
    // A click on the axis clears its brush.
    browser.run(
        "const h = document.querySelector('#plot-parallel g.paxis[data-axis=\"0\"] rect.brush');
         const r = h.getBoundingClientRect(); const x = r.left + r.width / 2;
         h.dispatchEvent(new PointerEvent('pointerdown', {clientX: x, clientY: r.top + 5, bubbles: true}));
         window.dispatchEvent(new PointerEvent('pointerup', {clientX: x, clientY: r.top + 5, bubbles: true}));
         return null;",
    );
    assert_eq!(count(&browser, "#plot-parallel path.line.dim"), 0);
    screenshot(&browser, "dashboard-plots");
}

#[test]
fn the_table_of_a_large_study_holds_only_the_rows_in_view() {
    let Some(browser) = browser() else { return };
    let served = Served::new();
    served.complete(2000);
    browser.open(&format!("{}/#/s/demo", served.base));
    browser.wait(
        "document.body.dataset.ready === '#/s/demo'",
        "document.body.dataset.ready",
        30,
    );
    assert_eq!(
        browser.run("return document.getElementById('trials').dataset.total"),
        "2000"
    );
    assert!(count(&browser, "#trials tbody tr.row") < 100);
    // Scrolled to the end, the last trials are there, and still only a screenful of rows.
    browser.run(
        "const v = document.getElementById('trials-viewport'); v.scrollTop = v.scrollHeight; return null;",
    );
    browser.wait(
        "document.querySelector('#trials tbody tr.row[data-number=\"1999\"]')",
        "[...document.querySelectorAll('#trials tbody tr.row')].map(r => r.dataset.number).slice(-3)",
        10,
    );
    assert!(count(&browser, "#trials tbody tr.row") < 100);

    // Columns: hide `n`.
    browser.run(
        "const c = document.querySelector('input[data-column=\"param:n\"]'); c.checked = false;
         c.dispatchEvent(new Event('change')); return null;",
    );
    browser.wait(
        "!document.querySelector('#trials th[data-key=\"param:n\"]')",
        "[...document.querySelectorAll('#trials th')].map(t => t.dataset.key)",
        10,
    );
    // Filter on a range of x, on the server: every row inside, the total the store's.
    browser.run(
        "document.getElementById('range-key').value = 'param:x';
         document.getElementById('range-low').value = '0';
         document.getElementById('range-high').value = '0.5';
         document.getElementById('range-apply').click(); return null;",
    );
    let inside = served
        .study
        .trials()
        .unwrap()
        .iter()
        .filter(|t| (0.0..=0.5).contains(&t.params["x"].as_f64().unwrap()))
        .count();
    browser.wait(
        &format!("document.getElementById('trials').dataset.total === '{inside}'"),
        "document.getElementById('trials').dataset.total",
        10,
    );
    let xs: Vec<f64> = serde_json::from_value(browser.run(
        "const i = [...document.querySelectorAll('#trials th')].findIndex(t => t.dataset.key === 'param:x');
         return [...document.querySelectorAll('#trials tbody tr.row')].map(r => Number(r.children[i].textContent));",
    ))
    .unwrap();
    assert!(
        !xs.is_empty() && xs.iter().all(|x| (0.0..=0.5).contains(x)),
        "{xs:?}"
    );
}

#[test]
fn studies_are_compared_side_by_side() {
    let Some(browser) = browser() else { return };
    let served = Served::new();
    served.complete(15);
    let other = hyperion_runtime::Study::builder("other")
        .minimize("loss")
        .space(
            hyperion_core::SearchSpace::builder()
                .param("x", hyperion_core::FloatDistribution::new(-1.0, 1.0))
                .build()
                .unwrap(),
        )
        .seed(3)
        .store(served.store.clone())
        .open()
        .unwrap();
    for _ in 0..8 {
        let trial = other.ask().unwrap();
        let (number, x) = (trial.number(), trial.params()["x"].as_f64().unwrap());
        drop(trial);
        other
            .tell(number, hyperion_runtime::Outcome::Completed(vec![x.abs()]))
            .unwrap();
    }
    // From the list: tick both, press Compare.
    browser.open(&served.url);
    browser.wait(
        "document.querySelectorAll('#study-list input.pick').length === 2",
        "document.body.innerText",
        20,
    );
    browser.run(
        "for (const c of document.querySelectorAll('#study-list input.pick')) { c.checked = true; c.dispatchEvent(new Event('change')); }
         document.getElementById('compare').click(); return null;",
    );
    browser.wait(
        "document.body.dataset.ready === '#/compare/demo/other' || document.body.dataset.ready === '#/compare/other/demo'",
        "document.body.dataset.ready",
        20,
    );
    assert_eq!(count(&browser, "#plot-compare path.study"), 2);
    let best: Vec<String> = serde_json::from_value(browser.run(
        "return ['demo', 'other'].map(s => document.querySelector(`#compare-table tr[data-study=\"${s}\"] td.best`).textContent)",
    ))
    .unwrap();
    let value = |s: &hyperion_runtime::Study| s.best_trial().unwrap().unwrap().values.unwrap()[0];
    for (shown, want) in best.iter().zip([value(&served.study), value(&other)]) {
        let shown: f64 = shown.parse().unwrap();
        assert!(
            (shown - want).abs() <= want.abs() * 1e-4 + 1e-9,
            "{shown} vs {want}"
        );
    }
    screenshot(&browser, "dashboard-compare");
}

#[test]
fn a_study_of_two_objectives_shows_its_pareto_front() {
    let Some(browser) = browser() else { return };
    let served = Served::new();
    let mo = hyperion_runtime::Study::builder("mo")
        .objectives(vec![
            hyperion_core::Objective::minimize("error"),
            hyperion_core::Objective::minimize("latency"),
        ])
        .space(
            hyperion_core::SearchSpace::builder()
                .param("x", hyperion_core::FloatDistribution::new(0.0, 1.0))
                .build()
                .unwrap(),
        )
        .seed(5)
        .store(served.store.clone())
        .open()
        .unwrap();
    for i in 0..30 {
        let trial = mo.ask().unwrap();
        let (number, x) = (trial.number(), trial.params()["x"].as_f64().unwrap());
        drop(trial);
        let values = vec![x, (1.0 - x).powi(2) + f64::from(i % 3) * 0.2];
        mo.tell(number, hyperion_runtime::Outcome::Completed(values))
            .unwrap();
    }
    browser.open(&format!("{}/#/s/mo", served.base));
    browser.wait(
        "document.body.dataset.ready === '#/s/mo'",
        "document.body.dataset.ready",
        20,
    );
    let front = mo.pareto_front().unwrap().len() as u64;
    assert!(front >= 2);
    assert_eq!(count(&browser, "#plot-pareto circle.front"), front);
    assert_eq!(count(&browser, "#plot-pareto circle.other"), 30 - front);
    // The objective picker redraws the history for the second objective.
    browser.run(
        "const s = document.getElementById('objective'); s.value = '1'; s.dispatchEvent(new Event('change')); return null;",
    );
    browser.wait(
        "document.querySelector('#plot-history svg text') && [...document.querySelectorAll('#plot-history svg text')].some(t => t.textContent.startsWith('latency'))",
        "[...document.querySelectorAll('#plot-history svg text')].map(t => t.textContent).slice(-3)",
        10,
    );
}

#[test]
fn a_pipeline_trial_shows_where_it_is_in_the_table_and_its_stages_on_its_page() {
    let Some(browser) = browser() else { return };
    let served = Served::new();
    served.complete(2);
    let number = served.study.ask().unwrap().number();
    let stage = |stage: &str, status, cached| hyperion_core::StageRun {
        stage: stage.into(),
        status,
        cached,
        key: Some(format!("b3:{stage}-key")),
    };
    use hyperion_core::StageStatus::{Done, Running};
    let stages = vec![stage("prepare", Done, true), stage("train", Running, false)];
    (served.store)
        .log(
            served.study.record_id(),
            &Change::StagesRecorded { number, stages },
        )
        .unwrap();

    browser.open(&format!("{}/#/s/demo", served.base));
    let state = browser.wait(
        &format!(
            "document.querySelector('#trials tbody tr.row[data-number=\"{number}\"] td:nth-child(2)')"
        ),
        &format!(
            "document.querySelector('#trials tbody tr.row[data-number=\"{number}\"] td:nth-child(2)').textContent"
        ),
        20,
    );
    assert_eq!(state, "IN_TRAINING");

    browser.open(&format!("{}/#/s/demo/t/{number}", served.base));
    browser.wait(
        &format!("document.body.dataset.ready === '#/s/demo/t/{number}'"),
        "document.body.dataset.ready",
        10,
    );
    assert_eq!(text(&browser, "#trial-state"), "IN_TRAINING");
    let rows = browser.run(
        "return [...document.querySelectorAll('#stages tbody tr')].map(tr => \
         [...tr.querySelectorAll('td')].map(td => td.textContent))",
    );
    assert_eq!(
        rows,
        serde_json::json!([
            ["prepare", "done (cached)", "b3:prepare-key"],
            ["train", "running", "b3:train-key"]
        ])
    );
    screenshot(&browser, "dashboard-pipeline-trial");
}

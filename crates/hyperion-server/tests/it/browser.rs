//! The dashboard in headless Chromium, over a study that is being written while it watches:
//! what a person sees on each page, live updates, sorting and filtering, the stop button, the
//! token. `HYPERION_SCREENSHOTS=DIR` saves a picture of each page there.

use hyperion_core::Change;
use serde_json::Value;

use crate::Served;
use crate::webdriver::{Browser, browser};

fn screenshot(browser: &Browser, name: &str) {
    if let Ok(dir) = std::env::var("HYPERION_SCREENSHOTS") {
        browser.screenshot(&std::path::Path::new(&dir).join(format!("{name}.png")));
    }
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
    assert_eq!(cells[0], "demo");
    assert_eq!(cells[2], "21");
    assert_eq!(cells[3], "20");
    assert_eq!(cells[6], "1");
    let best = served.study.best_trial().unwrap().unwrap();
    assert!(
        cells[7]
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
    assert_eq!(
        browser.run("return document.getElementById('history-chart').dataset.points"),
        "20"
    );
    assert_eq!(
        browser.run("return document.querySelectorAll('#trials tbody tr').length"),
        21
    );
    screenshot(&browser, "dashboard-study");

    // A run goes on: the page follows without a reload.
    browser.run("window.sameDocument = true; return null;");
    served.complete(5);
    browser.wait(
        "document.getElementById('count-completed').textContent === '25' && document.getElementById('history-chart').dataset.points === '25'",
        "[document.getElementById('count-completed').textContent, document.getElementById('history-chart').dataset.points]",
        10,
    );
    assert_eq!(browser.run("return window.sameDocument === true"), true);
    assert_eq!(
        browser.run("return document.querySelectorAll('#trials tbody tr').length"),
        26
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
        &format!("document.querySelector('#trials tbody tr').dataset.number === '{best}'"),
        "document.querySelector('#trials tbody tr').dataset.number",
        10,
    );
    browser.run(
        "const s = document.getElementById('state-filter'); s.value = 'failed'; \
         s.dispatchEvent(new Event('change')); return null;",
    );
    let rows = browser.wait(
        "document.querySelectorAll('#trials tbody tr').length === 1",
        "[...document.querySelectorAll('#trials tbody tr td:nth-child(2)')].map(td => td.textContent)",
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

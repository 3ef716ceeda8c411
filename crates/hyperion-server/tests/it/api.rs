//! The JSON API as a client sees it: answers, errors, writes, and the event stream.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use hyperion_core::Change;
use serde_json::{Value, json};

use crate::Served;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// GET `path`: the status and the JSON body.
fn get(served: &Served, path: &str) -> (u16, Value) {
    let mut r = agent()
        .get(&format!("{}{path}", served.base))
        .call()
        .unwrap();
    (r.status().as_u16(), r.body_mut().read_json().unwrap())
}

fn post(served: &Served, path: &str, body: Value) -> (u16, Value) {
    let mut r = agent()
        .post(&format!("{}{path}", served.base))
        .send_json(body)
        .unwrap();
    (r.status().as_u16(), r.body_mut().read_json().unwrap())
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[test]
fn studies_list_counts_best_and_last_activity_without_reading_trials() {
    let served = Served::new();
    served.complete(5);
    served.fail();
    let (status, list) = get(&served, "/api/v1/studies");
    assert_eq!(status, 200);
    let demo = &list[0];
    assert_eq!(demo["name"], "demo");
    assert_eq!(demo["counts"]["total"], 6);
    assert_eq!(demo["counts"]["completed"], 5);
    assert_eq!(demo["counts"]["failed"], 1);
    let best = served.study.best_trial().unwrap().unwrap();
    assert_eq!(demo["best"]["number"], best.number.0);
    assert_eq!(demo["best"]["values"][0], best.values.unwrap()[0]);
    assert!(demo["updated_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn trials_are_paged_sorted_and_filtered_on_the_server() {
    let served = Served::new();
    served.complete(30);
    let failed = served.fail();
    let (status, page) = get(
        &served,
        "/api/v1/studies/demo/trials?sort=value&order=asc&limit=10&offset=0",
    );
    assert_eq!(status, 200);
    assert_eq!(page["total"], 31);
    let values: Vec<f64> = page["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values.len(), 10);
    assert!(values.windows(2).all(|w| w[0] <= w[1]), "{values:?}");
    let best = served.study.best_trial().unwrap().unwrap();
    assert_eq!(page["trials"][0]["number"], best.number.0);

    let (_, failures) = get(&served, "/api/v1/studies/demo/trials?state=failed");
    assert_eq!(failures["total"], 1);
    assert_eq!(failures["trials"][0]["number"], failed);
    assert_eq!(failures["trials"][0]["error"], "out of memory");

    let (_, ranged) = get(
        &served,
        "/api/v1/studies/demo/trials?range=param:x:0:1&limit=1000",
    );
    let xs: Vec<f64> = ranged["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["params"]["x"].as_f64().unwrap())
        .collect();
    let expected = served
        .study
        .trials()
        .unwrap()
        .iter()
        .filter(|t| {
            t.params
                .get("x")
                .and_then(|v| v.as_f64())
                .is_some_and(|x| x >= 0.0)
        })
        .count();
    assert_eq!(xs.len(), expected);
    assert!(xs.iter().all(|&x| (0.0..=1.0).contains(&x)));
    assert_eq!(ranged["total"], expected);

    let (_, last) = get(&served, "/api/v1/studies/demo/trials?offset=30&limit=10");
    assert_eq!(last["trials"].as_array().unwrap().len(), 1);
}

#[test]
fn a_trial_comes_with_its_curve_and_the_decisions_about_it() {
    let served = Served::new();
    let trial = served.study.ask().unwrap();
    let number = trial.number();
    drop(trial);
    served.study.report(number, 1, &[0.5]).unwrap();
    served.study.report(number, 2, &[0.4]).unwrap();
    let (status, t) = get(
        &served,
        &format!("/api/v1/studies/demo/trials/{}", number.0),
    );
    assert_eq!(status, 200);
    assert_eq!(t["state"], "running");
    assert_eq!(t["intermediate"], json!({"1": 0.5, "2": 0.4}));
    assert!(t["params"]["x"].is_number());
    let (status, missing) = get(&served, "/api/v1/studies/demo/trials/99");
    assert_eq!((status, code(&missing)), (404, "trial_not_found"));
}

#[test]
fn history_is_exact_while_it_fits_and_bucketed_beyond() {
    let served = Served::new();
    served.complete(120);
    let (_, all) = get(&served, "/api/v1/studies/demo/plots/history?width=100");
    assert_eq!(all["points"]["number"].as_array().unwrap().len(), 120);
    // The running best: each point strictly better than the one before.
    let best: Vec<f64> = all["best"]["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(best.windows(2).all(|w| w[1] < w[0]));
    let overall = served.study.best_trial().unwrap().unwrap().values.unwrap()[0];
    assert_eq!(*best.last().unwrap(), overall);
    let (_, few) = get(&served, "/api/v1/studies/demo/plots/history?width=10");
    let n = few["points"]["number"].as_array().unwrap().len();
    assert!((10..=40).contains(&n), "{n} points for 10 buckets");
    assert_eq!(few["completed"], 120);
    // The best point is always among them.
    assert!(
        few["points"]["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v.as_f64() == Some(overall))
    );
}

/// GET `path` as text: the status, the content type and the body.
fn get_text(served: &Served, path: &str) -> (u16, String, String) {
    let mut r = agent()
        .get(&format!("{}{path}", served.base))
        .call()
        .unwrap();
    let kind = r
        .headers()
        .get("content-type")
        .map_or(String::new(), |v| v.to_str().unwrap().to_owned());
    (
        r.status().as_u16(),
        kind,
        r.body_mut().read_to_string().unwrap(),
    )
}

#[test]
fn every_plot_is_served_as_data_and_as_the_same_drawing() {
    let served = Served::new();
    served.complete(60);
    for kind in [
        "history",
        "parallel",
        "slice",
        "contour",
        "intermediate",
        "importance",
        "timeline",
    ] {
        let (status, data) = get(
            &served,
            &format!("/api/v1/studies/demo/plots/{kind}?width=400"),
        );
        assert_eq!((status, data["kind"].as_str()), (200, Some(kind)), "{data}");
        assert!(data["seq"].as_u64().unwrap() > 0);
        let (status, content, svg) = get_text(
            &served,
            &format!("/api/v1/studies/demo/plots/{kind}?width=400&format=svg"),
        );
        assert_eq!(status, 200, "{svg}");
        assert_eq!(content, "image/svg+xml; charset=utf-8");
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\"")
                && svg.contains(&format!("data-kind=\"{kind}\""))
        );
        // Inline in the page: its colours come from the page's stylesheet, not a <style>.
        assert!(!svg.contains("<style>"));
    }
    let (_, parallel) = get(&served, "/api/v1/studies/demo/plots/parallel");
    assert_eq!(parallel["lines"].as_array().unwrap().len(), 60);
    // A plot is drawn once per change of the study: the next change draws it anew.
    served.complete(1);
    let (_, parallel) = get(&served, "/api/v1/studies/demo/plots/parallel");
    assert_eq!(parallel["lines"].as_array().unwrap().len(), 61);
    assert_eq!(parallel["axes"][0]["name"], "x");
    let (_, slice) = get(&served, "/api/v1/studies/demo/plots/slice");
    assert_eq!(slice["params"].as_array().unwrap().len(), 2);
    let (_, importance) = get(&served, "/api/v1/studies/demo/plots/importance");
    let sum: f64 = importance["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["importance"].as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-9);
    // The loss is x²: x matters, n does not.
    assert_eq!(importance["params"][0]["name"], "x");
    let (_, contour) = get(&served, "/api/v1/studies/demo/plots/contour?x=n&y=x");
    assert_eq!(
        (contour["x"]["name"].as_str(), contour["columns"].as_u64()),
        (Some("n"), Some(24))
    );
    let (_, timeline) = get(&served, "/api/v1/studies/demo/plots/timeline");
    assert_eq!(timeline["trials"], 61);
}

#[test]
fn studies_are_compared_side_by_side() {
    let served = Served::new();
    served.complete(10);
    let (status, both) = get(&served, "/api/v1/compare?study=demo&study=demo");
    assert_eq!(status, 200, "{both}");
    assert_eq!(both["studies"].as_array().unwrap().len(), 2);
    let best = served.study.best_trial().unwrap().unwrap();
    assert_eq!(both["studies"][0]["best"]["number"], best.number.0);
    assert_eq!(both["studies"][0]["trials"], 10);
    let (status, _, svg) = get_text(&served, "/api/v1/compare?study=demo&format=svg");
    assert_eq!(status, 200);
    assert!(svg.contains("data-kind=\"compare\"") && svg.contains("data-study=\"demo\""));
    let (status, body) = get(&served, "/api/v1/compare?study=demo&study=nope");
    assert_eq!((status, code(&body)), (404, "study_not_found"));
    let (status, body) = get(&served, "/api/v1/compare");
    assert_eq!((status, code(&body)), (400, "bad_request"));
}

#[test]
fn bad_requests_get_a_json_reason_and_change_nothing() {
    let served = Served::new();
    served.complete(2);
    let before = served
        .store
        .changes_since(served.study.record_id(), 0)
        .unwrap()
        .len();
    for (path, status, wanted) in [
        ("/api/v1/studies/nope", 404, "study_not_found"),
        ("/api/v1/studies/demo/trials?limit=abc", 400, "bad_request"),
        (
            "/api/v1/studies/demo/trials?limit=100000",
            400,
            "bad_request",
        ),
        ("/api/v1/studies/demo/trials?state=done", 400, "bad_request"),
        (
            "/api/v1/studies/demo/trials?sort=colour",
            400,
            "bad_request",
        ),
        (
            "/api/v1/studies/demo/trials?range=param:x",
            400,
            "bad_request",
        ),
        ("/api/v1/studies/demo/trials?colour=red", 400, "bad_request"),
        ("/api/v1/studies/demo/trials/seven", 400, "bad_request"),
        (
            "/api/v1/studies/demo/plots/history?objective=3",
            400,
            "bad_request",
        ),
        ("/api/v1/studies/demo/plots/pie", 400, "bad_request"),
        ("/api/v1/studies/demo/plots/pareto", 400, "bad_request"),
        (
            "/api/v1/studies/demo/plots/contour?x=nope",
            400,
            "bad_request",
        ),
        (
            "/api/v1/studies/demo/plots/slice?format=png",
            400,
            "bad_request",
        ),
        (
            "/api/v1/studies/demo/plots/slice?colour=red",
            400,
            "bad_request",
        ),
        ("/api/v1/nothing/here", 404, "no_route"),
    ] {
        let (got, body) = get(&served, path);
        assert_eq!((got, code(&body)), (status, wanted), "{path}: {body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    let (status, body) = post(
        &served,
        "/api/v1/studies/demo/trials/0/tell",
        json!({"value": "x"}),
    );
    assert_eq!((status, code(&body)), (400, "bad_request"), "{body}");
    let (status, body) = post(
        &served,
        "/api/v1/studies/demo/trials/0/tell",
        json!({"value": 1.0}),
    );
    assert_eq!((status, code(&body)), (409, "trial_not_running"), "{body}");
    let text = agent()
        .post(&format!("{}/api/v1/studies/demo/stop", served.base))
        .header("Content-Type", "text/plain")
        .send("kill")
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(text, 415);
    let after = served
        .store
        .changes_since(served.study.record_id(), 0)
        .unwrap()
        .len();
    assert_eq!(before, after);
}

#[test]
fn ask_report_and_tell_over_http_drive_a_trial_as_the_cli_does() {
    let served = Served::new();
    let (status, asked) = post(&served, "/api/v1/studies/demo/ask", json!({}));
    assert_eq!(status, 201, "{asked}");
    let number = asked["number"].as_u64().unwrap();
    assert!(asked["params"]["x"].is_number());
    let report = format!("/api/v1/studies/demo/trials/{number}/report");
    let (status, verdict) = post(&served, &report, json!({"step": 1, "value": 0.7}));
    assert_eq!(
        (status, verdict["decision"].as_str()),
        (200, Some("continue"))
    );
    let tell = format!("/api/v1/studies/demo/trials/{number}/tell");
    let (status, told) = post(&served, &tell, json!({"value": 0.25}));
    assert_eq!(
        (status, told["state"].as_str()),
        (200, Some("completed")),
        "{told}"
    );
    let trial = served.study.trials().unwrap().remove(number as usize);
    assert_eq!(trial.values, Some(vec![0.25]));
    assert_eq!(trial.intermediate.get(&1), Some(&0.7));
    // A failure, with its message.
    let (_, asked) = post(&served, "/api/v1/studies/demo/ask", json!({}));
    let n = asked["number"].as_u64().unwrap();
    let (status, _) = post(
        &served,
        &format!("/api/v1/studies/demo/trials/{n}/tell"),
        json!({"state": "failed", "message": "diverged"}),
    );
    assert_eq!(status, 200);
    let (_, t) = get(&served, &format!("/api/v1/studies/demo/trials/{n}"));
    assert_eq!(
        (t["state"].as_str(), t["error"].as_str()),
        (Some("failed"), Some("diverged"))
    );
}

#[test]
fn stop_is_recorded_for_the_studys_runs() {
    let served = Served::new();
    let (status, body) = post(&served, "/api/v1/studies/demo/stop", json!({"kill": true}));
    assert_eq!(status, 200, "{body}");
    let changes = served
        .store
        .changes_since(served.study.record_id(), 0)
        .unwrap();
    assert!(changes.iter().any(|c| matches!(
        &c.change,
        Change::StopRequested { kill: true, by } if by.contains("dashboard")
    )));
}

/// Reads SSE events (id, event name, data) until `wanted` of them arrived.
fn read_events(reader: &mut impl BufRead, wanted: usize) -> Vec<(Option<u64>, String, Value)> {
    let mut events = Vec::new();
    let (mut id, mut name, mut data) = (None, String::new(), String::new());
    let mut line = String::new();
    while events.len() < wanted {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the stream ended");
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if !data.is_empty() {
                events.push((
                    id.take(),
                    std::mem::take(&mut name),
                    serde_json::from_str(&data).unwrap(),
                ));
                data.clear();
            }
        } else if let Some(v) = line.strip_prefix("id: ") {
            id = v.parse().ok();
        } else if let Some(v) = line.strip_prefix("event: ") {
            name = v.to_owned();
        } else if let Some(v) = line.strip_prefix("data: ") {
            data.push_str(v);
        }
    }
    events
}

#[test]
fn the_event_stream_sends_each_change_once_and_resumes_after_the_last_event_id() {
    let served = Served::new();
    served.complete(1);
    let start = served
        .store
        .changes_since(served.study.record_id(), 0)
        .unwrap()
        .len() as u64;
    let url = format!("{}/api/v1/studies/demo/events?since={start}", served.base);
    let response = agent().get(&url).call().unwrap();
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let mut reader = BufReader::new(response.into_body().into_reader());
    let numbers = served.complete(2);
    // Each trial: created, finished.
    let events = read_events(&mut reader, 4);
    let ids: Vec<u64> = events.iter().map(|e| e.0.unwrap()).collect();
    assert_eq!(ids, (start + 1..=start + 4).collect::<Vec<_>>());
    assert!(events.iter().all(|e| e.1 == "change"));
    assert_eq!(events[3].2["change"], "trial_finished");
    assert_eq!(events[3].2["number"], numbers[1]);
    drop(reader);

    // A reconnect after the second event gets the third and fourth, then what comes next.
    let response = agent()
        .get(&format!("{}/api/v1/studies/demo/events", served.base))
        .header("Last-Event-ID", (start + 2).to_string())
        .call()
        .unwrap();
    let mut reader = BufReader::new(response.into_body().into_reader());
    served.complete(1);
    let ids: Vec<u64> = read_events(&mut reader, 4)
        .iter()
        .map(|e| e.0.unwrap())
        .collect();
    assert_eq!(ids, (start + 3..=start + 6).collect::<Vec<_>>());
}

#[test]
fn a_study_deleted_while_watched_ends_its_stream_and_is_gone() {
    let served = Served::new();
    let response = agent()
        .get(&format!("{}/api/v1/studies/demo/events", served.base))
        .call()
        .unwrap();
    let mut reader = BufReader::new(response.into_body().into_reader());
    served.store.delete_study("demo").unwrap();
    let events = read_events(&mut reader, 1);
    assert_eq!(events[0].1, "study_deleted");
    let (status, body) = get(&served, "/api/v1/studies/demo");
    assert_eq!((status, code(&body)), (404, "study_not_found"));
}

#[test]
fn metrics_count_trials_by_state_for_prometheus() {
    let served = Served::new();
    served.complete(3);
    served.fail();
    let mut r = agent()
        .get(&format!("{}/metrics", served.base))
        .call()
        .unwrap();
    let text = r.body_mut().read_to_string().unwrap();
    assert!(
        text.contains("hyperion_trials{study=\"demo\",state=\"completed\"} 3"),
        "{text}"
    );
    assert!(text.contains("hyperion_trials{study=\"demo\",state=\"failed\"} 1"));
    assert!(text.contains("hyperion_trials_finished_total{study=\"demo\"} 4"));
    let best = served.study.best_trial().unwrap().unwrap().values.unwrap()[0];
    assert!(text.contains(&format!("hyperion_best_value{{study=\"demo\"}} {best}")));
}

#[test]
fn another_host_name_is_refused_against_dns_rebinding() {
    let served = Served::new();
    let mut r = agent()
        .get(&format!("{}/api/v1/studies", served.base))
        .header("Host", "attacker.example:8080")
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let body: Value = r.body_mut().read_json().unwrap();
    assert_eq!(code(&body), "host_not_allowed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--allowed-host attacker.example")
    );
}

#[test]
fn a_write_from_another_origin_is_refused() {
    let served = Served::new();
    let r = agent()
        .post(&format!("{}/api/v1/studies/demo/stop", served.base))
        .header("Origin", "http://attacker.example")
        .send_json(json!({}))
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let same = agent()
        .post(&format!("{}/api/v1/studies/demo/stop", served.base))
        .header("Origin", &served.base)
        .send_json(json!({}))
        .unwrap();
    assert_eq!(same.status().as_u16(), 200);
}

#[test]
fn with_a_token_every_request_needs_it_and_a_visit_with_it_sets_a_cookie() {
    let served = Served::with(hyperion_server::Options {
        bind: "127.0.0.1:0".parse().unwrap(),
        token: Some("s3cret".into()),
        ..Default::default()
    });
    assert!(served.url.ends_with("/?token=s3cret"), "{}", served.url);
    let (status, body) = get(&served, "/api/v1/studies");
    assert_eq!((status, code(&body)), (401, "token_required"));
    let wrong = agent()
        .get(&format!("{}/api/v1/studies", served.base))
        .header("Authorization", "Bearer nope")
        .call()
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let right = agent()
        .get(&format!("{}/api/v1/studies", served.base))
        .header("Authorization", "Bearer s3cret")
        .call()
        .unwrap();
    assert_eq!(right.status().as_u16(), 200);
    let no_redirects: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let visit = no_redirects.get(&served.url).call().unwrap();
    assert_eq!(visit.status().as_u16(), 303);
    let cookie = visit.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(cookie.starts_with("hyperion_token=s3cret;") && cookie.contains("HttpOnly"));
    let with_cookie = agent()
        .get(&format!("{}/api/v1/studies", served.base))
        .header("Cookie", "hyperion_token=s3cret")
        .call()
        .unwrap();
    assert_eq!(with_cookie.status().as_u16(), 200);
}

#[test]
fn read_only_refuses_writes() {
    let served = Served::with(hyperion_server::Options {
        bind: "127.0.0.1:0".parse().unwrap(),
        read_only: true,
        ..Default::default()
    });
    let (status, body) = post(&served, "/api/v1/studies/demo/ask", json!({}));
    assert_eq!((status, code(&body)), (405, "read_only"));
    assert!(served.study.trials().unwrap().is_empty());
}

#[test]
fn every_response_carries_a_strict_content_security_policy() {
    let served = Served::new();
    let r = agent().get(&format!("{}/", served.base)).call().unwrap();
    let csp = r
        .headers()
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"));
    assert_eq!(
        r.headers().get("x-content-type-options").unwrap(),
        "nosniff"
    );
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let served = Served::new();
    let taken: std::net::SocketAddr = served.base.trim_start_matches("http://").parse().unwrap();
    let store = served.store.clone();
    let e = hyperion_server::bind(
        store,
        hyperion_server::Options {
            bind: taken,
            ..Default::default()
        },
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&taken.to_string()) && text.contains("--bind"),
        "{text}"
    );
}

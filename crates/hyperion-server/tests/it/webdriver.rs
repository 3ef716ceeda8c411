//! Just enough WebDriver to drive the system's headless Chromium through `chromedriver`
//! (Debian's `chromium` and `chromium-driver`, which `infra/browser-up.sh` installs): open a
//! page, run a script in it, wait for what a person would see, take a screenshot.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[derive(Debug)]
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
}

/// `None` when `HYPERION_TEST_BROWSER=skip` says the browser tests may be skipped; without it a
/// missing browser fails the test, with what to install.
pub fn browser() -> Option<Browser> {
    if std::env::var("HYPERION_TEST_BROWSER").as_deref() == Ok("skip") {
        eprintln!("note: browser tests skipped (HYPERION_TEST_BROWSER=skip)");
        return None;
    }
    Some(Browser::start())
}

impl Browser {
    fn start() -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start chromedriver ({e}): the browser tests need Debian's chromium \
                     and chromium-driver (run infra/browser-up.sh), or set \
                     HYPERION_TEST_BROWSER=skip"
                )
            });
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
        };
        // The driver listens within a moment of starting.
        let deadline = Instant::now() + Duration::from_secs(20);
        while browser.call("GET", "/status", None).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1300,1000"]
        }}}});
        let session = browser
            .call("POST", "/session", Some(capabilities))
            .expect("a browser session");
        browser.session = session["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        browser
            .command("timeouts", json!({"script": 20_000, "pageLoad": 20_000}))
            .unwrap();
        browser
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let response = match (method, body) {
            ("GET", _) => agent.get(&url).call(),
            ("DELETE", _) => agent.delete(&url).call(),
            (_, body) => agent.post(&url).send_json(body.unwrap_or(json!({}))),
        };
        let mut response = response.map_err(|e| e.to_string())?;
        let status = response.status();
        let value: Value = response.body_mut().read_json().map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{status}: {}", value["value"]));
        }
        Ok(value["value"].clone())
    }

    fn command(&self, what: &str, body: Value) -> Result<Value, String> {
        self.call(
            "POST",
            &format!("/session/{}/{what}", self.session),
            Some(body),
        )
    }

    pub fn open(&self, url: &str) {
        self.command("url", json!({"url": url})).unwrap();
    }

    /// The value of `script` (a function body) run in the page.
    pub fn run(&self, script: &str) -> Value {
        self.command("execute/sync", json!({"script": script, "args": []}))
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits (in the page, on its own animation frames) until `condition`, an expression, is
    /// true, and returns `value`, another expression, then; panics with `value` after `secs`.
    pub fn wait(&self, condition: &str, value: &str, secs: u64) -> Value {
        let script = format!(
            "const done = arguments[arguments.length - 1];
             const end = Date.now() + {ms};
             const look = () => {{
               let ok = false;
               try {{ ok = !!({condition}); }} catch (e) {{}}
               if (ok || Date.now() > end) {{
                 let v; try {{ v = ({value}); }} catch (e) {{ v = 'error: ' + e; }}
                 done({{ok, v, error: (document.getElementById('error') || {{}}).textContent}});
               }} else requestAnimationFrame(look);
             }};
             look();",
            ms = secs * 1000
        );
        let result = self
            .command("execute/async", json!({"script": script, "args": []}))
            .unwrap_or_else(|e| panic!("waiting for `{condition}`: {e}"));
        assert!(
            result["ok"].as_bool() == Some(true),
            "after {secs} s, `{condition}` is still false: `{value}` is {}; the page's error: {}",
            result["v"],
            result["error"]
        );
        result["v"].clone()
    }

    /// Makes the window `width` × `height` pixels.
    pub fn resize(&self, width: u32, height: u32) {
        self.command("window/rect", json!({"width": width, "height": height}))
            .unwrap();
    }

    /// Saves a screenshot of the window as a PNG file.
    pub fn screenshot(&self, path: &std::path::Path) {
        let shot = self
            .call(
                "GET",
                &format!("/session/{}/screenshot", self.session),
                None,
            )
            .unwrap();
        std::fs::write(path, base64(shot.as_str().unwrap())).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64(text: &str) -> Vec<u8> {
    let digit = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = text.bytes().filter(|c| !b"=\n\r".contains(c)).collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | (digit(c) as u32) << (18 - 6 * i));
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len() - 1]);
    }
    out
}

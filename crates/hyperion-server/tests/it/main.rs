//! The dashboard served over a real SQLite store, on a real port: its API (`api.rs`) and, in
//! headless Chromium, its pages (`browser.rs`).

mod api;
mod browser;
mod webdriver;

use std::sync::Arc;

use hyperion_core::{FloatDistribution, IntDistribution, SearchSpace};
use hyperion_runtime::{Outcome, Study};
use hyperion_samplers::SamplerConfig;
use hyperion_store::{SqliteStore, Store};

/// A store with a study and a dashboard serving it; the server stops when this is dropped.
#[allow(missing_debug_implementations)]
pub struct Served {
    pub store: Arc<dyn Store>,
    pub study: Study,
    pub url: String,
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Served {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Served {
        Served::with(hyperion_server::Options {
            bind: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        })
    }

    pub fn with(options: hyperion_server::Options) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("h.db")).unwrap());
        let space = SearchSpace::builder()
            .param("x", FloatDistribution::new(-1.0, 1.0))
            .param("n", IntDistribution::new(1, 4))
            .build()
            .unwrap();
        let study = Study::builder("demo")
            .minimize("loss")
            .space(space)
            .sampler(SamplerConfig::Random)
            .seed(7)
            .store(store.clone())
            .open()
            .unwrap();
        let listening = hyperion_server::bind(store.clone(), options).unwrap();
        let url = listening.url.clone();
        let base = format!("http://{}", listening.addr);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            listening
                .serve_until(async {
                    let _ = stopped.await;
                })
                .unwrap();
        });
        Served {
            store,
            study,
            url,
            base,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// Runs `n` trials to completion (loss = (x - 0.3)²), returns their numbers.
    pub fn complete(&self, n: usize) -> Vec<u64> {
        (0..n)
            .map(|_| {
                let trial = self.study.ask().unwrap();
                let number = trial.number();
                let x = trial.params()["x"].as_f64().unwrap();
                drop(trial);
                self.study
                    .tell(number, Outcome::Completed(vec![(x - 0.3).powi(2)]))
                    .unwrap();
                number.0
            })
            .collect()
    }

    pub fn fail(&self) -> u64 {
        let number = self.study.ask().unwrap().number();
        self.study
            .tell(
                number,
                Outcome::Failed {
                    error: "out of memory".into(),
                },
            )
            .unwrap();
        number.0
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

//! Hyperion: hyperparameter optimization and experiment orchestration.
//!
//! Describe a search space and an objective, pick a sampler and a budget, and Hyperion proposes
//! trials, runs them, records every fact in a store and tells you the best. This crate is the
//! library's front door; it re-exports the crates that do the work:
//!
//! - [`core`]: search spaces, trials, studies, changes and events (pure data);
//! - [`samplers`]: grid, random, Sobol, TPE — what to try next;
//! - [`schedulers`]: median, ASHA, Hyperband, PBT — when a running trial stops early;
//! - [`store`]: the store contract, the in-memory and SQLite backends, the conformance suite;
//! - [`runtime`]: [`Study`] with ask/tell and `optimize`, budgets, the event bus.
//!
//! # Tune a closure on 4 threads
//!
//! ```
//! use hyperion::{Budget, FloatDistribution, OptimizeConfig, SamplerConfig, SearchSpace, Study, TrialError};
//!
//! let space = SearchSpace::builder()
//!     .param("x", FloatDistribution::new(-10.0, 10.0))
//!     .param("y", FloatDistribution::new(-10.0, 10.0))
//!     .build()?;
//! let study = Study::builder("quadratic")
//!     .minimize("loss")
//!     .space(space)
//!     .sampler(SamplerConfig::Sobol)
//!     .seed(42)
//!     .open()?;
//! let config = OptimizeConfig::new(Budget::trials(200)).threads(4);
//! let summary = study.optimize(&config, |trial| {
//!     let x = trial.params()["x"].as_f64().unwrap_or_default();
//!     let y = trial.params()["y"].as_f64().unwrap_or_default();
//!     // Define-by-run parameters work too, as in Optuna.
//!     let scale = trial.suggest_float_log("scale", 0.1, 10.0)?;
//!     Ok::<_, TrialError>(scale * ((x - 2.0).powi(2) + (y + 1.0).powi(2)))
//! })?;
//! let best = summary.best.expect("200 trials completed");
//! assert_eq!(study.trials()?.len(), 200);
//! assert!(best.value().unwrap() < 5.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Stop hopeless trials early
//!
//! Report an intermediate value at each step; the study's scheduler decides, and
//! `check_pruned()?` ends a stopped trial as pruned (every decision is in the decision log):
//!
//! ```
//! use hyperion::schedulers::AshaConfig;
//! use hyperion::{Budget, FloatDistribution, OptimizeConfig, SchedulerConfig, SearchSpace, Study, TrialState};
//!
//! let space = SearchSpace::builder().param("lr", FloatDistribution::new(1e-4, 1.0).log()).build()?;
//! let study = Study::builder("curves")
//!     .minimize("loss")
//!     .space(space)
//!     .early_stopping(SchedulerConfig::Asha(AshaConfig { max_resource: Some(27), ..Default::default() }))
//!     .open()?;
//! study.optimize(&OptimizeConfig::new(Budget::trials(30)), |trial| {
//!     let lr = trial.params()["lr"].as_f64().unwrap_or_default();
//!     let mut loss = f64::NAN;
//!     for epoch in 1..=27 {
//!         loss = (lr.log10() + 2.0).powi(2) + 1.0 / epoch as f64; // stands in for training
//!         trial.report(epoch, loss)?;
//!         trial.check_pruned()?;
//!     }
//!     Ok(loss)
//! })?;
//! let pruned = study.trials()?.iter().filter(|t| matches!(t.state, TrialState::Pruned { .. })).count();
//! assert!(pruned > 10, "most trials stop at a rung");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Ask and tell
//!
//! When something else runs the trials (another program, a cluster), ask for params and tell
//! the result:
//!
//! ```
//! use hyperion::{IntDistribution, Outcome, SearchSpace, Study};
//!
//! let space = SearchSpace::builder().param("layers", IntDistribution::new(1, 8)).build()?;
//! let study = Study::builder("net").maximize("accuracy").space(space).open()?;
//! for _ in 0..10 {
//!     let trial = study.ask()?;
//!     let layers = trial.params()["layers"].as_i64().unwrap();
//!     let accuracy = 1.0 - (layers as f64 - 5.0).abs() / 10.0; // stands in for training
//!     study.tell(trial.number(), Outcome::Completed(vec![accuracy]))?;
//! }
//! println!("best: {:?}", study.best_trial()?.unwrap().params);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use hyperion_core as core;
pub use hyperion_runtime as runtime;
pub use hyperion_samplers as samplers;
pub use hyperion_schedulers as schedulers;
pub use hyperion_store as store;

pub use hyperion_core::{
    CategoricalDistribution, Condition, Direction, Distribution, Event, EventKind,
    FloatDistribution, IntDistribution, Objective, ParamValue, Params, SearchSpace, StopReason,
    Trial, TrialState,
};
pub use hyperion_runtime::{
    ActiveTrial, Budget, Dispatcher, Error, LocalDispatcher, OptimizeConfig, Outcome,
    ProcessConfig, Recovery, RunControl, RunOptions, Study, StudyBuilder, StudySettings, Summary,
    TrialError, Verdict,
};
pub use hyperion_samplers::{Sampler, SamplerConfig};
pub use hyperion_schedulers::{Scheduler, SchedulerConfig};
pub use hyperion_store::{MemoryStore, SqliteStore, Store};

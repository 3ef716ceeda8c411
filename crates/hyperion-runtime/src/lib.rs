//! Hyperion's runtime: drives studies in this process.
//!
//! [`Study`] ties a [`Store`](hyperion_store::Store) (the truth), a
//! [`Sampler`](hyperion_samplers::Sampler) (what to try) and a
//! [`Scheduler`](hyperion_schedulers::Scheduler) (when a trial stops early) together. Use it through ask/tell ([`Study::ask`], [`Study::tell`]) when something else runs
//! the trials, or through [`Study::optimize`] to run a Rust closure on threads under a
//! [`Budget`]. Everything it decides comes from the store, so many threads (and, with a shared
//! store, many processes) can drive one study. Subscribers hear [`Event`](hyperion_core::Event)s
//! through the [`EventBus`].
//!
//! The core is synchronous: threads, a mutex per study, channels for events.

mod bus;
mod error;
mod optimize;
mod process;
mod study;

pub use bus::EventBus;
pub use error::Error;
pub use optimize::{Budget, IntoValues, OptimizeConfig, Recovery, Summary, TrialError};
pub use process::{DEFAULT_PREFIX, ProcessConfig, RunControl, human, substitute};
pub use study::{ActiveTrial, Outcome, Study, StudyBuilder};

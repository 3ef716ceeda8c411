//! Hyperion's runtime: drives studies in this process.
//!
//! [`Study`] ties a [`Store`](hyperion_store::Store) (the truth), a
//! [`Sampler`](hyperion_samplers::Sampler) (what to try) and a
//! [`Scheduler`](hyperion_schedulers::Scheduler) (when a trial stops early) together, with the
//! study's [`StudySettings`] recorded in the store. Use it through ask/tell ([`Study::ask`],
//! [`Study::report`], [`Study::tell`]) when something else runs the trials, through
//! [`Study::optimize`] to run a Rust closure on threads, or [`Study::run_processes`] to run
//! commands. The last two are one controller loop ([`Study::run_with`]) over a
//! [`Dispatcher`]. Everything it decides comes from the store, so many threads (and, with a
//! shared store, many processes) can drive one study. Subscribers hear
//! [`Event`](hyperion_core::Event)s through the [`EventBus`].
//!
//! The core is synchronous: threads, a mutex per study, channels for events and messages.

mod bus;
mod controller;
mod error;
mod local;
mod machine;
mod optimize;
pub mod pipeline;
pub mod protocol;
mod settings;
mod slurm;
mod study;
mod threads;

pub use bus::EventBus;
pub use controller::{Dispatcher, Exit, Message, RunControl, RunOptions, check_limits};
pub use error::Error;
pub use local::{LocalDispatcher, PipelineDispatcher, run_guarded};
pub use machine::this_host;
pub use optimize::{Budget, IntoValues, OptimizeConfig, Recovery, Summary, TrialError};
pub use pipeline::{PipelineConfig, StageConfig, TrialRef};
pub use protocol::{DEFAULT_PREFIX, MetricRegex, ProcessConfig, human, substitute};
pub use settings::{SettingsChange, StudySettings};
pub use slurm::{SlurmConfig, SlurmDispatcher, WorkerArray};
pub use study::{ActiveTrial, JointDraw, Outcome, Study, StudyBuilder, Successor, Verdict};

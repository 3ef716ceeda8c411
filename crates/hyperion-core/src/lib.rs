//! Hyperion's domain model: search spaces, trials, studies, the changes a store records and the
//! events a running study emits.
//!
//! This crate does no I/O and knows no storage, sampler or thread: it is the vocabulary the other
//! crates share. The key idea is [`StudyView`]: a study's state is the fold of its logged
//! [`Change`]s, so any process can rebuild it from the store and keep it fresh by applying only
//! the changes after its cursor.
//!
//! ```
//! use hyperion_core::{FloatDistribution, Objective, SearchSpace, StudySpec};
//!
//! let space = SearchSpace::builder().param("x", FloatDistribution::new(-5.0, 5.0)).build()?;
//! let spec = StudySpec::new("demo", vec![Objective::minimize("loss")], space);
//! spec.validate()?;
//! # Ok::<(), hyperion_core::Error>(())
//! ```

mod change;
mod distribution;
mod error;
mod event;
mod run;
mod space;
mod stage;
mod study;
mod trial;
mod value;
mod view;

pub use change::{Change, Decision, DecisionAction, Job, Launch, LoggedChange, Proposal};
pub use distribution::{CategoricalDistribution, Distribution, FloatDistribution, IntDistribution};
pub use error::Error;
pub use event::{Event, EventKind, StopReason};
pub use run::{GitState, RunManifest};
pub use space::{Condition, Param, SearchSpace, SearchSpaceBuilder};
pub use stage::{StageRun, StageStatus, lifecycle};
pub use study::{
    Direction, Objective, StudyId, StudySpec, check_name, dominates, dominates_minimizing,
};
pub use trial::{Timestamp, Trial, TrialId, TrialNumber, TrialState};
pub use value::{ParamValue, Params};
pub use view::{Counts, StopRequest, StudyView};

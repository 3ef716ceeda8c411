use std::fmt::Debug;

use hyperion_core::{StudyView, Trial};

/// Decides whether a running trial should stop early, from the study's state. The schedulers
/// (median, ASHA, Hyperband, …) implement it; [`NeverPrune`] is the default.
pub trait Pruner: Send + Sync + Debug {
    /// `Some(reason)` to stop `trial` now, `None` to let it continue.
    fn should_prune(&self, study: &StudyView, trial: &Trial) -> Option<String>;
}

/// Lets every trial run to the end.
#[derive(Clone, Copy, Debug, Default)]
pub struct NeverPrune;

impl Pruner for NeverPrune {
    fn should_prune(&self, _: &StudyView, _: &Trial) -> Option<String> {
        None
    }
}

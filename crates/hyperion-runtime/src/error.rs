use hyperion_samplers::SamplerError;
use hyperion_store::StoreError;

/// What can go wrong driving a study.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sampler(SamplerError),
    #[error(transparent)]
    Scheduler(#[from] hyperion_schedulers::SchedulerError),
    #[error(transparent)]
    Param(#[from] hyperion_core::Error),
    /// The sampler has no point left (an exhausted grid).
    #[error("the search space is exhausted: every grid point has a trial")]
    Exhausted,
    /// The study has its `max_trials` trials.
    #[error("the study's trial budget is spent: it has its {max_trials} trials")]
    BudgetSpent { max_trials: u64 },
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The operating system refused what a run needs (a thread, a pipe).
    #[error("cannot {what}: {source}")]
    System {
        what: &'static str,
        source: std::io::Error,
    },
}

impl Error {
    /// The trial was no longer running: another run declared it stale (this run's heartbeats
    /// came too late under load) and retries it. Its result is not this run's to record, and
    /// that is no reason to stop.
    pub(crate) fn settled_elsewhere(&self) -> bool {
        matches!(self, Error::Store(StoreError::NotRunning { .. }))
    }
}

impl From<SamplerError> for Error {
    fn from(e: SamplerError) -> Self {
        match e {
            SamplerError::Exhausted => Error::Exhausted,
            e => Error::Sampler(e),
        }
    }
}

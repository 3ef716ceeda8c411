//! Samplers decide what to try: given a search space, a study's history and a trial number,
//! they propose parameter values.
//!
//! A sampler is a pure function of `(seed, space, history, trial number)`: it never touches the
//! store and keeps no state that matters, so a restarted process (or another worker) suggests
//! exactly what the first one would have. Randomness comes from one portable stream per
//! (seed, trial number) ([`stream`]), which makes suggestions independent of thread scheduling
//! and identical on every machine. Position-based samplers (grid, Sobol) use the trial number as
//! their cursor: numbers are unique and never reused in a study, so a reopened study continues
//! where it stopped and concurrent workers never take the same point.
//!
//! ```
//! use hyperion_core::{FloatDistribution, Objective, SearchSpace, StudyId, StudySpec, StudyView};
//! use hyperion_samplers::{SampleContext, SamplerConfig};
//!
//! let space = SearchSpace::builder().param("x", FloatDistribution::new(-5.0, 5.0)).build()?;
//! let view = StudyView::new(StudyId(1), StudySpec::new("demo", vec![Objective::minimize("y")], space.clone()));
//! let sampler = SamplerConfig::Random.build(42)?;
//! let ctx = SampleContext { view: &view, trial_number: 0 };
//! let params = sampler.suggest(&space, &ctx)?.expect("random never runs out");
//! assert!(params["x"].as_f64().unwrap().abs() <= 5.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cmaes;
mod grid;
mod nsga2;
mod numerics;
mod random;
mod sobol;
mod tpe;
mod unit;

use std::collections::BTreeMap;
use std::fmt::Debug;

use hyperion_core::{Distribution, ParamValue, Params, Proposal, SearchSpace, StudyView};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

pub use cmaes::{CmaesConfig, CmaesSampler, Restart as CmaesRestart};
pub use grid::GridSampler;
pub use nsga2::{Nsga2Config, Nsga2Sampler};
pub use numerics::normal_cdf;
pub use random::RandomSampler;
pub use sobol::SobolSampler;
pub use tpe::{TpeConfig, TpeSampler};
pub use unit::{from_unit, to_unit};

/// What a sampler knows when it suggests.
#[derive(Clone, Copy, Debug)]
pub struct SampleContext<'a> {
    /// The study's history: trials, their params, values and states.
    pub view: &'a StudyView,
    /// The number of the trial being sampled (reserved by the store).
    pub trial_number: u64,
}

impl SampleContext<'_> {
    /// The trial's place among those that take a new place in the budget
    /// ([`StudyView::place`]): what a sampler that [`Sampler::walks_a_sequence`] walks, so
    /// that retries skip none of its points.
    pub fn place(&self) -> u64 {
        self.view
            .place(hyperion_core::TrialNumber(self.trial_number))
    }
}

/// Proposes parameters. Implementations must be deterministic in (their seed, the space, the
/// context): the same inputs give the same values on any machine.
pub trait Sampler: Send + Sync + Debug {
    /// Values for every active parameter of `space` (inactive conditional ones are absent), or
    /// `None` when the sampler has no point left to propose.
    fn suggest(
        &self,
        space: &SearchSpace,
        ctx: &SampleContext<'_>,
    ) -> Result<Option<Params>, SamplerError>;

    /// [`Sampler::suggest`], with pieces of sampler state to keep: what the sampler cannot
    /// derive from the trials (a CMA-ES mean and covariance). The store appends them with the
    /// new trial in one transaction, and the view of the study holds them from then on
    /// ([`StudyView::sampler_state`]). By default: the params alone.
    fn propose(
        &self,
        space: &SearchSpace,
        ctx: &SampleContext<'_>,
    ) -> Result<Option<Proposal>, SamplerError> {
        Ok(self.suggest(space, ctx)?.map(Proposal::from))
    }

    /// Whether [`Sampler::suggest`] can take long (a model fit over the history): the runtime
    /// then calls it on a snapshot of the study, holding no lock, and creates the trial only
    /// if no other trial was created meanwhile (otherwise it suggests again from the fresh
    /// study). A fast sampler suggests inside the store's transaction instead.
    fn fits_slowly(&self) -> bool {
        false
    }

    /// Whether a proposal depends on the trial's number or place and the space alone, never on the
    /// study's trials (random and quasi-random points): then a worker may ask for its next
    /// trial in the same write that tells the last one's result, which could not change it.
    fn ignores_results(&self) -> bool {
        false
    }

    /// Whether proposals walk a sequence by the trial's place ([`SampleContext::place`]: grid,
    /// Sobol). The runtime then proposes only from a view that holds every earlier trial, so
    /// that two trials never get one place.
    fn walks_a_sequence(&self) -> bool {
        false
    }

    /// Whether [`Sampler::suggest`] over the define-by-run parameters that every completed trial
    /// has ([`StudyView::common_params`]) beats one [`Sampler::suggest_param`] per parameter: a
    /// joint model, such as multivariate TPE. A define-by-run trial then draws them together at
    /// its first suggestion, as Optuna's relative sampling does, and fits the model once, not
    /// once per parameter.
    fn samples_jointly(&self) -> bool {
        false
    }

    /// A value for one define-by-run parameter, not in the declared space. `distribution` is
    /// valid.
    fn suggest_param(
        &self,
        name: &str,
        distribution: &Distribution,
        ctx: &SampleContext<'_>,
    ) -> Result<ParamValue, SamplerError>;
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum SamplerError {
    #[error("parameter \"{param}\": the {sampler} sampler needs it declared in the search space")]
    NotDeclared {
        param: String,
        sampler: &'static str,
    },
    #[error("grid values of parameter \"{param}\": {reason}")]
    InvalidGrid { param: String, reason: String },
    #[error("the grid has more than {limit} points with conditional parameters; give fewer values")]
    GridTooLarge { limit: usize },
    #[error("invalid sampler configuration: {0}")]
    Config(String),
    /// The sampler has no point left (an exhausted grid).
    #[error("the search space is exhausted: every grid point has a trial")]
    Exhausted,
    /// The sampler failed while suggesting (a bug in it: it panicked).
    #[error("the sampler failed: {0}")]
    Failed(String),
}

/// Which sampler to use and its settings: the serde form a study file holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub enum SamplerConfig {
    /// Every combination, in declared order with the last parameter varying fastest.
    Grid {
        /// Points per float dimension, and the most values taken from an int range (default 5).
        #[serde(default = "default_grid_points")]
        points: usize,
        /// Explicit grid values for some parameters; they override `points`.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        values: BTreeMap<String, Vec<ParamValue>>,
    },
    Random,
    /// Owen-scrambled Sobol quasi-random points.
    Sobol,
    /// The Tree-structured Parzen Estimator, with its settings.
    Tpe(TpeConfig),
    /// CMA-ES over the numeric parameters, with its settings.
    Cmaes(CmaesConfig),
    /// NSGA-II, the genetic algorithm for several objectives, with its settings.
    Nsga2(Nsga2Config),
}

fn default_grid_points() -> usize {
    5
}

impl SamplerConfig {
    pub fn grid() -> Self {
        SamplerConfig::Grid {
            points: default_grid_points(),
            values: BTreeMap::new(),
        }
    }

    /// The sampler, with `seed` as the study's seed.
    pub fn build(&self, seed: u64) -> Result<Box<dyn Sampler>, SamplerError> {
        Ok(match self {
            SamplerConfig::Grid { points, values } => {
                Box::new(GridSampler::new(*points, values.clone())?)
            }
            SamplerConfig::Random => Box::new(RandomSampler::new(seed)),
            SamplerConfig::Sobol => Box::new(SobolSampler::new(seed)),
            SamplerConfig::Tpe(config) => {
                config.validate()?;
                Box::new(TpeSampler::new(seed, config.clone()))
            }
            SamplerConfig::Cmaes(config) => {
                config.validate()?;
                Box::new(CmaesSampler::new(seed, config.clone()))
            }
            SamplerConfig::Nsga2(config) => {
                config.validate()?;
                Box::new(Nsga2Sampler::new(seed, config.clone()))
            }
        })
    }
}

/// A proposal of `params` that carries `state` under `key` when the proposal changed it (closed a
/// generation): what a sampler that keeps its state in the study returns.
pub(crate) fn proposal_with_state<S: Serialize>(
    params: Params,
    key: &str,
    state: Option<&S>,
) -> Result<Proposal, SamplerError> {
    let mut proposal = Proposal::from(params);
    if let Some(state) = state {
        let value = serde_json::to_value(state)
            .map_err(|e| SamplerError::Failed(format!("cannot write the {key} state: {e}")))?;
        proposal.state.push((key.to_owned(), value));
    }
    Ok(proposal)
}

/// The random stream for (study seed, trial number, salt): portable (Xoshiro256++ seeded by
/// SplitMix64 mixing) and independent of everything else that happens in the process.
pub fn stream(seed: u64, trial_number: u64, salt: u64) -> Xoshiro256PlusPlus {
    let key = mix(mix(seed ^ 0x6879_7065_7269_6f6e) ^ trial_number) ^ salt;
    Xoshiro256PlusPlus::seed_from_u64(mix(key))
}

/// A portable 64-bit hash of a parameter name (FNV-1a), to salt per-parameter streams.
pub fn name_salt(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

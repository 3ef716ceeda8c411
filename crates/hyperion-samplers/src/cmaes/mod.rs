//! `method: cmaes`: the covariance matrix adaptation evolution strategy over the numeric
//! parameters, in the unit box, with IPOP or BIPOP restarts.
//!
//! The distribution is sampler state ([`StudyView::sampler_state`]): written once per
//! generation, with the trial whose proposal closed the generation, so every process and a
//! reopened study resume it; nothing is derived by scanning the study. A generation is the
//! trials created since the state was written (`since` on): once `popsize` of them are
//! completed, the next proposal tells those to the distribution, writes the new state, and
//! samples from it. Each trial's draw comes from the (seed, trial number) stream, so the same
//! seed gives the same trials.
//!
//! In a define-by-run study (no declared space) it moves the numeric parameters that every
//! completed trial has: the runtime asks for those together at a trial's first suggestion
//! ([`Sampler::samples_jointly`]); any other parameter is sampled uniformly.
//!
//! What this first version leaves out, and does instead: categorical and conditional
//! parameters are sampled uniformly (CatCMA is not built); ints are rounded (no margin); a
//! trial still running when its generation closes does not count.

mod core;

use hyperion_core::{
    Direction, Distribution, ParamValue, Params, Proposal, SearchSpace, StudyView,
};
use rand::RngExt;
use serde::{Deserialize, Serialize};

use self::core::{Cma, default_popsize};
use crate::{
    RandomSampler, SampleContext, Sampler, SamplerError, from_unit, proposal_with_state, stream,
    to_unit,
};

/// The key of the distribution in the study's sampler state.
pub const STATE_KEY: &str = "cmaes";

/// CMA-ES settings (the `cmaes` section of a study file).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmaesConfig {
    /// Trials per generation; by default `4 + ⌊3 ln d⌋` for `d` numeric parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub popsize: Option<usize>,
    /// The initial step size, as a fraction of each parameter's range (default 1/6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma0: Option<f64>,
    /// What to do when the search stalls: `ipop` (default) restarts from a random point with
    /// twice the population; `bipop` alternates those with short runs of a small population
    /// and step, whichever regime has spent fewer trials; `none` keeps going.
    #[serde(default)]
    pub restart: Restart,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Restart {
    #[default]
    Ipop,
    Bipop,
    None,
}

impl CmaesConfig {
    pub fn validate(&self) -> Result<(), SamplerError> {
        if let Some(p) = self.popsize
            && p < 2
        {
            return Err(SamplerError::Config(format!(
                "cmaes popsize is {p}; it must be at least 2"
            )));
        }
        if let Some(s) = self.sigma0
            && !(s > 0.0 && s <= 1.0)
        {
            return Err(SamplerError::Config(format!(
                "cmaes sigma0 is {s}; it must be in (0, 1]"
            )));
        }
        Ok(())
    }
}

/// The stored state: the distribution, where its generation began, and the restarts so far.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct State {
    /// The numeric parameters, in order: a state for another space is not resumed.
    dims: Vec<String>,
    since: u64,
    restarts: u32,
    cma: Cma,
    /// BIPOP's books: trials told in each regime, and the restarts of the large one (its
    /// population is the default's times 2 to that power).
    #[serde(default)]
    bipop: Bipop,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct Bipop {
    large_trials: u64,
    small_trials: u64,
    large_restarts: u32,
    /// Whether the current run is of the small regime.
    small: bool,
}

#[derive(Clone, Debug)]
pub struct CmaesSampler {
    seed: u64,
    config: CmaesConfig,
}

/// Salts of the streams besides the draw's own.
const RESTART_SALT: u64 = 0x636d_6165_7372_7374;
const OTHERS_SALT: u64 = 0x636d_6165_736f_7468;

impl CmaesSampler {
    pub fn new(seed: u64, config: CmaesConfig) -> Self {
        CmaesSampler { seed, config }
    }

    fn fresh(&self, dims: Vec<String>, since: u64) -> State {
        let d = dims.len();
        let popsize = self.config.popsize.unwrap_or_else(|| default_popsize(d));
        let sigma0 = self.config.sigma0.unwrap_or(1.0 / 6.0);
        State {
            dims,
            since,
            restarts: 0,
            cma: Cma::new(vec![0.5; d], sigma0, popsize),
            bipop: Bipop::default(),
        }
    }

    /// The state in force for this proposal, and whether this proposal changes it (closes a
    /// generation, or restarts).
    fn state(&self, space: &SearchSpace, view: &StudyView, number: u64) -> (State, bool) {
        let dims = numeric_dims(space);
        if dims.is_empty() {
            // Nothing to move (the empty declared space of a define-by-run study, proposed for
            // as each trial is created): the stored state is the joint space's, left alone.
            return (self.fresh(dims, 0), false);
        }
        let stored = view
            .sampler_state(STATE_KEY)
            .and_then(|v| serde_json::from_value::<State>(v.clone()).ok())
            .filter(|s| s.dims == dims && s.cma.dim() == dims.len());
        let mut state = stored.unwrap_or_else(|| self.fresh(dims, 0));
        let sign = match view.spec().objectives.first().map(|o| o.direction) {
            Some(Direction::Maximize) => -1.0,
            _ => 1.0,
        };
        // Members of the generation, in number order: from `since`, never the whole study.
        let from = (state.since as usize).min(view.trials().len());
        let mut members: Vec<(Vec<f64>, f64)> = view.trials()[from..]
            .iter()
            .filter_map(|t| {
                let value = t.values.as_ref()?.first().copied()?;
                let x = state
                    .dims
                    .iter()
                    .map(|name| to_unit(&space.get(name)?.distribution, t.params.get(name)?))
                    .collect::<Option<Vec<f64>>>()?;
                value.is_finite().then_some((x, sign * value))
            })
            .take(state.cma.popsize)
            .collect();
        if members.len() < state.cma.popsize {
            return (state, false);
        }
        state.cma.tell(&mut members);
        state.since = number;
        let told = state.cma.popsize as u64;
        match state.bipop.small {
            true => state.bipop.small_trials += told,
            false => state.bipop.large_trials += told,
        }
        if self.config.restart != Restart::None && state.cma.should_stop().is_some() {
            self.restart(&mut state, number);
        }
        (state, true)
    }

    /// A new run from a random point. IPOP doubles the population each time. BIPOP (Hansen
    /// 2009, as the `cmaes` library does it) runs the regime that has told fewer trials: the
    /// large one doubles the population (`λ₀ 2^k` after `k` large restarts), the small one runs
    /// `λ₀ 2^(k u²)` with step `σ₀ 10^(−2u′)`, for uniform `u`, `u′`.
    fn restart(&self, state: &mut State, number: u64) {
        let mut rng = stream(self.seed, number, RESTART_SALT);
        let d = state.dims.len();
        let mean: Vec<f64> = (0..d).map(|_| rng.random::<f64>()).collect();
        let sigma0 = self.config.sigma0.unwrap_or(1.0 / 6.0);
        let base = self.config.popsize.unwrap_or_else(|| default_popsize(d));
        let (popsize, sigma) = match self.config.restart {
            Restart::Bipop => {
                let books = &mut state.bipop;
                books.small = books.small_trials < books.large_trials;
                if books.small {
                    let u: f64 = rng.random();
                    let most = 2f64.powi(books.large_restarts.min(20) as i32);
                    let popsize = (base as f64 * most.powf(u * u)).floor() as usize;
                    (
                        popsize.max(2),
                        sigma0 * 10f64.powf(-2.0 * rng.random::<f64>()),
                    )
                } else {
                    books.large_restarts += 1;
                    (base << books.large_restarts.min(20), sigma0)
                }
            }
            _ => (state.cma.popsize * 2, state.cma.sigma0),
        };
        state.cma = Cma::new(mean, sigma, popsize);
        state.restarts += 1;
    }
}

/// The parameters CMA-ES moves: unconditional floats and ints with more than one value.
fn numeric_dims(space: &SearchSpace) -> Vec<String> {
    space
        .sampling_order()
        .filter(|p| p.condition.is_none())
        .filter(|p| match &p.distribution {
            Distribution::Float(d) => d.high > d.low,
            Distribution::Int(d) => d.count() > 1,
            _ => false,
        })
        .map(|p| p.name.clone())
        .collect()
}

impl Sampler for CmaesSampler {
    fn suggest(
        &self,
        space: &SearchSpace,
        ctx: &SampleContext<'_>,
    ) -> Result<Option<Params>, SamplerError> {
        Ok(self.propose(space, ctx)?.map(|p| p.params))
    }

    fn propose(
        &self,
        space: &SearchSpace,
        ctx: &SampleContext<'_>,
    ) -> Result<Option<Proposal>, SamplerError> {
        if ctx.view.spec().objectives.len() != 1 {
            return Err(SamplerError::Config(
                "cmaes optimizes one objective; use tpe for several".into(),
            ));
        }
        let (state, changed) = self.state(space, ctx.view, ctx.trial_number);
        let cma = &state.cma;
        let d = cma.dim();
        let mut rng = stream(self.seed, ctx.trial_number, 0);
        let eigen = cma.eigen();
        // Resampled while outside the box (10·d times, as Optuna does), then clipped.
        let mut x = Vec::new();
        for _ in 0..(10 * d).max(1) {
            let z: Vec<f64> = (0..d)
                .map(|_| crate::numerics::standard_normal(&mut rng))
                .collect();
            x = cma.point(&eigen, &z);
            if x.iter().all(|u| (0.0..=1.0).contains(u)) {
                break;
            }
        }
        let mut params = Params::new();
        for (name, u) in state.dims.iter().zip(&x) {
            if let Some(p) = space.get(name) {
                params.insert(name.clone(), from_unit(&p.distribution, u.clamp(0.0, 1.0)));
            }
        }
        let mut others = stream(self.seed, ctx.trial_number, OTHERS_SALT);
        for p in space.sampling_order() {
            if !params.contains_key(&p.name) && SearchSpace::is_active(p, &params) {
                params.insert(p.name.clone(), from_unit(&p.distribution, others.random()));
            }
        }
        let changed = changed.then_some(&state);
        Ok(Some(proposal_with_state(params, STATE_KEY, changed)?))
    }

    fn samples_jointly(&self) -> bool {
        true
    }

    fn suggest_param(
        &self,
        name: &str,
        distribution: &Distribution,
        ctx: &SampleContext<'_>,
    ) -> Result<ParamValue, SamplerError> {
        RandomSampler::new(self.seed).suggest_param(name, distribution, ctx)
    }
}

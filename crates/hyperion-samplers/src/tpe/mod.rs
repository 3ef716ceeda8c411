//! The Tree-structured Parzen Estimator (Bergstra et al. 2011; defaults and components as
//! analysed by Watanabe 2023 and as Optuna's `TPESampler` uses them).
//!
//! After `startup_trials` random trials, the completed trials are split by value into the best
//! `gamma(n)` ("below") and the rest ("above"); running trials join "above" (the constant liar,
//! so parallel workers do not all propose the same point). Each side becomes a Parzen
//! estimator — a weighted mixture of truncated Gaussians (numbers, on the log scale for log
//! parameters, widened by half a step for ints and steps) or of smoothed one-hot kernels
//! (categories), plus a prior kernel — and the candidate drawn from `l` (below) with the best
//! `log l(x) - log g(x)` is proposed.
//!
//! Multivariate mode (the default) samples the parameters that are active together jointly
//! (one kernel per trial across all of them); conditional parameters are sampled layer by layer
//! (a parameter after its parent), each layer from the trials in which all its parameters are
//! active, which is Optuna's group decomposition for tree-structured spaces.
//!
//! Cost per suggestion: O(n) to split the history (a partial sort; each parameter's values
//! are kept sorted as trials arrive, so bandwidths need no sort) and, for the densities,
//! O(candidates × kernels × dimensions) with "above" capped at `MAX_KERNELS` kernels (the
//! most recent ones, which carry the most weight, plus an even sample of the older ones with
//! their weight scaled up), so a suggestion stays cheap at 10k trials. Observations are cached
//! and extended incrementally as trials complete.

use std::sync::Mutex;

use hyperion_core::{Distribution, Param, ParamValue, Params, SearchSpace};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use crate::{RandomSampler, SampleContext, Sampler, SamplerError, from_unit, name_salt, stream};

mod dim;
mod history;
mod parzen;
mod rank;

use dim::Dim;
use history::History;
use parzen::{MAX_KERNELS, Parzen, Scratch, clip_sigma};
use rank::Split;

/// TPE's settings; `Default` gives the defaults chosen by the benchmark (`bench/run tpe`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TpeConfig {
    /// Random trials before TPE starts (default 10).
    pub startup_trials: usize,
    /// Candidates drawn from `l` per suggestion (default 24).
    pub candidates: usize,
    /// Weight of the prior kernel (default 1).
    pub prior_weight: f64,
    /// Joint kernels over the parameters active together (default true).
    pub multivariate: bool,
    /// Count running trials as bad ones (default true).
    pub constant_liar: bool,
    /// Bandwidths at least a shrinking fraction of the range (default true; see
    /// `min_bandwidth_factor`).
    pub magic_clip: bool,
    /// The outermost kernels' bandwidths also look at the distance to the domain's ends
    /// (default false).
    pub consider_endpoints: bool,
    /// Fraction of trials in "below" (capped at 25 trials, at least 1); default 0.1.
    pub gamma: f64,
    /// With `magic_clip`, bandwidths are at least `range · max(min_bandwidth_factor,
    /// (kernels + 1)^-magic_exponent)`: Watanabe (2023)'s Δ and α. Defaults 0.03 and 1.5;
    /// Optuna's clip is 0.01 and 1. Chosen by `bench/run tpe`'s problems on seeds the
    /// benchmark does not use (100–259): better on all seven, see ARCHITECTURE.md.
    pub min_bandwidth_factor: f64,
    pub magic_exponent: f64,
}

impl TpeConfig {
    /// Refuses settings TPE cannot work with, naming the setting.
    pub fn validate(&self) -> Result<(), SamplerError> {
        let bad = |m: String| Err(SamplerError::Config(format!("TPE {m}")));
        if !(self.gamma > 0.0 && self.gamma <= 1.0) {
            return bad(format!("gamma is {}; it must be in (0, 1]", self.gamma));
        }
        if self.candidates == 0 {
            return bad("candidates must be at least 1".into());
        }
        if !(self.prior_weight > 0.0 && self.prior_weight.is_finite()) {
            return bad(format!(
                "prior_weight is {}; it must be positive",
                self.prior_weight
            ));
        }
        if !(0.0..=1.0).contains(&self.min_bandwidth_factor) {
            return bad(format!(
                "min_bandwidth_factor is {}; it must be in [0, 1]",
                self.min_bandwidth_factor
            ));
        }
        if !(self.magic_exponent > 0.0 && self.magic_exponent.is_finite()) {
            return bad(format!(
                "magic_exponent is {}; it must be positive",
                self.magic_exponent
            ));
        }
        Ok(())
    }
}

impl Default for TpeConfig {
    fn default() -> Self {
        TpeConfig {
            startup_trials: 10,
            candidates: 24,
            prior_weight: 1.0,
            multivariate: true,
            constant_liar: true,
            magic_clip: true,
            consider_endpoints: false,
            gamma: 0.1,
            min_bandwidth_factor: 0.03,
            magic_exponent: 1.5,
        }
    }
}

/// The TPE sampler. See the module docs.
#[derive(Debug)]
pub struct TpeSampler {
    seed: u64,
    config: TpeConfig,
    /// Completed trials' losses and params, extended as trials complete.
    cache: Mutex<History>,
}

impl TpeSampler {
    pub fn new(seed: u64, config: TpeConfig) -> Self {
        TpeSampler {
            seed,
            config,
            cache: Mutex::new(History::default()),
        }
    }

    /// Still in the random startup phase.
    fn starting(&self, ctx: &SampleContext<'_>) -> bool {
        (ctx.view.counts().completed as usize) < self.config.startup_trials
    }

    /// Samples the parameters of one group jointly: the best of `candidates` draws from `l`.
    fn sample_group(
        &self,
        params: &[&Param],
        history: &mut History,
        split: &Split,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Vec<(String, ParamValue)> {
        let dims: Vec<Dim> = params.iter().map(|p| Dim::new(&p.distribution)).collect();
        for (p, dim) in params.iter().zip(&dims) {
            history.column(p, dim);
        }
        // The entries in which every parameter is active: all of them when no column has a
        // gap (each column's sorted values count its present ones).
        let gapless = params
            .iter()
            .all(|p| history.sorted[&p.name].len() == history.columns[&p.name].len());
        let liar_rows: Vec<Vec<f64>> = split
            .liars
            .iter()
            .filter_map(|liar| {
                params
                    .iter()
                    .zip(&dims)
                    .map(|(p, d)| {
                        liar.get(&p.name)
                            .and_then(|v| d.observe(&p.distribution, v))
                    })
                    .collect()
            })
            .collect();
        // Without gaps, "above" has every entry it names: its clip is known in advance, and
        // the masses at it come from the history.
        let clip_sigmas: Option<Vec<f64>> = gapless.then(|| {
            let kernels = (split.above.len() + liar_rows.len()).min(MAX_KERNELS) + 1;
            dims.iter()
                .map(|dim| match *dim {
                    Dim::Numeric { low, high, .. } => clip_sigma(high - low, kernels, &self.config),
                    Dim::Categorical { .. } => f64::NAN,
                })
                .collect()
        });
        if let Some(sigmas) = &clip_sigmas {
            for ((p, dim), &sigma) in params.iter().zip(&dims).zip(sigmas) {
                history.clip_masses(p, dim, sigma);
            }
        }
        let history = &*history;
        let columns: Vec<&[Option<f64>]> = params
            .iter()
            .map(|p| history.columns[&p.name].as_slice())
            .collect();
        let complete = |entries: &[usize]| -> Vec<usize> {
            if gapless {
                return entries.to_vec();
            }
            entries
                .iter()
                .copied()
                .filter(|&i| columns.iter().all(|c| c[i].is_some()))
                .collect()
        };
        // Per parameter, the entries' values in chronological order.
        let values = |entries: &[usize]| -> Vec<Vec<f64>> {
            columns
                .iter()
                .map(|c| entries.iter().map(|&i| c[i].unwrap_or_default()).collect())
                .collect()
        };
        let below_entries = complete(&split.below);
        let above_entries = complete(&split.above);
        let below = values(&below_entries);
        let mut above = values(&above_entries);
        // The running trials (constant liar) count as bad points.
        let liars = liar_rows.len();
        for row in liar_rows {
            for (column, v) in above.iter_mut().zip(row) {
                column.push(v);
            }
        }
        // "Above" in increasing order per dimension, read off the history's sorted columns,
        // with the few running trials merged in.
        let mut slot = vec![u32::MAX; history.params.len()];
        for (k, &e) in above_entries.iter().enumerate() {
            slot[e] = k as u32;
        }
        let orders: Vec<Vec<u32>> = params
            .iter()
            .enumerate()
            .map(|(j, p)| {
                let from_history = history.sorted[&p.name].iter().filter_map(|&(_, e)| {
                    let k = slot[e as usize];
                    (k != u32::MAX).then_some(k)
                });
                let mut order: Vec<u32> = from_history.collect();
                if liars > 0 {
                    let value = |k: u32| above[j][k as usize];
                    let mut extra: Vec<u32> = (above_entries.len()..above_entries.len() + liars)
                        .map(|k| k as u32)
                        .collect();
                    extra.sort_unstable_by(|&a, &b| value(a).total_cmp(&value(b)));
                    let mut merged = Vec::with_capacity(order.len() + extra.len());
                    let (mut a, mut b) =
                        (order.into_iter().peekable(), extra.into_iter().peekable());
                    while let (Some(&x), Some(&y)) = (a.peek(), b.peek()) {
                        merged.push(
                            if value(y).total_cmp(&value(x)).is_lt() {
                                b.next()
                            } else {
                                a.next()
                            }
                            .unwrap_or(x),
                        );
                    }
                    merged.extend(a);
                    merged.extend(b);
                    order = merged;
                }
                order
            })
            .collect();
        let clip = clip_sigmas.map(|sigmas| {
            let masses = params
                .iter()
                .map(|p| match history.clip.get(&p.name) {
                    Some((_, masses)) => above_entries
                        .iter()
                        .map(|&e| masses[e])
                        .chain(std::iter::repeat_n(f64::NAN, liars))
                        .collect(),
                    None => Vec::new(),
                })
                .collect();
            (sigmas, masses)
        });
        let lower = Parzen::new(&dims, below, None, None, &self.config);
        let upper = Parzen::new(&dims, above, Some(orders), clip, &self.config);
        let mut best: Option<(f64, Vec<f64>)> = None;
        let mut scratch = Scratch::default();
        for _ in 0..self.config.candidates.max(1) {
            let x = lower.sample(rng);
            let score = lower.log_pdf(&x, &mut scratch) - upper.log_pdf(&x, &mut scratch);
            if best.as_ref().is_none_or(|(s, _)| score > *s) {
                best = Some((score, x));
            }
        }
        let x = best.map(|(_, x)| x).unwrap_or_default();
        params
            .iter()
            .zip(&dims)
            .zip(&x)
            .map(|((p, d), &v)| (p.name.clone(), d.value(&p.distribution, v)))
            .collect()
    }
}

impl Sampler for TpeSampler {
    fn suggest(
        &self,
        space: &SearchSpace,
        ctx: &SampleContext<'_>,
    ) -> Result<Option<Params>, SamplerError> {
        if self.starting(ctx) {
            return RandomSampler::new(self.seed).suggest(space, ctx);
        }
        let mut rng = stream(self.seed, ctx.trial_number, 0);
        let mut history = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        history.update(ctx.view);
        let split = self.split(&history, ctx.view, ctx.trial_number);
        let mut params = Params::new();
        let order: Vec<&Param> = space.sampling_order().collect();
        let mut decided = vec![false; order.len()];
        // Layer by layer: the parameters whose parent (if any) has been decided.
        loop {
            let is_decided = |name: &str| {
                order
                    .iter()
                    .zip(&decided)
                    .any(|(p, &d)| d && p.name == name)
            };
            let layer: Vec<usize> = (0..order.len())
                .filter(|&i| !decided[i])
                .filter(|&i| {
                    order[i]
                        .condition
                        .as_ref()
                        .is_none_or(|c| is_decided(&c.parent))
                })
                .collect();
            if layer.is_empty() {
                break;
            }
            for &i in &layer {
                decided[i] = true;
            }
            let active: Vec<&Param> = layer
                .iter()
                .map(|&i| order[i])
                .filter(|p| SearchSpace::is_active(p, &params))
                .collect();
            let groups: Vec<Vec<&Param>> = if self.config.multivariate {
                vec![active]
            } else {
                active.into_iter().map(|p| vec![p]).collect()
            };
            for group in groups.into_iter().filter(|g| !g.is_empty()) {
                params.extend(self.sample_group(&group, &mut history, &split, &mut rng));
            }
        }
        Ok(Some(params))
    }

    fn samples_jointly(&self) -> bool {
        self.config.multivariate
    }

    fn suggest_param(
        &self,
        name: &str,
        distribution: &Distribution,
        ctx: &SampleContext<'_>,
    ) -> Result<ParamValue, SamplerError> {
        if self.starting(ctx) {
            return RandomSampler::new(self.seed).suggest_param(name, distribution, ctx);
        }
        let mut rng = stream(self.seed, ctx.trial_number, name_salt(name));
        let param = Param {
            name: name.to_owned(),
            distribution: distribution.clone(),
            condition: None,
        };
        let mut history = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        history.update(ctx.view);
        let split = self.split(&history, ctx.view, ctx.trial_number);
        let sampled = self.sample_group(&[&param], &mut history, &split, &mut rng);
        Ok(sampled
            .into_iter()
            .next()
            .map_or_else(|| from_unit(distribution, 0.5), |(_, v)| v))
    }
}

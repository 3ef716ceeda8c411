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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hyperion_core::{Direction, Distribution, Param, ParamValue, Params, SearchSpace, StudyView};
use rand::RngExt;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use crate::{RandomSampler, SampleContext, Sampler, SamplerError, from_unit, name_salt, stream};

/// Kernels evaluated per side at most (see the module docs).
const MAX_KERNELS: usize = 2048;

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

/// The completed trials seen so far, with each parameter's values as a column on TPE's scale.
#[derive(Debug, Default)]
struct History {
    /// How many of the view's completed trials have been read.
    seen: usize,
    /// One entry per completed trial with finite values: losses (to minimize) and params.
    losses: Vec<Vec<f64>>,
    params: Vec<Arc<Params>>,
    /// Per parameter name, its value in each entry (absent: inactive there).
    columns: HashMap<String, Vec<Option<f64>>>,
    /// Per parameter name, its values with their entries, in increasing order (kept sorted
    /// as entries arrive, so no suggestion sorts the history).
    sorted: HashMap<String, Vec<(f64, u32)>>,
    /// Per parameter name: a bandwidth, and per entry the truncated mass of a kernel at the
    /// entry's value with that bandwidth (see [`History::clip_masses`]).
    clip: HashMap<String, (f64, Vec<f64>)>,
}

impl History {
    fn update(&mut self, view: &StudyView) {
        let directions: Vec<Direction> =
            view.spec().objectives.iter().map(|o| o.direction).collect();
        for t in view.completed().skip(self.seen) {
            self.seen += 1;
            let Some(values) = &t.values else { continue };
            if values.len() != directions.len() || values.iter().any(|v| !v.is_finite()) {
                continue;
            }
            let losses = values
                .iter()
                .zip(&directions)
                .map(|(v, d)| if *d == Direction::Minimize { *v } else { -*v });
            self.losses.push(losses.collect());
            self.params.push(t.params.clone());
        }
    }

    /// Keeps, per entry of `param`'s column, the truncated mass of a kernel at its value with
    /// bandwidth `sigma`: computed once as entries arrive (again only if the clip's bandwidth
    /// changes, which it stops doing after a few trials), so that estimators take most masses
    /// from here rather than from the normal CDF.
    fn clip_masses(&mut self, param: &Param, dim: &Dim, sigma: f64) {
        let Dim::Numeric { low, high, .. } = *dim else {
            return;
        };
        let History { columns, clip, .. } = self;
        let column = &columns[&param.name];
        let (kept_sigma, masses) = clip
            .entry(param.name.clone())
            .or_insert((sigma, Vec::new()));
        if kept_sigma.to_bits() != sigma.to_bits() {
            *kept_sigma = sigma;
            masses.clear();
        }
        let (table, inv) = (cdf_table(), 1.0 / sigma);
        for value in &column[masses.len()..] {
            masses.push(value.map_or(f64::NAN, |mu| truncated_mass(table, mu, inv, low, high)));
        }
    }

    /// The column of `param`, extended to every entry.
    fn column(&mut self, param: &Param, dim: &Dim) -> &[Option<f64>] {
        let column = self.columns.entry(param.name.clone()).or_default();
        let sorted = self.sorted.entry(param.name.clone()).or_default();
        let mut arrived = Vec::new();
        for (entry, params) in self.params.iter().enumerate().skip(column.len()) {
            let value = params
                .get(&param.name)
                .and_then(|v| dim.observe(&param.distribution, v));
            if let Some(v) = value {
                arrived.push((v, entry as u32));
            }
            column.push(value);
        }
        // One or a few new trials: insert them. Many (a reopened study): sort once.
        if arrived.len() * 8 > sorted.len() {
            sorted.extend(arrived);
            sorted.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        } else {
            for (v, entry) in arrived {
                let at = sorted.partition_point(|&(w, _)| w.total_cmp(&v).is_lt());
                sorted.insert(at, (v, entry));
            }
        }
        column
    }
}

/// Which entries are "below" (the best) and "above" (the rest), each in chronological order,
/// and the running trials' params (the constant liar's bad points).
struct Split {
    below: Vec<usize>,
    above: Vec<usize>,
    liars: Vec<Arc<Params>>,
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

    fn n_below(&self, n: usize) -> usize {
        ((self.config.gamma * n as f64).ceil() as usize)
            .clamp(1, 25)
            .min(n)
    }

    fn split(&self, history: &History, view: &StudyView, trial_number: u64) -> Split {
        let n = history.losses.len();
        let mut is_below = vec![false; n];
        for i in rank(&history.losses, self.n_below(n)) {
            is_below[i] = true;
        }
        let (below, above): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| is_below[i]);
        let liars = if self.config.constant_liar {
            view.running()
                .filter(|t| t.number != trial_number)
                .map(|t| t.params.clone())
                .collect()
        } else {
            Vec::new()
        };
        Split {
            below,
            above,
            liars,
        }
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

/// Indices of the `k` best trials: by loss with one objective; with several, by Pareto front,
/// the last front cut by the sum of ranks across objectives.
#[allow(clippy::needless_range_loop)] // `d` indexes every trial's losses, not one slice.
fn rank(losses: &[Vec<f64>], k: usize) -> Vec<usize> {
    let n = losses.len();
    if k == 0 || n == 0 {
        return Vec::new();
    }
    let mut idx: Vec<usize> = (0..n).collect();
    if losses[0].len() == 1 {
        let key = |i: &usize| (losses[*i][0], *i);
        if k < n {
            idx.select_nth_unstable_by(k - 1, |a, b| {
                key(a)
                    .partial_cmp(&key(b))
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
        }
        idx.truncate(k);
        return idx;
    }
    // Several objectives: peel non-dominated fronts until k trials are taken. In
    // lexicographic order a trial's dominators all come before it, and whoever dominates it is
    // itself in the front or dominated by a member: checking the front found so far suffices,
    // O(n · front) per front rather than O(n²).
    let dominates = hyperion_core::dominates_minimizing;
    let lexicographic = |a: &usize, b: &usize| {
        let by_value = losses[*a]
            .iter()
            .zip(&losses[*b])
            .map(|(x, y)| x.total_cmp(y))
            .find(|o| o.is_ne());
        by_value.unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(b))
    };
    let mut chosen = Vec::with_capacity(k);
    let mut rest = idx;
    rest.sort_unstable_by(lexicographic);
    while chosen.len() < k && !rest.is_empty() {
        let mut front: Vec<usize> = Vec::new();
        let mut others = Vec::new();
        for &i in &rest {
            if front.iter().any(|&f| dominates(&losses[f], &losses[i])) {
                others.push(i);
            } else {
                front.push(i);
            }
        }
        if chosen.len() + front.len() > k {
            // Cut the last front by the sum of its members' ranks across objectives.
            let mut score = vec![0usize; n];
            for d in 0..losses[0].len() {
                let mut by = front.clone();
                by.sort_by(|a, b| {
                    losses[*a][d]
                        .partial_cmp(&losses[*b][d])
                        .unwrap_or(std::cmp::Ordering::Equal)
                });
                for (r, &i) in by.iter().enumerate() {
                    score[i] += r;
                }
            }
            front.sort_by_key(|&i| (score[i], i));
            front.truncate(k - chosen.len());
        }
        chosen.extend(front);
        rest = others;
    }
    chosen
}

#[cfg(test)]
#[test]
fn fronts_peeled_by_sweep_match_brute_force() {
    use rand::SeedableRng;
    let dominates = hyperion_core::dominates_minimizing;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    for objectives in [2, 3] {
        // Coarse values, so that ties and duplicates occur.
        let losses: Vec<Vec<f64>> = (0..300)
            .map(|_| {
                (0..objectives)
                    .map(|_| (rng.random::<f64>() * 20.0).floor())
                    .collect()
            })
            .collect();
        let mut front_of = vec![usize::MAX; losses.len()];
        let mut level = 0;
        while front_of.contains(&usize::MAX) {
            let open: Vec<usize> = (0..losses.len())
                .filter(|&i| front_of[i] == usize::MAX)
                .collect();
            for &i in &open {
                if !open.iter().any(|&j| dominates(&losses[j], &losses[i])) {
                    front_of[i] = level;
                }
            }
            level += 1;
        }
        for k in [1, 7, 25, 300] {
            let chosen = rank(&losses, k);
            assert_eq!(chosen.len(), k);
            let worst = chosen.iter().map(|&i| front_of[i]).max().unwrap();
            // Every trial of a better front is in, none of a worse one.
            for (i, &front) in front_of.iter().enumerate() {
                if front < worst {
                    assert!(chosen.contains(&i), "k {k}: trial {i} of front {front}");
                }
                if front > worst {
                    assert!(!chosen.contains(&i));
                }
            }
        }
    }
}

/// A parameter's domain as TPE sees it: an interval of the (log) line, or categories.
#[derive(Clone, Copy)]
enum Dim {
    /// `step`: the grid of a linear int or stepped float; a value stands for its cell.
    Numeric {
        low: f64,
        high: f64,
        step: Option<f64>,
    },
    Categorical {
        n: usize,
    },
}

impl Dim {
    fn new(distribution: &Distribution) -> Self {
        match distribution {
            Distribution::Float(d) => match (d.log, d.step) {
                (true, _) => Dim::Numeric {
                    low: d.low.ln(),
                    high: d.high.ln(),
                    step: None,
                },
                (false, Some(s)) => Dim::Numeric {
                    low: d.low - s / 2.0,
                    high: d.high + s / 2.0,
                    step: Some(s),
                },
                (false, None) => Dim::Numeric {
                    low: d.low,
                    high: d.high,
                    step: None,
                },
            },
            Distribution::Int(d) if d.log => Dim::Numeric {
                low: (d.low as f64 - 0.5).ln(),
                high: (d.high as f64 + 0.5).ln(),
                step: None,
            },
            Distribution::Int(d) => {
                let half = d.step as f64 / 2.0;
                Dim::Numeric {
                    low: d.low as f64 - half,
                    high: d.high as f64 + half,
                    step: Some(d.step as f64),
                }
            }
            Distribution::Categorical(d) => Dim::Categorical { n: d.choices.len() },
            Distribution::Constant { .. } => Dim::Categorical { n: 1 },
        }
    }

    /// A stored value on TPE's scale (a category's index for categories).
    fn observe(&self, distribution: &Distribution, value: &ParamValue) -> Option<f64> {
        match (self, distribution) {
            (Dim::Categorical { .. }, Distribution::Categorical(d)) => {
                d.index_of(value).map(|i| i as f64)
            }
            (Dim::Categorical { .. }, _) => Some(0.0),
            (Dim::Numeric { .. }, Distribution::Float(d)) if d.log => value.as_f64().map(f64::ln),
            (Dim::Numeric { .. }, Distribution::Int(d)) if d.log => value.as_f64().map(f64::ln),
            (Dim::Numeric { .. }, _) => value.as_f64(),
        }
    }

    /// TPE's value back in the parameter's domain.
    fn value(&self, distribution: &Distribution, x: f64) -> ParamValue {
        match (self, distribution) {
            (Dim::Categorical { .. }, Distribution::Categorical(d)) => {
                d.choices[(x as usize).min(d.choices.len() - 1)].clone()
            }
            (_, Distribution::Constant { value }) => value.clone(),
            (Dim::Numeric { low, high, .. }, _) => {
                // Through the unit interval, so steps, ints and clamping follow `from_unit`.
                let u = ((x - low) / (high - low)).clamp(0.0, 1.0 - f64::EPSILON);
                match distribution {
                    Distribution::Float(d) if d.log => {
                        ParamValue::Float(x.exp().clamp(d.low, d.high))
                    }
                    Distribution::Int(d) if d.log => {
                        ParamValue::Int((x.exp().round() as i64).clamp(d.low, d.high))
                    }
                    other => from_unit(other, u),
                }
            }
            (Dim::Categorical { .. }, other) => from_unit(other, 0.0),
        }
    }
}

/// Buffers for [`Parzen::log_pdf`], reused across candidates.
#[derive(Default)]
struct Scratch {
    terms: Vec<f64>,
    squares: Vec<f32>,
}

/// A weighted mixture of product kernels over a group's dimensions, one per observation plus
/// a prior kernel, laid out flat for fast evaluation.
struct Parzen {
    /// Per dimension: its bounds if numeric, its number of categories if not.
    dims: Vec<Dim>,
    weights: Vec<f64>,
    /// Per kernel: ln(weight) minus the numeric dimensions' log normalizers.
    consts: Vec<f64>,
    /// Per dimension × kernel (dimension-major, so that the density loop runs over kernels
    /// and vectorizes): the mean and 1/sigma (numeric), or the start of the category
    /// log-probabilities in `log_p` (categorical).
    mu: Vec<f64>,
    inv_sigma: Vec<f64>,
    /// The single-precision copy, when bandwidths are wide enough for it (a clip of at least
    /// 0.1% of the range): the density's hot loop runs twice as many lanes.
    single: Option<Single>,
    log_p: Vec<f64>,
}

/// A [`Parzen`] estimator's continuous dimensions in single precision, dimension-major.
struct Single {
    /// Means, measured from the dimension's low end so that no precision is lost.
    mu: Vec<f32>,
    /// `1 / (σ√2)`.
    inv: Vec<f32>,
    /// With continuous dimensions only: `-consts`, so that the whole density runs in single
    /// precision (see [`Parzen::log_pdf_single`]).
    costs: Option<Vec<f32>>,
}

impl Parzen {
    /// `columns`: per dimension, the observations' values in chronological order.
    /// Chronological weights (Optuna's default_weights): the last 25 count fully, older ones
    /// ramp up from 1/n; then at most MAX_KERNELS kernels, the oldest thinned with their
    /// weight scaled up. `orders`, when given: per dimension, the observations in increasing
    /// order of their value.
    /// `clip`, when given: per dimension, the bandwidth of the clip it was computed for, and
    /// per observation the truncated mass of a kernel at that bandwidth (NaN where unknown).
    fn new(
        dims: &[Dim],
        mut columns: Vec<Vec<f64>>,
        orders: Option<Vec<Vec<u32>>>,
        mut clip: Option<(Vec<f64>, Vec<Vec<f64>>)>,
        config: &TpeConfig,
    ) -> Self {
        let n = columns.first().map_or(0, Vec::len);
        let weight = |i: usize| {
            if n < 25 || i + 25 >= n {
                1.0
            } else {
                1.0 / n as f64 + (1.0 - 1.0 / n as f64) * i as f64 / ((n - 25).max(2) - 1) as f64
            }
        };
        let mut kept: Vec<(usize, f64)> = (0..n).map(|i| (i, weight(i))).collect();
        if n > MAX_KERNELS {
            let recent = MAX_KERNELS / 2;
            let old = n - recent;
            let stride = old as f64 / (MAX_KERNELS - recent) as f64;
            let mut thinned: Vec<(usize, f64)> = (0..MAX_KERNELS - recent)
                .map(|j| {
                    let i = ((j as f64 + 0.5) * stride) as usize;
                    (i, kept[i].1 * stride)
                })
                .collect();
            thinned.extend_from_slice(&kept[old..]);
            kept = thinned;
        }
        let m = kept.len();
        let thinned = m < n;
        if thinned {
            let cached = clip.iter_mut().flat_map(|(_, c)| c.iter_mut());
            for column in columns.iter_mut().chain(cached) {
                *column = kept.iter().map(|&(i, _)| column[i]).collect();
            }
        }
        // The orders, over the kept kernels.
        let orders: Option<Vec<Vec<u32>>> = orders.map(|orders| {
            if !thinned {
                return orders;
            }
            let mut position = vec![u32::MAX; n];
            for (k, &(i, _)) in kept.iter().enumerate() {
                position[i] = k as u32;
            }
            orders
                .into_iter()
                .map(|o| {
                    o.into_iter()
                        .map(|r| position[r as usize])
                        .filter(|&k| k != u32::MAX)
                        .collect()
                })
                .collect()
        });
        let mut weights: Vec<f64> = kept.iter().map(|&(_, w)| w).collect();
        weights.push(config.prior_weight);
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);

        let d = dims.len();
        let k = m + 1;
        let mut parzen = Parzen {
            dims: Vec::with_capacity(d),
            consts: vec![0.0; k],
            weights,
            mu: vec![0.0; k * d],
            inv_sigma: vec![0.0; k * d],
            single: None,
            log_p: Vec::new(),
        };
        let table = cdf_table();
        // The single-precision copy (see `single`), filled dimension by dimension.
        let mut single =
            (config.magic_clip && config.min_bandwidth_factor >= 1e-3).then(|| Single {
                mu: vec![0.0; k * d],
                inv: vec![0.0; k * d],
                costs: None,
            });
        // Per kernel, the product over numeric dimensions of sigma × truncated mass.
        let mut mass = vec![1.0; k];
        let mut numeric = 0;
        for ((j, dim), column) in dims.iter().enumerate().zip(columns) {
            match *dim {
                Dim::Numeric { low, high, step } => {
                    parzen.dims.push(*dim);
                    let range = high - low;
                    let mid = (low + high) / 2.0;
                    let order = orders.as_ref().map(|o| o[j].as_slice());
                    let mut sigmas =
                        neighbor_sigmas(&column, order, low, high, config.consider_endpoints);
                    sigmas.push(range);
                    let mut mus = column;
                    mus.push(mid);
                    let min_sigma = clip_sigma(range, k, config);
                    let inv_min_sigma = 1.0 / min_sigma;
                    let (mu_out, inv_out) = (
                        &mut parzen.mu[j * k..(j + 1) * k],
                        &mut parzen.inv_sigma[j * k..(j + 1) * k],
                    );
                    // The product of its sigmas (a discrete dimension's cell mass needs none)
                    // and truncated masses: one ln per kernel at the end.
                    for ((((&mu, &sigma), m), mu_out), inv_out) in mus
                        .iter()
                        .zip(&sigmas)
                        .zip(mass.iter_mut())
                        .zip(mu_out.iter_mut())
                        .zip(inv_out.iter_mut())
                    {
                        let sigma = sigma.clamp(min_sigma, range);
                        if step.is_none() {
                            *m *= sigma;
                        }
                        *mu_out = mu;
                        // Most kernels sit at the clip: one division for all of them.
                        *inv_out = if sigma == min_sigma {
                            inv_min_sigma
                        } else {
                            1.0 / sigma
                        };
                    }
                    if let (Some(single), None) = (&mut single, step) {
                        let (mu32, inv32) = (
                            &mut single.mu[j * k..(j + 1) * k],
                            &mut single.inv[j * k..(j + 1) * k],
                        );
                        for (out, &mu) in mu32.iter_mut().zip(mu_out.iter()) {
                            *out = (mu - low) as f32;
                        }
                        for (out, &inv) in inv32.iter_mut().zip(inv_out.iter()) {
                            *out = (inv * std::f64::consts::FRAC_1_SQRT_2) as f32;
                        }
                    }
                    // The mass inside the bounds. At the clip, an observation's was computed
                    // when it arrived (see `History::clip_masses`); otherwise it is computed
                    // here, in increasing order of the means when known, so that the branch in
                    // `truncated_mass` is predictable: near the low end, inside, near the high
                    // end.
                    let cached = match &clip {
                        Some((sigmas, masses)) if sigmas[j].to_bits() == min_sigma.to_bits() => {
                            masses[j].as_slice()
                        }
                        _ => &[],
                    };
                    let mut truncate = |i: usize| {
                        let known = cached.get(i).filter(|c| !c.is_nan());
                        mass[i] *= match known {
                            Some(&c) if inv_out[i] == inv_min_sigma => c,
                            _ => truncated_mass(table, mu_out[i], inv_out[i], low, high),
                        };
                    };
                    match order {
                        Some(order) if order.len() + 1 == k && cached.is_empty() => {
                            order.iter().for_each(|&i| truncate(i as usize));
                            truncate(k - 1); // the prior
                        }
                        _ => (0..k).for_each(truncate),
                    }
                    // A product drifting towards underflow or overflow moves into the log now.
                    for (c, m) in parzen.consts.iter_mut().zip(mass.iter_mut()) {
                        if !(1e-100..=1e100).contains(m) {
                            *c -= m.ln();
                            *m = 1.0;
                        }
                    }
                    numeric += usize::from(step.is_none());
                }
                Dim::Categorical { n: choices } => {
                    parzen.dims.push(*dim);
                    // Each observation's kernel: its category plus the prior spread over all.
                    let prior = config.prior_weight / k as f64;
                    for i in 0..k {
                        let start = parzen.log_p.len();
                        parzen.mu[j * k + i] = start as f64;
                        let observed = column.get(i).map(|&c| c as usize);
                        let total = if observed.is_some() {
                            1.0 + prior * choices as f64
                        } else {
                            choices as f64
                        };
                        for c in 0..choices {
                            let p = match observed {
                                Some(o) => prior + f64::from(u8::from(o == c)),
                                None => 1.0, // The prior kernel: uniform.
                            };
                            parzen.log_p.push((p / total).ln());
                        }
                    }
                }
            }
        }
        // One ln per kernel: of its weight over its sigmas and masses.
        let half_ln_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        for ((c, m), w) in parzen.consts.iter_mut().zip(&mass).zip(&parzen.weights) {
            *c += (w / m).ln() - numeric as f64 * half_ln_2pi;
        }
        let continuous = |dim: &Dim| matches!(dim, Dim::Numeric { step: None, .. });
        if let Some(single) = &mut single
            && parzen.dims.iter().all(continuous)
        {
            single.costs = Some(parzen.consts.iter().map(|&c| -c as f32).collect());
        }
        parzen.single = single;
        parzen
    }

    /// `log_pdf` in single precision, for continuous dimensions only: each kernel's cost is
    /// `-const + Σ z²/2`, the density `Σ exp(-cost)`; only the kernels within 40 nats of the
    /// cheapest leave single precision.
    fn log_pdf_single(&self, single: &Single, costs: &[f32], x: &[f64], acc: &mut Vec<f32>) -> f64 {
        let k = costs.len();
        acc.clear();
        acc.extend_from_slice(costs);
        for (j, dim) in self.dims.iter().enumerate() {
            let Dim::Numeric { low, .. } = *dim else {
                unreachable!("continuous dimensions only")
            };
            let xj = (x[j] - low) as f32;
            let (mu, inv) = (
                &single.mu[j * k..(j + 1) * k],
                &single.inv[j * k..(j + 1) * k],
            );
            for ((a, &m), &s) in acc.iter_mut().zip(mu).zip(inv) {
                let z = (xj - m) * s;
                *a += z * z;
            }
        }
        let least = acc.iter().copied().fold(f32::INFINITY, f32::min);
        let sum: f64 = acc
            .iter()
            .filter(|&&a| a - least < 40.0)
            .map(|&a| exp_nonpositive(f64::from(least) - f64::from(a)))
            .sum();
        -f64::from(least) + sum.ln()
    }

    fn sample(&self, rng: &mut Xoshiro256PlusPlus) -> Vec<f64> {
        let mut u: f64 = rng.random();
        let mut k = self.weights.len() - 1;
        for (i, w) in self.weights.iter().enumerate() {
            if u < *w {
                k = i;
                break;
            }
            u -= w;
        }
        self.dims
            .iter()
            .enumerate()
            .map(|(j, dim)| match *dim {
                Dim::Numeric { low, high, step } => {
                    let at = j * self.weights.len() + k;
                    let (mu, sigma) = (self.mu[at], 1.0 / self.inv_sigma[at]);
                    // Rejection from the Gaussian: the mean lies in [low, high], so at least
                    // ~16% of draws land inside.
                    let x = (0..64)
                        .map(|_| mu + sigma * standard_normal(rng))
                        .find(|x| (low..=high).contains(x))
                        .unwrap_or(mu.clamp(low, high));
                    match step {
                        // A grid point: the centre of the cell the draw fell in.
                        Some(s) => {
                            let first = low + s / 2.0;
                            (first + ((x - first) / s).round() * s).clamp(first, high - s / 2.0)
                        }
                        None => x,
                    }
                }
                Dim::Categorical { n: choices } => {
                    let start = self.mu[j * self.weights.len() + k] as usize;
                    let mut u: f64 = rng.random();
                    for c in 0..choices {
                        let p = self.log_p[start + c].exp();
                        if u < p {
                            return c as f64;
                        }
                        u -= p;
                    }
                    (choices - 1) as f64
                }
            })
            .collect()
    }

    /// The log density at `x`; `scratch` holds buffers reused from call to call.
    fn log_pdf(&self, x: &[f64], scratch: &mut Scratch) -> f64 {
        if let Some(
            single @ Single {
                costs: Some(costs), ..
            },
        ) = &self.single
        {
            return self.log_pdf_single(single, costs, x, &mut scratch.squares);
        }
        let k = self.weights.len();
        let terms = &mut scratch.terms;
        terms.clear();
        terms.extend_from_slice(&self.consts);
        // The continuous dimensions' squared distances, in single precision when allowed.
        let mut squares = self.single.as_ref().map(|_| {
            scratch.squares.clear();
            scratch.squares.resize(k, 0.0);
            &mut scratch.squares
        });
        for (j, dim) in self.dims.iter().enumerate() {
            let mu = &self.mu[j * k..(j + 1) * k];
            let inv = &self.inv_sigma[j * k..(j + 1) * k];
            let xj = x[j];
            match *dim {
                // The hot loop: over kernels, no branch, vectorized.
                Dim::Numeric {
                    low, step: None, ..
                } => match (&self.single, &mut squares) {
                    (Some(single), Some(squares)) => {
                        let xj = (xj - low) as f32;
                        let (mu, inv) = (
                            &single.mu[j * k..(j + 1) * k],
                            &single.inv[j * k..(j + 1) * k],
                        );
                        for ((q, &m), &s) in squares.iter_mut().zip(mu).zip(inv) {
                            let z = (xj - m) * s;
                            *q += z * z;
                        }
                    }
                    _ => {
                        for ((t, &m), &s) in terms.iter_mut().zip(mu).zip(inv) {
                            let z = (xj - m) * s;
                            *t -= 0.5 * z * z;
                        }
                    }
                },
                // A grid point's probability: the mass of its cell.
                Dim::Numeric {
                    step: Some(step), ..
                } => {
                    for ((t, &m), &s) in terms.iter_mut().zip(mu).zip(inv) {
                        let upper = normal_cdf((xj + step / 2.0 - m) * s);
                        let lower = normal_cdf((xj - step / 2.0 - m) * s);
                        *t += (upper - lower).max(1e-300).ln();
                    }
                }
                Dim::Categorical { .. } => {
                    for (t, &start) in terms.iter_mut().zip(mu) {
                        *t += self.log_p[start as usize + xj as usize];
                    }
                }
            }
        }
        if let Some(squares) = squares {
            for (t, &q) in terms.iter_mut().zip(squares.iter()) {
                *t -= f64::from(q);
            }
        }
        let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        // Terms 40 nats below the largest add less than 1e-17 of it: skip their exp.
        max + terms
            .iter()
            .filter(|&&t| t - max > -40.0)
            .map(|&t| exp_nonpositive(t - max))
            .sum::<f64>()
            .ln()
    }
}

/// The smallest bandwidth of an estimator of `kernels` kernels on a dimension of `range`.
fn clip_sigma(range: f64, kernels: usize, config: &TpeConfig) -> f64 {
    if config.magic_clip {
        let shrink = (1.0 + kernels as f64).powf(-config.magic_exponent);
        range * shrink.max(config.min_bandwidth_factor)
    } else {
        1e-12
    }
}

/// The mass of a kernel at `mu` with `1 / sigma` = `inv` inside [low, high]; 1 for a kernel
/// more than 6 sigmas from both ends (its tails outside are below 1e-9).
fn truncated_mass(table: &[(f64, f64)], mu: f64, inv: f64, low: f64, high: f64) -> f64 {
    let (hi, lo) = ((high - mu) * inv, (low - mu) * inv);
    if hi > 6.0 && lo < -6.0 {
        return 1.0;
    }
    let upper = if hi > 6.0 { 1.0 } else { cdf_from(table, hi) };
    let lower = if lo < -6.0 { 0.0 } else { cdf_from(table, lo) };
    (upper - lower).max(1e-300)
}

/// Bandwidths, per dimension: each kernel as wide as its larger gap to a neighbouring
/// observation, the domain's ends counting as neighbours (Optuna 5.0's rule, in both modes).
/// Without `endpoints`, the outermost kernels look inwards only.
fn neighbor_sigmas(
    mus: &[f64],
    order: Option<&[u32]>,
    low: f64,
    high: f64,
    endpoints: bool,
) -> Vec<f64> {
    let n = mus.len();
    if n == 0 {
        return Vec::new();
    }
    let sorted;
    let order = match order {
        Some(order) => order,
        None => {
            let mut order: Vec<u32> = (0..n as u32).collect();
            order.sort_unstable_by(|&a, &b| mus[a as usize].total_cmp(&mus[b as usize]));
            sorted = order;
            &sorted[..]
        }
    };
    let mut sigmas = vec![0.0; n];
    // One pass in increasing order: each kernel's larger gap to its neighbours.
    let value = |r: usize| mus[order[r] as usize];
    let (mut previous, mut current) = (low, value(0));
    for r in 0..n {
        let next = if r + 1 < n { value(r + 1) } else { high };
        sigmas[order[r] as usize] = (current - previous).max(next - current);
        (previous, current) = (current, next);
    }
    if !endpoints && n >= 2 {
        sigmas[order[0] as usize] = value(1) - value(0);
        sigmas[order[n - 1] as usize] = value(n - 1) - value(n - 2);
    }
    sigmas
}

fn standard_normal(rng: &mut Xoshiro256PlusPlus) -> f64 {
    // Box–Muller; portable (no platform math beyond ln, sqrt, cos).
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Φ(z), via erfc (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7).
fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// `exp(x)` for `x <= 0`, to about 1e-12 relative: the density's hot path calls it tens of
/// thousands of times per suggestion, and this form (a power of two times a polynomial on
/// [0, ln 2)) is plain arithmetic that vectorizes and gives the same bits on every machine.
fn exp_nonpositive(x: f64) -> f64 {
    if x < -700.0 {
        return 0.0;
    }
    let y = x * std::f64::consts::LOG2_E;
    // floor(y) without a libm call: truncation, one down for negative non-integers.
    let mut n = y as i64;
    if (n as f64) > y {
        n -= 1;
    }
    let f = (y - n as f64) * std::f64::consts::LN_2;
    // Taylor series of e^f to degree 12 (Horner): the remainder is below 2e-12 on [0, ln 2).
    let c = &INVERSE_FACTORIALS;
    let mut p = c[12];
    p = p * f + c[11];
    p = p * f + c[10];
    p = p * f + c[9];
    p = p * f + c[8];
    p = p * f + c[7];
    p = p * f + c[6];
    p = p * f + c[5];
    p = p * f + c[4];
    p = p * f + c[3];
    p = p * f + c[2];
    p = p * f + c[1];
    p = p * f + c[0];
    p * f64::from_bits(((n + 1023) as u64) << 52)
}

/// 1/k! for k = 0, 1, …, 12.
const INVERSE_FACTORIALS: [f64; 13] = [
    1.0,
    1.0,
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40_320.0,
    1.0 / 362_880.0,
    1.0 / 3_628_800.0,
    1.0 / 39_916_800.0,
    1.0 / 479_001_600.0,
];

#[cfg(test)]
#[test]
fn exp_nonpositive_matches_exp() {
    for i in 0..=70_000 {
        let x = -(i as f64) / 100.0;
        let (fast, exact) = (exp_nonpositive(x), x.exp());
        assert!(
            (fast - exact).abs() <= 1e-11 * exact,
            "exp({x}): {fast} vs {exact}"
        );
    }
    assert_eq!(exp_nonpositive(-800.0), 0.0);
    assert_eq!(exp_nonpositive(0.0), 1.0);
}

/// Φ(z) on [-8, 8] by cubic Hermite interpolation between points 1/128 apart (error below
/// 1e-10): kernel masses need thousands per suggestion. 0 and 1 outside.
#[cfg(test)]
fn tabulated_cdf(z: f64) -> f64 {
    if z <= -8.0 {
        return 0.0;
    }
    if z >= 8.0 {
        return 1.0;
    }
    cdf_from(cdf_table(), z)
}

const CDF_STEPS: f64 = 128.0;

/// Φ, and its derivative times the step, at -8, -8 + 1/128, …, 8.
fn cdf_table() -> &'static [(f64, f64)] {
    static TABLE: std::sync::OnceLock<Vec<(f64, f64)>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=16 * CDF_STEPS as usize)
            .map(|i| {
                let z = i as f64 / CDF_STEPS - 8.0;
                let density = exp_nonpositive(-0.5 * z * z) / (2.0 * std::f64::consts::PI).sqrt();
                (normal_cdf(z), density / CDF_STEPS)
            })
            .collect()
    })
}

/// Φ(z) for z in (-8, 8), from the table.
#[inline]
fn cdf_from(table: &[(f64, f64)], z: f64) -> f64 {
    let t = (z + 8.0) * CDF_STEPS;
    let i = (t as usize).min(table.len() - 2);
    let u = t - i as f64;
    let ((p0, m0), (p1, m1)) = (table[i], table[i + 1]);
    let (u2, u3) = (u * u, u * u * u);
    (2.0 * u3 - 3.0 * u2 + 1.0) * p0
        + (u3 - 2.0 * u2 + u) * m0
        + (-2.0 * u3 + 3.0 * u2) * p1
        + (u3 - u2) * m1
}

#[cfg(test)]
#[test]
fn tabulated_cdf_matches_the_formula() {
    for i in -9_000..=9_000 {
        let z = i as f64 / 1000.0 + 0.000_37;
        let (fast, exact) = (tabulated_cdf(z), normal_cdf(z));
        let exact = if z <= -8.0 {
            0.0
        } else if z >= 8.0 {
            1.0
        } else {
            exact
        };
        // The formula itself is good to about 1.2e-7.
        assert!((fast - exact).abs() < 2e-7, "Φ({z}): {fast} vs {exact}");
    }
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    // Beyond 27, exp(-z²) underflows (and glibc's slow path runs): the tail is 0.
    if z > 27.0 {
        return if x >= 0.0 { 0.0 } else { 2.0 };
    }
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.26551223
        + t * (1.00002368
            + t * (0.37409196
                + t * (0.09678418
                    + t * (-0.18628806
                        + t * (0.27886807
                            + t * (-1.13520398
                                + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let r = t * exp_nonpositive(poly);
    if x >= 0.0 { r } else { 2.0 - r }
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

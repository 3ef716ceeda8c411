//! The Parzen estimators: kernel construction (chronological weights, thinning to
//! `MAX_KERNELS`), bandwidths and their clip, truncation masses, sampling, and the log-density
//! loops (in single precision when the bandwidths allow).

use rand::RngExt;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::TpeConfig;
use super::dim::Dim;
use crate::numerics::{cdf_from, cdf_table, exp_nonpositive, normal_cdf, standard_normal};

/// Kernels evaluated per side at most (see the `tpe` module docs).
pub(super) const MAX_KERNELS: usize = 2048;

/// Buffers for [`Parzen::log_pdf`], reused across candidates.
#[derive(Default)]
pub(super) struct Scratch {
    terms: Vec<f64>,
    squares: Vec<f32>,
}

/// A weighted mixture of product kernels over a group's dimensions, one per observation plus
/// a prior kernel, laid out flat for fast evaluation.
pub(super) struct Parzen {
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
    pub(super) fn new(
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
            // A categorical's clip has no masses: nothing to thin there.
            let cached = clip
                .iter_mut()
                .flat_map(|(_, c)| c.iter_mut())
                .filter(|c| !c.is_empty());
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

    pub(super) fn sample(&self, rng: &mut Xoshiro256PlusPlus) -> Vec<f64> {
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
    pub(super) fn log_pdf(&self, x: &[f64], scratch: &mut Scratch) -> f64 {
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
pub(super) fn clip_sigma(range: f64, kernels: usize, config: &TpeConfig) -> f64 {
    if config.magic_clip {
        let shrink = (1.0 + kernels as f64).powf(-config.magic_exponent);
        range * shrink.max(config.min_bandwidth_factor)
    } else {
        1e-12
    }
}

/// The mass of a kernel at `mu` with `1 / sigma` = `inv` inside [low, high]; 1 for a kernel
/// more than 6 sigmas from both ends (its tails outside are below 1e-9).
pub(super) fn truncated_mass(table: &[(f64, f64)], mu: f64, inv: f64, low: f64, high: f64) -> f64 {
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

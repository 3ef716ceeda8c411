//! The CMA-ES update, as `cmaes.CMA` (CyberAgentAILab/cmaes) and Hansen's tutorial (2016) give
//! it: weighted recombination with negative weights (active CMA), cumulative step-size
//! adaptation, rank-one and rank-μ covariance updates with the `h_σ` stall, and the usual
//! termination tests. Everything lives in the unit box `[0, 1]^n`; the distribution is plain
//! data ([`Cma`]) so a study can store it once per generation and any process can resume it.

use serde::{Deserialize, Serialize};

const EPS: f64 = 1e-8;
const SIGMA_MAX: f64 = 1e32;

/// The search distribution and its evolution paths.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cma {
    pub mean: Vec<f64>,
    pub sigma: f64,
    /// The covariance matrix, row-major, `n × n`.
    pub c: Vec<f64>,
    pub p_sigma: Vec<f64>,
    pub pc: Vec<f64>,
    pub popsize: usize,
    /// Generations told so far.
    pub generation: u64,
    /// The best value of each of the last generations, for the flat-fitness test.
    pub best_history: Vec<f64>,
    pub sigma0: f64,
}

/// The constants derived from the dimension and the population size.
struct Rates {
    mu: usize,
    weights: Vec<f64>,
    mu_eff: f64,
    c1: f64,
    cmu: f64,
    c_sigma: f64,
    d_sigma: f64,
    cc: f64,
    chi_n: f64,
}

impl Rates {
    fn new(n: usize, popsize: usize) -> Self {
        let nf = n as f64;
        let mu = popsize / 2;
        let prime: Vec<f64> = (0..popsize)
            .map(|i| ((popsize as f64 + 1.0) / 2.0).ln() - (i as f64 + 1.0).ln())
            .collect();
        let effective = |w: &mut dyn Iterator<Item = f64>| {
            let (sum, squares) = w.fold((0.0, 0.0), |(s, q), x| (s + x, q + x * x));
            sum * sum / squares
        };
        let mu_eff = effective(&mut prime[..mu].iter().copied());
        let mu_eff_minus = effective(&mut prime[mu..].iter().copied());
        let alpha_cov = 2.0;
        let c1 = alpha_cov / ((nf + 1.3).powi(2) + mu_eff);
        let cmu = (1.0 - c1 - 1e-8).min(
            alpha_cov * (mu_eff - 2.0 + 1.0 / mu_eff)
                / ((nf + 2.0).powi(2) + alpha_cov * mu_eff / 2.0),
        );
        let min_alpha = (1.0 + c1 / cmu)
            .min(1.0 + 2.0 * mu_eff_minus / (mu_eff + 2.0))
            .min((1.0 - c1 - cmu) / (nf * cmu));
        let positive: f64 = prime.iter().filter(|w| **w > 0.0).sum();
        let negative: f64 = prime.iter().filter(|w| **w < 0.0).sum::<f64>().abs();
        let weights = prime
            .iter()
            .map(|&w| {
                if w >= 0.0 {
                    w / positive
                } else {
                    min_alpha * w / negative
                }
            })
            .collect();
        let c_sigma = (mu_eff + 2.0) / (nf + mu_eff + 5.0);
        Rates {
            mu,
            weights,
            mu_eff,
            c1,
            cmu,
            c_sigma,
            d_sigma: 1.0 + 2.0 * (((mu_eff - 1.0) / (nf + 1.0)).sqrt() - 1.0).max(0.0) + c_sigma,
            cc: (4.0 + mu_eff / nf) / (nf + 4.0 + 2.0 * mu_eff / nf),
            chi_n: nf.sqrt() * (1.0 - 1.0 / (4.0 * nf) + 1.0 / (21.0 * nf * nf)),
        }
    }
}

/// `C = B diag(D²) Bᵀ`, the square roots of the eigenvalues clamped above zero.
#[derive(Clone, Debug)]
pub struct Eigen {
    /// Eigenvectors as columns, row-major `n × n`.
    pub b: Vec<f64>,
    pub d: Vec<f64>,
}

/// The default population size for `n` dimensions: `4 + ⌊3 ln n⌋`.
pub fn default_popsize(n: usize) -> usize {
    4 + (3.0 * (n.max(1) as f64).ln()).floor() as usize
}

impl Cma {
    /// A distribution centred at `mean` with step size `sigma` and the identity covariance.
    pub fn new(mean: Vec<f64>, sigma: f64, popsize: usize) -> Self {
        let n = mean.len();
        let mut c = vec![0.0; n * n];
        for i in 0..n {
            c[i * n + i] = 1.0;
        }
        Cma {
            mean,
            sigma,
            c,
            p_sigma: vec![0.0; n],
            pc: vec![0.0; n],
            popsize: popsize.max(2),
            generation: 0,
            best_history: Vec::new(),
            sigma0: sigma,
        }
    }

    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    pub fn eigen(&self) -> Eigen {
        let n = self.dim();
        let (values, b) = symmetric_eigen(&self.c, n);
        Eigen {
            b,
            d: values.into_iter().map(|v| v.max(EPS).sqrt()).collect(),
        }
    }

    /// The point for the standard normal draw `z`: `mean + σ B (D ∘ z)`.
    pub fn point(&self, eigen: &Eigen, z: &[f64]) -> Vec<f64> {
        let n = self.dim();
        (0..n)
            .map(|i| {
                let y: f64 = (0..n).map(|j| eigen.b[i * n + j] * eigen.d[j] * z[j]).sum();
                self.mean[i] + self.sigma * y
            })
            .collect()
    }

    /// One generation: `solutions` are `(x, value)` pairs (smaller is better), at least
    /// `popsize` of them; the best `popsize` are used.
    pub fn tell(&mut self, solutions: &mut [(Vec<f64>, f64)]) {
        let n = self.dim();
        solutions.sort_by(|a, b| a.1.total_cmp(&b.1));
        let solutions = &solutions[..self.popsize.min(solutions.len())];
        let rates = Rates::new(n, solutions.len());
        let eigen = self.eigen();
        self.generation += 1;
        let g = self.generation as f64;

        let y: Vec<Vec<f64>> = solutions
            .iter()
            .map(|(x, _)| (0..n).map(|i| (x[i] - self.mean[i]) / self.sigma).collect())
            .collect();
        let mut y_w = vec![0.0; n];
        for (k, yk) in y.iter().take(rates.mu).enumerate() {
            for i in 0..n {
                y_w[i] += rates.weights[k] * yk[i];
            }
        }
        for (m, y) in self.mean.iter_mut().zip(&y_w) {
            *m += self.sigma * y;
        }

        // C^{-1/2} v = B diag(1/D) Bᵀ v
        let inv_sqrt = |v: &[f64]| -> Vec<f64> {
            let t: Vec<f64> = (0..n)
                .map(|j| (0..n).map(|i| eigen.b[i * n + j] * v[i]).sum::<f64>() / eigen.d[j])
                .collect();
            (0..n)
                .map(|i| (0..n).map(|j| eigen.b[i * n + j] * t[j]).sum())
                .collect()
        };
        let whitened = inv_sqrt(&y_w);
        let ps_rate = (rates.c_sigma * (2.0 - rates.c_sigma) * rates.mu_eff).sqrt();
        for (p, w) in self.p_sigma.iter_mut().zip(&whitened) {
            *p = (1.0 - rates.c_sigma) * *p + ps_rate * w;
        }
        let norm_ps = norm(&self.p_sigma);
        self.sigma *= ((rates.c_sigma / rates.d_sigma) * (norm_ps / rates.chi_n - 1.0)).exp();
        self.sigma = self.sigma.min(SIGMA_MAX);

        let left = norm_ps / (1.0 - (1.0 - rates.c_sigma).powf(2.0 * (g + 1.0))).sqrt();
        let right = (1.4 + 2.0 / (n as f64 + 1.0)) * rates.chi_n;
        let h_sigma = if left < right { 1.0 } else { 0.0 };
        let pc_rate = (rates.cc * (2.0 - rates.cc) * rates.mu_eff).sqrt();
        for (p, y) in self.pc.iter_mut().zip(&y_w) {
            *p = (1.0 - rates.cc) * *p + h_sigma * pc_rate * y;
        }

        // Negative weights are rescaled by n / ‖C^{-1/2} y‖² (active CMA).
        let w_io: Vec<f64> = y
            .iter()
            .zip(&rates.weights)
            .map(|(yk, &w)| {
                if w >= 0.0 {
                    w
                } else {
                    w * n as f64 / (norm(&inv_sqrt(yk)).powi(2) + EPS)
                }
            })
            .collect();
        let delta_h_sigma = (1.0 - h_sigma) * rates.cc * (2.0 - rates.cc);
        let weight_sum: f64 = rates.weights.iter().sum();
        let keep = 1.0 + rates.c1 * delta_h_sigma - rates.c1 - rates.cmu * weight_sum;
        for i in 0..n {
            for j in 0..n {
                let rank_mu: f64 = y.iter().zip(&w_io).map(|(yk, w)| w * yk[i] * yk[j]).sum();
                let cij = &mut self.c[i * n + j];
                *cij = keep * *cij + rates.c1 * self.pc[i] * self.pc[j] + rates.cmu * rank_mu;
            }
        }
        // Kept symmetric against rounding.
        for i in 0..n {
            for j in 0..i {
                let mean = (self.c[i * n + j] + self.c[j * n + i]) / 2.0;
                self.c[i * n + j] = mean;
                self.c[j * n + i] = mean;
            }
        }

        self.best_history.push(solutions[0].1);
        let keep = self.history_length();
        if self.best_history.len() > keep {
            self.best_history.drain(..self.best_history.len() - keep);
        }
    }

    fn history_length(&self) -> usize {
        10 + (30 * self.dim()).div_ceil(self.popsize)
    }

    /// Why the distribution cannot make progress any more, if it cannot: the termination tests
    /// of `cmaes.CMA.should_stop`.
    pub fn should_stop(&self) -> Option<&'static str> {
        let n = self.dim();
        let eigen = self.eigen();
        let full = self.best_history.len() >= self.history_length();
        if full {
            let (lo, hi) = self
                .best_history
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                });
            if hi - lo < 1e-12 {
                return Some("the best values stopped changing");
            }
        }
        let tolx = 1e-12 * self.sigma0;
        let tiny = (0..n).all(|i| {
            self.sigma * self.c[i * n + i].sqrt() < tolx && self.sigma * self.pc[i].abs() < tolx
        });
        if tiny {
            return Some("the step size vanished");
        }
        let (dmin, dmax) = eigen
            .d
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), &d| {
                (lo.min(d), hi.max(d))
            });
        if self.sigma * dmax > 1e4 {
            return Some("the step size diverged");
        }
        if (dmax / dmin).powi(2) > 1e14 {
            return Some("the covariance became ill-conditioned");
        }
        // No effect: a step of 0.1 σ along the main axis, or along a coordinate, changes nothing.
        let axis = (self.generation as usize) % n.max(1);
        let moved = (0..n).all(|i| {
            let step = 0.1 * self.sigma * eigen.d[axis] * eigen.b[i * n + axis];
            self.mean[i] == self.mean[i] + step
        });
        let coordinate = (0..n)
            .any(|i| self.mean[i] == self.mean[i] + 0.2 * self.sigma * self.c[i * n + i].sqrt());
        if moved || coordinate {
            return Some("steps no longer move the mean");
        }
        None
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// The eigenvalues and eigenvectors (as columns, row-major) of the symmetric `n × n` matrix
/// `a`, by cyclic Jacobi rotations: simple, accurate to rounding, and fast enough at the sizes
/// CMA-ES runs at (one decomposition per suggestion, n ≤ a few dozen).
pub fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        let scale: f64 = (0..n).map(|i| a[i * n + i] * a[i * n + i]).sum::<f64>();
        if off <= 1e-30 * scale.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    use crate::numerics::standard_normal;

    #[test]
    fn jacobi_recovers_a_known_decomposition() {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3.
        let (mut values, vectors) = symmetric_eigen(&[2.0, 1.0, 1.0, 2.0], 2);
        values.sort_by(f64::total_cmp);
        assert!((values[0] - 1.0).abs() < 1e-12 && (values[1] - 3.0).abs() < 1e-12);
        // Columns are orthonormal.
        let dot = vectors[0] * vectors[1] + vectors[2] * vectors[3];
        assert!(dot.abs() < 1e-12);
    }

    #[test]
    fn jacobi_reassembles_a_random_symmetric_matrix() {
        let n = 6;
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let x = ((i * 7 + j * 13) % 11) as f64 / 3.0 - 1.5;
                a[i * n + j] = x;
                a[j * n + i] = x;
            }
        }
        let (values, v) = symmetric_eigen(&a, n);
        for i in 0..n {
            for j in 0..n {
                let back: f64 = (0..n)
                    .map(|k| v[i * n + k] * values[k] * v[j * n + k])
                    .sum();
                assert!((back - a[i * n + j]).abs() < 1e-10, "({i}, {j})");
            }
        }
    }

    /// The update on its own, without the sampler: it must find the minimum of a shifted,
    /// badly scaled ellipsoid, which plain random search does not come near.
    #[test]
    fn the_update_minimizes_an_ill_conditioned_ellipsoid() {
        let n = 6;
        let f = |x: &[f64]| -> f64 {
            x.iter()
                .enumerate()
                .map(|(i, v)| 10f64.powf(3.0 * i as f64 / (n - 1) as f64) * (v - 0.3).powi(2))
                .sum()
        };
        let mut cma = Cma::new(vec![0.5; n], 1.0 / 6.0, default_popsize(n));
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
        let mut best = f64::INFINITY;
        for _ in 0..300 {
            let eigen = cma.eigen();
            let mut solutions: Vec<(Vec<f64>, f64)> = (0..cma.popsize)
                .map(|_| {
                    let z: Vec<f64> = (0..n).map(|_| standard_normal(&mut rng)).collect();
                    let x = cma.point(&eigen, &z);
                    let v = f(&x);
                    (x, v)
                })
                .collect();
            best = solutions.iter().map(|s| s.1).fold(best, f64::min);
            cma.tell(&mut solutions);
        }
        assert!(best < 1e-10, "best {best}");
        assert!(
            cma.mean.iter().all(|m| (m - 0.3).abs() < 1e-4),
            "{:?}",
            cma.mean
        );
    }
}

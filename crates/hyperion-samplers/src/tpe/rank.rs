//! Splitting the completed trials into "below" (the best `gamma(n)`) and "above" (the
//! rest, plus the running trials as the constant liar's bad points): a partial sort with one
//! objective, Pareto fronts peeled with several.

use std::sync::Arc;

use hyperion_core::{Params, StudyView};

use super::TpeSampler;
use super::history::History;

/// Which entries are "below" (the best) and "above" (the rest), each in chronological order,
/// and the running trials' params (the constant liar's bad points).
pub(super) struct Split {
    pub(super) below: Vec<usize>,
    pub(super) above: Vec<usize>,
    pub(super) liars: Vec<Arc<Params>>,
}

impl TpeSampler {
    fn n_below(&self, n: usize) -> usize {
        ((self.config.gamma * n as f64).ceil() as usize)
            .clamp(1, 25)
            .min(n)
    }

    pub(super) fn split(&self, history: &History, view: &StudyView, trial_number: u64) -> Split {
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
    use rand::{RngExt, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;
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

//! `method: nsga2`: NSGA-II (Deb et al. 2002), the genetic algorithm for several objectives (one
//! works too).
//!
//! A generation is `population_size` trials. Each child comes from two parents, each the better
//! of two random members of the parent population (lower front, then larger crowding distance):
//! numbers by simulated binary crossover (SBX) and polynomial mutation in the unit box,
//! categoricals by uniform crossover and, with the mutation probability, a uniform draw. The
//! first generation is random.
//!
//! As with CMA-ES, the parent population is sampler state ([`StudyView::sampler_state`]),
//! written by the proposal that closes a generation: the trials created since the state's `since`
//! are the generation, and once `population_size` of them are completed, the next proposal
//! sorts those and the parents into fronts (the fast non-dominated sort), keeps the best
//! `population_size` by front and then crowding distance, writes them as the new parents and
//! breeds from them. Nothing scans the study; every process and a reopened study resume the same
//! population; each child comes from the (seed, trial number) stream.
//!
//! Left out so far: constrained domination (constraints are not built), NSGA-III.

use hyperion_core::{Direction, Distribution, Params, Proposal, SearchSpace, StudyView};
use rand::RngExt;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use crate::{
    RandomSampler, SampleContext, Sampler, SamplerError, from_unit, proposal_with_state, stream,
    to_unit,
};

/// The key of the parent population in the study's sampler state.
pub const STATE_KEY: &str = "nsga2";

/// NSGA-II settings (the `nsga2` section of a study file); the defaults are Optuna's and Deb's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Nsga2Config {
    /// Trials per generation (default 50).
    pub population_size: usize,
    /// Probability that a child is a crossover of its parents, not a copy of the first
    /// (default 0.9).
    pub crossover_prob: f64,
    /// Probability that each parameter mutates; by default 1 / the number of parameters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mutation_prob: Option<f64>,
    /// Distribution index of SBX: larger keeps children nearer their parents (default 20).
    pub eta_crossover: f64,
    /// Distribution index of polynomial mutation (default 20).
    pub eta_mutation: f64,
}

impl Default for Nsga2Config {
    fn default() -> Self {
        Nsga2Config {
            population_size: 50,
            crossover_prob: 0.9,
            mutation_prob: None,
            eta_crossover: 20.0,
            eta_mutation: 20.0,
        }
    }
}

impl Nsga2Config {
    /// Refuses settings NSGA-II cannot work with, naming the setting.
    pub fn validate(&self) -> Result<(), SamplerError> {
        let bad = |m: String| Err(SamplerError::Config(format!("nsga2 {m}")));
        let probability = |p: f64| (0.0..=1.0).contains(&p);
        if self.population_size < 2 {
            return bad(format!(
                "population_size is {}; it must be at least 2",
                self.population_size
            ));
        }
        if !probability(self.crossover_prob) {
            return bad(format!(
                "crossover_prob is {}; it must be in [0, 1]",
                self.crossover_prob
            ));
        }
        if let Some(p) = self.mutation_prob.filter(|&p| !probability(p)) {
            return bad(format!("mutation_prob is {p}; it must be in [0, 1]"));
        }
        for (name, eta) in [
            ("eta_crossover", self.eta_crossover),
            ("eta_mutation", self.eta_mutation),
        ] {
            if !(eta >= 0.0 && eta.is_finite()) {
                return bad(format!("{name} is {eta}; it must be 0 or more"));
            }
        }
        Ok(())
    }
}

/// The stored state: where the generation began, and its parents.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    since: u64,
    generation: u64,
    parents: Vec<Parent>,
}

/// A member of the parent population: its trial, front (0 the best) and crowding distance
/// (`f64::MAX` at a front's ends, as JSON has no infinity).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Parent {
    number: u64,
    front: u32,
    crowding: f64,
}

#[derive(Clone, Debug)]
pub struct Nsga2Sampler {
    seed: u64,
    config: Nsga2Config,
}

/// Salt of the stream that picks parents and breeds.
const BREED_SALT: u64 = 0x6e73_6761_3262_7264;

impl Nsga2Sampler {
    pub fn new(seed: u64, config: Nsga2Config) -> Self {
        Nsga2Sampler { seed, config }
    }

    /// The state in force for this proposal, and whether this proposal changes it (closes a
    /// generation).
    fn state(&self, view: &StudyView, number: u64) -> (State, bool) {
        let mut state: State = view
            .sampler_state(STATE_KEY)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let size = self.config.population_size;
        let from = (state.since as usize).min(view.trials().len());
        let with_losses = |n: u64| Some((n, losses(view, n)?));
        let members: Vec<(u64, Vec<f64>)> = view.trials()[from..]
            .iter()
            .filter_map(|t| with_losses(t.number.0))
            .take(size)
            .collect();
        if members.len() < size {
            return (state, false);
        }
        let pool: Vec<(u64, Vec<f64>)> = (state.parents.iter())
            .filter_map(|p| with_losses(p.number))
            .chain(members)
            .collect();
        state.parents = select(&pool, size);
        state.since = number;
        state.generation += 1;
        (state, true)
    }

    /// The better of two random parents: lower front, then larger crowding distance.
    fn tournament<'p>(&self, parents: &'p [Parent], rng: &mut Xoshiro256PlusPlus) -> &'p Parent {
        let a = &parents[rng.random_range(0..parents.len())];
        let b = &parents[rng.random_range(0..parents.len())];
        match (a.front, -a.crowding).partial_cmp(&(b.front, -b.crowding)) {
            Some(std::cmp::Ordering::Greater) => b,
            _ => a,
        }
    }

    /// A child of `first` and `second` over `space`.
    fn breed(
        &self,
        space: &SearchSpace,
        first: &Params,
        second: &Params,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Params {
        let active = space.sampling_order().count().max(1);
        let mutation = (self.config.mutation_prob).unwrap_or(1.0 / active as f64);
        let cross = rng.random::<f64>() < self.config.crossover_prob;
        let mut child = Params::new();
        for p in space.sampling_order() {
            if !SearchSpace::is_active(p, &child) {
                continue;
            }
            let unit = |params: &Params| to_unit(&p.distribution, params.get(&p.name)?);
            let u = match (&p.distribution, unit(first), unit(second)) {
                (_, None, _) | (_, _, None) => rng.random::<f64>(),
                (Distribution::Categorical(_), Some(a), Some(b)) => {
                    let u = if cross && rng.random::<bool>() { b } else { a };
                    if rng.random::<f64>() < mutation {
                        rng.random::<f64>()
                    } else {
                        u
                    }
                }
                (_, Some(a), Some(b)) => {
                    let mut u = a;
                    if cross && rng.random::<bool>() {
                        u = sbx(a, b, self.config.eta_crossover, rng);
                    }
                    if rng.random::<f64>() < mutation {
                        u = polynomial_mutation(u, self.config.eta_mutation, rng);
                    }
                    u
                }
            };
            child.insert(p.name.clone(), from_unit(&p.distribution, u));
        }
        child
    }
}

/// Trial `number`'s values as losses (maximized objectives negated), if it completed with a
/// finite value for every objective.
fn losses(view: &StudyView, number: u64) -> Option<Vec<f64>> {
    let trial = view.trials().get(number as usize)?;
    let values = trial.values.as_ref()?;
    let objectives = &view.spec().objectives;
    if values.len() != objectives.len() || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let sign = |d: Direction| if d == Direction::Maximize { -1.0 } else { 1.0 };
    Some(
        objectives
            .iter()
            .zip(values)
            .map(|(o, v)| sign(o.direction) * v)
            .collect(),
    )
}

/// The best `size` of `pool` (trial numbers and losses): whole fronts while they fit, then the
/// last front's most crowded-apart members; ties by trial number.
fn select(pool: &[(u64, Vec<f64>)], size: usize) -> Vec<Parent> {
    let mut chosen = Vec::with_capacity(size);
    for (front_index, front) in fronts(pool).into_iter().enumerate() {
        let crowding = crowding(pool, &front);
        let mut members: Vec<(usize, f64)> = front.into_iter().zip(crowding).collect();
        if chosen.len() + members.len() > size {
            members.sort_by(|a, b| b.1.total_cmp(&a.1).then(pool[a.0].0.cmp(&pool[b.0].0)));
            members.truncate(size - chosen.len());
        }
        chosen.extend(members.into_iter().map(|(i, crowding)| Parent {
            number: pool[i].0,
            front: front_index as u32,
            crowding,
        }));
        if chosen.len() == size {
            break;
        }
    }
    chosen
}

/// The fast non-dominated sort (Deb et al. 2002): indices into `pool`, front by front.
#[allow(clippy::needless_range_loop)] // `a` and `b` index pairs of the pool, not one slice.
fn fronts(pool: &[(u64, Vec<f64>)]) -> Vec<Vec<usize>> {
    let n = pool.len();
    let dominates =
        |a: usize, b: usize| hyperion_core::dominates_minimizing(&pool[a].1, &pool[b].1);
    let mut dominated_by = vec![0usize; n];
    let mut dominating: Vec<Vec<usize>> = vec![Vec::new(); n];
    for a in 0..n {
        for b in 0..n {
            if dominates(a, b) {
                dominating[a].push(b);
                dominated_by[b] += 1;
            }
        }
    }
    let mut fronts = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&i| dominated_by[i] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &a in &current {
            for &b in &dominating[a] {
                dominated_by[b] -= 1;
                if dominated_by[b] == 0 {
                    next.push(b);
                }
            }
        }
        next.sort_unstable();
        fronts.push(std::mem::replace(&mut current, next));
    }
    fronts
}

/// Each front member's crowding distance: per objective, the normalized gap between its
/// neighbours; `f64::MAX` at the ends.
fn crowding(pool: &[(u64, Vec<f64>)], front: &[usize]) -> Vec<f64> {
    let mut distance = vec![0.0; front.len()];
    let objectives = front.first().map_or(0, |&i| pool[i].1.len());
    for m in 0..objectives {
        let value = |k: usize| pool[front[k]].1[m];
        let mut order: Vec<usize> = (0..front.len()).collect();
        order.sort_by(|&a, &b| value(a).total_cmp(&value(b)));
        let (low, high) = (value(order[0]), value(order[order.len() - 1]));
        distance[order[0]] = f64::MAX;
        distance[order[order.len() - 1]] = f64::MAX;
        if high > low {
            for w in order.windows(3) {
                if distance[w[1]] < f64::MAX {
                    distance[w[1]] += (value(w[2]) - value(w[0])) / (high - low);
                }
            }
        }
    }
    distance
}

/// Simulated binary crossover of `a` and `b` in [0, 1] (Deb and Agrawal 1995, bounded as Deb's
/// NSGA-II code does): one of the two children, at random.
fn sbx(a: f64, b: f64, eta: f64, rng: &mut Xoshiro256PlusPlus) -> f64 {
    if (a - b).abs() < 1e-14 {
        return a;
    }
    let (y1, y2) = (a.min(b), a.max(b));
    let u: f64 = rng.random();
    let spread = |beta: f64| {
        let alpha = 2.0 - beta.powf(-(eta + 1.0));
        if u <= 1.0 / alpha {
            (u * alpha).powf(1.0 / (eta + 1.0))
        } else {
            (1.0 / (2.0 - u * alpha)).powf(1.0 / (eta + 1.0))
        }
    };
    let low = 0.5 * ((y1 + y2) - spread(1.0 + 2.0 * y1 / (y2 - y1)) * (y2 - y1));
    let high = 0.5 * ((y1 + y2) + spread(1.0 + 2.0 * (1.0 - y2) / (y2 - y1)) * (y2 - y1));
    let child = if rng.random::<bool>() { low } else { high };
    child.clamp(0.0, 1.0)
}

/// Polynomial mutation of `x` in [0, 1] (Deb and Goyal 1996, bounded).
fn polynomial_mutation(x: f64, eta: f64, rng: &mut Xoshiro256PlusPlus) -> f64 {
    let u: f64 = rng.random();
    let power = 1.0 / (eta + 1.0);
    let delta = if u < 0.5 {
        let v = 2.0 * u + (1.0 - 2.0 * u) * (1.0 - x).powf(eta + 1.0);
        v.powf(power) - 1.0
    } else {
        let v = 2.0 * (1.0 - u) + 2.0 * (u - 0.5) * x.powf(eta + 1.0);
        1.0 - v.powf(power)
    };
    (x + delta).clamp(0.0, 1.0)
}

impl Sampler for Nsga2Sampler {
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
        if space.is_empty() {
            // The empty declared space of a define-by-run study: the population belongs to the
            // space drawn jointly, left alone.
            return Ok(Some(Proposal::from(Params::new())));
        }
        let (state, changed) = self.state(ctx.view, ctx.trial_number);
        let params = match state.parents.as_slice() {
            [] => RandomSampler::new(self.seed)
                .suggest(space, ctx)?
                .unwrap_or_default(),
            parents => {
                let mut rng = stream(self.seed, ctx.trial_number, BREED_SALT);
                let trial = |p: &Parent| {
                    ctx.view
                        .trials()
                        .get(p.number as usize)
                        .map(|t| t.params.clone())
                        .unwrap_or_default()
                };
                let first = trial(self.tournament(parents, &mut rng));
                let second = trial(self.tournament(parents, &mut rng));
                self.breed(space, &first, &second, &mut rng)
            }
        };
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
    ) -> Result<hyperion_core::ParamValue, SamplerError> {
        RandomSampler::new(self.seed).suggest_param(name, distribution, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(points: &[[f64; 2]]) -> Vec<(u64, Vec<f64>)> {
        (points.iter().enumerate())
            .map(|(i, p)| (i as u64, p.to_vec()))
            .collect()
    }

    #[test]
    fn fronts_peel_non_dominated_layers() {
        let p = pool(&[
            [1.0, 4.0],
            [2.0, 2.0],
            [4.0, 1.0],
            [3.0, 3.0],
            [5.0, 5.0],
            [2.0, 2.0],
        ]);
        assert_eq!(fronts(&p), vec![vec![0, 1, 2, 5], vec![3], vec![4]]);
    }

    #[test]
    fn selection_keeps_whole_fronts_then_the_most_spread_out() {
        // Front 0: five points on a line; room for three: both ends and the one with the widest
        // gap around it.
        let p = pool(&[
            [0.0, 4.0],
            [1.0, 3.0],
            [1.5, 2.5],
            [3.0, 1.0],
            [4.0, 0.0],
            [9.0, 9.0],
        ]);
        let chosen: Vec<u64> = select(&p, 3).iter().map(|c| c.number).collect();
        assert_eq!(chosen, [0, 4, 3]);
        let all = select(&p, 6);
        assert_eq!(all.iter().filter(|c| c.front == 1).count(), 1);
    }

    #[test]
    fn crossover_and_mutation_stay_in_the_box() {
        let mut rng = stream(1, 0, 0);
        for _ in 0..10_000 {
            let (a, b): (f64, f64) = (rng.random(), rng.random());
            let c = sbx(a, b, 20.0, &mut rng);
            let m = polynomial_mutation(c, 20.0, &mut rng);
            assert!((0.0..=1.0).contains(&c) && (0.0..=1.0).contains(&m));
        }
    }
}

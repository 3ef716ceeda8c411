//! Successive halving: asynchronous (ASHA, Li et al. 2020) and Hyperband (Li et al. 2018).
//!
//! A trial meets rungs at growing steps (`min_resource · eta^k`). When it reaches a rung, its
//! value there is ranked among every value recorded at that rung so far (by any trial of its
//! bracket, running, stopped or completed); it goes on only if it is among the best
//! `max(1, ⌊n / eta⌋)`. Decisions never wait for other trials, so workers never idle. Hyperband
//! runs several such brackets at once, each starting at a different rung, and spreads trials
//! over them in proportion to the brackets' sizes in the paper.

use std::collections::HashMap;
use std::sync::Mutex;

use hyperion_core::{Change, StudyView, Trial, TrialNumber, dominates_minimizing};
use serde::{Deserialize, Serialize};

use crate::{
    Action, Scheduler, SchedulerError, Verdict, direction, insert_sorted, lower_is_better, num,
    oriented, point_text,
};

/// Settings of asynchronous successive halving.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AshaConfig {
    /// The first rung's step: no trial stops before it (default 1).
    #[serde(default = "one")]
    pub min_resource: u64,
    /// The most steps a trial trains; rungs lie below it. Unbounded when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_resource: Option<u64>,
    /// `eta`: rungs are this factor apart, and one trial in this many goes on (default 3).
    #[serde(default = "three")]
    pub reduction_factor: u64,
    /// Brackets, each starting one rung later than the previous (default 1; trials are spread
    /// evenly over them by their number).
    #[serde(default = "one")]
    pub brackets: u64,
}

impl Default for AshaConfig {
    fn default() -> Self {
        AshaConfig {
            min_resource: 1,
            max_resource: None,
            reduction_factor: 3,
            brackets: 1,
        }
    }
}

/// Settings of Hyperband.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HyperbandConfig {
    /// The smallest budget a bracket starts trials with (default 1).
    #[serde(default = "one")]
    pub min_resource: u64,
    /// The most steps a trial trains (required: it sets the brackets).
    pub max_resource: u64,
    /// `eta` (default 3).
    #[serde(default = "three")]
    pub reduction_factor: u64,
}

fn one() -> u64 {
    1
}
fn three() -> u64 {
    3
}

/// One Hyperband bracket, as in Table 1 of the paper: `s` halvings, `n` trials started with
/// budget `r` each, and its rungs (the steps where it halves).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bracket {
    pub s: u32,
    pub n: u64,
    pub r: u64,
    pub rungs: Vec<u64>,
}

/// Hyperband's brackets for `min`, `max` and `eta`, most aggressive first:
/// `s_max = ⌊log_eta(max / min)⌋`, and bracket `s` starts `n = ⌈(s_max + 1) / (s + 1) · eta^s⌉`
/// trials at `r = min · eta^(s_max − s)`.
pub fn hyperband_brackets(min: u64, max: u64, eta: u64) -> Vec<Bracket> {
    let mut s_max = 0u32;
    // Checked, not saturating: a saturated `min · eta^k` equals a `max` of u64::MAX forever.
    while eta
        .checked_pow(s_max + 1)
        .and_then(|p| min.checked_mul(p))
        .is_some_and(|r| r <= max)
    {
        s_max += 1;
    }
    (0..=s_max)
        .rev()
        .map(|s| {
            let r = min * eta.pow(s_max - s);
            let pow = eta.pow(s);
            // In u128: near u64::MAX, (s_max + 1) · eta^s overflows before the division.
            let n = ((s_max as u128 + 1) * pow as u128).div_ceil(s as u128 + 1);
            let n = u64::try_from(n).unwrap_or(u64::MAX);
            let rungs = (0..s).map(|i| r * eta.pow(i)).collect();
            Bracket { s, n, r, rungs }
        })
        .collect()
}

/// Asynchronous successive halving.
#[derive(Debug)]
pub struct Asha(Halving);

/// Hyperband, with asynchronous successive halving inside each bracket.
#[derive(Debug)]
pub struct Hyperband(Halving);

impl Asha {
    pub fn new(config: AshaConfig) -> Result<Self, SchedulerError> {
        check(config.min_resource, config.reduction_factor)?;
        // Bracket b starts at min_resource · eta^b: from the 64th on (eta >= 2), past any u64
        // step, none would stop a trial, and listing billions of them would not end.
        if !(1..=64).contains(&config.brackets) {
            return Err(SchedulerError::Config(format!(
                "brackets is {}; it must be from 1 to 64",
                config.brackets
            )));
        }
        let max = config.max_resource.unwrap_or(u64::MAX);
        if max < config.min_resource {
            return Err(SchedulerError::Config(format!(
                "max_resource {max} is below min_resource {}",
                config.min_resource
            )));
        }
        let eta = config.reduction_factor;
        let brackets = (0..config.brackets)
            .map(|b| {
                let mut rungs = Vec::new();
                let mut step = Some(config.min_resource);
                for _ in 0..b {
                    step = step.and_then(|s| s.checked_mul(eta));
                }
                while let Some(s) = step.filter(|&s| s < max) {
                    rungs.push(s);
                    step = s.checked_mul(eta);
                }
                rungs
            })
            .collect();
        Ok(Asha(Halving::new(
            "asha",
            eta,
            brackets,
            vec![1; config.brackets as usize],
        )))
    }
}

impl Hyperband {
    pub fn new(config: HyperbandConfig) -> Result<Self, SchedulerError> {
        check(config.min_resource, config.reduction_factor)?;
        if config.max_resource < config.min_resource {
            return Err(SchedulerError::Config(format!(
                "max_resource {} is below min_resource {}",
                config.max_resource, config.min_resource
            )));
        }
        let brackets = hyperband_brackets(
            config.min_resource,
            config.max_resource,
            config.reduction_factor,
        );
        let weights = brackets.iter().map(|b| b.n).collect();
        let rungs = brackets.into_iter().map(|b| b.rungs).collect();
        Ok(Hyperband(Halving::new(
            "hyperband",
            config.reduction_factor,
            rungs,
            weights,
        )))
    }
}

fn check(min_resource: u64, eta: u64) -> Result<(), SchedulerError> {
    if min_resource == 0 {
        return Err(SchedulerError::Config(
            "min_resource must be at least 1".into(),
        ));
    }
    if eta < 2 {
        return Err(SchedulerError::Config(format!(
            "reduction_factor is {eta}; it must be at least 2"
        )));
    }
    Ok(())
}

impl Scheduler for Asha {
    fn observe(&self, view: &StudyView, change: &Change) {
        self.0.observe(view, change);
    }
    fn decide(&self, view: &StudyView, trial: &Trial, step: u64) -> Option<Verdict> {
        self.0.decide(view, trial, step)
    }
}

impl Scheduler for Hyperband {
    fn observe(&self, view: &StudyView, change: &Change) {
        self.0.observe(view, change);
    }
    fn decide(&self, view: &StudyView, trial: &Trial, step: u64) -> Option<Verdict> {
        self.0.decide(view, trial, step)
    }
}

/// Brackets of rungs, and the values recorded at each rung.
#[derive(Debug)]
struct Halving {
    policy: &'static str,
    eta: u64,
    /// The rungs' steps, ascending, per bracket.
    brackets: Vec<Vec<u64>>,
    /// Trials dealt to brackets in proportion to these.
    weights: Vec<u64>,
    index: Mutex<Vec<Rungs>>,
}

#[derive(Debug, Default)]
struct Rungs {
    /// Per rung, the values recorded there, sorted, lower is better.
    values: Vec<Vec<f64>>,
    /// With several objectives: per rung, the points recorded there, lower is better.
    points: Vec<Vec<Vec<f64>>>,
    /// Per trial, how many rungs it has reached.
    reached: HashMap<TrialNumber, usize>,
}

impl Halving {
    fn new(policy: &'static str, eta: u64, brackets: Vec<Vec<u64>>, weights: Vec<u64>) -> Self {
        let index = brackets
            .iter()
            .map(|rungs| Rungs {
                values: vec![Vec::new(); rungs.len()],
                points: vec![Vec::new(); rungs.len()],
                reached: HashMap::new(),
            })
            .collect();
        Halving {
            policy,
            eta,
            brackets,
            weights,
            index: Mutex::new(index),
        }
    }

    /// The bracket of trial `number`: a low-discrepancy walk (golden ratio) over the brackets'
    /// weights, so that any stretch of trials is spread over brackets in proportion.
    fn bracket(&self, number: TrialNumber) -> usize {
        if self.brackets.len() == 1 {
            return 0;
        }
        let total: u64 = self.weights.iter().sum();
        let golden = 0.618_033_988_749_894_9_f64;
        let at = ((number.0 as f64 * golden).fract() * total as f64) as u64;
        let mut acc = 0;
        for (i, w) in self.weights.iter().enumerate() {
            acc += w;
            if at < acc {
                return i;
            }
        }
        self.weights.len() - 1
    }

    fn observe(&self, view: &StudyView, change: &Change) {
        let Change::MetricReported {
            number,
            step,
            value,
            ..
        } = change
        else {
            return;
        };
        let objectives = view.spec().objectives.len();
        let point = match objectives {
            1 => vec![lower_is_better(direction(view), *value)],
            k => match view
                .trial(*number)
                .and_then(|t| t.intermediate_point(*step, k))
            {
                Some(point) => oriented(view, &point),
                None => return, // several objectives, not all reported: nothing to rank
            },
        };
        let b = self.bracket(*number);
        let rungs = &self.brackets[b];
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let index = &mut index[b];
        let reached = index.reached.entry(*number).or_insert(0);
        while *reached < rungs.len() && rungs[*reached] <= *step {
            if objectives == 1 {
                insert_sorted(&mut index.values[*reached], point[0]);
            } else {
                index.points[*reached].push(point.clone());
            }
            *reached += 1;
        }
    }

    /// Whether `point` (lower is better) stops at rung `k`, and its standing there; `None`
    /// when nothing is recorded at the rung. One objective: its rank among the values there,
    /// the best `max(1, ⌊n/η⌋)` go on. Several: how many points there dominate it; it goes on
    /// unless that many do.
    fn standing(
        &self,
        view: &StudyView,
        rungs: &Rungs,
        k: usize,
        point: &[f64],
    ) -> Option<(bool, String)> {
        let keep = |n: usize| (n as u64 / self.eta).max(1) as usize;
        if point.len() > 1 {
            let points = &rungs.points[k];
            if points.is_empty() {
                return None;
            }
            let keep = keep(points.len());
            let dominating = points
                .iter()
                .filter(|q| dominates_minimizing(q, point))
                .count();
            return Some((
                dominating >= keep,
                format!(
                    "values {} are dominated by {dominating} of {} trials there; those \
                     dominated by fewer than {keep} go on",
                    point_text(view, point),
                    points.len()
                ),
            ));
        }
        let values = &rungs.values[k];
        let keep = keep(values.len().max(1)).min(values.len());
        let threshold = *values.get(keep.checked_sub(1)?)?;
        let value = point[0];
        let rank = values.partition_point(|&v| v < value) + 1;
        let shown = |v: f64| num(lower_is_better(direction(view), v));
        Some((
            value > threshold,
            format!(
                "value {} ranks {rank} of {}; the best {keep} go on (threshold {})",
                shown(value),
                values.len(),
                shown(threshold)
            ),
        ))
    }

    fn decide(&self, view: &StudyView, trial: &Trial, step: u64) -> Option<Verdict> {
        let b = self.bracket(trial.number);
        let rungs = &self.brackets[b];
        let previous = trial
            .intermediate
            .range(..step)
            .next_back()
            .map(|(&s, _)| s);
        let crossed = rungs
            .iter()
            .enumerate()
            .filter(|&(_, &r)| r <= step && previous.is_none_or(|p| p < r));
        let objectives = view.spec().objectives.len();
        let point = oriented(view, &trial.intermediate_point(step, objectives)?);
        let index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let bracket = if self.brackets.len() > 1 {
            format!("bracket {b}, ")
        } else {
            String::new()
        };
        let mut verdict = None;
        for (k, &rung) in crossed {
            let Some((stops, standing)) = self.standing(view, &index[b], k, &point) else {
                continue;
            };
            let (action, what) = match stops {
                true => (Action::Stop, "stops"),
                false => (Action::Continue, "is promoted"),
            };
            verdict = Some(Verdict {
                policy: self.policy,
                action,
                rationale: format!("{bracket}rung {k} (step {rung}): {standing}, so it {what}"),
            });
            if stops {
                break;
            }
        }
        verdict
    }
}

//! Studies: what is optimized, and in which direction.

use serde::{Deserialize, Serialize};

use crate::{Error, SearchSpace};

/// A study's identity in its store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StudyId(pub u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Minimize,
    Maximize,
}

impl Direction {
    /// `minimize` or `maximize`, as study files and JSON say it.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Minimize => "minimize",
            Direction::Maximize => "maximize",
        }
    }

    /// Whether `a` is strictly better than `b` in this direction.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Direction::Minimize => a < b,
            Direction::Maximize => a > b,
        }
    }
}

/// One objective: the metric a trial reports, and whether to minimize or maximize it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    pub metric: String,
    pub direction: Direction,
}

impl Objective {
    pub fn minimize(metric: &str) -> Self {
        Objective {
            metric: metric.to_owned(),
            direction: Direction::Minimize,
        }
    }
    pub fn maximize(metric: &str) -> Self {
        Objective {
            metric: metric.to_owned(),
            direction: Direction::Maximize,
        }
    }
}

/// What a study is: its name, objectives and declared search space. Stored once when the study
/// is created; reopening a study with a different spec is refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudySpec {
    pub name: String,
    pub objectives: Vec<Objective>,
    #[serde(default)]
    pub space: SearchSpace,
}

impl StudySpec {
    pub fn new(name: &str, objectives: Vec<Objective>, space: SearchSpace) -> Self {
        StudySpec {
            name: name.to_owned(),
            objectives,
            space,
        }
    }

    pub fn validate(&self) -> Result<(), Error> {
        check_name(&self.name)?;
        if self.objectives.is_empty() {
            return Err(Error::InvalidStudy(format!(
                "study \"{}\" has no objective",
                self.name
            )));
        }
        for (i, o) in self.objectives.iter().enumerate() {
            if self.objectives[..i].iter().any(|p| p.metric == o.metric) {
                return Err(Error::InvalidStudy(format!(
                    "objective \"{}\" appears twice",
                    o.metric
                )));
            }
        }
        Ok(())
    }
}

/// A study name is a name, never a path (it names directories of trials): letters, digits,
/// `_`, `-`, `.`, `+`, `@`, `=` and inner spaces, at most 128 characters, not starting with `.`.
pub fn check_name(name: &str) -> Result<(), Error> {
    let bad = |why: &str| {
        Err(Error::InvalidStudy(format!(
            "study name {name:?} {why}: use letters, digits, `_`, `-`, `.`, `+`, `@`, `=` and \
             inner spaces (at most 128 characters, not starting with `.`)"
        )))
    };
    if name.trim().is_empty() {
        return Err(Error::InvalidStudy("the study name is empty".into()));
    }
    if name.chars().count() > 128 {
        return bad("is too long");
    }
    if name.starts_with('.') {
        return bad("starts with a dot");
    }
    if name.trim() != name {
        return bad("starts or ends with a space");
    }
    let allowed = |c: char| c.is_alphanumeric() || "_-.+@= ".contains(c);
    if let Some(c) = name.chars().find(|&c| !allowed(c)) {
        return bad(&format!("holds {c:?}"));
    }
    Ok(())
}

/// [`dominates`] for values already oriented so that every objective is minimized.
pub fn dominates_minimizing(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x <= y) && a.iter().zip(b).any(|(x, y)| x < y)
}

/// Whether `a` Pareto-dominates `b`: no worse in every objective, strictly better in one.
pub fn dominates(objectives: &[Objective], a: &[f64], b: &[f64]) -> bool {
    let mut strictly = false;
    for ((o, &x), &y) in objectives.iter().zip(a).zip(b) {
        if o.direction.better(y, x) {
            return false;
        }
        strictly |= o.direction.better(x, y);
    }
    strictly
}

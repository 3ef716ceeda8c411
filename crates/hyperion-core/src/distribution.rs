//! Distributions: the domain of one parameter.
//!
//! The structs are plain data; [`Distribution::validate`] checks their preconditions. A
//! [`SearchSpace`](crate::SearchSpace) only holds validated distributions, and a define-by-run
//! suggestion validates its distribution before anything is sampled or stored.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ParamValue;

/// Relative tolerance for "this float lies on the step grid".
const STEP_TOLERANCE: f64 = 1e-9;

/// A real number in `[low, high]`, uniform on a linear or a log scale, optionally on a grid of
/// `step` starting at `low`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloatDistribution {
    pub low: f64,
    pub high: f64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub log: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<f64>,
}

/// An integer in `[low, high]` on a grid of `step` (default 1), on a linear or a log scale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntDistribution {
    pub low: i64,
    pub high: i64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub log: bool,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub step: i64,
}

fn one() -> i64 {
    1
}
fn is_one(step: &i64) -> bool {
    *step == 1
}

/// One of a list of values (strings, numbers or booleans), each equally likely a priori.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoricalDistribution {
    pub choices: Vec<ParamValue>,
}

/// The domain of one parameter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Distribution {
    Float(FloatDistribution),
    Int(IntDistribution),
    Categorical(CategoricalDistribution),
    /// Always the same value: recorded in the trial's params, never searched.
    Constant {
        value: ParamValue,
    },
}

impl FloatDistribution {
    pub fn new(low: f64, high: f64) -> Self {
        FloatDistribution {
            low,
            high,
            log: false,
            step: None,
        }
    }
    /// Sample uniformly in `ln(x)`: for learning rates, regularization strengths.
    pub fn log(mut self) -> Self {
        self.log = true;
        self
    }
    pub fn step(mut self, step: f64) -> Self {
        self.step = Some(step);
        self
    }

    /// Number of grid points when `step` is set; `u64::MAX` when there are more (a tiny step).
    pub fn step_count(&self) -> Option<u64> {
        self.step
            .map(|s| (((self.high - self.low) / s).round() as u64).saturating_add(1))
    }

    fn validate(&self) -> Result<(), String> {
        let (low, high) = (self.low, self.high);
        if !low.is_finite() || !high.is_finite() {
            return Err(format!("low ({low}) and high ({high}) must be finite"));
        }
        if low >= high {
            return Err(format!("low ({low}) must be < high ({high})"));
        }
        if self.log && low <= 0.0 {
            return Err(format!("low ({low}) must be > 0 for a log scale"));
        }
        if let Some(step) = self.step {
            if self.log {
                return Err("step cannot be combined with a log scale".into());
            }
            if !(step.is_finite() && step > 0.0) {
                return Err(format!("step ({step}) must be > 0"));
            }
            let span = high - low;
            if step > span * (1.0 + STEP_TOLERANCE) {
                return Err(format!(
                    "step ({step}) is larger than the range {low}..{high}"
                ));
            }
            let n = span / step;
            if (n - n.round()).abs() > STEP_TOLERANCE * n.max(1.0) {
                return Err(format!(
                    "step ({step}) does not fit the range {low}..{high}: (high - low) / step = {n} is not a whole number"
                ));
            }
        }
        Ok(())
    }

    fn contains(&self, x: f64) -> bool {
        if !(self.low <= x && x <= self.high) {
            return false;
        }
        match self.step {
            None => true,
            Some(step) => {
                let k = (x - self.low) / step;
                (k - k.round()).abs() <= STEP_TOLERANCE * k.abs().max(1.0) * 10.0
            }
        }
    }
}

impl IntDistribution {
    pub fn new(low: i64, high: i64) -> Self {
        IntDistribution {
            low,
            high,
            log: false,
            step: 1,
        }
    }
    pub fn log(mut self) -> Self {
        self.log = true;
        self
    }
    pub fn step(mut self, step: i64) -> Self {
        self.step = step;
        self
    }

    /// Number of values in the domain.
    pub fn count(&self) -> u64 {
        ((self.high - self.low) / self.step) as u64 + 1
    }

    fn validate(&self) -> Result<(), String> {
        let IntDistribution {
            low,
            high,
            log,
            step,
        } = *self;
        if low >= high {
            return Err(format!("low ({low}) must be < high ({high})"));
        }
        if log && low < 1 {
            return Err(format!("low ({low}) must be >= 1 for a log scale"));
        }
        if step < 1 {
            return Err(format!("step ({step}) must be >= 1"));
        }
        if log && step != 1 {
            return Err("step cannot be combined with a log scale".into());
        }
        let span = high
            .checked_sub(low)
            .ok_or("the range low..high overflows i64")?;
        if step > span {
            return Err(format!(
                "step ({step}) is larger than the range {low}..{high}"
            ));
        }
        if span % step != 0 {
            return Err(format!(
                "step ({step}) does not fit the range {low}..{high}"
            ));
        }
        Ok(())
    }

    fn contains(&self, x: i64) -> bool {
        self.low <= x && x <= self.high && (x - self.low) % self.step == 0
    }
}

impl CategoricalDistribution {
    pub fn new<V: Into<ParamValue>>(choices: impl IntoIterator<Item = V>) -> Self {
        CategoricalDistribution {
            choices: choices.into_iter().map(Into::into).collect(),
        }
    }

    pub fn index_of(&self, value: &ParamValue) -> Option<usize> {
        self.choices.iter().position(|c| c == value)
    }

    fn validate(&self) -> Result<(), String> {
        if self.choices.is_empty() {
            return Err("choices must not be empty".into());
        }
        for (i, c) in self.choices.iter().enumerate() {
            if c.is_nan() {
                return Err("a choice is NaN".into());
            }
            if self.choices[..i].contains(c) {
                return Err(format!("choice {c} appears twice"));
            }
        }
        Ok(())
    }
}

impl Distribution {
    pub fn constant(value: impl Into<ParamValue>) -> Self {
        Distribution::Constant {
            value: value.into(),
        }
    }

    /// Checks the preconditions; the error says what is wrong, without the parameter's name.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Distribution::Float(d) => d.validate(),
            Distribution::Int(d) => d.validate(),
            Distribution::Categorical(d) => d.validate(),
            Distribution::Constant { value } if value.is_nan() => Err("the constant is NaN".into()),
            Distribution::Constant { .. } => Ok(()),
        }
    }

    /// Whether `value` is a value this distribution can produce.
    pub fn contains(&self, value: &ParamValue) -> bool {
        match (self, value) {
            (Distribution::Float(d), v) => v.as_f64().is_some_and(|x| d.contains(x)),
            (Distribution::Int(d), ParamValue::Int(x)) => d.contains(*x),
            (Distribution::Int(_), _) => false,
            (Distribution::Categorical(d), v) => d.index_of(v).is_some(),
            (Distribution::Constant { value: c }, v) => c == v,
        }
    }
}

impl From<FloatDistribution> for Distribution {
    fn from(d: FloatDistribution) -> Self {
        Distribution::Float(d)
    }
}
impl From<IntDistribution> for Distribution {
    fn from(d: IntDistribution) -> Self {
        Distribution::Int(d)
    }
}
impl From<CategoricalDistribution> for Distribution {
    fn from(d: CategoricalDistribution) -> Self {
        Distribution::Categorical(d)
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Distribution::Float(d) => {
                write!(f, "float {}..{}", d.low, d.high)?;
                if d.log {
                    f.write_str(" log")?;
                }
                if let Some(s) = d.step {
                    write!(f, " step {s}")?;
                }
                Ok(())
            }
            Distribution::Int(d) => {
                write!(f, "int {}..{}", d.low, d.high)?;
                if d.log {
                    f.write_str(" log")?;
                }
                if d.step != 1 {
                    write!(f, " step {}", d.step)?;
                }
                Ok(())
            }
            Distribution::Categorical(d) => {
                f.write_str("categorical [")?;
                for (i, c) in d.choices.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str("]")
            }
            Distribution::Constant { value } => write!(f, "constant {value}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(d: impl Into<Distribution>) -> String {
        d.into().validate().unwrap_err()
    }

    /// Found by hyperion-fuzz: `as u64` saturates at 1e300 steps, and the `+ 1` overflowed.
    #[test]
    fn a_step_too_small_to_count_saturates_the_count() {
        let d = FloatDistribution::new(0.0, 1.0).step(1e-300);
        assert_eq!(d.validate(), Ok(()));
        assert_eq!(d.step_count(), Some(u64::MAX));
    }

    #[test]
    fn rejects_bad_ranges_with_the_reason() {
        assert_eq!(
            err(FloatDistribution::new(1.0, 1.0)),
            "low (1) must be < high (1)"
        );
        assert_eq!(
            err(FloatDistribution::new(0.0, 1.0).log()),
            "low (0) must be > 0 for a log scale"
        );
        assert_eq!(
            err(FloatDistribution::new(0.0, 1.0).step(2.0)),
            "step (2) is larger than the range 0..1"
        );
        assert!(err(FloatDistribution::new(0.0, 1.0).step(0.3)).contains("does not fit"));
        assert!(err(FloatDistribution::new(0.0, f64::INFINITY)).contains("finite"));
        assert_eq!(
            err(IntDistribution::new(0, 10).log()),
            "low (0) must be >= 1 for a log scale"
        );
        assert!(err(IntDistribution::new(0, 10).step(3)).contains("does not fit"));
        assert!(err(IntDistribution::new(0, 10).step(11)).contains("larger than the range"));
        assert_eq!(
            err(CategoricalDistribution::new(Vec::<i64>::new())),
            "choices must not be empty"
        );
        assert_eq!(
            err(CategoricalDistribution::new(["a", "a"])),
            "choice a appears twice"
        );
    }

    #[test]
    fn accepts_steps_that_fit_despite_rounding() {
        // 0.1 is not exact in binary; (1.0 - 0.0) / 0.1 must still count as 10 steps.
        Distribution::from(FloatDistribution::new(0.0, 1.0).step(0.1))
            .validate()
            .unwrap();
        let d = Distribution::from(FloatDistribution::new(0.0, 1.0).step(0.1));
        assert!(d.contains(&ParamValue::Float(0.30000000000000004)));
        assert!(!d.contains(&ParamValue::Float(0.35)));
    }

    #[test]
    fn serde_form_is_tagged_by_type() {
        let d: Distribution =
            serde_json::from_str(r#"{"type": "float", "low": 1e-5, "high": 0.1, "log": true}"#)
                .unwrap();
        assert_eq!(d, FloatDistribution::new(1e-5, 0.1).log().into());
        let json = serde_json::to_string(&Distribution::from(IntDistribution::new(1, 8))).unwrap();
        assert_eq!(json, r#"{"type":"int","low":1,"high":8}"#);
        let bad = serde_json::from_str::<Distribution>(r#"{"type": "int", "low": 1, "hgh": 8}"#);
        assert!(bad.unwrap_err().to_string().contains("hgh"));
    }
}

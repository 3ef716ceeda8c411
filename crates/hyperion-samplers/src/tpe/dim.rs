//! A parameter's domain on TPE's scale (log for log parameters, cells for ints and steps,
//! indices for categories), and the conversions of values to and from it.

use hyperion_core::{Distribution, ParamValue};

use crate::from_unit;

/// A parameter's domain as TPE sees it: an interval of the (log) line, or categories.
#[derive(Clone, Copy)]
pub(super) enum Dim {
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
    pub(super) fn new(distribution: &Distribution) -> Self {
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
    pub(super) fn observe(&self, distribution: &Distribution, value: &ParamValue) -> Option<f64> {
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
    pub(super) fn value(&self, distribution: &Distribution, x: f64) -> ParamValue {
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

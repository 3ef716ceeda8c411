use hyperion_core::{Distribution, ParamValue};

/// Maps `u` in `[0, 1)` onto `distribution`, uniformly on its (log) scale and onto its step
/// grid. Random sampling feeds it uniform numbers, Sobol feeds it quasi-random ones.
pub fn from_unit(distribution: &Distribution, u: f64) -> ParamValue {
    let u = u.clamp(0.0, 1.0);
    match distribution {
        Distribution::Float(d) => {
            let x = match (d.step_count(), d.log) {
                (Some(n), _) => d.low + pick(u, n) as f64 * d.step.unwrap_or_default(),
                (None, true) => (d.low.ln() + u * (d.high.ln() - d.low.ln())).exp(),
                (None, false) => d.low + u * (d.high - d.low),
            };
            ParamValue::Float(x.clamp(d.low, d.high))
        }
        Distribution::Int(d) if d.log => {
            // Each integer owns [i - 0.5, i + 0.5) on the log scale, as in Optuna.
            let (lo, hi) = ((d.low as f64 - 0.5).ln(), (d.high as f64 + 0.5).ln());
            let x = (lo + u * (hi - lo)).exp().round() as i64;
            ParamValue::Int(x.clamp(d.low, d.high))
        }
        Distribution::Int(d) => ParamValue::Int(d.low + pick(u, d.count()) as i64 * d.step),
        Distribution::Categorical(d) => d.choices[pick(u, d.choices.len() as u64) as usize].clone(),
        Distribution::Constant { value } => value.clone(),
    }
}

/// `floor(u * n)`, kept below `n`.
fn pick(u: f64, n: u64) -> u64 {
    ((u * n as f64) as u64).min(n - 1)
}

/// Where `value` sits in `[0, 1]` for `distribution`: the inverse of [`from_unit`] (the centre
/// of the cell that maps to it, for steps, ints and categories). `None` for a value the
/// distribution does not hold.
pub fn to_unit(distribution: &Distribution, value: &ParamValue) -> Option<f64> {
    let cell = |index: f64, count: u64| (index + 0.5) / count as f64;
    let u = match distribution {
        Distribution::Float(d) => {
            let x = value.as_f64()?;
            match (d.step_count(), d.log) {
                (Some(n), _) => cell(((x - d.low) / d.step?).round(), n),
                (None, true) => (x.ln() - d.low.ln()) / (d.high.ln() - d.low.ln()),
                (None, false) => (x - d.low) / (d.high - d.low),
            }
        }
        Distribution::Int(d) if d.log => {
            let (lo, hi) = ((d.low as f64 - 0.5).ln(), (d.high as f64 + 0.5).ln());
            (((value.as_f64()?).ln() - lo) / (hi - lo)).clamp(0.0, 1.0)
        }
        Distribution::Int(d) => cell(
            ((value.as_f64()? as i64 - d.low) / d.step) as f64,
            d.count(),
        ),
        Distribution::Categorical(d) => {
            let index = d.choices.iter().position(|c| c == value)?;
            cell(index as f64, d.choices.len() as u64)
        }
        Distribution::Constant { .. } => 0.5,
    };
    u.is_finite().then_some(u.clamp(0.0, 1.0))
}

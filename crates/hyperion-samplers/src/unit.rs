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

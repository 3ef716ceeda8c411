//! Numerics shared by the model-based samplers, not specific to TPE: standard normal draws,
//! the normal CDF (by formula and tabulated), erfc, and a portable `exp` for non-positive
//! arguments. Every function is plain arithmetic that gives the same bits on every machine.

use rand::RngExt;
use rand_xoshiro::Xoshiro256PlusPlus;

pub(crate) fn standard_normal(rng: &mut Xoshiro256PlusPlus) -> f64 {
    // Box–Muller; portable (no platform math beyond ln, sqrt, cos).
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Φ(z), via erfc (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7).
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// `exp(x)` for `x <= 0`, to about 1e-12 relative: the density's hot path calls it tens of
/// thousands of times per suggestion, and this form (a power of two times a polynomial on
/// [0, ln 2)) is plain arithmetic that vectorizes and gives the same bits on every machine.
pub(crate) fn exp_nonpositive(x: f64) -> f64 {
    if x < -700.0 {
        return 0.0;
    }
    let y = x * std::f64::consts::LOG2_E;
    // floor(y) without a libm call: truncation, one down for negative non-integers.
    let mut n = y as i64;
    if (n as f64) > y {
        n -= 1;
    }
    let f = (y - n as f64) * std::f64::consts::LN_2;
    // Taylor series of e^f to degree 12 (Horner): the remainder is below 2e-12 on [0, ln 2).
    let c = &INVERSE_FACTORIALS;
    let mut p = c[12];
    p = p * f + c[11];
    p = p * f + c[10];
    p = p * f + c[9];
    p = p * f + c[8];
    p = p * f + c[7];
    p = p * f + c[6];
    p = p * f + c[5];
    p = p * f + c[4];
    p = p * f + c[3];
    p = p * f + c[2];
    p = p * f + c[1];
    p = p * f + c[0];
    p * f64::from_bits(((n + 1023) as u64) << 52)
}

/// 1/k! for k = 0, 1, …, 12.
const INVERSE_FACTORIALS: [f64; 13] = [
    1.0,
    1.0,
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40_320.0,
    1.0 / 362_880.0,
    1.0 / 3_628_800.0,
    1.0 / 39_916_800.0,
    1.0 / 479_001_600.0,
];

#[cfg(test)]
#[test]
fn exp_nonpositive_matches_exp() {
    for i in 0..=70_000 {
        let x = -(i as f64) / 100.0;
        let (fast, exact) = (exp_nonpositive(x), x.exp());
        assert!(
            (fast - exact).abs() <= 1e-11 * exact,
            "exp({x}): {fast} vs {exact}"
        );
    }
    assert_eq!(exp_nonpositive(-800.0), 0.0);
    assert_eq!(exp_nonpositive(0.0), 1.0);
}

/// Φ(z) on [-8, 8] by cubic Hermite interpolation between points 1/128 apart (error below
/// 1e-10): kernel masses need thousands per suggestion. 0 and 1 outside.
#[cfg(test)]
fn tabulated_cdf(z: f64) -> f64 {
    if z <= -8.0 {
        return 0.0;
    }
    if z >= 8.0 {
        return 1.0;
    }
    cdf_from(cdf_table(), z)
}

const CDF_STEPS: f64 = 128.0;

/// Φ, and its derivative times the step, at -8, -8 + 1/128, …, 8.
pub(crate) fn cdf_table() -> &'static [(f64, f64)] {
    static TABLE: std::sync::OnceLock<Vec<(f64, f64)>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=16 * CDF_STEPS as usize)
            .map(|i| {
                let z = i as f64 / CDF_STEPS - 8.0;
                let density = exp_nonpositive(-0.5 * z * z) / (2.0 * std::f64::consts::PI).sqrt();
                (normal_cdf(z), density / CDF_STEPS)
            })
            .collect()
    })
}

/// Φ(z) for z in (-8, 8), from the table.
#[inline]
pub(crate) fn cdf_from(table: &[(f64, f64)], z: f64) -> f64 {
    let t = (z + 8.0) * CDF_STEPS;
    let i = (t as usize).min(table.len() - 2);
    let u = t - i as f64;
    let ((p0, m0), (p1, m1)) = (table[i], table[i + 1]);
    let (u2, u3) = (u * u, u * u * u);
    (2.0 * u3 - 3.0 * u2 + 1.0) * p0
        + (u3 - 2.0 * u2 + u) * m0
        + (-2.0 * u3 + 3.0 * u2) * p1
        + (u3 - u2) * m1
}

#[cfg(test)]
#[test]
fn tabulated_cdf_matches_the_formula() {
    for i in -9_000..=9_000 {
        let z = i as f64 / 1000.0 + 0.000_37;
        let (fast, exact) = (tabulated_cdf(z), normal_cdf(z));
        let exact = if z <= -8.0 {
            0.0
        } else if z >= 8.0 {
            1.0
        } else {
            exact
        };
        // The formula itself is good to about 1.2e-7.
        assert!((fast - exact).abs() < 2e-7, "Φ({z}): {fast} vs {exact}");
    }
}

/// erfc(x) (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7).
pub(crate) fn erfc(x: f64) -> f64 {
    let z = x.abs();
    // Beyond 27, exp(-z²) underflows (and glibc's slow path runs): the tail is 0.
    if z > 27.0 {
        return if x >= 0.0 { 0.0 } else { 2.0 };
    }
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.26551223
        + t * (1.00002368
            + t * (0.37409196
                + t * (0.09678418
                    + t * (-0.18628806
                        + t * (0.27886807
                            + t * (-1.13520398
                                + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let r = t * exp_nonpositive(poly);
    if x >= 0.0 { r } else { 2.0 - r }
}

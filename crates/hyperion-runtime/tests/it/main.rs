//! Studies driven end to end: ask/tell, optimize on threads, budgets, define-by-run, events.

mod ask_tell;
mod controller;
mod events;
mod optimize;
mod schedulers;

use hyperion_core::{FloatDistribution, SearchSpace};

/// A 10-D box, the shape of the overhead benchmark.
fn box_space(dims: usize) -> SearchSpace {
    (0..dims)
        .fold(SearchSpace::builder(), |b, i| {
            b.param(&format!("x{i}"), FloatDistribution::new(-5.0, 5.0))
        })
        .build()
        .unwrap()
}

fn sphere(params: &hyperion_core::Params) -> f64 {
    params
        .values()
        .filter_map(|v| v.as_f64())
        .map(|x| x * x)
        .sum()
}

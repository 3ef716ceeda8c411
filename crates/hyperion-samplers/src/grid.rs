use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use hyperion_core::{Distribution, ParamValue, Params, SearchSpace};

use crate::{SampleContext, Sampler, SamplerError};

/// Most points a grid with conditional parameters may have (it is listed in memory).
const LISTED_LIMIT: usize = 1_000_000;
/// Most `points` per axis: each axis is listed in memory.
const POINTS_LIMIT: usize = 1_000_000;

/// Tries every combination of the grid's values, in declared order with the last parameter
/// varying fastest; conditional parameters only where they are active.
///
/// The trial with place `n` ([`SampleContext::place`]: its number, less the retries before it)
/// takes grid point `n`: places are unique among proposed trials (the runtime proposes only from
/// a view that holds every earlier trial, [`Sampler::walks_a_sequence`]), so no point is ever
/// taken twice (also by concurrent workers or after a restart), and the grid is exhausted when
/// the place reaches its size. A retried trial keeps its params and takes no place, so a crash
/// loses no point and skips none.
///
/// Axes: categorical and constant parameters use their values; ints use every value when there
/// are at most `points` of them, else `points` values spread over the (log) range; floats use
/// `points` values from `low` to `high` (on the step grid when there is a step). Explicit
/// `values` override this per parameter.
#[derive(Debug)]
pub struct GridSampler {
    points: usize,
    values: BTreeMap<String, Vec<ParamValue>>,
    /// The grid of the last space seen: the space of a study does not change.
    cache: Mutex<Option<(SearchSpace, Arc<Grid>)>>,
}

#[derive(Debug)]
enum Grid {
    /// No conditions: point `i` is decoded from `i` in mixed radix, any size.
    Product {
        axes: Vec<(String, Vec<ParamValue>)>,
        size: u64,
    },
    /// With conditions: the points, listed.
    Listed(Vec<Params>),
}

impl GridSampler {
    pub fn new(
        points: usize,
        values: BTreeMap<String, Vec<ParamValue>>,
    ) -> Result<Self, SamplerError> {
        if !(2..=POINTS_LIMIT).contains(&points) {
            return Err(SamplerError::Config(format!(
                "grid points must be from 2 to {POINTS_LIMIT}, not {points}"
            )));
        }
        Ok(GridSampler {
            points,
            values,
            cache: Mutex::new(None),
        })
    }

    /// How many points the grid of `space` has.
    pub fn size(&self, space: &SearchSpace) -> Result<u64, SamplerError> {
        Ok(self.grid(space)?.size())
    }

    fn grid(&self, space: &SearchSpace) -> Result<Arc<Grid>, SamplerError> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((cached, grid)) = cache.as_ref()
            && cached == space
        {
            return Ok(grid.clone());
        }
        let grid = Arc::new(self.build(space)?);
        *cache = Some((space.clone(), grid.clone()));
        Ok(grid)
    }

    fn build(&self, space: &SearchSpace) -> Result<Grid, SamplerError> {
        // Values for parameters the space does not declare are define-by-run axes (Optuna's
        // `GridSampler(search_space)`): each point carries them, and `suggest` returns them.
        let undeclared: Vec<(String, Vec<ParamValue>)> = self
            .values
            .iter()
            .filter(|(name, _)| space.get(name).is_none())
            .map(|(name, values)| (name.clone(), values.clone()))
            .collect();
        for (name, values) in &undeclared {
            check_distinct(name, values)?;
        }
        let mut axes = Vec::with_capacity(space.len() + undeclared.len());
        for &i in space.sampling_indices() {
            let p = &space.params()[i];
            let values = match self.values.get(&p.name) {
                Some(values) => {
                    check_values(&p.name, &p.distribution, values)?;
                    values.clone()
                }
                None => axis(&p.distribution, self.points),
            };
            axes.push((p.name.clone(), values));
        }
        let conditional = space.params().iter().any(|p| p.condition.is_some());
        if let (true, Some((name, _))) = (conditional, undeclared.first()) {
            return Err(SamplerError::InvalidGrid {
                param: name.clone(),
                reason: "not in the search space, which has conditions: declare it".into(),
            });
        }
        axes.extend(undeclared);
        if !conditional {
            let size = axes
                .iter()
                .try_fold(1u64, |acc, (_, v)| acc.checked_mul(v.len() as u64));
            return Ok(Grid::Product {
                axes,
                size: size.unwrap_or(u64::MAX),
            });
        }
        let mut points = Vec::new();
        let order: Vec<_> = space.sampling_order().collect();
        list(&order, &axes, 0, &mut Params::new(), &mut points)?;
        Ok(Grid::Listed(points))
    }
}

impl Grid {
    fn size(&self) -> u64 {
        match self {
            Grid::Product { size, .. } => *size,
            Grid::Listed(points) => points.len() as u64,
        }
    }

    fn point(&self, index: u64) -> Option<Params> {
        if index >= self.size() {
            return None;
        }
        match self {
            Grid::Listed(points) => Some(points[index as usize].clone()),
            Grid::Product { axes, .. } => {
                let mut rest = index;
                let mut params = Params::new();
                for (name, values) in axes.iter().rev() {
                    let n = values.len() as u64;
                    params.insert(name.clone(), values[(rest % n) as usize].clone());
                    rest /= n;
                }
                Some(params)
            }
        }
    }
}

fn list(
    order: &[&hyperion_core::Param],
    axes: &[(String, Vec<ParamValue>)],
    i: usize,
    current: &mut Params,
    out: &mut Vec<Params>,
) -> Result<(), SamplerError> {
    if out.len() > LISTED_LIMIT {
        return Err(SamplerError::GridTooLarge {
            limit: LISTED_LIMIT,
        });
    }
    let Some(p) = order.get(i) else {
        out.push(current.clone());
        return Ok(());
    };
    if !SearchSpace::is_active(p, current) {
        return list(order, axes, i + 1, current, out);
    }
    for v in &axes[i].1 {
        current.insert(p.name.clone(), v.clone());
        list(order, axes, i + 1, current, out)?;
    }
    current.remove(&p.name);
    Ok(())
}

fn check_values(
    name: &str,
    distribution: &Distribution,
    values: &[ParamValue],
) -> Result<(), SamplerError> {
    let invalid = |reason: String| SamplerError::InvalidGrid {
        param: name.to_owned(),
        reason,
    };
    if let Some(v) = values.iter().find(|v| !distribution.contains(v)) {
        return Err(invalid(format!("{v} is not in {distribution}")));
    }
    check_distinct(name, values)
}

fn check_distinct(name: &str, values: &[ParamValue]) -> Result<(), SamplerError> {
    let invalid = |reason: String| SamplerError::InvalidGrid {
        param: name.to_owned(),
        reason,
    };
    if values.is_empty() {
        return Err(invalid("no values".into()));
    }
    match values
        .iter()
        .enumerate()
        .find(|(i, v)| values[..*i].contains(v))
    {
        Some((_, v)) => Err(invalid(format!("{v} appears twice"))),
        None => Ok(()),
    }
}

/// The default grid values of one distribution.
fn axis(distribution: &Distribution, points: usize) -> Vec<ParamValue> {
    let spread = |n: u64| -> Vec<u64> {
        // `points` indices spread evenly over 0..n, both ends included, without repeats.
        if n <= points as u64 {
            return (0..n).collect();
        }
        let mut idx: Vec<u64> = (0..points)
            .map(|k| ((k as f64 * (n - 1) as f64) / (points - 1) as f64).round() as u64)
            .collect();
        idx.dedup();
        idx
    };
    match distribution {
        Distribution::Categorical(d) => d.choices.clone(),
        Distribution::Constant { value } => vec![value.clone()],
        Distribution::Int(d) if d.log => {
            let (lo, hi) = ((d.low as f64).ln(), (d.high as f64).ln());
            let mut values: Vec<i64> = (0..points)
                .map(|k| {
                    (lo + (hi - lo) * k as f64 / (points - 1) as f64)
                        .exp()
                        .round() as i64
                })
                .map(|x| x.clamp(d.low, d.high))
                .collect();
            values.dedup();
            values.into_iter().map(ParamValue::Int).collect()
        }
        Distribution::Int(d) => spread(d.count())
            .into_iter()
            .map(|k| ParamValue::Int(d.low + k as i64 * d.step))
            .collect(),
        Distribution::Float(d) => match (d.step, d.step_count()) {
            (Some(step), Some(n)) => spread(n)
                .into_iter()
                .map(|k| ParamValue::Float((d.low + k as f64 * step).min(d.high)))
                .collect(),
            _ => (0..points)
                .map(|k| {
                    let t = k as f64 / (points - 1) as f64;
                    let x = if d.log {
                        (d.low.ln() + t * (d.high.ln() - d.low.ln())).exp()
                    } else {
                        d.low + t * (d.high - d.low)
                    };
                    ParamValue::Float(x.clamp(d.low, d.high))
                })
                .collect(),
        },
    }
}

impl Sampler for GridSampler {
    fn suggest(
        &self,
        space: &SearchSpace,
        ctx: &SampleContext<'_>,
    ) -> Result<Option<Params>, SamplerError> {
        Ok(self.grid(space)?.point(ctx.place()))
    }

    fn ignores_results(&self) -> bool {
        true
    }

    fn walks_a_sequence(&self) -> bool {
        true
    }

    fn suggest_param(
        &self,
        name: &str,
        _distribution: &Distribution,
        _ctx: &SampleContext<'_>,
    ) -> Result<ParamValue, SamplerError> {
        Err(SamplerError::NotDeclared {
            param: name.to_owned(),
            sampler: "grid",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyperion_core::{CategoricalDistribution, Condition, FloatDistribution, IntDistribution};

    fn points(sampler: &GridSampler, space: &SearchSpace) -> Vec<Params> {
        let grid = sampler.grid(space).unwrap();
        (0..).map_while(|i| grid.point(i)).collect()
    }

    /// Optuna's `GridSampler({"x": [...], "y": [...]})` over a define-by-run objective: the
    /// values of undeclared parameters are axes, and every combination comes once.
    #[test]
    fn values_of_undeclared_parameters_are_axes_of_their_own() {
        let values = BTreeMap::from([
            ("x".to_owned(), vec![ParamValue::Int(1), ParamValue::Int(2)]),
            ("y".to_owned(), vec!["a".into(), "b".into(), "c".into()]),
        ]);
        let sampler = GridSampler::new(5, values).unwrap();
        let all = points(&sampler, &SearchSpace::default());
        assert_eq!(all.len(), 6);
        for (i, p) in all.iter().enumerate() {
            assert_eq!(p.len(), 2, "{p:?}");
            assert!(!all[..i].contains(p), "{p:?} twice");
        }
        let twice = BTreeMap::from([("x".to_owned(), vec![ParamValue::Int(1); 2])]);
        let err = GridSampler::new(5, twice)
            .unwrap()
            .size(&SearchSpace::default())
            .unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err}");
    }

    /// Each axis is listed: `points: 18446744073709551615` was a "capacity overflow" panic,
    /// and a billion points a memory exhaustion.
    #[test]
    fn points_are_bounded() {
        assert!(GridSampler::new(POINTS_LIMIT, BTreeMap::new()).is_ok());
        for points in [0, 1, POINTS_LIMIT + 1, usize::MAX] {
            let e = GridSampler::new(points, BTreeMap::new()).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "invalid sampler configuration: grid points must be from 2 to 1000000, not {points}"
                )
            );
        }
    }

    #[test]
    fn axes_follow_the_distribution() {
        let f = |d: Distribution| axis(&d, 5);
        assert_eq!(
            f(FloatDistribution::new(0.0, 1.0).into()),
            [0.0, 0.25, 0.5, 0.75, 1.0].map(ParamValue::Float)
        );
        assert_eq!(
            f(IntDistribution::new(1, 3).into()),
            [1, 2, 3].map(ParamValue::Int)
        );
        assert_eq!(
            f(IntDistribution::new(0, 100).step(10).into()),
            [0, 30, 50, 80, 100].map(ParamValue::Int)
        );
        assert_eq!(
            f(IntDistribution::new(1, 10000).log().into()),
            [1, 10, 100, 1000, 10000].map(ParamValue::Int)
        );
        let log = f(FloatDistribution::new(1e-4, 1.0).log().into());
        assert!((log[1].as_f64().unwrap() - 1e-3).abs() < 1e-12);
    }

    #[test]
    fn order_is_declared_with_the_last_parameter_fastest() {
        let space = SearchSpace::builder()
            .param("a", CategoricalDistribution::new(["x", "y"]))
            .param("b", IntDistribution::new(1, 3))
            .build()
            .unwrap();
        let sampler = GridSampler::new(5, BTreeMap::new()).unwrap();
        let got: Vec<String> = points(&sampler, &space)
            .iter()
            .map(|p| format!("{}{}", p["a"], p["b"]))
            .collect();
        assert_eq!(got, ["x1", "x2", "x3", "y1", "y2", "y3"]);
    }

    #[test]
    fn conditional_parameters_appear_only_where_active() {
        let space = SearchSpace::builder()
            .param("opt", CategoricalDistribution::new(["adam", "sgd"]))
            .param_if(
                "momentum",
                CategoricalDistribution::new([0.0, 0.9]),
                Condition::new("opt", ["sgd"]),
            )
            .build()
            .unwrap();
        let sampler = GridSampler::new(5, BTreeMap::new()).unwrap();
        let got = points(&sampler, &space);
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|p| space.check_point(p).is_ok()));
    }

    #[test]
    fn explicit_values_must_lie_in_the_domain() {
        let space = SearchSpace::builder()
            .param("lr", FloatDistribution::new(1e-4, 1e-1))
            .build()
            .unwrap();
        let values = BTreeMap::from([("lr".to_owned(), vec![ParamValue::Float(0.5)])]);
        let e = GridSampler::new(5, values)
            .unwrap()
            .size(&space)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"grid values of parameter "lr": 0.5 is not in float 0.0001..0.1"#
        );
    }
}

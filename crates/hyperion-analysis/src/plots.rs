//! The data of each plot, aggregated to what a screen can show: a response holds at most a few
//! marks per pixel of `width`, however many trials the study has.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use hyperion_core::{Direction, Distribution, ParamValue, StudyView, Timestamp, Trial, TrialState};
use serde::Serialize;

use crate::importance::{self, Importance};

/// The plots there are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    History,
    Parallel,
    Slice,
    Contour,
    Intermediate,
    Pareto,
    Importance,
    Timeline,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::History,
        Kind::Parallel,
        Kind::Slice,
        Kind::Contour,
        Kind::Intermediate,
        Kind::Pareto,
        Kind::Importance,
        Kind::Timeline,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::History => "history",
            Kind::Parallel => "parallel",
            Kind::Slice => "slice",
            Kind::Contour => "contour",
            Kind::Intermediate => "intermediate",
            Kind::Pareto => "pareto",
            Kind::Importance => "importance",
            Kind::Timeline => "timeline",
        }
    }

    /// Whether the plot says something about this study (a Pareto front needs two objectives,
    /// a contour two parameters).
    pub fn applies_to(self, view: &StudyView) -> bool {
        match self {
            Kind::Pareto => view.spec().objectives.len() >= 2,
            Kind::Contour => param_axes(view).len() >= 2,
            Kind::Parallel | Kind::Slice | Kind::Importance => !param_axes(view).is_empty(),
            _ => true,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = PlotError;
    fn from_str(s: &str) -> Result<Self, PlotError> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| PlotError::UnknownKind(s.to_owned()))
    }
}

/// What a plot is asked for.
#[derive(Clone, Debug)]
pub struct Options {
    /// The objective plotted (an index into the study's objectives).
    pub objective: usize,
    /// The plot's width in pixels: how finely it is aggregated.
    pub width: usize,
    /// The contour's two parameters (default: the first two).
    pub x: Option<String>,
    pub y: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            objective: 0,
            width: 1000,
            x: None,
            y: None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlotError {
    #[error(
        "unknown plot `{0}` (history, parallel, slice, contour, intermediate, pareto, importance, timeline)"
    )]
    UnknownKind(String),
    #[error("objective {index}: the study has {count} objective(s), numbered from 0")]
    UnknownObjective { index: usize, count: usize },
    #[error("unknown parameter `{name}` (the study has: {known})")]
    UnknownParam { name: String, known: String },
    #[error("a Pareto front needs two objectives or more; the study has one")]
    OneObjective,
    #[error("a contour needs two different numeric or categorical parameters")]
    NeedsTwoParams,
}

/// One plot's data, tagged with its kind in JSON.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Plot {
    History(History),
    Parallel(Parallel),
    Slice(Slice),
    Contour(Contour),
    Intermediate(Intermediate),
    Pareto(Pareto),
    Importance(Importance),
    Timeline(Timeline),
}

/// The data of plot `kind`.
pub fn plot(view: &StudyView, kind: Kind, options: &Options) -> Result<Plot, PlotError> {
    let objectives = &view.spec().objectives;
    if options.objective >= objectives.len() {
        return Err(PlotError::UnknownObjective {
            index: options.objective,
            count: objectives.len(),
        });
    }
    let width = options.width.clamp(10, 10_000);
    let o = options.objective;
    Ok(match kind {
        Kind::History => Plot::History(history(view, o, width)),
        Kind::Parallel => Plot::Parallel(parallel(view, o, width)),
        Kind::Slice => Plot::Slice(slice(view, o)),
        Kind::Contour => Plot::Contour(contour(view, o, options)?),
        Kind::Intermediate => Plot::Intermediate(intermediate(view, width)),
        Kind::Pareto => Plot::Pareto(pareto(view, width)?),
        Kind::Importance => Plot::Importance(importance::ped_anova(view, o)),
        Kind::Timeline => Plot::Timeline(timeline(view, width, Timestamp::now())),
    })
}

/// An objective, as plots name it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Objective {
    pub metric: String,
    pub direction: Direction,
}

fn objective(view: &StudyView, index: usize) -> Objective {
    let o = &view.spec().objectives[index];
    Objective {
        metric: o.metric.clone(),
        direction: o.direction,
    }
}

/// A parameter's axis: numbers as they are (on a log scale when the distribution is), a
/// categorical's choices at 0, 1, 2, … (its axis from -0.5 to n - 0.5)
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Axis {
    pub name: String,
    pub low: f64,
    pub high: f64,
    pub log: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    /// A categorical's choices as values, to place a trial's without formatting it.
    #[serde(skip)]
    choices: Vec<ParamValue>,
}

impl Axis {
    fn of(name: &str, distribution: &Distribution) -> Option<Axis> {
        let (low, high, log, categories) = match distribution {
            Distribution::Float(f) => (f.low, f.high, f.log, None),
            Distribution::Int(i) => (i.low as f64, i.high as f64, i.log, None),
            // Choice i is drawn at the middle of the i-th of n bands.
            Distribution::Categorical(c) => (
                -0.5,
                c.choices.len() as f64 - 0.5,
                false,
                Some(c.choices.iter().map(|v| v.to_string()).collect()),
            ),
            Distribution::Constant { .. } => return None,
        };
        let choices = match distribution {
            Distribution::Categorical(c) => c.choices.clone(),
            _ => Vec::new(),
        };
        Some(Axis {
            name: name.to_owned(),
            low,
            high,
            log,
            categories,
            choices,
        })
    }

    /// The value's place on the axis (a categorical's index); `None` when inactive.
    pub fn coordinate(&self, trial: &Trial) -> Option<f64> {
        self.place(trial.params.get(&self.name)?)
    }

    fn place(&self, value: &ParamValue) -> Option<f64> {
        match &self.categories {
            Some(_) => self
                .choices
                .iter()
                .position(|c| c == value)
                .map(|i| i as f64),
            None => value.as_f64(),
        }
    }

    /// Where `x` lies between `low` (0) and `high` (1), on the axis's scale.
    pub fn unit(&self, x: f64) -> f64 {
        let (x, low, high) = if self.log && self.low > 0.0 {
            (x.max(self.low).ln(), self.low.ln(), self.high.ln())
        } else {
            (x, self.low, self.high)
        };
        if high > low {
            ((x - low) / (high - low)).clamp(0.0, 1.0)
        } else {
            0.5
        }
    }
}

/// The axes of the study's parameters, declared ones first, constants left out.
pub fn param_axes(view: &StudyView) -> Vec<Axis> {
    let space = &view.spec().space;
    let declared = space
        .params()
        .iter()
        .filter_map(|p| Axis::of(&p.name, &p.distribution));
    let registered = view
        .registered()
        .iter()
        .filter(|(name, _)| space.get(name).is_none())
        .filter_map(|(name, d)| Axis::of(name, d));
    declared.chain(registered).collect()
}

/// The completed trials with a finite value of `objective`, as columns. Made in one pass over
/// the trials, each one's params read once in order: a trial's params are a heap object of
/// their own, and reading them once instead of once per axis is what keeps 10⁵ trials fast.
#[derive(Debug)]
pub(crate) struct Columns {
    pub numbers: Vec<u64>,
    pub values: Vec<f64>,
    /// Per axis, per trial: its place on the axis, `None` where inactive.
    pub coords: Vec<Vec<Option<f64>>>,
}

pub(crate) fn columns(view: &StudyView, objective: usize, axes: &[Axis]) -> Columns {
    let mut by_name: Vec<(&str, usize)> = axes
        .iter()
        .enumerate()
        .map(|(i, a)| (a.name.as_str(), i))
        .collect();
    by_name.sort();
    let mut c = Columns {
        numbers: Vec::new(),
        values: Vec::new(),
        coords: vec![Vec::new(); axes.len()],
    };
    for (t, v) in completed(view, objective) {
        c.numbers.push(t.number.0);
        c.values.push(v);
        for column in &mut c.coords {
            column.push(None);
        }
        // Both sorted by name: one merge.
        let mut wanted = by_name.iter().peekable();
        for (name, value) in t.params.iter() {
            while wanted.next_if(|(n, _)| *n < name.as_str()).is_some() {}
            if let Some(&&(n, i)) = wanted.peek()
                && n == name
            {
                *c.coords[i].last_mut().unwrap() = axes[i].place(value);
            }
        }
    }
    c
}

/// The completed trials with a finite value of `objective`, with that value.
pub(crate) fn completed(
    view: &StudyView,
    objective: usize,
) -> impl Iterator<Item = (&Trial, f64)> + '_ {
    view.completed().filter_map(move |t| {
        let v = *t.values.as_ref()?.get(objective)?;
        v.is_finite().then_some((t, v))
    })
}

/// Of `items` sorted best first, at most `limit`, evenly spread over the ranks (the best
/// always kept): the shown sample looks like the whole.
fn by_rank<T: Copy>(items: &[T], limit: usize) -> Vec<T> {
    if items.len() <= limit {
        return items.to_vec();
    }
    (0..limit).map(|i| items[i * items.len() / limit]).collect()
}

pub(crate) fn sort_best_first(items: &mut [(&Trial, f64)], direction: Direction) {
    items.sort_by(|a, b| match direction {
        Direction::Minimize => a.1.total_cmp(&b.1),
        Direction::Maximize => b.1.total_cmp(&a.1),
    });
}

/// The lowest and highest finite value of `values`, widened when they are equal.
pub(crate) fn span_of(values: &[f64]) -> (f64, f64) {
    span(values.iter().copied())
}

/// The lowest and highest finite value, widened when they are equal.
fn span(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    match (lo.is_finite(), lo == hi) {
        (false, _) => (0.0, 1.0),
        (true, true) => (lo - 0.5, hi + 0.5),
        (true, false) => (lo, hi),
    }
}

// --- history -------------------------------------------------------------------------------

/// The optimization history of one objective: completed trials by number (every one while
/// they fit, else the first, last, lowest and highest of each of `width`/2 buckets), and the
/// running best, exact (one point per improvement).
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct History {
    pub objective: Option<Objective>,
    pub points: Series,
    pub best: Series,
    pub completed: u64,
    pub pruned: u64,
    pub failed: u64,
}

/// Points by trial number.
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct Series {
    pub number: Vec<u64>,
    pub value: Vec<f64>,
}

pub fn history(view: &StudyView, objective: usize, width: usize) -> History {
    let direction = view.spec().objectives[objective].direction;
    let mut plot = History {
        objective: Some(self::objective(view, objective)),
        ..History::default()
    };
    let mut all: Vec<(u64, f64)> = Vec::new();
    for t in view.trials() {
        match &t.state {
            TrialState::Completed => {
                let Some(v) = t.values.as_ref().and_then(|v| v.get(objective).copied()) else {
                    continue;
                };
                plot.completed += 1;
                all.push((t.number.0, v));
                if plot
                    .best
                    .value
                    .last()
                    .is_none_or(|&b| direction.better(v, b))
                {
                    plot.best.number.push(t.number.0);
                    plot.best.value.push(v);
                }
            }
            TrialState::Pruned { .. } => plot.pruned += 1,
            TrialState::Failed { .. } => plot.failed += 1,
            _ => {}
        }
    }
    // Two points a pixel are as many as a line shows.
    let kept = if all.len() <= 2 * width {
        all
    } else {
        m4(&all, width / 2)
    };
    (plot.points.number, plot.points.value) = kept.into_iter().unzip();
    plot
}

/// Per bucket of `x`, the first, the lowest, the highest and the last point, in order: the line
/// drawn from them looks like the line through all of them. `points` are sorted by `x`.
pub fn m4(points: &[(u64, f64)], buckets: usize) -> Vec<(u64, f64)> {
    if points.is_empty() {
        return Vec::new();
    }
    let (first, last) = (points[0].0, points[points.len() - 1].0);
    let span = (last - first + 1) as f64;
    let bucket_of = |x: u64| ((x - first) as f64 / span * buckets as f64) as usize;
    let mut out = Vec::with_capacity(4 * buckets);
    let mut start = 0;
    while start < points.len() {
        let bucket = bucket_of(points[start].0);
        let end = start
            + points[start..]
                .iter()
                .take_while(|p| bucket_of(p.0) == bucket)
                .count();
        let slice = &points[start..end];
        let lowest = slice.iter().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
        let highest = slice.iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
        let mut four = [slice[0], *lowest, *highest, slice[slice.len() - 1]];
        four.sort_by_key(|p| p.0);
        for (i, p) in four.iter().enumerate() {
            if i == 0 || four[i - 1].0 != p.0 {
                out.push(*p);
            }
        }
        start = end;
    }
    out
}

// --- parallel coordinates ------------------------------------------------------------------

/// Parallel coordinates: one line per shown trial across every parameter's axis and the
/// objective's. At most `width` lines (a line per pixel column is already a solid band),
/// spread evenly over the ranks so the picture is the whole study's; best first.
#[derive(Debug, Serialize)]
pub struct Parallel {
    pub objective: Objective,
    pub axes: Vec<Axis>,
    pub value: (f64, f64),
    pub lines: Vec<Line>,
    pub completed: u64,
}

#[derive(Debug, Serialize)]
pub struct Line {
    pub number: u64,
    pub value: f64,
    /// One per axis; `None` where the parameter was inactive.
    pub coords: Vec<Option<f64>>,
}

pub fn parallel(view: &StudyView, objective: usize, width: usize) -> Parallel {
    let axes = param_axes(view);
    let mut all: Vec<(&Trial, f64)> = completed(view, objective).collect();
    sort_best_first(&mut all, view.spec().objectives[objective].direction);
    let lines: Vec<Line> = by_rank(&all, width.min(1000))
        .into_iter()
        .map(|(t, value)| Line {
            number: t.number.0,
            value,
            coords: axes.iter().map(|a| a.coordinate(t)).collect(),
        })
        .collect();
    Parallel {
        objective: self::objective(view, objective),
        value: span(all.iter().map(|p| p.1)),
        axes,
        lines,
        completed: all.len() as u64,
    }
}

// --- slices --------------------------------------------------------------------------------

/// The objective against each parameter: one point per occupied cell of a 32 × 24 grid per
/// parameter (the cell's best trial), so dense regions are drawn, not repeated.
#[derive(Debug, Serialize)]
pub struct Slice {
    pub objective: Objective,
    pub value: (f64, f64),
    pub params: Vec<SliceParam>,
    pub completed: u64,
}

#[derive(Debug, Serialize)]
pub struct SliceParam {
    pub axis: Axis,
    pub x: Vec<f64>,
    pub value: Vec<f64>,
    pub number: Vec<u64>,
}

/// A slice panel's grid: a point per cell of about 6 × 6 pixels of a panel 190 × 150 wide.
const SLICE_GRID: (usize, usize) = (32, 24);

pub fn slice(view: &StudyView, objective: usize) -> Slice {
    let axes = param_axes(view);
    let c = columns(view, objective, &axes);
    let value = span(c.values.iter().copied());
    // Best first, so a cell shows its best trial.
    let mut order: Vec<usize> = (0..c.values.len()).collect();
    let direction = view.spec().objectives[objective].direction;
    order.sort_by(|&a, &b| match direction {
        Direction::Minimize => c.values[a].total_cmp(&c.values[b]),
        Direction::Maximize => c.values[b].total_cmp(&c.values[a]),
    });
    let (columns, rows) = SLICE_GRID;
    let params = axes
        .into_iter()
        .zip(&c.coords)
        .map(|(axis, coords)| {
            let mut seen = vec![false; columns * rows];
            let mut param = SliceParam {
                axis,
                x: Vec::new(),
                value: Vec::new(),
                number: Vec::new(),
            };
            for &i in &order {
                let Some(x) = coords[i] else { continue };
                let v = c.values[i];
                let at =
                    cell(unit_in(v, value), rows) * columns + cell(param.axis.unit(x), columns);
                if !seen[at] {
                    seen[at] = true;
                    param.x.push(x);
                    param.value.push(v);
                    param.number.push(c.numbers[i]);
                }
            }
            param
        })
        .collect();
    Slice {
        objective: self::objective(view, objective),
        value,
        params,
        completed: c.values.len() as u64,
    }
}

fn unit_in(v: f64, (lo, hi): (f64, f64)) -> f64 {
    ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
}

fn cell(unit: f64, cells: usize) -> usize {
    ((unit * cells as f64) as usize).min(cells - 1)
}

// --- contour -------------------------------------------------------------------------------

/// The objective over two parameters: its mean in each cell of a grid, 24 cells a number and
/// one a choice (`None` where no trial fell), and the trials as points, one per occupied cell of
/// a 48 × 48 grid.
#[derive(Debug, Serialize)]
pub struct Contour {
    pub objective: Objective,
    pub x: Axis,
    pub y: Axis,
    pub value: (f64, f64),
    /// 24 for a number, one per choice for a categorical.
    pub columns: usize,
    pub rows: usize,
    /// Row-major from the lowest `y`: `grid[row * columns + column]`.
    pub grid: Vec<Option<f64>>,
    pub points: (Vec<f64>, Vec<f64>),
    pub completed: u64,
}

const CONTOUR_CELLS: usize = 24;
/// The points' grid: a point per cell of about 10 × 10 pixels of the contour.
const CONTOUR_POINTS: usize = 48;

fn contour_cells(axis: &Axis) -> usize {
    axis.categories
        .as_ref()
        .map_or(CONTOUR_CELLS, |c| c.len().max(1))
}

pub fn contour(
    view: &StudyView,
    objective: usize,
    options: &Options,
) -> Result<Contour, PlotError> {
    let axes = param_axes(view);
    let find = |name: &str| {
        axes.iter()
            .find(|a| a.name == name)
            .cloned()
            .ok_or_else(|| PlotError::UnknownParam {
                name: name.to_owned(),
                known: axes
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    };
    // Unnamed axes are the first parameters the other axis is not.
    let other = |taken: Option<&str>| {
        axes.iter()
            .find(|a| Some(a.name.as_str()) != taken)
            .cloned()
            .ok_or(PlotError::NeedsTwoParams)
    };
    let x = match &options.x {
        Some(name) => find(name)?,
        None => other(options.y.as_deref())?,
    };
    let y = match &options.y {
        Some(name) => find(name)?,
        None => other(Some(&x.name))?,
    };
    if x.name == y.name {
        return Err(PlotError::NeedsTwoParams);
    }
    let both = [x.clone(), y.clone()];
    let c = columns(view, objective, &both);
    let all: Vec<(f64, f64, f64)> = (0..c.values.len())
        .filter_map(|i| Some((c.coords[0][i]?, c.coords[1][i]?, c.values[i])))
        .collect();
    let (columns, rows) = (contour_cells(&x), contour_cells(&y));
    let mut sums = vec![(0.0, 0u32); columns * rows];
    let mut seen = vec![false; CONTOUR_POINTS * CONTOUR_POINTS];
    let mut points = (Vec::new(), Vec::new());
    for &(px, py, v) in &all {
        let (ux, uy) = (x.unit(px), y.unit(py));
        let s = &mut sums[cell(uy, rows) * columns + cell(ux, columns)];
        s.0 += v;
        s.1 += 1;
        let at = cell(uy, CONTOUR_POINTS) * CONTOUR_POINTS + cell(ux, CONTOUR_POINTS);
        if !std::mem::replace(&mut seen[at], true) {
            points.0.push(px);
            points.1.push(py);
        }
    }
    let grid: Vec<Option<f64>> = sums
        .iter()
        .map(|&(sum, n)| (n > 0).then(|| sum / n as f64))
        .collect();
    Ok(Contour {
        objective: self::objective(view, objective),
        value: span(grid.iter().flatten().copied()),
        x,
        y,
        columns,
        rows,
        grid,
        points,
        completed: all.len() as u64,
    })
}

// --- intermediate values -------------------------------------------------------------------

/// Learning curves: every running trial's (the latest 50), the 20 best completed ones, and an
/// even spread of the rest up to 100 curves, each reduced to `width` buckets of steps; and
/// beside them, per step, the 10th, 50th and 90th percentile over every trial that reported.
#[derive(Debug, Serialize)]
pub struct Intermediate {
    pub objective: Objective,
    pub curves: Vec<Curve>,
    pub band: Band,
    /// Trials that reported at least one intermediate value.
    pub reporting: u64,
}

#[derive(Debug, Serialize)]
pub struct Curve {
    pub number: u64,
    pub state: &'static str,
    pub steps: Vec<u64>,
    pub values: Vec<f64>,
}

#[derive(Debug, Default, Serialize)]
pub struct Band {
    pub steps: Vec<u64>,
    pub p10: Vec<f64>,
    pub p50: Vec<f64>,
    pub p90: Vec<f64>,
}

const CURVES: usize = 100;

pub fn intermediate(view: &StudyView, width: usize) -> Intermediate {
    let direction = view.spec().objectives[0].direction;
    let reporting: Vec<&Trial> = view
        .trials()
        .iter()
        .filter(|t| !t.intermediate.is_empty())
        .collect();
    let mut chosen: Vec<&Trial> = reporting
        .iter()
        .rev()
        .filter(|t| t.state == TrialState::Running)
        .take(CURVES / 2)
        .copied()
        .collect();
    let mut done: Vec<(&Trial, f64)> = reporting
        .iter()
        .filter(|t| t.state == TrialState::Completed)
        .filter_map(|t| Some((*t, t.value().filter(|v| v.is_finite())?)))
        .collect();
    sort_best_first(&mut done, direction);
    chosen.extend(done.iter().take(20).map(|p| p.0));
    let taken: HashSet<u64> = chosen.iter().map(|t| t.number.0).collect();
    let rest: Vec<&Trial> = reporting
        .iter()
        .filter(|t| t.state != TrialState::Running && !taken.contains(&t.number.0))
        .copied()
        .collect();
    let room = CURVES.saturating_sub(chosen.len());
    chosen.extend(by_rank(&rest, room));
    chosen.sort_by_key(|t| t.number);

    let curves = chosen
        .iter()
        .map(|t| {
            let points: Vec<(u64, f64)> = t
                .intermediate
                .iter()
                .map(|(&s, &v)| (s, v))
                .filter(|p| p.1.is_finite())
                .collect();
            let points = if points.len() > 4 * width {
                m4(&points, width)
            } else {
                points
            };
            let (steps, values) = points.into_iter().unzip();
            Curve {
                number: t.number.0,
                state: t.state.name(),
                steps,
                values,
            }
        })
        .collect();
    Intermediate {
        objective: objective(view, 0),
        curves,
        band: band(&reporting, width),
        reporting: reporting.len() as u64,
    }
}

/// Per bucket of steps (a step each while they fit in `width`), percentiles over every value.
fn band(trials: &[&Trial], width: usize) -> Band {
    let Some(last) = trials
        .iter()
        .filter_map(|t| t.intermediate.keys().next_back())
        .max()
    else {
        return Band::default();
    };
    let bucket_size = last / width as u64 + 1;
    let mut buckets: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for t in trials {
        for (&step, &v) in &t.intermediate {
            if v.is_finite() {
                buckets
                    .entry(step / bucket_size * bucket_size)
                    .or_default()
                    .push(v);
            }
        }
    }
    let mut band = Band::default();
    for (step, mut values) in buckets {
        values.sort_by(f64::total_cmp);
        let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
        band.steps.push(step);
        band.p10.push(at(0.1));
        band.p50.push(at(0.5));
        band.p90.push(at(0.9));
    }
    band
}

// --- Pareto front --------------------------------------------------------------------------

/// Every trial of the Pareto front, and an even spread of up to `width` other completed trials.
/// With more than two objectives it is drawn as a scatter matrix of every pair.
#[derive(Debug, Serialize)]
pub struct Pareto {
    pub objectives: Vec<Objective>,
    pub front: Vec<Point>,
    pub others: Vec<Point>,
    pub completed: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Point {
    pub number: u64,
    pub values: Vec<f64>,
}

pub fn pareto(view: &StudyView, width: usize) -> Result<Pareto, PlotError> {
    let count = view.spec().objectives.len();
    if count < 2 {
        return Err(PlotError::OneObjective);
    }
    let point = |t: &Trial| Point {
        number: t.number.0,
        values: t.values.clone().unwrap_or_default(),
    };
    let mut front: Vec<Point> = view.pareto_front().into_iter().map(point).collect();
    front.sort_by(|a, b| a.values[0].total_cmp(&b.values[0]));
    let on_front: HashSet<u64> = front.iter().map(|p| p.number).collect();
    let rest: Vec<&Trial> = view
        .completed()
        .filter(|t| !on_front.contains(&t.number.0))
        .filter(|t| {
            t.values
                .as_ref()
                .is_some_and(|v| v.len() == count && v.iter().all(|x| x.is_finite()))
        })
        .collect();
    let others = by_rank(&rest, width).into_iter().map(point).collect();
    Ok(Pareto {
        objectives: (0..count).map(|i| objective(view, i)).collect(),
        front,
        others,
        completed: view.completed().len() as u64,
    })
}

// --- timeline ------------------------------------------------------------------------------

/// When each trial ran, in lanes: a host's trials are packed into as many lanes as it ran at
/// once (its slots). Neighbouring trials of one lane in the same state closer than a pixel
/// apart are merged into one bar that counts them, so a lane has at most about `width` bars.
#[derive(Debug, Serialize)]
pub struct Timeline {
    /// Microseconds since the Unix epoch.
    pub start: u64,
    pub end: u64,
    pub lanes: Vec<String>,
    pub bars: Vec<Bar>,
    pub trials: u64,
}

#[derive(Debug, Serialize)]
pub struct Bar {
    pub lane: usize,
    pub state: &'static str,
    pub start: u64,
    pub end: u64,
    /// The first trial of the bar, and how many it stands for.
    pub number: u64,
    pub count: u64,
}

pub fn timeline(view: &StudyView, width: usize, now: Timestamp) -> Timeline {
    let mut started: Vec<&Trial> = view
        .trials()
        .iter()
        .filter(|t| t.started_at.is_some())
        .collect();
    started.sort_by_key(|t| (t.started_at, t.number));
    let end_of = |t: &Trial| t.finished_at.unwrap_or(now).0.max(t.started_at.unwrap().0);
    let start = started.first().map_or(now.0, |t| t.started_at.unwrap().0);
    let end = started
        .iter()
        .map(|t| end_of(t))
        .max()
        .unwrap_or(now.0)
        .max(start + 1);
    let pixel = (end - start) / width.max(1) as u64;

    // Lanes: per host, the first slot free when the trial starts.
    let mut lanes: Vec<String> = Vec::new();
    let mut slots: HashMap<String, Vec<(usize, u64)>> = HashMap::new();
    let mut open: Vec<Option<Bar>> = Vec::new();
    let mut bars = Vec::new();
    for t in &started {
        let host = t
            .launch
            .as_ref()
            .or(view.launch(t.number))
            .map_or("in-process", |l| l.host.as_str());
        let (s, e) = (t.started_at.unwrap().0, end_of(t));
        let host_slots = slots.entry(host.to_owned()).or_default();
        let lane = match host_slots.iter_mut().find(|slot| slot.1 <= s) {
            Some(slot) => {
                slot.1 = e;
                slot.0
            }
            None => {
                lanes.push(format!("{host} #{}", host_slots.len() + 1));
                open.push(None);
                host_slots.push((lanes.len() - 1, e));
                lanes.len() - 1
            }
        };
        let state = t.state.name();
        match &mut open[lane] {
            Some(bar) if bar.state == state && s <= bar.end + pixel && e - s <= pixel => {
                bar.end = bar.end.max(e);
                bar.count += 1;
            }
            slot => {
                bars.extend(slot.take());
                *slot = Some(Bar {
                    lane,
                    state,
                    start: s,
                    end: e,
                    number: t.number.0,
                    count: 1,
                });
            }
        }
    }
    bars.extend(open.into_iter().flatten());
    Timeline {
        start,
        end,
        lanes,
        bars,
        trials: started.len() as u64,
    }
}

// --- comparison of studies ----------------------------------------------------------------

/// Several studies side by side: each one's running best of its first objective by trial
/// number (one point per improvement), its best trial and its counts.
#[derive(Debug, Serialize)]
pub struct Compare {
    pub studies: Vec<Compared>,
}

#[derive(Debug, Serialize)]
pub struct Compared {
    pub name: String,
    pub objective: Objective,
    pub trials: u64,
    pub completed: u64,
    pub best: Option<Point>,
    pub running_best: Series,
}

pub fn compare(views: &[&StudyView]) -> Compare {
    Compare {
        studies: views.iter().map(|v| compared(v)).collect(),
    }
}

/// One study's part of a [`Compare`].
pub fn compared(view: &StudyView) -> Compared {
    let h = history(view, 0, 1);
    let best = match (h.best.number.last(), h.best.value.last()) {
        (Some(&number), Some(&value)) => Some(Point {
            number,
            values: vec![value],
        }),
        _ => None,
    };
    Compared {
        name: view.spec().name.clone(),
        objective: objective(view, 0),
        trials: view.trials().len() as u64,
        completed: h.completed,
        best,
        running_best: h.best,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn m4_keeps_each_buckets_extremes_and_ends_in_order() {
        let points: Vec<(u64, f64)> = (0..1000).map(|i| (i, ((i * 7919) % 1000) as f64)).collect();
        let kept = m4(&points, 10);
        assert!(kept.len() <= 40 && kept.len() >= 20, "{}", kept.len());
        assert!(kept.windows(2).all(|w| w[0].0 < w[1].0));
        for bucket in points.chunks(100) {
            let low = bucket.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
            let high = bucket.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
            let inside: Vec<f64> = kept
                .iter()
                .filter(|p| p.0 >= bucket[0].0 && p.0 <= bucket[99].0)
                .map(|p| p.1)
                .collect();
            assert!(inside.contains(&low) && inside.contains(&high));
            assert_eq!(kept.iter().filter(|p| p.0 == bucket[0].0).count(), 1);
        }
    }

    #[test]
    fn by_rank_keeps_the_best_and_spreads_the_rest() {
        let items: Vec<u32> = (0..1000).collect();
        let kept = by_rank(&items, 10);
        assert_eq!(kept, vec![0, 100, 200, 300, 400, 500, 600, 700, 800, 900]);
        assert_eq!(by_rank(&items[..5], 10), vec![0, 1, 2, 3, 4]);
    }
}

//! The plots drawn as SVG: for the dashboard (inline in the page, coloured by its stylesheet),
//! `hyperion plot` and the report (standalone, with a stylesheet of their own).
//!
//! Marks carry classes (`dot`, `best`, `line`, …) and `data-` attributes (the trial number,
//! and on parallel coordinates each line's place on every axis, which the dashboard brushes
//! on) and a `<title>` as a tooltip. Colours that encode a value are computed here.

use std::fmt::Write;

use crate::importance::Importance;
use crate::plots::{
    Axis, Compare, Contour, History, Intermediate, Objective, Parallel, Pareto, Plot, Slice,
    Timeline,
};

/// What the stylesheet of a standalone SVG says; the dashboard's has the same classes.
const STYLE: &str = "svg{font:11px sans-serif;background:#fff}text{fill:#222}\
.axis,.tick{stroke:#888;fill:none}.dot{fill:#3366cc;fill-opacity:.6}\
.best{stroke:#cc3333;stroke-width:2;fill:none}.front{fill:#cc3333}\
.other{fill:#3366cc;fill-opacity:.35}.line{fill:none;stroke-opacity:.5}\
.curve{fill:none;stroke:#3366cc;stroke-opacity:.5}.curve[data-state=running]{stroke:#2a9d4b;stroke-opacity:.9}\
.curve[data-state=pruned]{stroke:#e08a1e}.mark{stroke:#e08a1e;fill:none}.band{fill:#3366cc;fill-opacity:.15}.median{stroke:#3366cc;fill:none;stroke-dasharray:4 2}\
.bar{fill:#3366cc}.tl-completed{fill:#3366cc}.tl-running{fill:#2a9d4b}\
.tl-pruned{fill:#e08a1e}.tl-failed{fill:#cc3333}.tl-pending{fill:#999}";

/// The plot as an SVG element `width` pixels wide; `standalone` adds a stylesheet, for a file
/// of its own.
pub fn draw(plot: &Plot, width: usize, standalone: bool) -> String {
    let width = width.clamp(200, 4000) as f64;
    let svg = match plot {
        Plot::History(p) => history(p, width),
        Plot::Parallel(p) => parallel(p, width),
        Plot::Slice(p) => slice(p, width),
        Plot::Contour(p) => contour(p, width),
        Plot::Intermediate(p) => intermediate(p, width),
        Plot::Pareto(p) => pareto(p, width),
        Plot::Importance(p) => importance(p, width),
        Plot::Timeline(p) => timeline(p, width),
    };
    svg.finish(standalone)
}

/// An SVG being written.
struct Svg {
    width: f64,
    height: f64,
    attrs: String,
    body: String,
}

impl Svg {
    fn new(kind: &str, width: f64, height: f64) -> Svg {
        Svg {
            width,
            height,
            attrs: format!(" data-kind=\"{kind}\""),
            body: String::new(),
        }
    }

    fn attr(&mut self, name: &str, value: impl std::fmt::Display) {
        let _ = write!(self.attrs, " {name}=\"{}\"", escape(&value.to_string()));
    }

    fn text(&mut self, x: f64, y: f64, anchor: &str, text: &str) {
        let _ = write!(
            self.body,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\">{}</text>",
            escape(text)
        );
    }

    fn line(&mut self, class: &str, (x0, y0): (f64, f64), (x1, y1): (f64, f64)) {
        let _ = write!(
            self.body,
            "<line class=\"{class}\" x1=\"{x0:.1}\" y1=\"{y0:.1}\" x2=\"{x1:.1}\" y2=\"{y1:.1}\"/>"
        );
    }

    /// A point; `title`, its tooltip, only where points are few enough for one each (a
    /// tooltip is an element of its own: dense plots would double their size).
    fn dot(
        &mut self,
        class: &str,
        (x, y): (f64, f64),
        r: f64,
        title: Option<&str>,
        number: Option<u64>,
    ) {
        let n = number.map_or(String::new(), |n| format!(" data-n=\"{n}\""));
        let _ = match title {
            Some(title) => write!(
                self.body,
                "<circle class=\"{class}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{r}\"{n}><title>{}</title></circle>",
                escape(title)
            ),
            None => write!(
                self.body,
                "<circle class=\"{class}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{r}\"{n}/>"
            ),
        };
    }

    fn rect(
        &mut self,
        class: &str,
        (x, y, w, h): (f64, f64, f64, f64),
        fill: Option<&str>,
        title: &str,
    ) {
        let fill = fill.map_or(String::new(), |f| format!(" fill=\"{f}\""));
        let _ = write!(
            self.body,
            "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\"{fill}><title>{}</title></rect>",
            w.max(0.5),
            h.max(0.5),
            escape(title)
        );
    }

    fn path(&mut self, class: &str, d: &str) {
        let _ = write!(self.body, "<path class=\"{class}\" d=\"{d}\"/>");
    }

    fn finish(self, standalone: bool) -> String {
        let (w, h) = (self.width, self.height);
        // The namespace always: the dashboard parses the drawing as an SVG document.
        let style = if standalone {
            format!("<style>{STYLE}</style>")
        } else {
            String::new()
        };
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\" width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\"{}>{style}{}</svg>",
            self.attrs, self.body
        )
    }
}

pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A number as a short label.
pub fn fmt(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v == v.trunc() && v.abs() < 1e6 {
        return format!("{v:.0}");
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.2e}");
    }
    let digits = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// A value between 0 and 1 as a colour from dark blue through green to yellow (viridis).
pub fn colour(t: f64) -> String {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    } * 4.0;
    let i = (t as usize).min(3);
    let u = t - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * u).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(a.0, b.0),
        mix(a.1, b.1),
        mix(a.2, b.2)
    )
}

/// A value's unit on its scale as a colour's brightness: better values are brighter, whichever
/// the direction.
fn brightness(direction: hyperion_core::Direction, unit: f64) -> f64 {
    match direction {
        hyperion_core::Direction::Minimize => 1.0 - unit,
        hyperion_core::Direction::Maximize => unit,
    }
}

/// A rectangle of the picture that maps data to pixels: x and y each from `low` to `high`.
#[derive(Clone, Copy)]
struct Frame {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
}

impl Frame {
    fn x(&self, unit: f64) -> f64 {
        self.left + unit * self.width
    }
    fn y(&self, unit: f64) -> f64 {
        self.top + (1.0 - unit) * self.height
    }
    fn at(&self, ux: f64, uy: f64) -> (f64, f64) {
        (self.x(ux), self.y(uy))
    }
}

/// A linear scale (or logarithmic, for positive log axes).
#[derive(Clone, Copy)]
struct Scale {
    low: f64,
    high: f64,
    log: bool,
}

impl Scale {
    fn linear((low, high): (f64, f64)) -> Scale {
        Scale {
            low,
            high,
            log: false,
        }
    }
    fn of(axis: &Axis) -> Scale {
        let (low, high) = if axis.high > axis.low {
            (axis.low, axis.high)
        } else {
            (axis.low - 0.5, axis.high + 0.5)
        };
        Scale {
            low,
            high,
            log: axis.log && axis.low > 0.0,
        }
    }
    fn unit(&self, v: f64) -> f64 {
        let (v, lo, hi) = if self.log {
            (v.max(self.low).ln(), self.low.ln(), self.high.ln())
        } else {
            (v, self.low, self.high)
        };
        if hi > lo { (v - lo) / (hi - lo) } else { 0.5 }
    }
    fn at_unit(&self, u: f64) -> f64 {
        if self.log {
            (self.low.ln() + u * (self.high.ln() - self.low.ln())).exp()
        } else {
            self.low + u * (self.high - self.low)
        }
    }
}

/// The ticks of an axis, at units from 0 to 1, with their labels: five evenly spaced for
/// numbers, one per choice for a categorical.
fn ticks(scale: Scale, categories: Option<&Vec<String>>) -> Vec<(f64, String)> {
    match categories {
        Some(names) => names
            .iter()
            .enumerate()
            .map(|(i, n)| (scale.unit(i as f64), n.clone()))
            .collect(),
        None => (0..=4)
            .map(|i| (i as f64 / 4.0, fmt(scale.at_unit(i as f64 / 4.0))))
            .collect(),
    }
}

/// The frame's axes with their ticks and labels, and the axis titles.
fn axes(
    svg: &mut Svg,
    f: Frame,
    x: (Scale, Option<&Vec<String>>),
    y: (Scale, Option<&Vec<String>>),
    x_title: &str,
    y_title: &str,
) {
    svg.line("axis", f.at(0.0, 0.0), f.at(1.0, 0.0));
    svg.line("axis", f.at(0.0, 0.0), f.at(0.0, 1.0));
    for (u, label) in ticks(x.0, x.1) {
        let (px, py) = f.at(u, 0.0);
        svg.line("tick", (px, py), (px, py + 4.0));
        svg.text(px, py + 15.0, "middle", &label);
    }
    for (u, label) in ticks(y.0, y.1) {
        let (qx, qy) = f.at(0.0, u);
        svg.line("tick", (qx - 4.0, qy), (qx, qy));
        svg.text(qx - 6.0, qy + 4.0, "end", &label);
    }
    svg.text(f.x(0.5), f.top + f.height + 30.0, "middle", x_title);
    svg.text(f.left, f.top - 6.0, "start", y_title);
}

fn value_title(o: &Objective) -> String {
    format!("{} ({})", o.metric, o.direction.name())
}

fn empty(svg: &mut Svg, message: &str) {
    let (x, y) = (svg.width / 2.0, svg.height / 2.0);
    svg.text(x, y, "middle", message);
}

fn history(p: &History, width: f64) -> Svg {
    let mut svg = Svg::new("history", width, 300.0);
    svg.attr("data-points", p.points.number.len());
    svg.attr("data-best", p.best.number.len());
    let Some(o) = &p.objective else {
        return svg;
    };
    if p.points.number.is_empty() {
        empty(&mut svg, "no completed trial yet");
        return svg;
    }
    let f = Frame {
        left: 64.0,
        top: 20.0,
        width: width - 80.0,
        height: 240.0,
    };
    let first = p.points.number[0] as f64;
    let last = (*p.points.number.last().unwrap() as f64).max(first + 1.0);
    let x = Scale::linear((first, last));
    let y = Scale::linear(crate::plots::span_of(&p.points.value));
    axes(&mut svg, f, (x, None), (y, None), "trial", &value_title(o));
    for (&n, &v) in p.points.number.iter().zip(&p.points.value) {
        let at = f.at(x.unit(n as f64), y.unit(v));
        svg.dot(
            "dot",
            at,
            2.0,
            Some(&format!("trial {n}: {}", fmt(v))),
            Some(n),
        );
    }
    let mut d = String::new();
    for (i, (&n, &v)) in p.best.number.iter().zip(&p.best.value).enumerate() {
        let next = p.best.number.get(i + 1).map_or(last, |&m| m as f64);
        let (x0, y0) = f.at(x.unit(n as f64), y.unit(v));
        let x1 = f.x(x.unit(next));
        let _ = write!(
            d,
            "{}{x0:.1},{y0:.1}L{x1:.1},{y0:.1}",
            if i == 0 { "M" } else { "L" }
        );
    }
    svg.path("best", &d);
    svg
}

fn parallel(p: &Parallel, width: f64) -> Svg {
    let mut svg = Svg::new("parallel", width, 340.0);
    svg.attr("data-lines", p.lines.len());
    svg.attr("data-completed", p.completed);
    if p.lines.is_empty() {
        empty(&mut svg, "no completed trial yet");
        return svg;
    }
    let count = p.axes.len() + 1;
    let f = Frame {
        left: 40.0,
        top: 30.0,
        width: width - 100.0,
        height: 270.0,
    };
    let ax = |i: usize| f.x(i as f64 / (count - 1).max(1) as f64);
    let value = Scale::linear(p.value);
    let scales: Vec<Scale> = p.axes.iter().map(Scale::of).collect();
    // Worst first, so the best lines are drawn on top.
    for line in p.lines.iter().rev() {
        let mut units: Vec<Option<f64>> = line
            .coords
            .iter()
            .zip(&scales)
            .map(|(c, s)| c.map(|c| s.unit(c)))
            .collect();
        let v = value.unit(line.value);
        units.push(Some(v));
        let mut d = String::new();
        let mut pen = false;
        for (i, u) in units.iter().enumerate() {
            match u {
                Some(u) => {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1}",
                        if pen { "L" } else { "M" },
                        ax(i),
                        f.y(*u)
                    );
                    pen = true;
                }
                None => pen = false,
            }
        }
        let data: Vec<String> = units
            .iter()
            .map(|u| u.map_or(String::new(), |u| format!("{u:.4}")))
            .collect();
        let better = brightness(p.objective.direction, v);
        let _ = write!(
            svg.body,
            "<path class=\"line\" d=\"{d}\" stroke=\"{}\" data-n=\"{}\" data-u=\"{}\"><title>trial {}: {}</title></path>",
            colour(better),
            line.number,
            data.join(","),
            line.number,
            fmt(line.value)
        );
    }
    let names = p
        .axes
        .iter()
        .map(|a| a.name.clone())
        .chain([p.objective.metric.clone()]);
    for (i, name) in names.enumerate() {
        let x = ax(i);
        let scale = scales.get(i).copied().unwrap_or(value);
        let categories = p.axes.get(i).and_then(|a| a.categories.as_ref());
        let _ = write!(svg.body, "<g class=\"paxis\" data-axis=\"{i}\">");
        svg.line("axis", (x, f.y(0.0)), (x, f.y(1.0)));
        svg.text(x, f.top - 12.0, "middle", &name);
        match categories {
            Some(names) => {
                for (k, c) in names.iter().enumerate() {
                    svg.text(x + 4.0, f.y(scale.unit(k as f64)) + 4.0, "start", c);
                }
            }
            None => {
                svg.text(x + 4.0, f.y(1.0) + 4.0, "start", &fmt(scale.at_unit(1.0)));
                svg.text(x + 4.0, f.y(0.0) + 4.0, "start", &fmt(scale.at_unit(0.0)));
            }
        }
        // The brush's handle: a band a little wider than the axis.
        let _ = write!(
            svg.body,
            "<rect class=\"brush\" x=\"{:.1}\" y=\"{:.1}\" width=\"16\" height=\"{:.1}\" fill=\"transparent\"/></g>",
            x - 8.0,
            f.top,
            f.height
        );
    }
    svg
}

fn slice(p: &Slice, width: f64) -> Svg {
    let panel = (260.0f64).min(width);
    let columns = ((width / panel) as usize).max(1);
    let rows = p.params.len().div_ceil(columns).max(1);
    let mut svg = Svg::new("slice", width, rows as f64 * 220.0);
    svg.attr(
        "data-points",
        p.params.iter().map(|s| s.x.len()).sum::<usize>(),
    );
    if p.completed == 0 {
        empty(&mut svg, "no completed trial yet");
        return svg;
    }
    let y = Scale::linear(p.value);
    for (i, s) in p.params.iter().enumerate() {
        let (col, row) = ((i % columns) as f64, (i / columns) as f64);
        let f = Frame {
            left: col * panel + 56.0,
            top: row * 220.0 + 20.0,
            width: panel - 70.0,
            height: 150.0,
        };
        let x = Scale::of(&s.axis);
        let title = if i % columns == 0 {
            p.objective.metric.as_str()
        } else {
            ""
        };
        axes(
            &mut svg,
            f,
            (x, s.axis.categories.as_ref()),
            (y, None),
            &s.axis.name,
            title,
        );
        for ((&px, &v), &n) in s.x.iter().zip(&s.value).zip(&s.number) {
            let at = f.at(x.unit(px), y.unit(v));
            svg.dot("dot", at, 2.0, None, Some(n));
        }
    }
    svg
}

fn contour(p: &Contour, width: f64) -> Svg {
    let side = (width - 140.0).clamp(150.0, 480.0);
    let mut svg = Svg::new("contour", width, side + 60.0);
    svg.attr("data-points", p.points.0.len());
    svg.attr("data-cells", p.grid.iter().flatten().count());
    let f = Frame {
        left: 64.0,
        top: 20.0,
        width: side,
        height: side,
    };
    let (x, y) = (Scale::of(&p.x), Scale::of(&p.y));
    let v = Scale::linear(p.value);
    let (cw, ch) = (side / p.columns as f64, side / p.rows as f64);
    for (i, mean) in p.grid.iter().enumerate() {
        let Some(mean) = mean else { continue };
        let (col, row) = ((i % p.columns) as f64, (i / p.columns) as f64);
        let better = brightness(p.objective.direction, v.unit(*mean));
        let rect = (f.left + col * cw, f.top + side - (row + 1.0) * ch, cw, ch);
        svg.rect(
            "cell",
            rect,
            Some(&colour(better)),
            &format!("mean {}: {}", p.objective.metric, fmt(*mean)),
        );
    }
    axes(
        &mut svg,
        f,
        (x, p.x.categories.as_ref()),
        (y, p.y.categories.as_ref()),
        &p.x.name,
        &p.y.name,
    );
    for (&px, &py) in p.points.0.iter().zip(&p.points.1) {
        let at = f.at(p.x.unit(px), p.y.unit(py));
        svg.dot("dot", at, 1.5, None, None);
    }
    // The colour key.
    let kx = f.left + side + 20.0;
    for k in 0..20 {
        let u = (k as f64 + 0.5) / 20.0;
        let fill = colour(brightness(p.objective.direction, u));
        svg.rect(
            "key",
            (kx, f.y((k + 1) as f64 / 20.0), 12.0, side / 20.0 + 0.5),
            Some(&fill),
            "",
        );
    }
    svg.text(kx + 16.0, f.y(1.0) + 8.0, "start", &fmt(p.value.1));
    svg.text(kx + 16.0, f.y(0.0), "start", &fmt(p.value.0));
    svg
}

fn intermediate(p: &Intermediate, width: f64) -> Svg {
    let mut svg = Svg::new("intermediate", width, 300.0);
    svg.attr("data-curves", p.curves.len());
    svg.attr("data-reporting", p.reporting);
    if p.curves.is_empty() {
        empty(&mut svg, "no trial has reported an intermediate value");
        return svg;
    }
    let f = Frame {
        left: 64.0,
        top: 20.0,
        width: width - 80.0,
        height: 240.0,
    };
    let steps = p
        .curves
        .iter()
        .flat_map(|c| c.steps.iter().map(|&s| s as f64))
        .chain(p.band.steps.iter().map(|&s| s as f64));
    let x = Scale::linear(crate::plots::span_of(&steps.collect::<Vec<_>>()));
    let values: Vec<f64> = p
        .curves
        .iter()
        .flat_map(|c| c.values.iter().copied())
        .chain(p.band.p10.iter().copied())
        .chain(p.band.p90.iter().copied())
        .collect();
    let y = Scale::linear(crate::plots::span_of(&values));
    axes(
        &mut svg,
        f,
        (x, None),
        (y, None),
        "step",
        &format!("intermediate {}", p.objective.metric),
    );
    if !p.band.steps.is_empty() {
        let mut d = String::new();
        for (i, (&s, &v)) in p.band.steps.iter().zip(&p.band.p90).enumerate() {
            let (px, py) = f.at(x.unit(s as f64), y.unit(v));
            let _ = write!(d, "{}{px:.1},{py:.1}", if i == 0 { "M" } else { "L" });
        }
        for (&s, &v) in p.band.steps.iter().zip(&p.band.p10).rev() {
            let (px, py) = f.at(x.unit(s as f64), y.unit(v));
            let _ = write!(d, "L{px:.1},{py:.1}");
        }
        svg.path("band", &format!("{d}Z"));
        let median: Vec<String> = p
            .band
            .steps
            .iter()
            .zip(&p.band.p50)
            .enumerate()
            .map(|(i, (&s, &v))| {
                let (px, py) = f.at(x.unit(s as f64), y.unit(v));
                format!("{}{px:.1},{py:.1}", if i == 0 { "M" } else { "L" })
            })
            .collect();
        svg.path("median", &median.concat());
    }
    for c in &p.curves {
        let d: Vec<String> = c
            .steps
            .iter()
            .zip(&c.values)
            .enumerate()
            .map(|(i, (&s, &v))| {
                let (px, py) = f.at(x.unit(s as f64), y.unit(v));
                format!("{}{px:.1},{py:.1}", if i == 0 { "M" } else { "L" })
            })
            .collect();
        let _ = write!(
            svg.body,
            "<path class=\"curve\" data-state=\"{}\" d=\"{}\" data-n=\"{}\"><title>trial {} ({})</title></path>",
            c.state,
            d.concat(),
            c.number,
            c.number,
            c.state
        );
        if c.state == "pruned"
            && let (Some(&s), Some(&v)) = (c.steps.last(), c.values.last())
        {
            let (px, py) = f.at(x.unit(s as f64), y.unit(v));
            svg.path(
                "mark",
                &format!("M{:.1},{:.1}l6,6m0,-6l-6,6", px - 3.0, py - 3.0),
            );
        }
    }
    svg
}

fn pareto(p: &Pareto, width: f64) -> Svg {
    let k = p.objectives.len();
    let pairs: Vec<(usize, usize)> = if k == 2 {
        vec![(0, 1)]
    } else {
        (0..k)
            .flat_map(|i| (0..k).filter(move |&j| j != i).map(move |j| (j, i)))
            .collect()
    };
    let cell = if k == 2 {
        (width - 90.0).min(520.0)
    } else {
        ((width - 20.0) / k as f64).min(240.0)
    };
    let height = if k == 2 {
        cell.min(420.0) + 60.0
    } else {
        cell * k as f64 + 20.0
    };
    let mut svg = Svg::new("pareto", width, height);
    svg.attr("data-front", p.front.len());
    svg.attr("data-others", p.others.len());
    if p.front.is_empty() {
        empty(&mut svg, "no completed trial yet");
        return svg;
    }
    let scales: Vec<Scale> = (0..k)
        .map(|i| {
            Scale::linear(crate::plots::span_of(
                &p.front
                    .iter()
                    .chain(&p.others)
                    .map(|t| t.values[i])
                    .collect::<Vec<_>>(),
            ))
        })
        .collect();
    for &(xi, yi) in &pairs {
        let f = if k == 2 {
            Frame {
                left: 64.0,
                top: 20.0,
                width: cell,
                height: cell.min(420.0),
            }
        } else {
            Frame {
                left: xi as f64 * cell + 50.0,
                top: yi as f64 * cell + 14.0,
                width: cell - 60.0,
                height: cell - 50.0,
            }
        };
        let (mx, my) = (&p.objectives[xi], &p.objectives[yi]);
        axes(
            &mut svg,
            f,
            (scales[xi], None),
            (scales[yi], None),
            &mx.metric,
            &my.metric,
        );
        for (class, points) in [("other", &p.others), ("front", &p.front)] {
            for t in points.iter() {
                let at = f.at(scales[xi].unit(t.values[xi]), scales[yi].unit(t.values[yi]));
                let values: Vec<String> = t.values.iter().map(|v| fmt(*v)).collect();
                svg.dot(
                    class,
                    at,
                    if class == "front" { 3.0 } else { 2.0 },
                    Some(&format!("trial {}: {}", t.number, values.join(", "))),
                    Some(t.number),
                );
            }
        }
    }
    svg
}

fn importance(p: &Importance, width: f64) -> Svg {
    let row = 24.0;
    let mut svg = Svg::new("importance", width, p.params.len() as f64 * row + 50.0);
    svg.attr("data-params", p.params.len());
    svg.attr("data-top", p.top);
    if p.params.is_empty() {
        empty(&mut svg, "no parameter yet");
        return svg;
    }
    let label = 150.0;
    let bar_width = (width - label - 140.0).max(50.0);
    svg.text(
        label,
        14.0,
        "start",
        &format!(
            "importance for {} (PED-ANOVA, top 10% = {} trials)",
            p.objective.metric, p.top
        ),
    );
    svg.text(label + bar_width + 70.0, 14.0, "middle", "Spearman ρ");
    for (i, param) in p.params.iter().enumerate() {
        let y = 30.0 + i as f64 * row;
        svg.text(label - 8.0, y + 15.0, "end", &param.name);
        svg.rect(
            "bar",
            (label, y + 3.0, param.importance * bar_width, row - 8.0),
            None,
            &format!("{}: {:.3}", param.name, param.importance),
        );
        svg.text(
            label + param.importance * bar_width + 6.0,
            y + 15.0,
            "start",
            &format!("{:.3}", param.importance),
        );
        let rho = param
            .spearman
            .map_or("–".to_owned(), |r| format!("{r:+.2}"));
        svg.text(label + bar_width + 70.0, y + 15.0, "middle", &rho);
    }
    svg
}

fn timeline(p: &Timeline, width: f64) -> Svg {
    let lane = 18.0;
    let mut svg = Svg::new("timeline", width, p.lanes.len() as f64 * lane + 60.0);
    svg.attr("data-bars", p.bars.len());
    svg.attr("data-trials", p.trials);
    if p.bars.is_empty() {
        empty(&mut svg, "no trial has started yet");
        return svg;
    }
    let left = 130.0;
    let f = Frame {
        left,
        top: 10.0,
        width: width - left - 20.0,
        height: p.lanes.len() as f64 * lane,
    };
    let span = (p.end - p.start) as f64;
    let px = |t: u64| f.left + (t - p.start) as f64 / span * f.width;
    for (i, name) in p.lanes.iter().enumerate() {
        svg.text(left - 6.0, f.top + i as f64 * lane + 13.0, "end", name);
    }
    for b in &p.bars {
        let (x0, x1) = (px(b.start), px(b.end));
        let title = if b.count == 1 {
            format!("trial {} ({})", b.number, b.state)
        } else {
            format!("{} trials from {} ({})", b.count, b.number, b.state)
        };
        svg.rect(
            &format!("tl-{}", b.state),
            (x0, f.top + b.lane as f64 * lane + 2.0, x1 - x0, lane - 4.0),
            None,
            &title,
        );
    }
    let bottom = f.top + f.height;
    svg.line("axis", (f.left, bottom), (f.left + f.width, bottom));
    for i in 0..=4 {
        let u = i as f64 / 4.0;
        let x = f.x(u);
        svg.line("tick", (x, bottom), (x, bottom + 4.0));
        svg.text(
            x,
            bottom + 16.0,
            "middle",
            &format!("{} s", fmt(u * span / 1e6)),
        );
    }
    svg.text(
        f.x(0.5),
        bottom + 34.0,
        "middle",
        "time since the first trial started",
    );
    svg
}

/// Several studies' running bests on one chart, a colour each, with a key.
pub fn compare(c: &Compare, width: usize, standalone: bool) -> String {
    let width = width.clamp(200, 4000) as f64;
    let mut svg = Svg::new("compare", width, 320.0 + 18.0 * c.studies.len() as f64);
    svg.attr("data-studies", c.studies.len());
    let values: Vec<f64> = c
        .studies
        .iter()
        .flat_map(|s| s.running_best.value.iter().copied())
        .collect();
    if values.is_empty() {
        empty(&mut svg, "no completed trial yet");
        return svg.finish(standalone);
    }
    let last = c.studies.iter().map(|s| s.trials.max(1)).max().unwrap_or(1) as f64;
    let f = Frame {
        left: 64.0,
        top: 20.0,
        width: width - 80.0,
        height: 240.0,
    };
    let (x, y) = (
        Scale::linear((0.0, last)),
        Scale::linear(crate::plots::span_of(&values)),
    );
    axes(
        &mut svg,
        f,
        (x, None),
        (y, None),
        "trial",
        "best value so far",
    );
    for (k, s) in c.studies.iter().enumerate() {
        let hue = colour(k as f64 / (c.studies.len().max(2) - 1) as f64 * 0.85);
        let mut d = String::new();
        for (i, (&n, &v)) in s
            .running_best
            .number
            .iter()
            .zip(&s.running_best.value)
            .enumerate()
        {
            let next = s
                .running_best
                .number
                .get(i + 1)
                .map_or(s.trials as f64, |&m| m as f64);
            let (x0, y0) = f.at(x.unit(n as f64), y.unit(v));
            let x1 = f.x(x.unit(next));
            let _ = write!(
                d,
                "{}{x0:.1},{y0:.1}L{x1:.1},{y0:.1}",
                if i == 0 { "M" } else { "L" }
            );
        }
        let _ = write!(
            svg.body,
            "<path class=\"study\" d=\"{d}\" stroke=\"{hue}\" stroke-width=\"2\" fill=\"none\" data-study=\"{}\"><title>{}</title></path>",
            escape(&s.name),
            escape(&s.name)
        );
        let ky = f.top + f.height + 44.0 + 18.0 * k as f64;
        svg.rect("key", (f.left, ky - 9.0, 14.0, 10.0), Some(&hue), &s.name);
        let best = s.best.as_ref().map_or("no result".to_owned(), |b| {
            format!("best {} (trial {})", fmt(b.values[0]), b.number)
        });
        svg.text(
            f.left + 20.0,
            ky,
            "start",
            &format!("{} — {} trials, {}", s.name, s.trials, best),
        );
    }
    svg.finish(standalone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_short() {
        assert_eq!(fmt(3.0), "3");
        assert_eq!(fmt(0.123456), "0.1235");
        assert_eq!(fmt(12.5), "12.5");
        assert_eq!(fmt(1e-7), "1.00e-7");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn colours_run_from_dark_to_bright() {
        assert_eq!(colour(0.0), "#440154");
        assert_eq!(colour(1.0), "#fde725");
        assert_eq!(colour(f64::NAN), "#440154");
    }
}

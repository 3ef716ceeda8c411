//! Plot data, aggregated on the server to what a screen can show: no response grows with the
//! study beyond a few points per pixel.

use hyperion_core::{Direction, StudyView, TrialState};

/// The optimization history of one objective: completed trials by number (every one while
/// they fit, else the first, last, lowest and highest of each of `width` buckets), and the
/// running best, exact (one point per improvement).
#[derive(Debug, Default, PartialEq)]
pub struct History {
    pub points: (Vec<u64>, Vec<f64>),
    pub best: (Vec<u64>, Vec<f64>),
    pub completed: u64,
    pub pruned: u64,
    pub failed: u64,
}

pub fn history(view: &StudyView, objective: usize, width: usize) -> History {
    let direction = view.spec().objectives[objective].direction;
    let better = |a: f64, b: f64| match direction {
        Direction::Minimize => a < b,
        Direction::Maximize => a > b,
    };
    let mut plot = History::default();
    let mut all: Vec<(u64, f64)> = Vec::new();
    for t in view.trials() {
        match &t.state {
            TrialState::Completed => {
                let Some(v) = t.values.as_ref().and_then(|v| v.get(objective).copied()) else {
                    continue;
                };
                plot.completed += 1;
                all.push((t.number.0, v));
                if plot.best.1.last().is_none_or(|&b| better(v, b)) {
                    plot.best.0.push(t.number.0);
                    plot.best.1.push(v);
                }
            }
            TrialState::Pruned { .. } => plot.pruned += 1,
            TrialState::Failed { .. } => plot.failed += 1,
            _ => {}
        }
    }
    let kept = if all.len() <= 4 * width {
        all
    } else {
        m4(&all, width)
    };
    plot.points = kept.into_iter().unzip();
    plot
}

/// Per bucket of numbers, the first, the lowest, the highest and the last point, in order:
/// the line drawn from them looks like the line through all of them.
fn m4(points: &[(u64, f64)], buckets: usize) -> Vec<(u64, f64)> {
    let (first, last) = (points[0].0, points[points.len() - 1].0);
    let span = (last - first + 1) as f64;
    let mut out = Vec::with_capacity(4 * buckets);
    let mut start = 0;
    while start < points.len() {
        let bucket = ((points[start].0 - first) as f64 / span * buckets as f64) as usize;
        let mut end = start;
        while end < points.len()
            && ((points[end].0 - first) as f64 / span * buckets as f64) as usize == bucket
        {
            end += 1;
        }
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
}

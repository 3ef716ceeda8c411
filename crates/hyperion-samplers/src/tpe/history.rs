//! The incremental cache of completed trials: their losses, each parameter's values as a
//! column on TPE's scale, those values in sorted order, and the truncated masses of kernels at
//! the clip's bandwidth — extended as trials complete, so that no suggestion rereads or
//! re-sorts the history.

use std::collections::HashMap;
use std::sync::Arc;

use hyperion_core::{Direction, Param, Params, StudyView};

use super::dim::Dim;
use super::parzen::truncated_mass;
use crate::numerics::cdf_table;

/// The completed trials seen so far, with each parameter's values as a column on TPE's scale.
#[derive(Debug, Default)]
pub(super) struct History {
    /// How many of the view's completed trials have been read, and the view's revisions then.
    pub(super) seen: usize,
    revisions: u64,
    /// One entry per completed trial with finite values: losses (to minimize) and params.
    pub(super) losses: Vec<Vec<f64>>,
    pub(super) params: Vec<Arc<Params>>,
    /// Per parameter name, its value in each entry (absent: inactive there).
    pub(super) columns: HashMap<String, Vec<Option<f64>>>,
    /// Per parameter name, its values with their entries, in increasing order (kept sorted
    /// as entries arrive, so no suggestion sorts the history).
    pub(super) sorted: HashMap<String, Vec<(f64, u32)>>,
    /// Per parameter name: a bandwidth, and per entry the truncated mass of a kernel at the
    /// entry's value with that bandwidth (see [`History::clip_masses`]).
    pub(super) clip: HashMap<String, (f64, Vec<f64>)>,
}

impl History {
    pub(super) fn update(&mut self, view: &StudyView) {
        if view.revisions() != self.revisions {
            // Values it read were revised (a re-evaluation): read them all again.
            *self = History {
                revisions: view.revisions(),
                ..History::default()
            };
        }
        let directions: Vec<Direction> =
            view.spec().objectives.iter().map(|o| o.direction).collect();
        for t in view.completed().skip(self.seen) {
            self.seen += 1;
            let Some(values) = &t.values else { continue };
            if values.len() != directions.len() || values.iter().any(|v| !v.is_finite()) {
                continue;
            }
            let losses = values
                .iter()
                .zip(&directions)
                .map(|(v, d)| if *d == Direction::Minimize { *v } else { -*v });
            self.losses.push(losses.collect());
            self.params.push(t.params.clone());
        }
    }

    /// Keeps, per entry of `param`'s column, the truncated mass of a kernel at its value with
    /// bandwidth `sigma`: computed once as entries arrive (again only if the clip's bandwidth
    /// changes, which it stops doing after a few trials), so that estimators take most masses
    /// from here rather than from the normal CDF.
    pub(super) fn clip_masses(&mut self, param: &Param, dim: &Dim, sigma: f64) {
        let Dim::Numeric { low, high, .. } = *dim else {
            return;
        };
        let History { columns, clip, .. } = self;
        let column = &columns[&param.name];
        let (kept_sigma, masses) = clip
            .entry(param.name.clone())
            .or_insert((sigma, Vec::new()));
        if kept_sigma.to_bits() != sigma.to_bits() {
            *kept_sigma = sigma;
            masses.clear();
        }
        let (table, inv) = (cdf_table(), 1.0 / sigma);
        for value in &column[masses.len()..] {
            masses.push(value.map_or(f64::NAN, |mu| truncated_mass(table, mu, inv, low, high)));
        }
    }

    /// The column of `param`, extended to every entry.
    pub(super) fn column(&mut self, param: &Param, dim: &Dim) -> &[Option<f64>] {
        let column = self.columns.entry(param.name.clone()).or_default();
        let sorted = self.sorted.entry(param.name.clone()).or_default();
        let mut arrived = Vec::new();
        for (entry, params) in self.params.iter().enumerate().skip(column.len()) {
            let value = params
                .get(&param.name)
                .and_then(|v| dim.observe(&param.distribution, v));
            if let Some(v) = value {
                arrived.push((v, entry as u32));
            }
            column.push(value);
        }
        // One or a few new trials: insert them. Many (a reopened study): sort once.
        if arrived.len() * 8 > sorted.len() {
            sorted.extend(arrived);
            sorted.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        } else {
            for (v, entry) in arrived {
                let at = sorted.partition_point(|&(w, _)| w.total_cmp(&v).is_lt());
                sorted.insert(at, (v, entry));
            }
        }
        column
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyperion_core::{
        Change, FloatDistribution, LoggedChange, Objective, ParamValue, SearchSpace, StudyId,
        StudySpec, Timestamp, TrialId, TrialNumber, TrialState,
    };

    #[test]
    fn values_revised_after_they_were_read_are_read_again() {
        let space = SearchSpace::builder()
            .param("x", FloatDistribution::new(0.0, 1.0))
            .build()
            .unwrap();
        let spec = StudySpec::new("s", vec![Objective::minimize("loss")], space);
        let mut view = StudyView::new(StudyId(1), spec);
        let changes = [
            Change::TrialCreated {
                id: TrialId(1),
                number: TrialNumber(0),
                state: TrialState::Running,
                params: Arc::new([("x".to_string(), ParamValue::Float(0.5))].into()),
                parent: None,
                depth: 0,
                retry_of: None,
            },
            Change::TrialFinished {
                number: TrialNumber(0),
                state: TrialState::Completed,
                values: Some(vec![2.0]),
            },
            Change::ValuesRevised {
                number: TrialNumber(0),
                values: vec![1.0],
                version: 1,
            },
        ];
        let mut history = History::default();
        for (seq, change) in changes.into_iter().enumerate() {
            let logged = LoggedChange {
                seq: seq as u64 + 1,
                at: Timestamp(seq as u64),
                change,
            };
            view.apply(&logged, &mut Vec::new()).unwrap();
            history.update(&view);
        }
        assert_eq!(history.losses, [[1.0]], "the revised value, once");
    }
}

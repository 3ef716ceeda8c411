//! Samplers against generated spaces: every value in its domain, reproducible, grids exhaustive.

mod cmaes;
mod domain;
mod nsga2;
mod reproducible;
mod tpe;

use hyperion_core::{Objective, SearchSpace, StudyId, StudySpec, StudyView};

fn view(space: &SearchSpace) -> StudyView {
    StudyView::new(
        StudyId(1),
        StudySpec::new("t", vec![Objective::minimize("y")], space.clone()),
    )
}

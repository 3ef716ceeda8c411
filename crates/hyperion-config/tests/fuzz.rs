//! Study files, overrides, durations, search spaces and metric lines from outside never make the parsers
//! panic, and their errors name what was wrong. The generators and the checks live in
//! `hyperion-fuzz`, shared with `bench/fuzz`, which runs them for longer.

use hyperion_fuzz::{Scratch, seeds};
use proptest::prelude::*;

/// The mutations start from valid files: a seed that no longer loads tests far less.
#[test]
fn every_seed_loads() {
    let scratch = Scratch::new();
    for (k, seed) in seeds::STUDY_FILES.iter().enumerate() {
        let path = scratch.write(seed.file, seed.text.as_bytes());
        if let Err(e) = hyperion_config::load(&path, &[]) {
            panic!("seed {k} does not load: {e}");
        }
    }
    for space in seeds::SPACES {
        hyperion_config::parse_space(space).unwrap();
    }
}

#[test]
fn study_files_never_panic_and_errors_name_the_file() {
    let scratch = Scratch::new();
    proptest!(|(input in hyperion_fuzz::study_file())| {
        hyperion_fuzz::check_load(&scratch, &input).map_err(TestCaseError::fail)?;
    });
}

#[test]
fn overrides_never_panic_and_errors_name_the_override() {
    let scratch = Scratch::new();
    proptest!(|(input in hyperion_fuzz::overrides())| {
        hyperion_fuzz::check_overrides(&scratch, &input).map_err(TestCaseError::fail)?;
    });
}

proptest! {
    #[test]
    fn durations_never_panic_and_errors_quote_the_text(text in hyperion_fuzz::duration_text()) {
        hyperion_fuzz::check_duration(&text).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn search_spaces_never_panic(json in hyperion_fuzz::space_json()) {
        hyperion_fuzz::check_space(&json).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn metric_lines_never_panic_and_give_finite_values(input in hyperion_fuzz::metric_line()) {
        hyperion_fuzz::check_metric_line(&input).map_err(TestCaseError::fail)?;
    }
}

//! Storage URLs from outside never make `sqlite_path` panic, and an error names the URL. The
//! generator and the check live in `hyperion-fuzz`, shared with `bench/fuzz`.

use proptest::prelude::*;

proptest! {
    #[test]
    fn storage_urls_never_panic_and_errors_name_the_url(url in hyperion_fuzz::storage_url()) {
        hyperion_fuzz::check_storage_url(&url).map_err(TestCaseError::fail)?;
    }
}

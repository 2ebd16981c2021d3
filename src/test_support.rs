//! Shared test set-up for the in-crate unit tests.

use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};

/// The property-test configuration every in-crate proptest block uses: proptest's defaults,
/// with failing cases kept beside the test's source file (`<file>.proptest-regressions`), so a
/// regression found once is replayed on every later run and can be committed with the fix.
pub fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// A command line as a test writes it, split on whitespace (no argument holds a space).
pub fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

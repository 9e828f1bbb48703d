//! Test hook for crash testing: abort the plugin process at a named step.
//!
//! When the environment variable [`ABORT_AT`] equals the label passed to [`point`], the process
//! calls [`std::process::abort`] right there — no destructors, no rollback, no output — as if it
//! had been killed with SIGKILL at that step. Unset (always, outside the integration tests) it
//! does nothing but one environment lookup. Labels are `<plugin>:<step>`; the integration suite
//! (`integration/tests/faults_*.rs`) lists the ones it drives.

/// The environment variable naming the label to abort at.
pub const ABORT_AT: &str = "CNI_TEST_ABORT_AT";

/// Aborts the process if [`ABORT_AT`] is set to `label`; otherwise returns at once.
pub fn point(label: &str) {
    if std::env::var_os(ABORT_AT).is_some_and(|v| v == label) {
        std::process::abort();
    }
}

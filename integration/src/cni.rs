//! CNI protocol vocabulary for assertions: versions, error objects, result normalisation.

use serde::Deserialize;
use serde_json::Value;

use crate::process::Output;

/// Spec versions our plugins support, in order.
pub const SUPPORTED_VERSIONS: &[&str] = &[
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

/// A CNI error object as printed on stdout. Unknown keys are rejected so a stray field fails.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CniError {
    /// `cniVersion` (absent in Go's errors; required from ours).
    #[serde(rename = "cniVersion")]
    pub cni_version: Option<String>,
    /// Error code.
    pub code: u32,
    /// Short message.
    pub msg: String,
    /// Longer explanation; omitted when empty.
    pub details: Option<String>,
}

impl CniError {
    /// `msg` and `details` joined, for "contains" checks on wrapped messages.
    pub fn text(&self) -> String {
        match &self.details {
            Some(d) => format!("{}: {d}", self.msg),
            None => self.msg.clone(),
        }
    }
}

impl Output {
    /// Panics unless the call succeeded with a JSON result on stdout; returns it.
    #[track_caller]
    pub fn result(&self) -> Value {
        self.expect_success();
        self.json()
    }

    /// Panics unless the call failed with exit code 1 and a CNI error object on stdout.
    #[track_caller]
    pub fn cni_error(&self) -> CniError {
        assert_eq!(
            self.status,
            Some(1),
            "expected exit code 1 with a CNI error\n{}",
            self.describe()
        );
        let err: CniError = serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not a CNI error object ({e})\n{}",
                self.describe()
            )
        });
        assert!(
            err.details.as_deref() != Some(""),
            "empty `details` must be omitted\n{}",
            self.describe()
        );
        err
    }

    /// Panics unless the call failed with `code` and a message containing `msg_part`
    /// (searched in `msg` and `details`). Returns the error for further checks.
    #[track_caller]
    pub fn expect_error(&self, code: u32, msg_part: &str) -> CniError {
        let err = self.cni_error();
        assert_eq!(err.code, code, "wrong error code\n{}", self.describe());
        assert!(
            err.text().contains(msg_part),
            "error message does not contain {msg_part:?}\n{}",
            self.describe()
        );
        err
    }
}

/// Removes, recursively, object members whose value is `null`, `{}` or `[]`.
///
/// Go omits empty fields inconsistently (`"dns": {}` in some versions, absent in others); the
/// tests compare results after this so they assert meaning, not serialiser quirks.
pub fn strip_empty(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, strip_empty(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_empty).collect()),
        other => other,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

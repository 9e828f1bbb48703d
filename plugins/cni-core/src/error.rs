//! CNI errors: the well-known codes and the JSON error object printed on stdout.

use serde::Serialize;

/// An error and its causes, joined with `": "` (how every plugin words a failure's `msg`).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// A CNI error code: the spec's well-known ones, or a plugin-specific one (100 and up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 1: incompatible CNI version.
    IncompatibleVersion,
    /// 2: unsupported field in the network configuration.
    UnsupportedField,
    /// 3: container unknown or does not exist.
    UnknownContainer,
    /// 4: invalid necessary environment variables.
    InvalidEnvironment,
    /// 5: I/O failure.
    IoFailure,
    /// 6: failed to decode content.
    DecodingFailure,
    /// 7: invalid network config.
    InvalidNetworkConfig,
    /// 11: try again later.
    TryAgainLater,
    /// 50: STATUS — the plugin is not available.
    NotAvailable,
    /// 51: STATUS — not available, existing containers may have limited connectivity.
    NotAvailableLimitedConnectivity,
    /// A plugin-specific code (100 and up).
    Plugin(u32),
}

impl ErrorCode {
    /// The numeric code written into the error JSON.
    pub fn as_u32(self) -> u32 {
        match self {
            ErrorCode::IncompatibleVersion => 1,
            ErrorCode::UnsupportedField => 2,
            ErrorCode::UnknownContainer => 3,
            ErrorCode::InvalidEnvironment => 4,
            ErrorCode::IoFailure => 5,
            ErrorCode::DecodingFailure => 6,
            ErrorCode::InvalidNetworkConfig => 7,
            ErrorCode::TryAgainLater => 11,
            ErrorCode::NotAvailable => 50,
            ErrorCode::NotAvailableLimitedConnectivity => 51,
            ErrorCode::Plugin(n) => n,
        }
    }

    /// The code for a numeric value read back from another plugin's error JSON.
    pub fn from_u32(n: u32) -> ErrorCode {
        match n {
            1 => ErrorCode::IncompatibleVersion,
            2 => ErrorCode::UnsupportedField,
            3 => ErrorCode::UnknownContainer,
            4 => ErrorCode::InvalidEnvironment,
            5 => ErrorCode::IoFailure,
            6 => ErrorCode::DecodingFailure,
            7 => ErrorCode::InvalidNetworkConfig,
            11 => ErrorCode::TryAgainLater,
            50 => ErrorCode::NotAvailable,
            51 => ErrorCode::NotAvailableLimitedConnectivity,
            other => ErrorCode::Plugin(other),
        }
    }
}

/// Plugin-specific codes shared across the suite (100 and up).
pub mod codes {
    /// A plugin operation failed for a reason without a more specific code.
    pub const PLUGIN_FAILURE: u32 = 100;
    /// The delegated (IPAM) plugin could not be found or executed.
    pub const DELEGATE_EXEC: u32 = 101;
    /// The delegated plugin printed something that is neither a result nor an error.
    pub const DELEGATE_OUTPUT: u32 = 102;
    /// A result could not be converted to the requested version.
    pub const RESULT_CONVERSION: u32 = 103;
    /// Entering or using the container's network namespace failed.
    pub const NETNS: u32 = 104;
    /// A kernel (netlink) operation failed.
    pub const KERNEL: u32 = 105;
}

/// An error as the spec defines it: printed as JSON on stdout, exit status 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    /// The error code.
    pub code: ErrorCode,
    /// Short message.
    pub msg: String,
    /// Longer details; omitted from the JSON when empty.
    pub details: String,
}

impl CniError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// Adds details.
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// Code 7 (invalid network config).
    pub fn invalid_config(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidNetworkConfig, msg)
    }

    /// Code 4 (invalid environment).
    pub fn invalid_env(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidEnvironment, msg)
    }

    /// A plugin-specific code.
    pub fn plugin(code: u32, msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::Plugin(code), msg)
    }

    /// The error JSON object, stamped with `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "cniVersion")]
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        serde_json::to_value(Wire {
            cni_version,
            code: self.code.as_u32(),
            msg: &self.msg,
            details: &self.details,
        })
        .unwrap_or(serde_json::Value::Null)
    }
}

impl std::fmt::Display for CniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.details.is_empty() {
            write!(f, "{}", self.msg)
        } else {
            write!(f, "{}; {}", self.msg, self.details)
        }
    }
}

impl std::error::Error for CniError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_omits_empty_details_and_carries_version() {
        let e = CniError::invalid_config("missing network name");
        assert_eq!(
            e.to_json("1.1.0").to_string(),
            r#"{"cniVersion":"1.1.0","code":7,"msg":"missing network name"}"#
        );
        let e = CniError::plugin(110, "x").with_details("y");
        assert_eq!(e.to_json("0.4.0")["details"], "y");
        assert_eq!(e.to_json("0.4.0")["code"], 110);
    }

    #[test]
    fn codes_round_trip() {
        for n in [1, 2, 3, 4, 5, 6, 7, 11, 50, 51, 100, 999] {
            assert_eq!(ErrorCode::from_u32(n).as_u32(), n);
        }
    }
}

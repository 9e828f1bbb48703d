//! The host's sysctl allow-list: `/etc/cni/tuning/allowlist.conf`, one regular expression per
//! line. When the file exists, every sysctl of a config must match one of them.
//!
//! Patterns use Go's (RE2) syntax with ASCII `\d`, `\w`, `\s`, as the reference reads them, and
//! match anywhere in the key (anchor with `^…$`). A key is allowed when the pattern matches the key
//! as written or its dotted form (so `net/core/somaxconn` passes `^net\.core\.somaxconn$`). Empty
//! lines and lines starting with `#` are skipped.
//!
//! The path can be moved with the `CNI_TUNING_ALLOWLIST` environment variable (for tests; the
//! variable comes from whoever runs the plugin, never from the network config).

use std::path::{Path, PathBuf};

use cni_core::CniError;
use regex::bytes::{Regex, RegexBuilder};

use crate::sysctls::SysctlEntry;

/// Where the reference reads the allow-list.
pub const DEFAULT_PATH: &str = "/etc/cni/tuning/allowlist.conf";

/// Environment variable that moves the allow-list (tests).
pub const PATH_ENV: &str = "CNI_TUNING_ALLOWLIST";

/// The allow-list path: `CNI_TUNING_ALLOWLIST` when set and non-empty, else [`DEFAULT_PATH`].
pub fn path(lookup: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    lookup(PATH_ENV)
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_PATH), PathBuf::from)
}

/// A parsed allow-list.
#[derive(Debug, Clone)]
pub struct AllowList {
    patterns: Vec<String>,
    regexes: Vec<Regex>,
}

impl AllowList {
    /// Reads the allow-list at `path`; `None` when there is no such file (no restriction).
    pub fn load(path: &Path) -> Result<Option<AllowList>, CniError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CniError::invalid_config(format!(
                "failed to read the sysctl allow-list {}: {e}",
                path.display()
            ))),
        }
    }

    /// Parses allow-list text (`path` only names the file in errors).
    pub fn parse(text: &str, path: &Path) -> Result<AllowList, CniError> {
        let mut patterns = Vec::new();
        let mut regexes = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let re = RegexBuilder::new(line)
                .unicode(false)
                .build()
                .map_err(|e| {
                    CniError::invalid_config(format!(
                        "invalid pattern on line {} of the sysctl allow-list {}",
                        n + 1,
                        path.display()
                    ))
                    .with_details(e.to_string())
                })?;
            patterns.push(line.to_string());
            regexes.push(re);
        }
        Ok(AllowList { patterns, regexes })
    }

    /// True when `entry` matches a pattern.
    pub fn allows(&self, entry: &SysctlEntry) -> bool {
        self.regexes
            .iter()
            .any(|re| re.is_match(entry.raw.as_bytes()) || re.is_match(entry.canonical.as_bytes()))
    }

    /// Code 7 with the reference's message for the first key not allowed.
    pub fn check(&self, entries: &[SysctlEntry]) -> Result<(), CniError> {
        match entries.iter().find(|e| !self.allows(e)) {
            None => Ok(()),
            Some(e) => Err(CniError::invalid_config(format!(
                "Sysctl {} is not allowed. Only the following sysctls are allowed: [{}]",
                e.raw,
                self.patterns.join(" ")
            ))),
        }
    }
}

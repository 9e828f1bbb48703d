//! `validate`: everything libcni would reject (with libcni's wording), and what libcni lets
//! through that fails later — per-plugin schemas taken from the plugins' own config types,
//! address and chain semantics, cross-file conflicts, plugin binaries and their versions.
//!
//! Each [`Finding`] names its severity, rule, file, JSON path, line:column, message and hint.

mod binaries;
mod dir;
mod ipam;
mod list;
mod plugin;
mod probe;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::host::HostSnapshot;
use crate::model::{ConfDir, ConfFile};
use crate::span::{JsonPath, Pos, SpanIndex};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// libcni or a plugin will refuse it.
    Error,
    /// Works, but surprises: ignored keys, shadowed files, risky values.
    Warning,
    /// Worth knowing.
    Info,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        })
    }
}

/// One problem found in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Severity.
    pub severity: Severity,
    /// Stable rule identifier, e.g. `bridge-value`.
    pub rule: &'static str,
    /// The file.
    pub file: PathBuf,
    /// JSON path inside the file (`.` for the whole file).
    pub path: String,
    /// Where in the file, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Column, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub col: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(l), Some(c)) = (self.line, self.col) {
            write!(f, ":{l}:{c}")?;
        }
        write!(
            f,
            ": {} [{}] {}: {}",
            self.severity, self.rule, self.path, self.message
        )?;
        if let Some(h) = &self.hint {
            write!(f, "\n    hint: {h}")?;
        }
        Ok(())
    }
}

/// What validation may look at besides the files.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// CNI path for the binary and VERSION checks; empty skips them.
    pub cni_path: Vec<PathBuf>,
    /// The host, for checks against live links (macvlan master, bridge name clashes).
    pub host: Option<HostSnapshot>,
}

/// Collects the findings of one file.
pub(crate) struct Report<'a> {
    file: &'a Path,
    spans: SpanIndex,
    findings: Vec<Finding>,
}

impl<'a> Report<'a> {
    pub(crate) fn new(file: &'a ConfFile) -> Report<'a> {
        Report {
            file: &file.path,
            spans: file.spans(),
            findings: Vec::new(),
        }
    }

    pub(crate) fn spans(&self) -> &SpanIndex {
        &self.spans
    }

    /// Adds a finding located at `path` (or its nearest existing ancestor).
    pub(crate) fn add(
        &mut self,
        severity: Severity,
        rule: &'static str,
        path: &JsonPath,
        message: impl Into<String>,
    ) -> &mut Finding {
        let pos = self.spans.nearest(path);
        self.add_at(severity, rule, path, pos, message)
    }

    /// Adds a finding at an explicit position.
    pub(crate) fn add_at(
        &mut self,
        severity: Severity,
        rule: &'static str,
        path: &JsonPath,
        pos: Option<Pos>,
        message: impl Into<String>,
    ) -> &mut Finding {
        self.findings.push(Finding {
            severity,
            rule,
            file: self.file.to_owned(),
            path: path.to_string(),
            line: pos.map(|p| p.line),
            col: pos.map(|p| p.col),
            message: message.into(),
            hint: None,
        });
        let last = self.findings.len() - 1;
        &mut self.findings[last]
    }

    /// Whether an error is already reported at `path`.
    pub(crate) fn has_error_at(&self, path: &JsonPath) -> bool {
        let text = path.to_string();
        self.findings
            .iter()
            .any(|f| f.severity == Severity::Error && f.path == text)
    }

    pub(crate) fn into_findings(self) -> Vec<Finding> {
        self.findings
    }
}

impl Finding {
    /// Sets the hint.
    pub fn hint(&mut self, hint: impl Into<String>) -> &mut Finding {
        self.hint = Some(hint.into());
        self
    }
}

/// Validates one file on its own (no cross-file checks).
pub fn validate_file(file: &ConfFile, opts: &Options) -> Vec<Finding> {
    let mut report = Report::new(file);
    if let Some(doc) = list::check(file, &mut report) {
        for (i, p) in doc.plugins.iter().enumerate() {
            plugin::check(&doc, i, p, opts, &mut report);
        }
        plugin::check_chain(&doc, &mut report);
        if !opts.cni_path.is_empty() {
            binaries::check(&doc, &opts.cni_path, &mut report);
        }
    }
    report.into_findings()
}

/// Validates every file of a directory and the conflicts between them.
pub fn validate_dir(dir: &ConfDir, opts: &Options) -> Vec<Finding> {
    let mut findings: Vec<Finding> = dir
        .files
        .iter()
        .flat_map(|f| validate_file(f, opts))
        .collect();
    findings.extend(dir::check(dir, opts));
    findings
}

/// Only the cross-file rules of a directory.
pub fn validate_cross(dir: &ConfDir, opts: &Options) -> Vec<Finding> {
    dir::check(dir, opts)
}

/// True when any finding is an error.
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

#[cfg(test)]
mod tests;

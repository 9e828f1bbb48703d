//! Plugin binaries: every plugin type (and delegated IPAM type) must be in the CNI path, and its
//! VERSION must list the config's version — libcni's `ValidateNetworkList`, with its messages.

use std::path::PathBuf;

use serde_json::Value;

use super::list::Doc;
use super::{Report, Severity};
use crate::runtime::invoke::{self, InvokeError};
use crate::span::JsonPath;

/// Checks the binaries of every plugin of `doc`.
pub(crate) fn check(doc: &Doc, cni_path: &[PathBuf], r: &mut Report<'_>) {
    for (path, obj) in &doc.plugins {
        let mut wanted: Vec<(JsonPath, String)> = Vec::new();
        if let Some(t) = obj.get("type").and_then(Value::as_str) {
            wanted.push((path.key("type"), t.to_owned()));
        }
        if let Some(t) = obj
            .get("ipam")
            .and_then(|i| i.get("type"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            wanted.push((path.key("ipam").key("type"), t.to_owned()));
        }
        for (at, plugin_type) in wanted {
            check_one(doc, &at, &plugin_type, cni_path, r);
        }
    }
}

fn check_one(
    doc: &Doc,
    at: &JsonPath,
    plugin_type: &str,
    cni_path: &[PathBuf],
    r: &mut Report<'_>,
) {
    let binary = match invoke::find(plugin_type, cni_path) {
        Ok(b) => b,
        Err(e @ InvokeError::NotFound { .. }) => {
            r.add(Severity::Error, "plugin-missing", at, e.to_string())
                .hint(format!("install the {plugin_type} plugin into one of the CNI path directories, or pass --cni-path"));
            return;
        }
        Err(_) => return, // invalid names are reported by the plugin rules
    };
    if doc.version.is_empty() {
        return;
    }
    match invoke::versions(&binary, &doc.version) {
        Ok(supported) if supported.iter().any(|v| v == &doc.version) => {}
        Ok(supported) => {
            r.add(
                Severity::Error,
                "plugin-version",
                at,
                format!(
                    "plugin {plugin_type} does not support config version {:?}",
                    doc.version
                ),
            )
            .hint(format!(
                "{} supports {}",
                binary.display(),
                supported.join(", ")
            ));
        }
        Err(e) => {
            r.add(
                Severity::Error,
                "plugin-version",
                at,
                format!(
                    "plugin {plugin_type} ({}) failed VERSION: {e}",
                    binary.display()
                ),
            );
        }
    }
}

//! List-level rules: JSON syntax, the top-level keys libcni reads (with its messages), version
//! selection, podman's `args`, duplicate keys.

use cni_core::CniVersion;
use serde_json::{Map, Value};

use super::{Report, Severity};
use crate::model::{self, ConfFile, FileKind, LoadError};
use crate::span::{JsonPath, Pos};

/// What the plugin rules need to know about the list.
pub(crate) struct Doc {
    /// Network name ("" when missing).
    pub name: String,
    /// The version libcni would select (as written; "" when none).
    pub version: String,
    /// That version, when it is one we know.
    pub known_version: Option<CniVersion>,
    /// Plugin objects with their paths.
    pub plugins: Vec<(JsonPath, Map<String, Value>)>,
}

const LIST_KEYS: [&str; 8] = [
    "cniVersion",
    "cniVersions",
    "name",
    "disableCheck",
    "disableGC",
    "loadOnlyInlinedPlugins",
    "plugins",
    "args",
];

fn root() -> JsonPath {
    JsonPath::root()
}

/// Checks the list level; returns what plugin rules need, or `None` when the file is not JSON.
pub(crate) fn check(file: &ConfFile, r: &mut Report<'_>) -> Option<Doc> {
    let value = match model::parse_json(&file.bytes) {
        Ok(v) => v,
        Err(LoadError::Syntax { message, line, col }) => {
            let pos = (line > 0).then_some(Pos {
                line,
                col: col.max(1),
            });
            r.add_at(Severity::Error, "json-syntax", &root(), pos, message)
                .hint(
                    "fix the JSON; libcni refuses the file and aborts every lookup that reaches it",
                );
            return None;
        }
        Err(e) => {
            r.add(Severity::Error, "file-read", &root(), e.to_string());
            return None;
        }
    };
    let dups: Vec<(JsonPath, Pos)> = r.spans().duplicates().to_vec();
    for (path, pos) in dups {
        r.add_at(
            Severity::Warning,
            "json-duplicate-key",
            &path,
            Some(pos),
            "duplicate key: only the last one counts",
        )
        .hint("remove the earlier occurrence");
    }
    let Value::Object(top) = value else {
        r.add(Severity::Error, "list-not-object", &root(), format!(
            "error parsing configuration list: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            model::json_kind(&value)
        ));
        return None;
    };
    if file.kind == FileKind::Single {
        return Some(single(top, r));
    }
    if top.contains_key("type") && !top.contains_key("plugins") {
        r.add(Severity::Error, "list-is-single-plugin", &root(), "this is a single-plugin configuration, not a list: it has 'type' and no 'plugins'")
            .hint("rename the file to .conf, or wrap the object: {\"cniVersion\":…, \"name\":…, \"plugins\":[ … ]}");
    }
    let name = check_name(&top, r);
    let version = check_versions(&top, r);
    for key in ["disableCheck", "disableGC", "loadOnlyInlinedPlugins"] {
        check_flag(&top, key, r);
    }
    check_args(&top, r);
    for key in top.keys().filter(|k| !LIST_KEYS.contains(&k.as_str())) {
        r.add(
            Severity::Warning,
            "list-unknown-key",
            &root().key(key),
            format!("unknown list key {key:?}: libcni ignores it"),
        )
        .hint("plugin settings belong inside a plugin object of 'plugins'");
    }
    let plugins = match top.get("plugins") {
        None => {
            r.add(
                Severity::Error,
                "list-plugins",
                &root(),
                "error parsing configuration list: no 'plugins' key",
            );
            Vec::new()
        }
        Some(Value::Array(items)) if items.is_empty() => {
            r.add(
                Severity::Error,
                "list-plugins",
                &root().key("plugins"),
                "error parsing configuration list: no plugins in list",
            );
            Vec::new()
        }
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let path = root().key("plugins").index(i);
                match item {
                    Value::Object(m) => out.push((path, m.clone())),
                    other => {
                        r.add(Severity::Error, "plugin-not-object", &path, format!(
                            "failed to parse plugin config {i}: json: cannot unmarshal {} into Go value of type types.NetConf",
                            model::json_kind(other)
                        ));
                    }
                }
            }
            out
        }
        Some(other) => {
            r.add(
                Severity::Error,
                "list-plugins",
                &root().key("plugins"),
                format!(
                    "error parsing configuration list: invalid 'plugins' type {}",
                    model::go_type(other)
                ),
            );
            Vec::new()
        }
    };
    if plugins.len() > 1 && version.1.is_some_and(|v| v < CniVersion::V0_3_0) {
        r.add(Severity::Error, "list-version-chaining", &root().key("cniVersion"), format!(
            "cniVersion {} has no plugin chaining (prevResult): a list of {} plugins needs 0.3.0 or later",
            version.0, plugins.len()
        ));
    }
    Some(Doc {
        name,
        version: version.0,
        known_version: version.1,
        plugins,
    })
}

fn single(top: Map<String, Value>, r: &mut Report<'_>) -> Doc {
    let name = top
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if let Err(e) = cni_core::validate::network_name(&name) {
        r.add(Severity::Error, "list-name", &root().key("name"), e.msg);
    }
    let version = top
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    r.add(Severity::Info, "single-plugin-file", &root(), "single-plugin configuration: libcni wraps it into a one-plugin list, and only when no .conflist defines the name")
        .hint("prefer a .conflist; the spec removed single-plugin configurations in 1.0.0");
    Doc {
        name,
        known_version: CniVersion::parse(&version),
        version,
        plugins: vec![(root(), top)],
    }
}

fn check_name(top: &Map<String, Value>, r: &mut Report<'_>) -> String {
    match top.get("name") {
        None => {
            r.add(
                Severity::Error,
                "list-name",
                &root(),
                "error parsing configuration list: no name",
            )
            .hint("add \"name\": \"<network name>\"");
            String::new()
        }
        Some(Value::String(s)) => {
            if let Err(e) = cni_core::validate::network_name(s) {
                r.add(Severity::Error, "list-name", &root().key("name"), format!("{}: {s:?}", e.msg))
                    .hint("names must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$ (they become directory names and chain comments)");
            }
            s.clone()
        }
        Some(other) => {
            r.add(
                Severity::Error,
                "list-name",
                &root().key("name"),
                format!(
                    "error parsing configuration list: invalid name type {}",
                    model::go_type(other)
                ),
            );
            String::new()
        }
    }
}

fn check_versions(top: &Map<String, Value>, r: &mut Report<'_>) -> (String, Option<CniVersion>) {
    let path = root().key("cniVersion");
    let known = CniVersion::ALL.map(CniVersion::as_str).join(", ");
    let version = match top.get("cniVersion") {
        None => {
            r.add(
                Severity::Warning,
                "list-version",
                &root(),
                "no cniVersion: plugins treat the list as 0.1.0 (no CHECK, no chaining)",
            )
            .hint(format!("add \"cniVersion\" (one of {known})"));
            String::new()
        }
        Some(Value::String(s)) => {
            if CniVersion::parse(s).is_none() {
                r.add(
                    Severity::Error,
                    "list-version",
                    &path,
                    format!(
                        "unknown cniVersion {s:?}: plugins refuse it (incompatible CNI versions)"
                    ),
                )
                .hint(format!("use one of {known}"));
            }
            s.clone()
        }
        Some(other) => {
            r.add(
                Severity::Error,
                "list-version",
                &path,
                format!(
                    "error parsing configuration list: invalid cniVersion type {}",
                    model::go_type(other)
                ),
            );
            String::new()
        }
    };
    let mut versions = Vec::new();
    match top.get("cniVersions") {
        None => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(s) if CniVersion::parse(s).is_some() => versions.push(s.to_owned()),
                    Some(s) => {
                        r.add(
                            Severity::Warning,
                            "list-versions",
                            &root().key("cniVersions").index(i),
                            format!("unknown version {s:?} in cniVersions is never selected"),
                        );
                    }
                    None => {
                        r.add(Severity::Error, "list-versions", &root().key("cniVersions").index(i), format!(
                            "error parsing configuration list: invalid cniVersions entry {item} at index {i}"
                        ));
                    }
                }
            }
        }
        Some(other) => {
            r.add(
                Severity::Error,
                "list-versions",
                &root().key("cniVersions"),
                format!(
                    "error parsing configuration list: invalid type for cniVersions: {}",
                    model::go_type(other)
                ),
            );
        }
    }
    let selected = model::select_version(&version, &versions);
    let known_version = CniVersion::parse(&selected);
    if known_version == Some(CniVersion::V1_1_0) {
        r.add(Severity::Info, "list-version-1.1", &path, "cniVersion 1.1.0 needs libcni 1.2 or later: podman 4 and cnitool built on libcni 1.1 fail to parse its results")
            .hint("use \"cniVersions\": [\"1.0.0\", \"1.1.0\"] so older runtimes pick 1.0.0");
    }
    (selected, known_version)
}

fn check_flag(top: &Map<String, Value>, key: &'static str, r: &mut Report<'_>) {
    let path = root().key(key);
    match top.get(key) {
        None | Some(Value::Bool(_)) => {}
        Some(Value::String(s))
            if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") =>
        {
            r.add(Severity::Warning, "list-flag-string", &path, format!("{key} given as the string {s:?}: libcni 1.2+ accepts it, libcni 1.1 (podman 4, Debian's cnitool) refuses the file"))
                .hint(format!("write {key}: {}", s.to_ascii_lowercase()));
        }
        Some(other) => {
            r.add(
                Severity::Error,
                "list-flag",
                &path,
                format!("error parsing configuration list: invalid value {other} for {key}"),
            )
            .hint("use true or false");
        }
    }
}

fn check_args(top: &Map<String, Value>, r: &mut Report<'_>) {
    let Some(args) = top.get("args") else { return };
    let path = root().key("args");
    let Some(args) = args.as_object() else {
        r.add(
            Severity::Warning,
            "list-args",
            &path,
            "args is not an object: podman ignores it",
        );
        return;
    };
    for key in [crate::podman::LABELS_KEY, crate::podman::OPTIONS_KEY] {
        let Some(map) = args.get(key) else { continue };
        let Some(map) = map.as_object() else {
            r.add(
                Severity::Warning,
                "list-args",
                &path.key(key),
                format!("args.{key} is not an object: podman ignores it"),
            );
            continue;
        };
        for (k, v) in map.iter().filter(|(_, v)| !v.is_string()) {
            r.add(
                Severity::Warning,
                "list-args",
                &path.key(key).key(k),
                format!(
                    "args.{key}.{k} is {}, not a string: podman drops it",
                    model::json_kind(v)
                ),
            )
            .hint(format!(
                "write it as a string: \"{}\"",
                v.to_string().trim_matches('"')
            ));
        }
    }
}

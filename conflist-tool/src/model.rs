//! Network configuration lists as libcni loads them: the list-level keys, the plugin objects,
//! and the directory lookup (files sorted by name, first match wins, a broken file visited
//! earlier aborts the lookup). Error texts are libcni's.

use serde_json::{Map, Value};

/// Why a file cannot be loaded as libcni would load it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read.
    #[error("error reading {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error text.
        reason: String,
    },
    /// Not JSON (serde's message, with where).
    #[error("error parsing configuration list: {message}")]
    Syntax {
        /// What is wrong.
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
    },
    /// JSON, but not an object.
    #[error(
        "error parsing configuration list: json: cannot unmarshal {0} into Go value of type map[string]interface {{}}"
    )]
    NotObject(&'static str),
    /// No `name`.
    #[error("error parsing configuration list: no name")]
    NoName,
    /// `name` is not a string.
    #[error("error parsing configuration list: invalid name type {0}")]
    NameType(&'static str),
    /// `cniVersion` is not a string.
    #[error("error parsing configuration list: invalid cniVersion type {0}")]
    VersionType(&'static str),
    /// `cniVersions` is not a list.
    #[error("error parsing configuration list: invalid type for cniVersions: {0}")]
    VersionsType(&'static str),
    /// A `cniVersions` entry is not a string.
    #[error("error parsing configuration list: invalid cniVersions entry {value} at index {index}")]
    VersionsEntry {
        /// The entry as JSON.
        value: String,
        /// Its index.
        index: usize,
    },
    /// `disableCheck` / `disableGC` / `loadOnlyInlinedPlugins` is neither a bool nor "true"/"false".
    #[error("error parsing configuration list: invalid value {value} for {key}")]
    Flag {
        /// The key.
        key: &'static str,
        /// The value as JSON.
        value: String,
    },
    /// `plugins` is not a list.
    #[error("error parsing configuration list: invalid 'plugins' type {0}")]
    PluginsType(&'static str),
    /// `loadOnlyInlinedPlugins` without `plugins`.
    #[error(
        "error parsing configuration list: `loadOnlyInlinedPlugins` is true, and no 'plugins' key"
    )]
    InlinedWithoutPlugins,
    /// No plugin at all (inline or aggregated).
    #[error("error parsing configuration list: no plugins in list")]
    NoPlugins,
    /// One plugin object is unusable.
    #[error("failed to parse plugin config {index}: error parsing configuration: {reason}")]
    Plugin {
        /// 0-based index in `plugins`.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// A loaded network configuration list.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfList {
    /// `name`.
    pub name: String,
    /// `cniVersion` as written ("" when absent).
    pub cni_version: String,
    /// `cniVersions` (1.1).
    pub cni_versions: Vec<String>,
    /// `disableCheck`.
    pub disable_check: bool,
    /// `disableGC`.
    pub disable_gc: bool,
    /// `loadOnlyInlinedPlugins`.
    pub load_only_inlined: bool,
    /// The plugin objects in chain order (inline ones, then aggregated `<dir>/<name>/*.conf`).
    pub plugins: Vec<Map<String, Value>>,
    /// The whole top-level object.
    pub raw: Map<String, Value>,
    /// The file's bytes (what libcni caches as `config`).
    pub bytes: Vec<u8>,
}

impl ConfList {
    /// The plugin types in order.
    pub fn plugin_types(&self) -> Vec<String> {
        self.plugins
            .iter()
            .map(|p| {
                p.get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            })
            .collect()
    }
}

/// libcni's version selection: the highest of `cniVersions` ∪ {`cniVersion`} that libcni knows
/// (versions it does not know are never selected; with no known one, `cniVersion` as written).
pub fn select_version(version: &str, versions: &[String]) -> String {
    let mut best = cni_core::CniVersion::parse(version);
    for v in versions
        .iter()
        .filter_map(|v| cni_core::CniVersion::parse(v))
    {
        best = best.max(Some(v));
    }
    best.map_or_else(|| version.to_owned(), |v| v.as_str().to_owned())
}

/// Go's `%T` of a decoded JSON value.
pub fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Go's name of a JSON value kind in `json: cannot unmarshal X into …`.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Parses bytes as JSON; syntax errors carry serde's line and column.
pub fn parse_json(bytes: &[u8]) -> Result<Value, LoadError> {
    serde_json::from_slice(bytes).map_err(|e| LoadError::Syntax {
        message: e.to_string(),
        line: e.line(),
        col: e.column(),
    })
}

fn flag(map: &Map<String, Value>, key: &'static str) -> Result<bool, LoadError> {
    match map.get(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(LoadError::Flag {
            key,
            value: other.to_string(),
        }),
    }
}

/// libcni's `types.NetConf` decode of one plugin object: `type` required and a string, and the
/// well-known keys of the right JSON types.
pub fn check_plugin_object(index: usize, value: &Value) -> Result<Map<String, Value>, LoadError> {
    let err = |reason: String| LoadError::Plugin { index, reason };
    let Value::Object(map) = value else {
        return Err(err(format!(
            "json: cannot unmarshal {} into Go value of type types.NetConf",
            json_kind(value)
        )));
    };
    let wrong = |field: &str, go: &str, v: &Value| {
        err(format!(
            "json: cannot unmarshal {} into Go struct field NetConf.{field} of type {go}",
            json_kind(v)
        ))
    };
    for (key, go) in [
        ("cniVersion", "string"),
        ("name", "string"),
        ("type", "string"),
    ] {
        if let Some(v) = map.get(key).filter(|v| !v.is_string() && !v.is_null()) {
            return Err(wrong(key, go, v));
        }
    }
    if let Some(v) = map.get("capabilities").filter(|v| !v.is_null()) {
        let ok = v
            .as_object()
            .is_some_and(|caps| caps.values().all(|c| c.is_boolean() || c.is_null()));
        if !ok {
            return Err(wrong("capabilities", "map[string]bool", v));
        }
    }
    if let Some(v) = map.get("ipam").filter(|v| !v.is_null()) {
        match v.get("type") {
            _ if !v.is_object() => return Err(wrong("ipam", "types.IPAM", v)),
            Some(t) if !t.is_string() && !t.is_null() => {
                return Err(wrong("ipam.type", "string", t));
            }
            _ => {}
        }
    }
    if let Some(v) = map.get("dns").filter(|v| !v.is_null() && !v.is_object()) {
        return Err(wrong("dns", "types.DNS", v));
    }
    match map.get("type").and_then(Value::as_str) {
        None | Some("") => Err(err("missing 'type'".to_owned())),
        Some(_) => Ok(map.clone()),
    }
}

/// libcni `ConfListFromBytes` (HEAD rules), with `aggregated` plugin objects appended when the
/// list does not forbid it.
pub fn parse_conflist(bytes: &[u8], aggregated: &[Value]) -> Result<ConfList, LoadError> {
    let value = parse_json(bytes)?;
    let Value::Object(raw) = value else {
        return Err(LoadError::NotObject(json_kind(&value)));
    };
    let name = match raw.get("name") {
        None => return Err(LoadError::NoName),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(LoadError::NameType(go_type(other))),
    };
    let cni_version = match raw.get("cniVersion") {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(LoadError::VersionType(go_type(other))),
    };
    let mut cni_versions = Vec::new();
    match raw.get("cniVersions") {
        None => {}
        Some(Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => cni_versions.push(s.clone()),
                    other => {
                        return Err(LoadError::VersionsEntry {
                            value: other.to_string(),
                            index,
                        });
                    }
                }
            }
        }
        Some(other) => return Err(LoadError::VersionsType(go_type(other))),
    }
    let disable_check = flag(&raw, "disableCheck")?;
    let disable_gc = flag(&raw, "disableGC")?;
    let load_only_inlined = flag(&raw, "loadOnlyInlinedPlugins")?;
    let inline: &[Value] = match raw.get("plugins") {
        None if load_only_inlined => return Err(LoadError::InlinedWithoutPlugins),
        None => &[],
        Some(Value::Array(items)) => items,
        Some(other) => return Err(LoadError::PluginsType(go_type(other))),
    };
    let mut plugins = Vec::new();
    for (index, p) in inline.iter().enumerate() {
        plugins.push(check_plugin_object(index, p)?);
    }
    if !load_only_inlined {
        for (offset, p) in aggregated.iter().enumerate() {
            plugins.push(check_plugin_object(inline.len() + offset, p)?);
        }
    }
    if plugins.is_empty() {
        return Err(LoadError::NoPlugins);
    }
    Ok(ConfList {
        name,
        cni_version,
        cni_versions,
        disable_check,
        disable_gc,
        load_only_inlined,
        plugins,
        raw,
        bytes: bytes.to_vec(),
    })
}

/// libcni `ConfFromBytes` + `ConfListFromConf`: a single-plugin `.conf`/`.json` file as a list.
pub fn parse_single_conf(bytes: &[u8]) -> Result<ConfList, LoadError> {
    let value = parse_json(bytes)?;
    let plugin = check_plugin_object(0, &value)?;
    let text = |k: &str| {
        plugin
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let mut raw = Map::new();
    raw.insert("name".into(), Value::String(text("name")));
    raw.insert("cniVersion".into(), Value::String(text("cniVersion")));
    raw.insert("plugins".into(), Value::Array(vec![value]));
    Ok(ConfList {
        name: text("name"),
        cni_version: text("cniVersion"),
        cni_versions: Vec::new(),
        disable_check: false,
        disable_gc: false,
        load_only_inlined: false,
        plugins: vec![plugin],
        raw,
        bytes: bytes.to_vec(),
    })
}

mod dir;

pub use dir::{ConfDir, ConfFile, FileKind, Lookup, aggregated_plugins};

#[cfg(test)]
mod tests;

//! A libcni-compatible runtime: ADD in list order with `prevResult` chaining, CHECK and DEL
//! with the cached result (DEL in reverse order), GC with valid attachments, STATUS — and the
//! libcni result cache ([`cache`]), so attachments made here and by cnitool/podman are
//! interchangeable. Messages are libcni's.

pub mod cache;
pub mod invoke;
pub mod netns;
pub mod request;

use std::path::PathBuf;

use cni_core::CniVersion;
use cni_core::result::convert;
use serde_json::{Map, Value, json};

use self::cache::{CacheEntry, CachedAttachment};
use self::invoke::{CniEnv, InvokeError};
use crate::model::{ConfList, select_version};

/// Where plugins and the cache live.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// `CNI_PATH` directories.
    pub cni_path: Vec<PathBuf>,
    /// libcni cache directory (holds `results/`).
    pub cache_dir: PathBuf,
}

/// One attachment's runtime parameters (libcni `RuntimeConf`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConf {
    /// Container ID.
    pub container_id: String,
    /// Network namespace path ("" for none).
    pub netns: String,
    /// Interface name.
    pub ifname: String,
    /// `CNI_ARGS` pairs.
    pub args: Vec<[String; 2]>,
    /// Capability arguments (`CAP_ARGS`).
    pub capability_args: Map<String, Value>,
}

/// A runtime operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A plugin failed (`plugin type="bridge" failed (add): …`).
    #[error("plugin {plugin} failed ({verb}): {error}")]
    Plugin {
        /// `type="…"` (+ ` name="…"`).
        plugin: String,
        /// `add`, `check`, `delete`, `gc`, `status`.
        verb: &'static str,
        /// What the plugin said.
        error: InvokeError,
    },
    /// An identifier or version check failed.
    #[error("{0}")]
    Invalid(String),
    /// The cache could not be read or written.
    #[error("{context}")]
    Cache {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: cache::CacheError,
    },
    /// Several failures (GC keeps going).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Many(Vec<RuntimeError>),
}

fn describe(plugin: &Map<String, Value>) -> String {
    let t = plugin.get("type").and_then(Value::as_str).unwrap_or("");
    match plugin
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        Some(n) => format!("type={t:?} name={n:?}"),
        None => format!("type={t:?}"),
    }
}

fn cni_args(rt: &RuntimeConf) -> Option<String> {
    (!rt.args.is_empty()).then(|| {
        rt.args
            .iter()
            .map(|[k, v]| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    })
}

/// The version libcni selects for `list`.
pub fn list_version(list: &ConfList) -> String {
    select_version(&list.cni_version, &list.cni_versions)
}

impl Runtime {
    fn env(&self, command: &'static str, rt: &RuntimeConf) -> CniEnv {
        CniEnv {
            command,
            container_id: Some(rt.container_id.clone()),
            netns: (!rt.netns.is_empty()).then(|| rt.netns.clone()),
            ifname: Some(rt.ifname.clone()),
            args: cni_args(rt),
            path: Some(self.path_string()),
        }
    }

    fn path_string(&self) -> String {
        self.cni_path
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// libcni `buildOneConfig`: the plugin object with `name`, `cniVersion`, `prevResult` and
    /// the `runtimeConfig` of its enabled capabilities.
    fn plugin_config(
        list: &ConfList,
        version: &str,
        plugin: &Map<String, Value>,
        prev: Option<&Value>,
        rt: &RuntimeConf,
    ) -> Vec<u8> {
        let mut conf = plugin.clone();
        conf.insert("name".into(), Value::String(list.name.clone()));
        conf.insert("cniVersion".into(), Value::String(version.to_owned()));
        if let Some(p) = prev {
            conf.insert("prevResult".into(), p.clone());
        }
        let mut runtime_config = Map::new();
        if let Some(caps) = plugin.get("capabilities").and_then(Value::as_object) {
            for (cap, on) in caps {
                if on.as_bool() == Some(true)
                    && let Some(v) = rt.capability_args.get(cap)
                {
                    runtime_config.insert(cap.clone(), v.clone());
                }
            }
        }
        if !runtime_config.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(runtime_config));
        }
        Value::Object(conf).to_string().into_bytes()
    }

    fn run(
        &self,
        verb: &'static str,
        command: &'static str,
        list: &ConfList,
        plugin: &Map<String, Value>,
        prev: Option<&Value>,
        rt: &RuntimeConf,
    ) -> Result<Vec<u8>, RuntimeError> {
        let version = list_version(list);
        let plugin_type = plugin.get("type").and_then(Value::as_str).unwrap_or("");
        let failed = |error| RuntimeError::Plugin {
            plugin: describe(plugin),
            verb,
            error,
        };
        let binary = invoke::find(plugin_type, &self.cni_path).map_err(failed)?;
        let stdin = Self::plugin_config(list, &version, plugin, prev, rt);
        invoke::exec(&binary, &self.env(command, rt), &stdin).map_err(failed)
    }

    /// libcni `AddNetworkList`: ADD every plugin in order, chaining results; caches the final one.
    pub fn add(&self, list: &ConfList, rt: &RuntimeConf) -> Result<Value, RuntimeError> {
        let invalid = |e: cni_core::CniError| RuntimeError::Invalid(e.msg);
        cni_core::validate::container_id(&rt.container_id).map_err(invalid)?;
        cni_core::validate::network_name(&list.name).map_err(invalid)?;
        cni_core::validate::interface_name(&rt.ifname).map_err(invalid)?;
        let version = list_version(list);
        let mut result: Option<Value> = None;
        for plugin in &list.plugins {
            let out = self.run("add", "ADD", list, plugin, result.as_ref(), rt)?;
            let mut value: Value =
                serde_json::from_slice(&out).map_err(|e| RuntimeError::Plugin {
                    plugin: describe(plugin),
                    verb: "add",
                    error: InvokeError::Output(format!("decoding the result: {e}")),
                })?;
            if let Value::Object(m) = &mut value
                && !m.contains_key("cniVersion")
            {
                m.insert("cniVersion".into(), Value::String(version.clone()));
            }
            result = Some(value);
        }
        let result = result.unwrap_or_else(|| json!({ "cniVersion": version }));
        let entry = CachedAttachment {
            kind: cache::KIND_V1.into(),
            container_id: rt.container_id.clone(),
            config: list.bytes.clone(),
            if_name: rt.ifname.clone(),
            network_name: list.name.clone(),
            netns: rt.netns.clone(),
            cni_args: rt.args.clone(),
            capability_args: rt.capability_args.clone(),
            result: Some(result.clone()),
        };
        cache::write(&self.cache_dir, &entry).map_err(|source| RuntimeError::Cache {
            context: format!("failed to set network {:?} cached result", list.name),
            source,
        })?;
        Ok(result)
    }

    /// The cached result of an attachment, converted to the list's version (`None` when there
    /// is no cache entry).
    pub fn cached_result(
        &self,
        list: &ConfList,
        rt: &RuntimeConf,
    ) -> Result<Option<Value>, RuntimeError> {
        let context = || format!("failed to get network {:?} cached result", list.name);
        let entry = cache::read(&self.cache_dir, &list.name, &rt.container_id, &rt.ifname)
            .map_err(|source| RuntimeError::Cache {
                context: context(),
                source,
            })?;
        let Some(raw) = entry.as_ref().and_then(CacheEntry::result) else {
            return Ok(None);
        };
        let version = list_version(list);
        let target = CniVersion::parse(&version)
            .ok_or_else(|| RuntimeError::Invalid(format!("unsupported CNI version {version:?}")))?;
        let converted = convert::parse(raw, target).and_then(|r| convert::to_json(&r, target));
        converted.map(Some).map_err(|e| {
            RuntimeError::Invalid(format!(
                "{}: failed to convert cached result to config version {version:?}: {}",
                context(),
                e.msg
            ))
        })
    }

    /// libcni `CheckNetworkList`.
    pub fn check(&self, list: &ConfList, rt: &RuntimeConf) -> Result<(), RuntimeError> {
        let version = list_version(list);
        if CniVersion::parse(&version).is_none_or(|v| !v.allows_check()) {
            return Err(RuntimeError::Invalid(format!(
                "configuration version {version:?} does not support the CHECK command"
            )));
        }
        if list.disable_check {
            return Ok(());
        }
        let cached = self.cached_result(list, rt)?;
        for plugin in &list.plugins {
            self.run("check", "CHECK", list, plugin, cached.as_ref(), rt)?;
        }
        Ok(())
    }

    /// libcni `DelNetworkList`: DEL in reverse order with the cached result (≥ 0.4.0), then the
    /// cache entry is removed. An unreadable entry is removed first and DEL goes on without it.
    pub fn del(&self, list: &ConfList, rt: &RuntimeConf) -> Result<(), RuntimeError> {
        let version = list_version(list);
        let cached = if CniVersion::parse(&version).is_some_and(CniVersion::allows_check) {
            match self.cached_result(list, rt) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("warning: {e}; deleting without a cached result");
                    let _ =
                        cache::delete(&self.cache_dir, &list.name, &rt.container_id, &rt.ifname);
                    None
                }
            }
        } else {
            None
        };
        for plugin in list.plugins.iter().rev() {
            self.run("delete", "DEL", list, plugin, cached.as_ref(), rt)?;
        }
        cache::delete(&self.cache_dir, &list.name, &rt.container_id, &rt.ifname).map_err(|source| {
            RuntimeError::Cache {
                context: format!("failed to remove network {:?} cached result", list.name),
                source,
            }
        })
    }

    /// Cached attachments of `list`'s network.
    pub fn attachments(&self, list: &ConfList) -> Vec<CachedAttachment> {
        cache::list(&self.cache_dir)
            .into_iter()
            .filter_map(|(_, e)| e.ok())
            .filter(|a| a.network_name == list.name)
            .collect()
    }

    /// libcni `GCNetworkList`: DEL every cached attachment not in `valid` (with its cached
    /// args), then GC on every plugin (lists ≥ 1.1.0). Keeps going; reports every failure.
    pub fn gc(&self, list: &ConfList, valid: &[(String, String)]) -> Result<(), RuntimeError> {
        if list.disable_gc {
            return Ok(());
        }
        let mut errors = Vec::new();
        for a in self.attachments(list) {
            if valid
                .iter()
                .any(|(c, i)| *c == a.container_id && *i == a.if_name)
            {
                continue;
            }
            let rt = RuntimeConf {
                container_id: a.container_id.clone(),
                netns: a.netns.clone(),
                ifname: a.if_name.clone(),
                args: a.cni_args.clone(),
                capability_args: a.capability_args.clone(),
            };
            if let Err(e) = self.del(list, &rt) {
                errors.push(e);
            }
        }
        let version = list_version(list);
        if CniVersion::parse(&version).is_some_and(CniVersion::allows_gc_and_status) {
            let keys: Vec<Value> = valid
                .iter()
                .map(|(c, i)| json!({"containerID": c, "ifname": i}))
                .collect();
            for plugin in &list.plugins {
                let mut conf = plugin.clone();
                conf.insert("name".into(), Value::String(list.name.clone()));
                conf.insert("cniVersion".into(), Value::String(version.clone()));
                conf.insert(
                    "cni.dev/valid-attachments".into(),
                    Value::Array(keys.clone()),
                );
                conf.insert("cni.dev/attachments".into(), Value::Array(keys.clone()));
                if let Err(e) = self.exec_plain("gc", "GC", plugin, &conf) {
                    errors.push(e);
                }
            }
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(RuntimeError::Many(errors)),
        }
    }

    /// libcni `GetStatusNetworkList`: STATUS on every plugin (lists ≥ 1.1.0).
    pub fn status(&self, list: &ConfList) -> Result<(), RuntimeError> {
        let version = list_version(list);
        if !CniVersion::parse(&version).is_some_and(CniVersion::allows_gc_and_status) {
            return Ok(());
        }
        for plugin in &list.plugins {
            let mut conf = plugin.clone();
            conf.insert("name".into(), Value::String(list.name.clone()));
            conf.insert("cniVersion".into(), Value::String(version.clone()));
            self.exec_plain("status", "STATUS", plugin, &conf)?;
        }
        Ok(())
    }

    fn exec_plain(
        &self,
        verb: &'static str,
        command: &'static str,
        plugin: &Map<String, Value>,
        conf: &Map<String, Value>,
    ) -> Result<(), RuntimeError> {
        let failed = |error| RuntimeError::Plugin {
            plugin: describe(plugin),
            verb,
            error,
        };
        let plugin_type = plugin.get("type").and_then(Value::as_str).unwrap_or("");
        let binary = invoke::find(plugin_type, &self.cni_path).map_err(failed)?;
        let env = CniEnv {
            command,
            path: Some(self.path_string()),
            ..CniEnv::default()
        };
        let stdin = Value::Object(conf.clone()).to_string();
        invoke::exec(&binary, &env, stdin.as_bytes())
            .map(|_| ())
            .map_err(failed)
    }
}

#[cfg(test)]
mod tests;

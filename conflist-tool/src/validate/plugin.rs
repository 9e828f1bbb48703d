//! Plugin-level rules: libcni's `types.NetConf` decode, reserved keys, capabilities, each known
//! plugin's own schema (from its config type: unknown keys warned, wrong types and bad values
//! are errors), MTU ranges, and the order of the chain.

use cni_core::CniVersion;
use cni_core::config::NetConf;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::list::Doc;
use super::probe::{self, Probe};
use super::{Options, Report, Severity, ipam};
use crate::model;
use crate::span::JsonPath;

/// What a plugin type does in a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Creates the container interface; must come first, once.
    Interface,
    /// Needs a previous result; never first.
    Chained,
    /// An IPAM plugin used directly as a list entry.
    Ipam,
    /// Not known to us.
    Unknown,
}

/// The role of a plugin type.
pub(crate) fn role(plugin_type: &str) -> Role {
    match plugin_type {
        "bridge" | "macvlan" | "ipvlan" | "ptp" | "host-device" | "vlan" | "loopback" | "dummy"
        | "tap" | "sriov" | "win-bridge" | "win-overlay" => Role::Interface,
        "firewall" | "tuning" | "portmap" | "bandwidth" | "sbr" | "dnsname" | "vrf" => {
            Role::Chained
        }
        "host-local" | "dhcp" | "static" => Role::Ipam,
        _ => Role::Unknown,
    }
}

const CAPABILITIES: [&str; 11] = [
    "portMappings",
    "ipRanges",
    "bandwidth",
    "dns",
    "ips",
    "mac",
    "infinibandGUID",
    "deviceID",
    "aliases",
    "cgroupPath",
    "io.kubernetes.cri.pod-annotations",
];

/// Capabilities our plugins read from `runtimeConfig`.
fn consumed(plugin_type: &str) -> Option<&'static [&'static str]> {
    Some(match plugin_type {
        "bridge" | "macvlan" => &["mac", "ips", "ipRanges", "cgroupPath"],
        "tuning" => &["mac"],
        "portmap" => &["portMappings"],
        "firewall" | "loopback" => &[],
        "host-local" => &["ips", "ipRanges", "cgroupPath"],
        _ => return None,
    })
}

/// A plugin's own schema: its field decoder and its validating loader.
struct Schema {
    decode: fn(Value) -> Result<(), String>,
    load: fn(&Map<String, Value>) -> Result<(), String>,
    fields: &'static [&'static str],
    /// Keys the plugin reads from the raw config rather than its field type.
    skip: &'static [&'static str],
}

fn decode_as<T: DeserializeOwned>(v: Value) -> Result<(), String> {
    serde_json::from_value::<T>(v)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn netconf<T: DeserializeOwned>(m: &Map<String, Value>) -> Result<NetConf<T>, String> {
    serde_json::from_value(Value::Object(m.clone())).map_err(|e| e.to_string())
}

fn load_bridge(m: &Map<String, Value>) -> Result<(), String> {
    let conf = netconf::<bridge::config::BridgeFields>(m)?;
    bridge::config::load(&conf, None)
        .map(|_| ())
        .map_err(|e| e.msg)
}

fn load_macvlan(m: &Map<String, Value>) -> Result<(), String> {
    let conf = netconf::<macvlan::config::MacvlanFields>(m)?;
    macvlan::config::load(&conf, None)
        .map(|_| ())
        .map_err(|e| e.msg)
}

fn load_firewall(m: &Map<String, Value>) -> Result<(), String> {
    let conf = netconf::<firewall::config::FirewallFields>(m)?;
    firewall::config::load(&conf.plugin)
        .map(|_| ())
        .map_err(|e| e.msg)
}

fn load_tuning(m: &Map<String, Value>) -> Result<(), String> {
    let conf = netconf::<tuning::config::TuningFields>(m)?;
    let raw = Value::Object(m.clone()).to_string();
    let over = tuning::config::Overrides {
        ifname: "eth0",
        cni_args_mac: None,
    };
    tuning::config::load(&conf, raw.as_bytes(), over)
        .map(|_| ())
        .map_err(|e| e.msg)
}

fn load_portmap(m: &Map<String, Value>) -> Result<(), String> {
    let conf = netconf::<portmap::config::PortmapFields>(m)?;
    portmap::config::load(&conf.plugin, &cni_netfilter::SystemRunner)
        .map(|_| ())
        .map_err(|e| e.msg)
}

fn no_fields(v: Value) -> Result<(), String> {
    decode_as::<cni_core::config::NoFields>(v)
}

fn schema(plugin_type: &str) -> Option<Schema> {
    Some(match plugin_type {
        "bridge" => Schema {
            decode: decode_as::<bridge::config::BridgeFields>,
            load: load_bridge,
            fields: super::probe::field_names::<bridge::config::BridgeFields>(),
            skip: &[],
        },
        "macvlan" => Schema {
            decode: decode_as::<macvlan::config::MacvlanFields>,
            load: load_macvlan,
            fields: super::probe::field_names::<macvlan::config::MacvlanFields>(),
            skip: &[],
        },
        "firewall" => Schema {
            decode: decode_as::<firewall::config::FirewallFields>,
            load: load_firewall,
            fields: super::probe::field_names::<firewall::config::FirewallFields>(),
            skip: &[],
        },
        "tuning" => Schema {
            decode: decode_as::<tuning::config::TuningFields>,
            load: load_tuning,
            fields: super::probe::field_names::<tuning::config::TuningFields>(),
            skip: &["sysctl"],
        },
        "portmap" => Schema {
            decode: decode_as::<portmap::config::PortmapFields>,
            load: load_portmap,
            fields: super::probe::field_names::<portmap::config::PortmapFields>(),
            skip: &[],
        },
        "loopback" | "host-local" => Schema {
            decode: no_fields,
            load: |_| Ok(()),
            fields: &[],
            skip: &[],
        },
        _ => return None,
    })
}

/// Checks plugin `index` of the list.
pub(crate) fn check(
    doc: &Doc,
    index: usize,
    (path, obj): &(JsonPath, Map<String, Value>),
    opts: &Options,
    r: &mut Report<'_>,
) {
    if let Err(model::LoadError::Plugin { reason, .. }) =
        model::check_plugin_object(index, &Value::Object(obj.clone()))
    {
        let key = ["type", "cniVersion", "name", "capabilities", "ipam", "dns"]
            .into_iter()
            .find(|k| reason.contains(&format!("NetConf.{k}")))
            .map_or_else(|| path.key("type"), |k| path.key(k));
        r.add(
            Severity::Error,
            "plugin-netconf",
            &key,
            format!("failed to parse plugin config {index}: error parsing configuration: {reason}"),
        );
        return;
    }
    let plugin_type = obj.get("type").and_then(Value::as_str).unwrap_or("");
    if cni_core::delegate::find_in_path(plugin_type, &[std::path::PathBuf::from("/")])
        .is_err_and(|e| e.msg.starts_with("invalid plugin name"))
    {
        r.add(
            Severity::Error,
            "plugin-type",
            &path.key("type"),
            format!("invalid plugin name: {plugin_type}"),
        )
        .hint("the type is a binary name looked up in CNI_PATH, never a path");
        return;
    }
    for key in ["runtimeConfig", "prevResult"] {
        if obj.contains_key(key) {
            r.add(Severity::Warning, "plugin-reserved-key", &path.key(key), format!("{key} is generated by the runtime: a value in the file is overwritten or confuses plugins"))
                .hint(format!("remove {key}"));
        }
    }
    for key in obj.keys().filter(|k| k.starts_with("cni.dev/")) {
        r.add(
            Severity::Warning,
            "plugin-reserved-key",
            &path.key(key),
            format!("{key:?}: keys starting with cni.dev/ are reserved for the runtime"),
        );
    }
    for key in ["name", "cniVersion"] {
        let theirs = obj.get(key).and_then(Value::as_str).unwrap_or("");
        let ours = if key == "name" {
            &doc.name
        } else {
            &doc.version
        };
        if !theirs.is_empty() && theirs != ours && path.segments().len() > 1 {
            r.add(
                Severity::Warning,
                "plugin-overridden",
                &path.key(key),
                format!(
                    "plugin {key} {theirs:?} differs from the list's {ours:?}: libcni replaces it"
                ),
            );
        }
    }
    check_capabilities(plugin_type, obj, path, r);
    if plugin_type == "firewall" && doc.known_version.is_some_and(|v| v < CniVersion::V0_4_0) {
        r.add(
            Severity::Error,
            "plugin-version",
            &path.key("type"),
            format!(
                "the firewall plugin needs cniVersion 0.4.0 or later, the list has {}",
                doc.version
            ),
        );
    }
    if let Some(s) = schema(plugin_type) {
        check_schema(doc, plugin_type, obj, path, &s, r);
    }
    check_mtu(plugin_type, obj, path, r);
    check_links(plugin_type, obj, path, opts, r);
    if let Some(Value::Object(ipam_obj)) = obj.get("ipam") {
        ipam::check(doc, ipam_obj, &path.key("ipam"), r);
    } else if plugin_type == "host-local" {
        r.add(
            Severity::Error,
            "ipam",
            path,
            "IPAM config missing 'ipam' key",
        );
    }
}

fn check_capabilities(t: &str, obj: &Map<String, Value>, path: &JsonPath, r: &mut Report<'_>) {
    let Some(caps) = obj.get("capabilities").and_then(Value::as_object) else {
        return;
    };
    for (cap, on) in caps {
        let p = path.key("capabilities").key(cap);
        if !CAPABILITIES.contains(&cap.as_str()) {
            r.add(
                Severity::Warning,
                "capability-unknown",
                &p,
                format!("unknown capability {cap:?}: no runtime sends it"),
            )
            .hint(format!("known capabilities: {}", CAPABILITIES.join(", ")));
        } else if on.as_bool() == Some(true)
            && consumed(t).is_some_and(|c| !c.contains(&cap.as_str()))
        {
            r.add(
                Severity::Warning,
                "capability-unused",
                &p,
                format!("{t} does not read runtimeConfig.{cap}: the runtime's value is ignored"),
            );
        }
    }
}

fn check_schema(
    doc: &Doc,
    t: &str,
    obj: &Map<String, Value>,
    path: &JsonPath,
    s: &Schema,
    r: &mut Report<'_>,
) {
    let Probe {
        unknown,
        type_errors,
    } = probe::probe(obj, s.skip, &s.decode);
    for key in &unknown {
        let f = r.add(
            Severity::Warning,
            "plugin-unknown-key",
            &path.key(key),
            format!("{t} has no field {key:?}: it is ignored"),
        );
        if let Some(near) = probe::suggest(key, s.fields) {
            f.hint(format!("did you mean {near:?}?"));
        }
    }
    for (key, err) in &type_errors {
        r.add(
            Severity::Error,
            "plugin-field-type",
            &path.key(key),
            format!("{t}.{key}: {err}"),
        );
    }
    if !type_errors.is_empty() {
        return;
    }
    let mut full = obj.clone();
    full.insert("name".into(), Value::String(doc.name.clone()));
    full.insert("cniVersion".into(), Value::String(doc.version.clone()));
    if let Err(message) = (s.load)(&full) {
        let mut base = Map::new();
        for k in ["name", "cniVersion", "type"] {
            if let Some(v) = full.get(k) {
                base.insert(k.into(), v.clone());
            }
        }
        let at = probe::blame(&full, &base, &message, &s.load)
            .map_or_else(|| path.clone(), |k| path.key(&k));
        r.add(
            Severity::Error,
            "plugin-value",
            &at,
            format!("{t}: {message}"),
        );
    }
}

fn check_mtu(t: &str, obj: &Map<String, Value>, path: &JsonPath, r: &mut Report<'_>) {
    if !matches!(t, "bridge" | "macvlan" | "tuning" | "ipvlan" | "ptp") {
        return;
    }
    let Some(mtu) = obj.get("mtu").and_then(Value::as_i64) else {
        return;
    };
    if mtu != 0 && !(68..=65535).contains(&mtu) && !r.has_error_at(&path.key("mtu")) {
        r.add(
            Severity::Error,
            "plugin-mtu",
            &path.key("mtu"),
            format!("mtu {mtu} is outside 68..65535: the kernel refuses it"),
        );
    }
}

fn check_links(
    t: &str,
    obj: &Map<String, Value>,
    path: &JsonPath,
    opts: &Options,
    r: &mut Report<'_>,
) {
    let Some(host) = &opts.host else { return };
    let text = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    if t == "macvlan" {
        let master = text("master");
        if !master.is_empty() && host.link(&master).is_none() {
            r.add(
                Severity::Warning,
                "host-link",
                &path.key("master"),
                format!(
                    "master {master:?} does not exist on this host: ADD fails with Link not found"
                ),
            );
        }
    }
    if t == "bridge" {
        let bridge = Some(text("bridge"))
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "cni0".into());
        if let Some(link) = host.link(&bridge).filter(|l| l.kind != "bridge") {
            r.add(
                Severity::Error,
                "host-link",
                &path.key("bridge"),
                format!(
                    "{bridge:?} exists on this host as a {} link, not a bridge: ADD fails",
                    if link.kind.is_empty() {
                        "plain"
                    } else {
                        &link.kind
                    }
                ),
            );
        }
    }
}

/// Chain-order rules: an interface plugin first, exactly one, chained plugins after it.
pub(crate) fn check_chain(doc: &Doc, r: &mut Report<'_>) {
    let types: Vec<(JsonPath, String)> = doc
        .plugins
        .iter()
        .map(|(p, o)| {
            (
                p.clone(),
                o.get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    let mut interface_seen: Option<&str> = None;
    for (i, (path, t)) in types.iter().enumerate() {
        match role(t) {
            Role::Chained if i == 0 => {
                r.add(Severity::Error, "chain-order", &path.key("type"), format!(
                    "{t} is a chained plugin and needs the result of an interface plugin before it (ADD fails without prevResult)"
                ))
                .hint("put an interface plugin (bridge, macvlan, …) first");
            }
            Role::Chained if interface_seen.is_none() => {
                r.add(
                    Severity::Warning,
                    "chain-order",
                    &path.key("type"),
                    format!(
                        "{t} runs before any interface plugin: its prevResult has no interface"
                    ),
                );
            }
            Role::Interface => {
                if let Some(first) = interface_seen {
                    r.add(Severity::Error, "chain-order", &path.key("type"), format!(
                        "second interface plugin {t} after {first}: both create CNI_IFNAME, the second ADD fails because the interface exists"
                    ))
                    .hint("use one network per interface plugin and attach the container to both");
                } else {
                    interface_seen = Some(t);
                }
            }
            _ => {}
        }
        if t == "firewall" {
            let policy = doc.plugins[i]
                .1
                .get("ingressPolicy")
                .and_then(Value::as_str)
                .unwrap_or("");
            let first = types.first().map(|(_, t)| t.as_str()).unwrap_or("");
            if matches!(policy, "same-bridge" | "isolated") && first != "bridge" {
                r.add(Severity::Warning, "firewall-isolation", &path.key("ingressPolicy"), format!(
                    "ingressPolicy {policy:?} isolates by the first interface of prevResult, a bridge; this chain starts with {first:?}"
                ));
            }
        }
    }
}

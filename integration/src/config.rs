//! Builders for the network configurations the tests send.

use std::path::Path;

use serde_json::{Value, json};

/// The stdin a host-local IPAM plugin receives when a main plugin delegates to it: the whole
/// network config (here a `bridge` one, with a key host-local must ignore), whose `ipam` object
/// is `ipam` plus `"type": "host-local"` and, unless `ipam` sets one, `"dataDir": data_dir`.
pub fn host_local(version: &str, name: &str, data_dir: &Path, ipam: Value) -> Value {
    let mut ipam = match ipam {
        Value::Object(map) => map,
        other => panic!("ipam must be a JSON object, got {other}"),
    };
    ipam.insert("type".to_owned(), json!("host-local"));
    ipam.entry("dataDir")
        .or_insert_with(|| json!(data_dir.to_string_lossy()));
    json!({
        "cniVersion": version,
        "name": name,
        "type": "bridge",
        "bridge": "cnit0",
        "ipam": ipam,
    })
}

/// A loopback plugin config.
pub fn loopback(version: &str, name: &str) -> Value {
    json!({"cniVersion": version, "name": name, "type": "loopback"})
}

/// A `.conflist` with the given plugin objects.
pub fn conflist(version: &str, name: &str, plugins: Vec<Value>) -> Value {
    json!({"cniVersion": version, "name": name, "plugins": plugins})
}

/// `{"ranges": [[{"subnet": s}] for s in subnets]}`: one single-range set per subnet.
pub fn ranges(subnets: &[&str]) -> Value {
    let sets: Vec<Value> = subnets.iter().map(|s| json!([{ "subnet": s }])).collect();
    json!({ "ranges": sets })
}

/// A `bridge` plugin object for a conflist: `{"type": "bridge", "bridge": bridge}` plus every
/// member of `extra` (a JSON object; its members win).
pub fn bridge(bridge: &str, extra: Value) -> Value {
    merge(json!({"type": "bridge", "bridge": bridge}), extra)
}

/// A `firewall` plugin object for a conflist: `{"type": "firewall"}` plus every member of
/// `extra` (a JSON object; its members win).
pub fn firewall(extra: Value) -> Value {
    merge(json!({"type": "firewall"}), extra)
}

/// A `macvlan` plugin object for a conflist: `{"type": "macvlan", "master": master}` plus
/// every member of `extra` (a JSON object; its members win).
pub fn macvlan(master: &str, extra: Value) -> Value {
    merge(json!({"type": "macvlan", "master": master}), extra)
}

/// A `tuning` plugin object for a conflist: `{"type": "tuning"}` plus every member of `extra`
/// (a JSON object; its members win).
pub fn tuning(extra: Value) -> Value {
    merge(json!({"type": "tuning"}), extra)
}

/// A host-local `ipam` object: one single-range set per subnet, state under `data_dir`.
pub fn host_local_ipam(data_dir: &Path, subnets: &[&str]) -> Value {
    merge(
        ranges(subnets),
        json!({"type": "host-local", "dataDir": data_dir.to_string_lossy()}),
    )
}

/// `base` with the members of `extra` added or replaced (both must be JSON objects).
pub fn merge(base: Value, extra: Value) -> Value {
    let (Value::Object(mut base), Value::Object(extra)) = (base, extra) else {
        panic!("config::merge needs two JSON objects");
    };
    base.extend(extra);
    Value::Object(base)
}

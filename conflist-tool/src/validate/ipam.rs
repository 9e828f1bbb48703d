//! `ipam` rules. host-local is validated by host-local's own decoder and range validation (so
//! the messages are the plugin's), range by range so each error points at its range, plus what
//! host-local accepts but breaks later: gateways outside the subnet, ranges that hand out the
//! network or broadcast address.

use std::net::IpAddr;

use host_local::{HostLocalError, IpamConfig, Range, RangeConfig};
use ipnetwork::IpNetwork;
use serde_json::{Map, Value};

use super::list::Doc;
use super::probe;
use super::{Report, Severity};
use crate::span::JsonPath;

/// host-local's keys, for "did you mean" hints only (the decoder itself decides what is known).
const HOST_LOCAL_KEYS: [&str; 9] = [
    "type",
    "ranges",
    "routes",
    "dataDir",
    "resolvConf",
    "subnet",
    "rangeStart",
    "rangeEnd",
    "gateway",
];

fn decode_ipam(v: Value) -> Result<(), String> {
    IpamConfig::try_from(v).map(|_| ()).map_err(|e| e.message())
}

/// Checks the `ipam` object at `path`.
pub(crate) fn check(doc: &Doc, ipam: &Map<String, Value>, path: &JsonPath, r: &mut Report<'_>) {
    match ipam.get("type").and_then(Value::as_str).unwrap_or("") {
        "" if ipam.keys().any(|k| k != "type") => {
            r.add(
                Severity::Warning,
                "ipam-no-type",
                path,
                "ipam has no type: the network is L2 only and the other ipam keys are ignored",
            )
            .hint("set \"type\": \"host-local\" (or dhcp / static), or remove the ipam keys");
        }
        "host-local" => host_local(doc, ipam, path, r),
        _ => {}
    }
}

fn host_local(doc: &Doc, ipam: &Map<String, Value>, path: &JsonPath, r: &mut Report<'_>) {
    let found = probe::probe(ipam, &[], &decode_ipam);
    for key in &found.unknown {
        let f = r.add(
            Severity::Warning,
            "ipam-unknown-key",
            &path.key(key),
            format!("host-local has no field {key:?}: it is ignored"),
        );
        if let Some(near) = probe::suggest(key, &HOST_LOCAL_KEYS) {
            f.hint(format!("did you mean {near:?}?"));
        }
    }
    let mut errors = 0;
    for (key, err) in &found.type_errors {
        if key != "ranges" {
            r.add(
                Severity::Error,
                "ipam-field-type",
                &path.key(key),
                format!("host-local: {err}"),
            );
            errors += 1;
        }
    }
    if ipam.contains_key("subnet") {
        let legacy: Map<String, Value> = ipam
            .iter()
            .filter(|(k, _)| matches!(k.as_str(), "subnet" | "rangeStart" | "rangeEnd" | "gateway"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        errors += range(&Value::Object(legacy), path, r);
    }
    match ipam.get("ranges") {
        None | Some(Value::Null) => {}
        Some(Value::Array(sets)) => {
            for (s, set) in sets.iter().enumerate() {
                let set_path = path.key("ranges").index(s);
                match set {
                    Value::Array(items) => {
                        for (i, item) in items.iter().enumerate() {
                            errors += range(item, &set_path.index(i), r);
                        }
                    }
                    Value::Null => {}
                    _ => {
                        r.add(
                            Severity::Error,
                            "ipam-field-type",
                            &set_path,
                            "host-local: a range set must be an array of ranges",
                        );
                        errors += 1;
                    }
                }
            }
        }
        Some(_) => {
            r.add(
                Severity::Error,
                "ipam-field-type",
                &path.key("ranges"),
                "host-local: ranges must be an array of range sets ([[{\"subnet\": …}]])",
            );
            errors += 1;
        }
    }
    if errors > 0 {
        return;
    }
    let Ok(config) = IpamConfig::try_from(Value::Object(ipam.clone())) else {
        return;
    };
    if let Err(e) = config.normalize(&[], &doc.version) {
        let legacy = usize::from(ipam.contains_key("subnet"));
        let set_path = |index: usize| {
            if index < legacy {
                path.clone()
            } else {
                path.key("ranges").index(index - legacy)
            }
        };
        let at = match &e {
            HostLocalError::InvalidRangeSet { index, .. } => set_path(*index),
            HostLocalError::RangeSetsOverlap { second, .. } => set_path(*second),
            _ => path.clone(),
        };
        r.add(
            Severity::Error,
            "ipam-range",
            &at,
            format!("host-local: {}", e.message()),
        );
    }
    if let Some(dir) = ipam.get("dataDir").and_then(Value::as_str)
        && !dir.is_empty()
        && !dir.starts_with('/')
    {
        r.add(
            Severity::Warning,
            "ipam-data-dir",
            &path.key("dataDir"),
            format!("dataDir {dir:?} is relative: it depends on the runtime's working directory"),
        );
    }
}

/// Checks one range object; returns the number of errors found.
fn range(value: &Value, path: &JsonPath, r: &mut Report<'_>) -> usize {
    let cfg = match RangeConfig::try_from(value.clone()) {
        Ok(c) => c,
        Err(e) => {
            r.add(
                Severity::Error,
                "ipam-field-type",
                path,
                format!("host-local: {}", e.message()),
            );
            return 1;
        }
    };
    let canonical = match Range::canonicalize(&cfg) {
        Ok(c) => c,
        Err(e) => {
            let field = match e {
                HostLocalError::RangeStartNotInNetwork { .. } => "rangeStart",
                HostLocalError::RangeEndNotInNetwork { .. } => "rangeEnd",
                _ => "subnet",
            };
            r.add(
                Severity::Error,
                "ipam-range",
                &path.key(field),
                format!("host-local: {}", e.message()),
            )
            .hint(range_hint(&e));
            return 1;
        }
    };
    let subnet = canonical.subnet();
    let broadcast = match subnet {
        IpNetwork::V4(n) => Some(IpAddr::V4(n.broadcast())),
        IpNetwork::V6(_) => None,
    };
    let mut errors = 0;
    if let Some(gw) = cfg.gateway {
        let gw = gw.to_canonical();
        if !subnet.contains(gw) || gw == subnet.network() || Some(gw) == broadcast {
            r.add(Severity::Error, "ipam-gateway", &path.key("gateway"), format!("gateway {gw} is not a usable address of subnet {subnet}: host-local accepts it, but the bridge and the containers' routes cannot use it"))
                .hint(format!("use an address inside {subnet}, e.g. {}", canonical.range_start()));
            errors += 1;
        }
    }
    if cfg.range_start.map(|s| s.to_canonical()) == Some(subnet.network()) {
        r.add(
            Severity::Warning,
            "ipam-range-network",
            &path.key("rangeStart"),
            format!(
                "rangeStart {} is the network address: host-local will hand it out",
                subnet.network()
            ),
        );
    }
    if broadcast.is_some() && cfg.range_end.map(|e| e.to_canonical()) == broadcast {
        r.add(Severity::Warning, "ipam-range-broadcast", &path.key("rangeEnd"), format!("rangeEnd {} is the broadcast address of {subnet}: host-local will hand it to a container", canonical.range_end()))
            .hint("end the range one address earlier (podman writes this for --ip-range CIDRs)");
    }
    errors
}

fn range_hint(e: &HostLocalError) -> String {
    match e {
        HostLocalError::HostBitsSet { prefix, network } => {
            format!("write the subnet as {network}/{prefix}")
        }
        HostLocalError::NetworkTooSmall { .. } => "use at least a /30 (IPv4) or /126 (IPv6)".into(),
        HostLocalError::RangeStartNotInNetwork { .. }
        | HostLocalError::RangeEndNotInNetwork { .. } => {
            "rangeStart and rangeEnd must lie inside the subnet, start before end".into()
        }
        _ => "see the host-local documentation for ranges".into(),
    }
}

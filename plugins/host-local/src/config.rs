//! The host-local `ipam` object: decoding (Go-compatible: unknown keys ignored, keys matched
//! case-insensitively, `""`/`null` meaning "absent") and normalisation into validated
//! [`RangeSet`]s.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use cni_core::result::types::{Dns, Route};
use ipnetwork::IpNetwork;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::HostLocalError;
use crate::range::RangeSet;

/// Where reservations live when `dataDir` is not set.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// One range exactly as configured (`{"subnet", "rangeStart", "rangeEnd", "gateway"}`), before
/// validation. Used for `ipam.ranges`, the legacy top-level fields and `runtimeConfig.ipRanges`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Value")]
pub struct RangeConfig {
    /// `subnet`: address and prefix as written (host bits are kept so validation can report them).
    pub subnet: Option<IpNetwork>,
    /// `rangeStart`.
    pub range_start: Option<IpAddr>,
    /// `rangeEnd`.
    pub range_end: Option<IpAddr>,
    /// `gateway`.
    pub gateway: Option<IpAddr>,
}

/// A range set as configured: the inner array of `ranges`.
pub type RangeSetConfig = Vec<RangeConfig>;

/// The `ipam` object of a host-local network configuration, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Value")]
pub struct IpamConfig {
    /// `type` (normally `host-local`; not checked).
    pub plugin_type: String,
    /// `ranges`: outer list = one address per entry, inner list = pool of ranges.
    pub ranges: Vec<RangeSetConfig>,
    /// Legacy top-level `subnet`/`rangeStart`/`rangeEnd`/`gateway`; used (as range set 0 of the
    /// configured ones) only when `subnet` is set.
    pub legacy_range: RangeConfig,
    /// `routes`, copied to the result unchanged.
    pub routes: Vec<Route>,
    /// `dataDir` (absent or empty: [`DEFAULT_DATA_DIR`]).
    pub data_dir: Option<PathBuf>,
    /// `resolvConf` (absent or empty: no DNS in the result).
    pub resolv_conf: Option<PathBuf>,
}

/// A validated configuration, ready for allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedConfig {
    /// Range sets in allocation order (runtime ranges, then legacy range, then `ranges`); the
    /// index is the `N` of `last_reserved_ip.N`.
    pub range_sets: Vec<RangeSet>,
    /// Routes for the result.
    pub routes: Vec<Route>,
    /// State root; reservations live in `<data_dir>/<network name>/`.
    pub data_dir: PathBuf,
    /// resolv.conf-style file to report as DNS, if any.
    pub resolv_conf: Option<PathBuf>,
}

impl IpamConfig {
    /// Validates the configuration like the reference `LoadIPAMConfig`: range sets are
    /// `runtime_ip_ranges` (from `runtimeConfig.ipRanges`), then the legacy range, then
    /// `ranges`; each is canonicalised (`invalid range set N: …`); configs whose `cni_version`
    /// is below 0.3.0 (or unparsable; empty means 0.1.0) may hold only one set per family;
    /// finally no two sets may overlap.
    pub fn normalize(
        &self,
        runtime_ip_ranges: &[RangeSetConfig],
        cni_version: &str,
    ) -> Result<NormalizedConfig, HostLocalError> {
        let mut configured: Vec<&[RangeConfig]> =
            runtime_ip_ranges.iter().map(Vec::as_slice).collect();
        if self.legacy_range.subnet.is_some() {
            configured.push(std::slice::from_ref(&self.legacy_range));
        }
        configured.extend(self.ranges.iter().map(Vec::as_slice));
        if configured.is_empty() {
            return Err(HostLocalError::NoRanges);
        }

        let mut range_sets = Vec::with_capacity(configured.len());
        for (index, cfg) in configured.into_iter().enumerate() {
            let set =
                RangeSet::canonicalize(cfg).map_err(|source| HostLocalError::InvalidRangeSet {
                    index,
                    source: Box::new(source),
                })?;
            range_sets.push(set);
        }

        let v4 = range_sets.iter().filter(|s| s.is_ipv4()).count();
        let v6 = range_sets.len() - v4;
        if (v4 > 1 || v6 > 1) && !version_at_least_0_3_0(cni_version) {
            return Err(HostLocalError::TooManyAddressesPerFamily {
                version: cni_version.to_owned(),
            });
        }

        for (first, a) in range_sets.iter().enumerate() {
            for (offset, b) in range_sets[first + 1..].iter().enumerate() {
                if a.overlaps(b) {
                    return Err(HostLocalError::RangeSetsOverlap {
                        first,
                        second: first + offset + 1,
                    });
                }
            }
        }

        Ok(NormalizedConfig {
            range_sets,
            routes: self.routes.clone(),
            data_dir: self
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            resolv_conf: self.resolv_conf.clone(),
        })
    }
}

impl NormalizedConfig {
    /// DNS settings parsed from `resolvConf`; empty when none is configured.
    pub fn dns(&self) -> Result<Dns, HostLocalError> {
        match &self.resolv_conf {
            Some(path) => crate::resolv::parse_resolv_conf_file(path),
            None => Ok(Dns::default()),
        }
    }
}

/// Parses a requested address (`CNI_ARGS` `IP`, `args.cni.ips`, `runtimeConfig.ips`): an address
/// or an address with a prefix (the prefix is dropped). IPv4-mapped IPv6 becomes IPv4.
pub fn parse_requested_ip(text: &str) -> Result<IpAddr, HostLocalError> {
    let parsed = if text.contains('/') {
        parse_cidr_text(text).map(|n| n.ip())
    } else {
        text.parse::<IpAddr>().ok()
    };
    parsed
        .map(|ip| ip.to_canonical())
        .ok_or_else(|| HostLocalError::InvalidRequestedIp {
            value: text.to_owned(),
        })
}

/// Go `version.GreaterThanOrEqualTo(v, "0.3.0")`, where a parse failure counts as "no".
fn version_at_least_0_3_0(version: &str) -> bool {
    if version.is_empty() {
        return false; // no version declared means 0.1.0
    }
    let parts: Vec<&str> = version.split('.').collect();
    if parts.len() > 3 {
        return false;
    }
    let mut numbers = [0i64; 3];
    for (slot, part) in numbers.iter_mut().zip(&parts) {
        match part.parse::<i64>() {
            Ok(n) => *slot = n,
            Err(_) => return false,
        }
    }
    (numbers[0], numbers[1], numbers[2]) >= (0, 3, 0)
}

impl TryFrom<Value> for RangeConfig {
    type Error = HostLocalError;

    fn try_from(value: Value) -> Result<Self, Self::Error> {
        let mut fields = match value {
            Value::Null => return Ok(RangeConfig::default()),
            Value::Object(map) => fold_keys(map, &["subnet", "rangeStart", "rangeEnd", "gateway"]),
            other => return Err(type_error(&other, "range", "object")),
        };
        range_from_fields(&mut fields)
    }
}

impl TryFrom<Value> for IpamConfig {
    type Error = HostLocalError;

    fn try_from(value: Value) -> Result<Self, Self::Error> {
        const KEYS: [&str; 9] = [
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
        let mut fields = match value {
            Value::Object(map) => fold_keys(map, &KEYS),
            other => return Err(type_error(&other, "ipam", "object")),
        };
        let plugin_type = string_field(fields.remove("type"), "type")?.unwrap_or_default();
        let ranges = match fields.remove("ranges") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(sets)) => {
                sets.into_iter().map(range_set).collect::<Result<_, _>>()?
            }
            Some(other) => return Err(type_error(&other, "ranges", "array")),
        };
        let routes = match fields.remove("routes") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => serde_json::from_value(v).map_err(|e| HostLocalError::Decode {
                reason: format!("routes: {e}"),
            })?,
        };
        let data_dir = string_field(fields.remove("dataDir"), "dataDir")?.map(PathBuf::from);
        let resolv_conf =
            string_field(fields.remove("resolvConf"), "resolvConf")?.map(PathBuf::from);
        let legacy_range = range_from_fields(&mut fields)?;
        Ok(IpamConfig {
            plugin_type,
            ranges,
            legacy_range,
            routes,
            data_dir,
            resolv_conf,
        })
    }
}

fn range_set(value: Value) -> Result<RangeSetConfig, HostLocalError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(ranges) => ranges.into_iter().map(RangeConfig::try_from).collect(),
        other => Err(type_error(&other, "range set", "array")),
    }
}

fn range_from_fields(
    fields: &mut HashMap<&'static str, Value>,
) -> Result<RangeConfig, HostLocalError> {
    Ok(RangeConfig {
        subnet: fields.remove("subnet").map(cidr_field).transpose()?,
        range_start: ip_field(fields.remove("rangeStart"))?,
        range_end: ip_field(fields.remove("rangeEnd"))?,
        gateway: ip_field(fields.remove("gateway"))?,
    })
}

/// Keeps the keys Go's `encoding/json` would map onto `known` fields: an exact match wins,
/// otherwise an ASCII case-insensitive one. Everything else is dropped.
fn fold_keys(map: Map<String, Value>, known: &[&'static str]) -> HashMap<&'static str, Value> {
    let mut exact = HashMap::new();
    let mut folded = HashMap::new();
    for (key, value) in map {
        if let Some(k) = known.iter().find(|k| **k == key) {
            exact.insert(*k, value);
        } else if let Some(k) = known.iter().find(|k| k.eq_ignore_ascii_case(&key)) {
            folded.insert(*k, value);
        }
    }
    for (k, v) in folded {
        exact.entry(k).or_insert(v);
    }
    exact
}

/// A string field where `null` and `""` mean absent.
fn string_field(value: Option<Value>, name: &str) -> Result<Option<String>, HostLocalError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(type_error(&other, name, "string")),
    }
}

/// An address field (Go `net.IP`): `null` and `""` mean absent.
fn ip_field(value: Option<Value>) -> Result<Option<IpAddr>, HostLocalError> {
    match string_field(value, "IP address")? {
        None => Ok(None),
        Some(s) => s
            .parse::<IpAddr>()
            .map(Some)
            .map_err(|_| HostLocalError::Decode {
                reason: format!("invalid IP address: {s}"),
            }),
    }
}

/// A `subnet` field (Go `types.IPNet`): must be `address/prefix`; `null` and `""` are errors.
fn cidr_field(value: Value) -> Result<IpNetwork, HostLocalError> {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => s,
        other => return Err(type_error(&other, "subnet", "string")),
    };
    parse_cidr_text(&text).ok_or_else(|| HostLocalError::Decode {
        reason: format!("invalid CIDR address: {text}"),
    })
}

/// Go `net.ParseCIDR`: `address/decimal-prefix`, the address kept as written.
fn parse_cidr_text(text: &str) -> Option<IpNetwork> {
    let (addr, prefix) = text.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let prefix: u8 = prefix.parse().ok()?;
    IpNetwork::new(addr, prefix).ok()
}

fn type_error(value: &Value, field: &str, expected: &str) -> HostLocalError {
    let found = match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    HostLocalError::Decode {
        reason: format!("json: cannot unmarshal {found} into {field} (expected {expected})"),
    }
}

//! The `sysctl` maps of a tuning config (top level and `args.cni`): read in order with
//! duplicates kept, keys resolved to `/` form with `IFNAME` substituted, confined to `net/`.
//!
//! Key forms follow sysctl(8): when the first separator of a key is a `.`, dots separate
//! components and a `/` stands for a literal dot (`net.ipv4.conf.eth0/100.arp_filter`); when it
//! is a `/`, slashes separate components and dots are literal (`net/ipv4/conf/eth0.100/arp_filter`).
//! `IFNAME` components are replaced by `CNI_IFNAME` only after that, so interface names with dots
//! work in either form.

use std::fmt;

use cni_core::CniError;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

/// The token replaced by the interface name.
pub const IFNAME_TOKEN: &str = "IFNAME";

/// A JSON object of string keys, in document order, duplicates kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderedMap<V>(pub Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of sysctl keys to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, V>()? {
                    entries.push(entry);
                }
                Ok(OrderedMap(entries))
            }
        }
        d.deserialize_map(MapVisitor(std::marker::PhantomData))
    }
}

impl<V: Serialize> Serialize for OrderedMap<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// Accepts anything: the typed shape when it fits, otherwise ignored (the typed `args.cni`
/// decode reports real type errors).
#[derive(Deserialize)]
#[serde(untagged)]
enum Lenient<T> {
    Parsed(T),
    Other(IgnoredAny),
}

impl<T> Lenient<T> {
    fn parsed(self) -> Option<T> {
        match self {
            Lenient::Parsed(t) => Some(t),
            Lenient::Other(_) => None,
        }
    }
}

#[derive(Deserialize)]
struct RawArgsCni {
    #[serde(default)]
    sysctl: Option<OrderedMap<Value>>,
}

#[derive(Deserialize)]
struct RawArgs {
    #[serde(default)]
    cni: Option<Lenient<RawArgsCni>>,
}

#[derive(Deserialize)]
struct RawConf {
    #[serde(default)]
    sysctl: Option<OrderedMap<Value>>,
    #[serde(default)]
    args: Option<Lenient<RawArgs>>,
}

/// One sysctl to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlEntry {
    /// The key as written.
    pub raw: String,
    /// The dotted form of the key before `IFNAME` substitution (also matched by the allow-list).
    pub canonical: String,
    /// The resolved key: `/` form relative to `/proc/sys`, `IFNAME` substituted.
    pub key: String,
    /// The value to write.
    pub value: String,
}

fn swap_separators(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '.' => '/',
            '/' => '.',
            c => c,
        })
        .collect()
}

/// The key in `/` form (sysctl(8) rules), before `IFNAME` substitution.
fn slash_form(raw: &str) -> String {
    match raw.find(['.', '/']) {
        Some(i) if raw.as_bytes().get(i) == Some(&b'.') => swap_separators(raw),
        _ => raw.to_string(),
    }
}

/// Resolves a key as written to `(canonical dotted form, /proc/sys-relative path)`.
pub fn resolve_key(raw: &str, ifname: &str) -> Result<(String, String), CniError> {
    if ifname.contains('/') {
        return Err(CniError::invalid_config(format!(
            "Interface name ({ifname}) contains an invalid character /"
        )));
    }
    let slashed = slash_form(raw);
    let key = slashed
        .split('/')
        .map(|c| if c == IFNAME_TOKEN { ifname } else { c })
        .collect::<Vec<_>>()
        .join("/");
    let invalid = |why: String| {
        CniError::invalid_config(format!("invalid net sysctl key: {raw:?}")).with_details(why)
    };
    cni_kernel::sysctl::key_path(&key).map_err(|e| invalid(e.to_string()))?;
    if !key.contains('/') {
        return Err(invalid("a key must name a sysctl under net/".into()));
    }
    Ok((swap_separators(&slashed), key))
}

fn duplicate(details: String) -> CniError {
    CniError::invalid_config("duplicated sysctl keys are not allowed").with_details(details)
}

/// Resolves one map, refusing duplicates (as written or after resolution) and non-string values.
fn resolve_map(map: OrderedMap<Value>, ifname: &str) -> Result<Vec<SysctlEntry>, CniError> {
    let mut out: Vec<SysctlEntry> = Vec::with_capacity(map.0.len());
    for (raw, value) in map.0 {
        let Value::String(value) = value else {
            return Err(CniError::invalid_config(format!(
                "invalid value for sysctl {raw:?}: expected a string, got {value}"
            )));
        };
        let (canonical, key) = resolve_key(&raw, ifname)?;
        if let Some(prev) = out.iter().find(|e| e.key == key) {
            return Err(duplicate(if prev.raw == raw {
                format!("{raw:?} appears twice")
            } else {
                format!("{:?} and {raw:?} both name {key}", prev.raw)
            }));
        }
        out.push(SysctlEntry {
            raw,
            canonical,
            key,
            value,
        });
    }
    Ok(out)
}

/// The sysctls of a config in application order: the top-level `sysctl` map, then
/// `args.cni.sysctl`, whose entries replace top-level ones that resolve to the same key.
pub fn entries(raw_conf: &[u8], ifname: &str) -> Result<Vec<SysctlEntry>, CniError> {
    let conf: RawConf = serde_json::from_slice(raw_conf).map_err(|e| {
        if e.to_string().starts_with("duplicate field `sysctl`") {
            duplicate("the \"sysctl\" object appears twice".into())
        } else {
            CniError::invalid_config(format!("invalid sysctl: {e}"))
        }
    })?;
    let mut out = resolve_map(conf.sysctl.unwrap_or_default(), ifname)?;
    let overrides = conf
        .args
        .and_then(Lenient::parsed)
        .and_then(|a| a.cni)
        .and_then(Lenient::parsed)
        .and_then(|c| c.sysctl)
        .unwrap_or_default();
    for entry in resolve_map(overrides, ifname)? {
        match out.iter_mut().find(|e| e.key == entry.key) {
            Some(existing) => *existing = entry,
            None => out.push(entry),
        }
    }
    Ok(out)
}

/// Compares sysctl values the way a reader means them: runs of whitespace are equal
/// (`ping_group_range` reads back tab-separated).
pub fn same_value(configured: &str, current: &str) -> bool {
    configured.split_whitespace().eq(current.split_whitespace())
}

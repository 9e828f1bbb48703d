//! Unit tests (no root needed; every test works in its own temporary directory).

mod alloc_proptests;
mod allocate_tests;
mod config_tests;
mod lifecycle_tests;
mod owner_cache_tests;
mod range_tests;
mod staging_tests;
mod store_tests;

use std::net::IpAddr;
use std::path::Path;

use serde_json::{Value, json};

use crate::{IpamConfig, NormalizedConfig};

/// A normalised config from an `ipam` object, with `dataDir` pointed at `dir`.
pub(crate) fn config(dir: &Path, mut ipam: Value) -> NormalizedConfig {
    ipam["dataDir"] = json!(dir.to_str().unwrap());
    let ipam: IpamConfig = serde_json::from_value(ipam).unwrap();
    ipam.normalize(&[], "1.0.0").unwrap()
}

/// A config with a single range set made of the given ranges.
pub(crate) fn config_ranges(dir: &Path, ranges: Value) -> NormalizedConfig {
    config(dir, json!({"type": "host-local", "ranges": [ranges]}))
}

/// ADD for `id`/eth0, returning the addresses as `ip/prefix` strings.
pub(crate) fn add(cfg: &NormalizedConfig, id: &str) -> Vec<String> {
    crate::allocate(cfg, "net", id, "eth0", &[])
        .unwrap_or_else(|e| panic!("ADD {id}: {}", e.message()))
        .iter()
        .map(|a| a.address.to_string())
        .collect()
}

/// ADD for `id`/eth0 expecting a single address; returns just the address.
pub(crate) fn add1(cfg: &NormalizedConfig, id: &str) -> String {
    let ips = add(cfg, id);
    assert_eq!(ips.len(), 1, "{ips:?}");
    ips[0].split('/').next().unwrap().to_owned()
}

/// ADD that must fail; returns the full message.
pub(crate) fn add_err(
    cfg: &NormalizedConfig,
    id: &str,
    requested: &[&str],
) -> crate::HostLocalError {
    let requested: Vec<IpAddr> = requested.iter().map(|s| s.parse().unwrap()).collect();
    crate::allocate(cfg, "net", id, "eth0", &requested).unwrap_err()
}

/// The network directory used by the helpers.
pub(crate) fn net_dir(dir: &Path) -> std::path::PathBuf {
    dir.join("net")
}

/// Sorted names of the files in the helpers' network directory, without the owner cache
/// (whose presence `owner_cache_tests` checks on its own).
pub(crate) fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(net_dir(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != crate::store::owner_cache::CACHE_FILE)
        .collect();
    names.sort();
    names
}

/// Content of a file in the helpers' network directory.
pub(crate) fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(net_dir(dir).join(name)).unwrap()
}

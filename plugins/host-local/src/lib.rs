//! The host-local IPAM plugin as a library: configuration, range validation, the on-disk
//! reservation store (byte-compatible with the Go reference plugin) and the allocator.
//!
//! Nothing here reads the CNI environment or stdin; the binary decodes the request, builds a
//! [`NormalizedConfig`] with [`IpamConfig::normalize`] and calls one of the verbs below. Every
//! verb holds the network's store lock for its whole duration.
//!
//! ```no_run
//! # fn main() -> Result<(), host_local::HostLocalError> {
//! let ipam: host_local::IpamConfig = serde_json::from_str(
//!     r#"{"type": "host-local", "ranges": [[{"subnet": "10.22.0.0/16"}]], "dataDir": "/tmp/ipam"}"#,
//! ).map_err(|e| host_local::HostLocalError::Decode { reason: e.to_string() })?;
//! let cfg = ipam.normalize(&[], "1.0.0")?;
//! let ips = host_local::allocate(&cfg, "mynet", "ctr1", "eth0", &[])?;
//! assert_eq!(ips[0].address.to_string(), "10.22.0.2/16");
//! host_local::release(&cfg, "mynet", "ctr1", "eth0")?;
//! # Ok(())
//! # }
//! ```

pub mod allocator;
pub mod config;
pub mod error;
pub mod plugin;
pub mod range;
pub mod resolv;
pub mod store;

#[cfg(test)]
mod tests;

use std::net::IpAddr;

pub use allocator::Allocation;
pub use config::{
    DEFAULT_DATA_DIR, IpamConfig, NormalizedConfig, RangeConfig, RangeSetConfig, parse_requested_ip,
};
pub use error::{ErrorKind, HostLocalError};
pub use range::{Range, RangeSet};
pub use resolv::{parse_resolv_conf, parse_resolv_conf_file};
pub use store::{Store, validate_container_id, validate_interface_name, validate_network_name};

/// ADD: allocates one address per range set for the attachment `(id, ifname)` on `network`,
/// honouring `requested` addresses (see [`allocator::allocate`] for the exact algorithm).
/// Creates `<dataDir>/<network>` when needed. The result order follows the range sets.
pub fn allocate(
    cfg: &NormalizedConfig,
    network: &str,
    id: &str,
    ifname: &str,
    requested: &[IpAddr],
) -> Result<Vec<Allocation>, HostLocalError> {
    validate_container_id(id)?;
    validate_interface_name(ifname)?;
    let store = Store::open(&cfg.data_dir, network)?;
    let lock = store.lock()?;
    allocator::allocate(&lock, &cfg.range_sets, id, ifname, requested)
}

/// DEL: releases every address held by `(id, ifname)` on `network` and returns them.
/// Idempotent: nothing reserved, or no state directory at all, is success.
///
/// Legacy (container-ID-only) reservations of `id` are released when no current-format one
/// was found, and always when the configuration has two or more range sets (the reference runs
/// its release once per range set, and every run after the first finds only legacy files).
pub fn release(
    cfg: &NormalizedConfig,
    network: &str,
    id: &str,
    ifname: &str,
) -> Result<Vec<IpAddr>, HostLocalError> {
    validate_container_id(id)?;
    validate_interface_name(ifname)?;
    let Some(store) = Store::open_existing(&cfg.data_dir, network)? else {
        return Ok(Vec::new());
    };
    let lock = store.lock()?;
    lock.release(id, ifname, cfg.range_sets.len() >= 2)
}

/// CHECK: succeeds when `(id, ifname)` (or, legacy, `id`) holds at least one address on
/// `network`, whichever it is; otherwise `host-local: Failed to find address added by
/// container <id>`.
pub fn check(
    cfg: &NormalizedConfig,
    network: &str,
    id: &str,
    ifname: &str,
) -> Result<(), HostLocalError> {
    validate_container_id(id)?;
    validate_interface_name(ifname)?;
    let not_found = || HostLocalError::NotFound { id: id.to_owned() };
    let Some(store) = Store::open_existing(&cfg.data_dir, network)? else {
        return Err(not_found());
    };
    let lock = store.lock()?;
    if lock.find(id, ifname)?.is_empty() {
        Err(not_found())
    } else {
        Ok(())
    }
}

/// GC: releases every reservation on `network` whose owner is not among the `valid`
/// attachments `(container ID, ifname)`; see [`allocator::gc`]. A missing state directory is
/// success. Returns the released addresses.
pub fn gc(
    cfg: &NormalizedConfig,
    network: &str,
    valid: &[(String, String)],
) -> Result<Vec<IpAddr>, HostLocalError> {
    let Some(store) = Store::open_existing(&cfg.data_dir, network)? else {
        return Ok(Vec::new());
    };
    let lock = store.lock()?;
    allocator::gc(&lock, valid)
}

/// STATUS: fails when the state directory cannot be created, locked or written, or when a
/// range set has no free address left (so an ADD would fail).
pub fn status(cfg: &NormalizedConfig, network: &str) -> Result<(), HostLocalError> {
    let store = Store::open(&cfg.data_dir, network)?;
    let lock = store.lock()?;
    lock.probe_writable()?;
    allocator::check_capacity(&lock, &cfg.range_sets)
}

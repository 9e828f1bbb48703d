//! The portmap plugin's error codes and how backend errors map to them.

use cni_core::{CniError, ErrorCode};
use cni_netfilter::NetfilterError;
use cni_netfilter::portmap::PortmapError;

/// Plugin-specific codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortmapCode {
    /// 150: rules could not be applied, read or removed (also `route_localnet`).
    Apply = 150,
    /// 151: CHECK found a rule missing.
    CheckFailed = 151,
    /// 152: another container already publishes the host port.
    Conflict = 152,
}

/// An error with a portmap-specific code.
pub fn plugin(code: PortmapCode, msg: impl Into<String>) -> CniError {
    CniError::plugin(code as u32, msg)
}

pub use cni_core::error::chain;

/// True when a lock stayed held by another process past the lock timeout: our host lock
/// ([`cni_core::lock`]) or the xtables lock (`iptables -w <seconds>`).
pub fn is_lock_timeout(e: &PortmapError) -> bool {
    match e {
        PortmapError::Lock { source, .. } => cni_core::lock::is_timeout(source),
        PortmapError::Netfilter(n) => n.is_lock_timeout(),
        _ => false,
    }
}

/// A backend error of ADD, DEL or GC: 7 for a name that cannot go into a rule, 152 for a
/// host-port conflict, 11 (try again later) when a lock stayed held by another process, 150
/// otherwise.
pub fn apply(what: &str, e: &PortmapError) -> CniError {
    match e {
        PortmapError::Conflict { .. } => plugin(PortmapCode::Conflict, chain(e)),
        e if is_lock_timeout(e) => {
            CniError::new(ErrorCode::TryAgainLater, format!("{what}: {}", chain(e)))
        }
        PortmapError::Netfilter(NetfilterError::InvalidName { .. }) => {
            CniError::invalid_config(format!("{what}: {}", chain(e)))
        }
        _ => plugin(PortmapCode::Apply, format!("{what}: {}", chain(e))),
    }
}

/// A CHECK error: 151 for a missing rule or chain, else as [`apply`].
pub fn check(e: &PortmapError) -> CniError {
    if e.is_rule_missing() {
        return plugin(PortmapCode::CheckFailed, chain(e));
    }
    apply("failed to check port mappings", e)
}

/// A STATUS error: 50.
pub fn status(e: &PortmapError) -> CniError {
    CniError::new(ErrorCode::NotAvailable, chain(e))
}

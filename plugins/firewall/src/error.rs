//! The firewall plugin's error codes and how backend errors map to them.

use cni_core::error::codes;
use cni_core::{CniError, ErrorCode};
use cni_netfilter::NetfilterError;
use cni_netfilter::firewall::FirewallError;

/// Plugin-specific codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirewallCode {
    /// 130: rules could not be applied, read or removed.
    Apply = 130,
    /// 131: CHECK found a rule missing.
    CheckFailed = 131,
}

/// An error with a firewall-specific code.
pub fn plugin(code: FirewallCode, msg: impl Into<String>) -> CniError {
    CniError::plugin(code as u32, msg)
}

pub use cni_core::error::chain;

/// Whether a failed tool said the kernel refused (no permission, no netfilter support) rather
/// than that a rule was wrong.
fn kernel_refused(e: &NetfilterError) -> bool {
    const NEEDLES: [&str; 5] = [
        "Permission denied",
        "Operation not permitted",
        "do you need to insmod",
        "Could not fetch rule set generation id",
        "Protocol not supported",
    ];
    match e {
        NetfilterError::CommandFailed { stderr, .. } => NEEDLES.iter().any(|n| stderr.contains(n)),
        NetfilterError::Unusable { source, .. } => kernel_refused(source),
        NetfilterError::Multiple(list) => list.iter().all(kernel_refused),
        _ => false,
    }
}

/// True when a lock stayed held by another process past the lock timeout: our host lock
/// ([`cni_core::lock`]) or the xtables lock (`iptables -w <seconds>`).
pub fn is_lock_timeout(e: &FirewallError) -> bool {
    match e {
        FirewallError::Lock { source, .. } => cni_core::lock::is_timeout(source),
        FirewallError::Netfilter(n) => n.is_lock_timeout(),
        _ => false,
    }
}

/// A backend error of ADD, DEL or GC: 7 for a name that cannot go into a rule, 11 (try again
/// later) when a lock stayed held by another process, 105 when the kernel refused, 130
/// otherwise.
pub fn apply(what: &str, e: &FirewallError) -> CniError {
    let msg = format!("{what}: {}", chain(e));
    match e {
        e if is_lock_timeout(e) => CniError::new(ErrorCode::TryAgainLater, msg),
        FirewallError::Netfilter(NetfilterError::InvalidName { .. }) => {
            CniError::invalid_config(msg)
        }
        FirewallError::Netfilter(n) if kernel_refused(n) => CniError::plugin(codes::KERNEL, msg),
        _ => plugin(FirewallCode::Apply, msg),
    }
}

/// A CHECK error: 131 for a missing rule (message as the reference words it), else as
/// [`apply`].
pub fn check(e: &FirewallError) -> CniError {
    if e.is_rule_missing() {
        return plugin(FirewallCode::CheckFailed, chain(e));
    }
    apply("failed to check firewall rules", e)
}

/// A STATUS error: 50.
pub fn status(e: &FirewallError) -> CniError {
    CniError::new(ErrorCode::NotAvailable, chain(e))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn timed_out() -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            cni_core::lock::LockTimeout {
                waited: Duration::from_secs(30),
            },
        )
    }

    #[test]
    fn a_lock_held_too_long_is_code_11_naming_the_lock() {
        let e = FirewallError::Lock {
            path: "/run/cni/firewall/lock".into(),
            source: timed_out(),
        };
        let err = apply("failed to add firewall rules", &e);
        assert_eq!(err.code, ErrorCode::TryAgainLater);
        assert_eq!(
            err.msg,
            "failed to add firewall rules: failed to lock /run/cni/firewall/lock: \
             still held by another process after 30s"
        );
        let e = FirewallError::Netfilter(NetfilterError::XtablesLockTimeout {
            command: "iptables-restore --noflush -w 30".into(),
            stderr: "Another app is currently holding the xtables lock. Stopped waiting after 30s."
                .into(),
        });
        assert_eq!(check(&e).code, ErrorCode::TryAgainLater);
        assert!(check(&e).msg.contains("xtables lock"));
    }

    #[test]
    fn other_lock_failures_stay_130() {
        let e = FirewallError::Lock {
            path: "/x/lock".into(),
            source: std::io::ErrorKind::TimedOut.into(),
        };
        assert_eq!(apply("x", &e).code, ErrorCode::Plugin(130));
    }
}

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

/// An error and its causes, joined with `": "`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

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

/// A backend error of ADD, DEL or GC: 7 for a name that cannot go into a rule, 105 when the
/// kernel refused, 130 otherwise.
pub fn apply(what: &str, e: &FirewallError) -> CniError {
    let msg = format!("{what}: {}", chain(e));
    match e {
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

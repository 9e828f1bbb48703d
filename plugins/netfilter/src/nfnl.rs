//! Reading and deleting iptables-nft rules through nf_tables netlink, without an iptables exec.
//!
//! iptables-nft keeps the iptables tables as nf_tables tables (`ip filter`, `ip6 filter`, …).
//! Every iptables-nft command fetches its cache from the kernel before acting; a command that
//! touches a chain's rules (`-C`, `-D`, or any batch that holds one) fetches every rule of that
//! chain and parses each back into iptables terms. With a thousand containers' rules in
//! `CNI-FORWARD` that is 15–40 ms per exec. Here the same questions go to the kernel directly:
//!
//! - [`NfRules::list`] dumps one chain (the kernel filters by table and chain) and can stop
//!   after the first few rules, so checking that a jump sits at the top of a long chain costs
//!   the same at any length;
//! - [`NfRules::delete`] removes rules by handle in one nf_tables transaction: all or none.
//!
//! Writes of new rules stay with `iptables-restore`, so every rule keeps the exact encoding
//! iptables-nft gives it. This is not used when the host's `iptables` is iptables-legacy
//! ([`iptables_is_legacy`]), whose rules are not in nf_tables at all.

mod encode;
mod rule;
mod socket;

use std::path::Path;

pub use encode::rule_from_args;
pub use rule::{Expr, NftRule, Verdict};
pub use socket::NfnlRules;

use crate::NetfilterError;
use crate::exec::SystemRunner;
use crate::iptables::IpFamily;

/// nf_tables as iptables-nft lays it out, read and pruned over netlink.
pub trait NfRules: Send + Sync {
    /// The rules of `chain` in table `table` of `family`, in order; at most `limit` of them
    /// when given. Empty when the table or the chain does not exist.
    fn list(
        &self,
        family: IpFamily,
        table: &str,
        chain: &str,
        limit: Option<usize>,
    ) -> Result<Vec<NftRule>, NetfilterError>;

    /// Delete the rules `handles` of `chain` in one transaction: either all go or, when one of
    /// them no longer exists, none does (and the error says so).
    fn delete(
        &self,
        family: IpFamily,
        table: &str,
        chain: &str,
        handles: &[u64],
    ) -> Result<(), NetfilterError>;
}

/// Whether `iptables` or `ip6tables` on this host's `PATH` is iptables-legacy (the
/// `xtables-legacy-multi` binary behind the alternatives' symlinks), whose rules are not in
/// nf_tables. Decided from the file system, without running anything. Any other binary (the
/// nft variant, or a wrapper script) counts as possibly nft: the callers only act on what the
/// kernel shows them and fall back to the tools otherwise.
pub fn iptables_is_legacy() -> bool {
    ["iptables", "ip6tables"].iter().any(|tool| {
        SystemRunner::resolve(tool)
            .and_then(|path| path.canonicalize().ok())
            .is_some_and(|real| is_legacy_binary(&real))
    })
}

fn is_legacy_binary(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with("xtables-legacy") || name.contains("-legacy"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_is_recognised_by_the_resolved_binary_name() {
        assert!(is_legacy_binary(Path::new(
            "/usr/sbin/xtables-legacy-multi"
        )));
        assert!(is_legacy_binary(Path::new("/usr/sbin/iptables-legacy")));
        assert!(!is_legacy_binary(Path::new("/usr/sbin/xtables-nft-multi")));
        assert!(!is_legacy_binary(Path::new("/tmp/wrapbin/iptables")));
    }
}

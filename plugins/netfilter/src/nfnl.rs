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
//! - [`NfRules::delete_all`] removes rules by handle, flushes and deletes chains in one nf_tables
//!   transaction: all or none.
//!
//! Writes of new rules stay with `iptables-restore`, so every rule keeps the exact encoding
//! iptables-nft gives it. This is not used when the host's `iptables` is iptables-legacy
//! ([`iptables_flavor`]), whose rules are not in nf_tables at all.

mod encode;
mod rule;
mod socket;

pub use encode::rule_from_args;
pub use rule::{Expr, NftRule, Verdict};
pub use socket::NfnlRules;

use std::sync::Arc;

use crate::NetfilterError;
use crate::exec::SystemRunner;
use crate::iptables::IpFamily;

/// One step of a deletion transaction ([`NfRules::delete_all`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion<'a> {
    /// The rule `handle` of `chain`.
    Rule {
        /// Its chain.
        chain: &'a str,
        /// Its handle.
        handle: u64,
    },
    /// Every rule of `chain` (`iptables -F`).
    Flush {
        /// The chain.
        chain: &'a str,
    },
    /// The (empty, unreferenced) chain itself (`iptables -X`).
    Chain {
        /// The chain.
        chain: &'a str,
    },
}

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

    /// Whether `chain` exists in table `table` of `family`.
    fn has_chain(&self, family: IpFamily, table: &str, chain: &str)
    -> Result<bool, NetfilterError>;

    /// Apply `steps` in one transaction: either all take effect or, when one fails (a rule
    /// that no longer exists, a chain still referenced), none does and the error says why.
    fn delete_all(
        &self,
        family: IpFamily,
        table: &str,
        steps: &[Deletion<'_>],
    ) -> Result<(), NetfilterError>;

    /// Create the regular (hookless) chain `chain` in table `table`, as `iptables -N` does;
    /// `Ok(false)` when it already exists.
    fn create_chain(
        &self,
        family: IpFamily,
        table: &str,
        chain: &str,
    ) -> Result<bool, NetfilterError>;

    /// Delete the rules `handles` of `chain` in one transaction (see [`NfRules::delete_all`]).
    fn delete(
        &self,
        family: IpFamily,
        table: &str,
        chain: &str,
        handles: &[u64],
    ) -> Result<(), NetfilterError> {
        let steps: Vec<Deletion<'_>> = handles
            .iter()
            .map(|&handle| Deletion::Rule { chain, handle })
            .collect();
        self.delete_all(family, table, &steps)
    }
}

/// Which iptables the host's `PATH` leads to, told by the binary behind the alternatives'
/// symlinks, without running anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IptablesFlavor {
    /// Both `iptables` and `ip6tables` are `xtables-nft-multi`: their rules are in nf_tables,
    /// and what netlink does not show is not there.
    Nft,
    /// One of them is iptables-legacy: its rules are not in nf_tables at all.
    Legacy,
    /// Anything else (a wrapper script, say): netlink may be used for what it shows, but
    /// absence proves nothing.
    Unknown,
}

/// The host's [`IptablesFlavor`].
pub fn iptables_flavor() -> IptablesFlavor {
    let names: Vec<Option<String>> = ["iptables", "ip6tables"]
        .iter()
        .map(|tool| {
            SystemRunner::resolve(tool)
                .and_then(|path| path.canonicalize().ok())
                .and_then(|real| real.file_name()?.to_str().map(str::to_owned))
        })
        .collect();
    flavor_of(&names)
}

fn flavor_of(names: &[Option<String>]) -> IptablesFlavor {
    let is = |name: &Option<String>, test: &dyn Fn(&str) -> bool| name.as_deref().is_some_and(test);
    if names.iter().any(|n| is(n, &is_legacy_binary)) {
        IptablesFlavor::Legacy
    } else if names.iter().all(|n| is(n, &|b| b == "xtables-nft-multi")) {
        IptablesFlavor::Nft
    } else {
        IptablesFlavor::Unknown
    }
}

/// The nf_tables access a plugin on this host should use, decided once for every caller: none
/// with iptables-legacy; otherwise the netlink reader and whether iptables is known to be
/// iptables-nft (so that what nf_tables does not hold is not there at all).
pub fn for_this_host() -> Option<(Arc<dyn NfRules>, bool)> {
    match iptables_flavor() {
        IptablesFlavor::Legacy => None,
        flavor => Some((
            Arc::new(NfnlRules::default()),
            flavor == IptablesFlavor::Nft,
        )),
    }
}

fn is_legacy_binary(name: &str) -> bool {
    name.starts_with("xtables-legacy") || name.contains("-legacy")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flavor_follows_the_resolved_binaries() {
        let names = |a: &str, b: &str| [Some(a.to_owned()), Some(b.to_owned())];
        let nft = "xtables-nft-multi";
        assert_eq!(flavor_of(&names(nft, nft)), IptablesFlavor::Nft);
        let legacy = "xtables-legacy-multi";
        assert_eq!(flavor_of(&names(nft, legacy)), IptablesFlavor::Legacy);
        assert_eq!(
            flavor_of(&names("iptables-legacy", nft)),
            IptablesFlavor::Legacy
        );
        assert_eq!(flavor_of(&names("iptables", nft)), IptablesFlavor::Unknown);
        assert_eq!(
            flavor_of(&[Some(nft.to_owned()), None]),
            IptablesFlavor::Unknown
        );
    }
}

//! The nftables firewall backend: the reference's semantics in our own table (the reference has
//! no such backend):
//!
//! ```text
//! table inet cni_firewall {
//!   chain forward { type filter hook forward priority 0; policy accept;
//!     jump isolation_stage_1 comment "CNI firewall plugin: isolation"
//!     jump admin comment "CNI firewall plugin: admin overrides"
//!     ip daddr <ip> ct state established,related accept comment "<owner>"
//!     ip saddr <ip> accept comment "<owner>" }
//!   chain admin { }                                   # the operator's overrides
//!   chain isolation_stage_1 {
//!     iifname "<br>" oifname "<br>" drop comment "isolated: <br>"              # isolated only
//!     iifname "<br>" oifname != "<br>" jump isolation_stage_2 comment "same-bridge: <br>" }
//!   chain isolation_stage_2 { oifname "<br>" drop comment "same-bridge: <br>" }
//! }
//! ```
//!
//! Every operation is one `nft -j list table` plus, when something changes, one atomic
//! `nft -f -`. DEL deletes the whole table once no container and no admin rule is left.
//!
//! An `accept` here ends evaluation of this table only: a drop in another table on the forward
//! hook (a `FORWARD` policy of `DROP` in iptables-nft, firewalld) still drops. Drops here are final.

mod plan;

use std::sync::Arc;

use self::plan::{check_table, plan_add, plan_removal};
use super::{
    ContainerFirewall, FirewallBackend, FirewallError, FirewallKind, HostLock, NftTag, Owner,
    Teardown,
};
use crate::NetfilterError;
use crate::exec::CommandRunner;
use crate::masquerade::network_hash;
use crate::names::validate_name;
use crate::nft::{Nft, NftTable};

/// The table family.
pub(crate) const FAMILY: &str = "inet";
/// Our table.
pub(crate) const TABLE: &str = "cni_firewall";
/// Lists and writes per operation before giving up.
const ATTEMPTS: usize = 3;

/// The nftables firewall backend.
#[derive(Clone)]
pub struct NftablesFirewall {
    nft: Nft,
    lock: HostLock,
}

impl std::fmt::Debug for NftablesFirewall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NftablesFirewall")
            .field("lock", &self.lock)
            .finish_non_exhaustive()
    }
}

impl NftablesFirewall {
    /// The backend over `runner`, locking `lock`.
    pub fn new(runner: Arc<dyn CommandRunner>, lock: HostLock) -> Self {
        Self {
            nft: Nft::new(runner),
            lock,
        }
    }

    /// List, plan, apply; re-list and re-plan when the transaction fails.
    fn converge(
        &self,
        removal: bool,
        plan: impl Fn(Option<&NftTable>) -> Result<Option<String>, NetfilterError>,
    ) -> Result<(), NetfilterError> {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let table = match self.nft.list_table(FAMILY, TABLE) {
                Ok(table) => table,
                Err(NetfilterError::ProgramNotFound { .. }) if removal => return Ok(()),
                Err(e) => return Err(e),
            };
            let Some(batch) = plan(table.as_ref())? else {
                return Ok(());
            };
            match self.nft.apply(&batch) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(NetfilterError::Multiple(Vec::new())))
    }
}

impl FirewallBackend for NftablesFirewall {
    fn kind(&self) -> FirewallKind {
        FirewallKind::Nftables
    }

    fn add(&self, fw: &ContainerFirewall) -> Result<(), FirewallError> {
        if fw.ips.is_empty() {
            return Ok(());
        }
        let _guard = self.lock.acquire()?;
        Ok(self.converge(false, |table| plan_add(table, fw))?)
    }

    fn del(&self, teardown: &Teardown) -> Result<(), FirewallError> {
        teardown.owner.validate()?;
        let _guard = self.lock.acquire()?;
        let instance = teardown.owner.instance_hash();
        let select = |tag: &NftTag| tag.instance == instance;
        let bridge = teardown.bridge.as_deref();
        Ok(self.converge(true, |table| {
            Ok(table.and_then(|t| plan_removal(t, &select, bridge)))
        })?)
    }

    fn check(&self, fw: &ContainerFirewall) -> Result<(), FirewallError> {
        if fw.ips.is_empty() {
            return Ok(());
        }
        let table = self.nft.list_table(FAMILY, TABLE)?;
        let table = table.ok_or_else(|| NetfilterError::RuleMissing {
            what: format!("nftables table {FAMILY} {TABLE}"),
        })?;
        Ok(check_table(&table, fw)?)
    }

    fn gc(&self, network: &str, valid: &[(&str, &str)]) -> Result<(), FirewallError> {
        validate_name("network name", network)?;
        let _guard = self.lock.acquire()?;
        let prefix = format!("{}-", network_hash(network));
        let keep: Vec<String> = valid
            .iter()
            .map(|(cid, ifname)| Owner::new(network, cid, ifname).instance_hash())
            .collect();
        let select =
            |tag: &NftTag| tag.instance.starts_with(&prefix) && !keep.contains(&tag.instance);
        Ok(self.converge(true, |table| {
            Ok(table.and_then(|t| plan_removal(t, &select, None)))
        })?)
    }

    fn status(&self) -> Result<(), FirewallError> {
        self.nft
            .probe(FAMILY, TABLE)
            .map_err(|e| NetfilterError::Unusable {
                backend: "nftables",
                source: Box::new(e),
            })?;
        drop(self.lock.acquire()?);
        Ok(())
    }
}

#[cfg(test)]
mod tests;

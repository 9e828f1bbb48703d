//! The nftables portmap backend, in the reference's tables (its layout after plugins PR #1210):
//!
//! ```text
//! table ip cni_hostport {                      # and table ip6 cni_hostport
//!   comment "CNI portmap plugin"
//!   chain hostports { [ip daddr <hostIP>] tcp dport 8080 dnat to 10.99.0.2:80 comment "<owner>" }
//!   chain hostip_hostports { }                 # the reference's older hostIP rules; never written
//!   chain hostports_all { jump hostip_hostports; jump hostports }
//!   chain prerouting { type nat hook prerouting priority dstnat; [conditions] fib daddr type local jump hostports_all }
//!   chain output { type nat hook output priority -100; [conditions] fib daddr type local jump hostports_all }
//!   chain masquerading { type nat hook postrouting priority srcnat;
//!     ip saddr <c> ip daddr <c> masquerade comment "<owner>"            # hairpin (snat)
//!     ip saddr 127.0.0.1 ip daddr <c> masquerade comment "<owner>" }    # localhost (snat, IPv4)
//! }
//! ```
//!
//! `<owner>` = `<16 hex of SHA-512(net)>-<16 hex of SHA-512(cid)>, net: <net>, id: <cid>` (cut
//! to 128 bytes): unlike the reference's bare container ID it tells networks apart, so GC can
//! find a network's rules. DEL also removes rules commented with the bare container ID (the
//! reference's). With `masqAll` the masquerade rule is `ip daddr <c> ct status dnat masquerade`.
//!
//! Every operation lists the tables it needs (`nft -j list table`, one per family) and applies
//! one atomic `nft -f -` covering both families; a failed transaction is re-planned from fresh
//! listings. A table left with nothing but its skeleton is deleted.

mod expr;
mod plan;

use std::sync::Arc;

use self::plan::{check, plan_add, plan_removal, table_ref};
use super::{
    ContainerPorts, PortmapBackend, PortmapError, PortmapKind, PortmapOwner, acquire, network_hash,
};
use crate::NetfilterError;
use crate::exec::CommandRunner;
use crate::firewall::HostLock;
use crate::iptables::IpFamily;
use crate::names::{hash_with_prefix, validate_name};
use crate::nft::{Nft, NftTable};

/// The table name (one table per family).
pub const TABLE: &str = "cni_hostport";
/// The table's comment.
const TABLE_COMMENT: &str = "CNI portmap plugin";
/// DNAT rules of published ports.
pub(crate) const HOSTPORTS_CHAIN: &str = "hostports";
/// The reference's older chain for `hostIP` mappings (kept jumped to, never written).
pub(crate) const HOSTIP_CHAIN: &str = "hostip_hostports";
/// Jumps to both mapping chains.
pub(crate) const ALL_CHAIN: &str = "hostports_all";
/// Base chain on the prerouting hook.
pub(crate) const PREROUTING_CHAIN: &str = "prerouting";
/// Base chain on the output hook.
pub(crate) const OUTPUT_CHAIN: &str = "output";
/// Base chain on the postrouting hook: hairpin and localhost masquerading.
pub(crate) const MASQ_CHAIN: &str = "masquerading";
/// Every chain of the table, in creation order.
pub(crate) const CHAINS: [&str; 6] = [
    HOSTPORTS_CHAIN,
    HOSTIP_CHAIN,
    ALL_CHAIN,
    PREROUTING_CHAIN,
    OUTPUT_CHAIN,
    MASQ_CHAIN,
];
/// Listings and transactions per operation before giving up.
const ATTEMPTS: usize = 3;

/// The nftables portmap backend.
#[derive(Clone)]
pub struct NftablesPortmap {
    nft: Nft,
    lock: HostLock,
}

impl std::fmt::Debug for NftablesPortmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NftablesPortmap")
            .field("lock", &self.lock)
            .finish_non_exhaustive()
    }
}

type Listings = Vec<(IpFamily, Option<NftTable>)>;

impl NftablesPortmap {
    /// The backend over `runner`, locking `lock`.
    pub fn new(runner: Arc<dyn CommandRunner>, lock: HostLock) -> Self {
        Self {
            nft: Nft::new(runner),
            lock,
        }
    }

    fn list(&self, families: &[IpFamily]) -> Result<Listings, NetfilterError> {
        families
            .iter()
            .map(|f| Ok((*f, self.nft.list_table(expr::family_name(*f), TABLE)?)))
            .collect()
    }

    /// List, plan, apply; re-list and re-plan when the transaction fails. For a `removal`,
    /// a host without `nft` holds nothing to remove.
    fn converge(
        &self,
        families: &[IpFamily],
        removal: bool,
        plan: impl Fn(&Listings) -> Result<Vec<String>, PortmapError>,
    ) -> Result<(), PortmapError> {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let listings = match self.list(families) {
                Ok(listings) => listings,
                Err(NetfilterError::ProgramNotFound { .. }) if removal => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            let lines = plan(&listings)?;
            if lines.is_empty() {
                return Ok(());
            }
            match self.nft.apply(&(lines.join("\n") + "\n")) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(NetfilterError::Multiple(Vec::new())).into())
    }

    /// Remove the rules whose comment `doomed` accepts, in both families.
    fn remove(&self, doomed: &dyn Fn(&str) -> bool) -> Result<(), PortmapError> {
        self.converge(&IpFamily::ALL, true, |listings| {
            Ok(listings
                .iter()
                .filter_map(|(f, t)| t.as_ref().map(|t| plan_removal(t, *f, doomed)))
                .flatten()
                .collect())
        })
    }
}

impl PortmapBackend for NftablesPortmap {
    fn kind(&self) -> PortmapKind {
        PortmapKind::Nftables
    }

    fn add(&self, ports: &ContainerPorts) -> Result<(), PortmapError> {
        ports.owner.validate()?;
        let families = ports.families();
        if families.is_empty() || ports.mappings.is_empty() {
            return Ok(());
        }
        let _guard = acquire(&self.lock)?;
        self.converge(&families, false, |listings| {
            let mut lines = Vec::new();
            for (family, table) in listings {
                lines.extend(plan_add(table.as_ref(), ports, *family)?);
            }
            Ok(lines)
        })
    }

    fn del(&self, owner: &PortmapOwner) -> Result<(), PortmapError> {
        owner.validate()?;
        let _guard = acquire(&self.lock)?;
        let instance = owner.nft_instance();
        let cid = owner.container_id.as_str();
        self.remove(&|comment| comment.starts_with(&instance) || comment == cid)
    }

    fn check(&self, ports: &ContainerPorts) -> Result<(), PortmapError> {
        if ports.mappings.is_empty() {
            return Ok(());
        }
        for (family, table) in self.list(&ports.families())? {
            check(table.as_ref(), ports, family)?;
        }
        Ok(())
    }

    fn gc(&self, network: &str, valid: &[&str]) -> Result<(), PortmapError> {
        validate_name("network name", network)?;
        let _guard = acquire(&self.lock)?;
        let prefix = format!("{}-", network_hash(network));
        let keep: Vec<String> = valid
            .iter()
            .map(|cid| format!("{prefix}{}", hash_with_prefix(16, "", cid)))
            .collect();
        self.remove(&|comment| {
            comment.starts_with(&prefix) && !keep.iter().any(|k| comment.starts_with(k.as_str()))
        })
    }

    fn status(&self) -> Result<(), PortmapError> {
        self.nft
            .probe("ip", TABLE)
            .map_err(|e| NetfilterError::Unusable {
                backend: "nftables",
                source: Box::new(e),
            })?;
        drop(acquire(&self.lock)?);
        Ok(())
    }
}

/// `ip cni_hostport` / `ip6 cni_hostport`, for messages and tests.
pub fn table_name(family: IpFamily) -> String {
    table_ref(family)
}

#[cfg(test)]
mod tests;

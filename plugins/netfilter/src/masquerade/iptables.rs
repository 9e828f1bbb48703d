//! iptables masquerade backend: table `nat`, per family
//!
//! ```text
//! :CNI-<24hex> - [0:0]
//! -A CNI-<24hex> -d <subnet> -m comment --comment "name: \"<net>\" id: \"<cid>\"" -j ACCEPT
//! -A CNI-<24hex> ! -d 224.0.0.0/4 -m comment --comment "…" -j MASQUERADE      (v6: ff00::/8)
//! -A POSTROUTING -s <ip>/32 -m comment --comment "…" -j CNI-<24hex>            (v6: /128)
//! ```
//!
//! ADD is one `iptables-restore --noflush -w` per family that creates the chain with `-N`; only
//! when the chain already exists (a repeated or interrupted ADD) does it read the table. Every
//! other operation is one `iptables-save -t nat` plus (only if something must change) one
//! `iptables-restore --noflush -w` per family — except DEL with iptables-nft, which deletes the
//! jumps, rules and chain over netlink in one transaction ([`netlink`]).

mod netlink;
mod plan;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use ipnetwork::IpNetwork;

use super::{BackendKind, MasqueradeBackend, validate};
use crate::NetfilterError;
use crate::exec::CommandRunner;
use crate::iptables::{IpFamily, Iptables, RestoreBatch, SavedTable, per_family};
use crate::names;
use crate::nfnl::{Deletion, NfRules};

pub(crate) use plan::{
    NewChain, check_family, fresh_chain_batch, gc_chains, setup_batch, teardown_batch,
};

/// The iptables masquerade backend.
#[derive(Clone)]
pub struct IptablesMasquerade {
    runner: Arc<dyn CommandRunner>,
    nf: Option<(Arc<dyn NfRules>, bool)>,
}

impl std::fmt::Debug for IptablesMasquerade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IptablesMasquerade").finish_non_exhaustive()
    }
}

impl IptablesMasquerade {
    /// The backend over `runner`.
    pub fn new(runner: Arc<dyn CommandRunner>) -> Self {
        Self { runner, nf: None }
    }

    /// Tear down through `nf` (iptables-nft's tables over netlink) instead of reading `nat` with
    /// `iptables-save`. With `known_nft` (the host's iptables is known to be iptables-nft, see
    /// [`crate::nfnl::IptablesFlavor`]) nothing in nf_tables means nothing to remove, and ADD
    /// creates the attachment's chain over netlink so that its batch needs no `-N`; without it
    /// the tools look too and ADD is unchanged.
    pub fn with_nf_rules(mut self, nf: Arc<dyn NfRules>, known_nft: bool) -> Self {
        self.nf = Some((nf, known_nft));
        self
    }

    /// One family's teardown over netlink; `false` when the tools must do it.
    fn netlink_teardown(&self, family: IpFamily, chain: &str) -> bool {
        let Some((nf, known_nft)) = &self.nf else {
            return false;
        };
        match netlink::teardown_family(nf.as_ref(), family, chain) {
            Ok(netlink::Outcome::Removed) => true,
            Ok(netlink::Outcome::Absent) => *known_nft,
            Err(_) => false,
        }
    }

    fn tools(&self, family: IpFamily) -> Iptables {
        Iptables::new(self.runner.clone(), family)
    }

    /// Read the nat table, plan, apply; if the restore fails (another process changed the
    /// table between our read and our write) read, plan and apply once more.
    fn converge(
        &self,
        family: IpFamily,
        plan: impl Fn(&SavedTable) -> Option<RestoreBatch>,
    ) -> Result<(), NetfilterError> {
        let tools = self.tools(family);
        let Some(batch) = plan(&tools.save("nat")?) else {
            return Ok(());
        };
        match tools.restore(&batch) {
            Ok(()) => return Ok(()),
            Err(e) if e.is_lock_timeout() => return Err(e),
            Err(_) => {}
        }
        match plan(&tools.save("nat")?) {
            None => Ok(()),
            Some(batch) => tools.restore(&batch),
        }
    }

    /// The usual ADD, without reading the table: one batch that creates the attachment's chain
    /// with `-N` (which fails the whole batch if the chain exists), fills it and adds the jumps.
    /// The chain only exists if an earlier ADD of this attachment left state behind (a jump
    /// cannot outlive its target chain), and then the caller falls back to [`Self::converge`],
    /// which reads the table and repairs. Reading `nat` costs time in proportion to the number
    /// of containers; this costs the same for the first container and the thousandth.
    fn first_setup(
        &self,
        family: IpFamily,
        chain: &str,
        comment: &str,
        ips: &[IpNetwork],
    ) -> Result<(), NetfilterError> {
        let tools = self.tools(family);
        if let Some((nf, true)) = &self.nf {
            match nf.create_chain(family, netlink::NAT, chain) {
                Ok(true) => {
                    let batch =
                        fresh_chain_batch(NewChain::AlreadyCreated, family, chain, comment, ips);
                    let filled = tools.restore(&batch);
                    if filled.is_err() {
                        // Leave nothing behind for the reading path that follows.
                        let undo = [Deletion::Flush { chain }, Deletion::Chain { chain }];
                        let _ = nf.delete_all(family, netlink::NAT, &undo);
                    }
                    return filled;
                }
                Ok(false) => {
                    return Err(NetfilterError::RuleMissing {
                        what: format!("a fresh chain {chain} (it exists)"),
                    });
                }
                // No `nat` table in nf_tables yet, say: the `-N` batch creates it.
                Err(_) => {}
            }
        }
        tools.restore(&fresh_chain_batch(
            NewChain::Declare,
            family,
            chain,
            comment,
            ips,
        ))
    }

    /// `converge` for teardown-like operations: a family whose tools are missing or whose nat
    /// table the kernel does not have holds nothing to remove.
    fn converge_removal(
        &self,
        family: IpFamily,
        plan: impl Fn(&SavedTable) -> Option<RestoreBatch>,
    ) -> Result<(), NetfilterError> {
        match self.converge(family, plan) {
            Err(NetfilterError::ProgramNotFound { .. }) => Ok(()),
            Err(e) if e.is_not_exist() => Ok(()),
            other => other,
        }
    }
}

impl MasqueradeBackend for IptablesMasquerade {
    fn kind(&self) -> BackendKind {
        BackendKind::Iptables
    }

    fn setup(
        &self,
        network: &str,
        container_id: &str,
        _ifname: &str,
        ips: &[IpNetwork],
    ) -> Result<(), NetfilterError> {
        validate(network, container_id)?;
        let chain = names::chain_name("", network, container_id);
        let comment = checked_comment(network, container_id)?;
        let mut done = Vec::new();
        for (family, family_ips) in by_family(ips) {
            let result = self
                .first_setup(family, &chain, &comment, &family_ips)
                .or_else(|e| {
                    if e.is_lock_timeout() {
                        return Err(e);
                    }
                    self.converge(family, |saved| {
                        setup_batch(saved, family, &chain, &comment, &family_ips)
                    })
                });
            if let Err(e) = result {
                // Undo the families this call already set up; the first error is the one to report.
                for undo in done {
                    let _ = self
                        .converge_removal(undo, |saved| teardown_batch(saved, &[chain.as_str()]));
                }
                return Err(e);
            }
            done.push(family);
        }
        Ok(())
    }

    fn teardown(
        &self,
        network: &str,
        container_id: &str,
        _ifname: &str,
    ) -> Result<(), NetfilterError> {
        validate(network, container_id)?;
        let chain = names::chain_name("", network, container_id);
        let errors = per_family(&IpFamily::ALL, |family| {
            if self.netlink_teardown(family, &chain) {
                return Ok(());
            }
            self.converge_removal(family, |saved| teardown_batch(saved, &[chain.as_str()]))
        })
        .into_iter()
        .filter_map(|(_, result)| result.err())
        .collect();
        NetfilterError::collect(errors)
    }

    fn check(
        &self,
        network: &str,
        container_id: &str,
        _ifname: &str,
        ips: &[IpNetwork],
    ) -> Result<(), NetfilterError> {
        validate(network, container_id)?;
        let chain = names::chain_name("", network, container_id);
        let comment = checked_comment(network, container_id)?;
        for (family, family_ips) in by_family(ips) {
            let saved = self.tools(family).save("nat")?;
            check_family(&saved, family, &chain, &comment, &family_ips)?;
        }
        Ok(())
    }

    fn gc(&self, network: &str, valid: &[(&str, &str)]) -> Result<(), NetfilterError> {
        crate::names::validate_name("network name", network)?;
        let keep: HashSet<&str> = valid.iter().map(|(cid, _)| *cid).collect();
        let errors = IpFamily::ALL
            .into_iter()
            .filter_map(|family| {
                self.converge_removal(family, |saved| {
                    let stale = gc_chains(saved, network, &keep);
                    let chains: Vec<&str> = stale.iter().map(String::as_str).collect();
                    teardown_batch(saved, &chains)
                })
                .err()
            })
            .collect();
        NetfilterError::collect(errors)
    }

    fn status(&self) -> Result<(), NetfilterError> {
        self.tools(IpFamily::V4)
            .probe()
            .map_err(|e| NetfilterError::Unusable {
                backend: "iptables",
                source: Box::new(e),
            })
    }
}

/// The reference comment, refused when iptables' 255-character comment limit would reject it.
fn checked_comment(network: &str, container_id: &str) -> Result<String, NetfilterError> {
    let comment = names::comment(network, container_id);
    if comment.len() > 255 {
        return Err(NetfilterError::InvalidName {
            what: "container ID",
            value: container_id.to_owned(),
            reason: "the rule comment would exceed iptables' 255-character limit",
        });
    }
    Ok(comment)
}

/// Addresses grouped by family (v4 first), input order kept within a family.
fn by_family(ips: &[IpNetwork]) -> BTreeMap<IpFamily, Vec<IpNetwork>> {
    let mut map: BTreeMap<IpFamily, Vec<IpNetwork>> = BTreeMap::new();
    for ip in ips {
        map.entry(IpFamily::of(&ip.ip())).or_default().push(*ip);
    }
    map
}

#[cfg(test)]
mod tests;

//! The iptables firewall backend: the reference plugin's layout in table `filter` of iptables
//! and ip6tables, plus an owner comment on the two per-address rules (see [`super::owner`]).
//!
//! A first ADD of an attachment (see [`super::ledger`]) writes one batch per family without
//! reading anything; when that batch's preconditions fail it falls back to the general path.
//! With iptables-nft, the preconditions are read over netlink instead ([`netlink`]) and the
//! batch only appends, and DEL and GC plan on a model read over netlink and delete by handle in
//! one nf_tables transaction, without running any tool.
//! Each operation takes the [`HostLock`], then per family reads the table once
//! (`iptables-save -t filter`) and, only if something must change, writes one batch
//! (`iptables-restore --noflush -w`). A batch that fails because another tool changed the table
//! in between is re-planned from a fresh read (up to three attempts). The two families are
//! independent tables and are worked on in parallel.

mod edit;
mod netlink;
mod plan;
mod rules;
mod teardown;

use std::net::IpAddr;
use std::sync::Arc;

use self::netlink::{netlink_model, netlink_teardown, requirements_met};
use self::plan::{append_only_batch, check, family_ips, first_add_batch, has_own_rules, plan_add};
use self::rules::FILTER;
use self::teardown::{Known, plan_teardown, plan_teardown_edit};
use super::ledger::Ledger;
use super::{
    ContainerFirewall, FirewallBackend, FirewallError, FirewallKind, HostLock, HostRoutes, Owner,
    ProcRoutes, Teardown,
};
use crate::NetfilterError;
use crate::exec::{self, CommandRunner, run_checked};
use crate::iptables::{IpFamily, Iptables, SavedTable, per_family};
use crate::names::validate_name;
use crate::nfnl::NfRules;

/// Reads and writes per family and operation before giving up on a table others keep changing.
const ATTEMPTS: usize = 3;

/// The iptables firewall backend.
#[derive(Clone)]
pub struct IptablesFirewall {
    runner: Arc<dyn CommandRunner>,
    lock: HostLock,
    routes: Arc<dyn HostRoutes>,
    nf: Option<(Arc<dyn NfRules>, bool)>,
}

impl std::fmt::Debug for IptablesFirewall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IptablesFirewall")
            .field("lock", &self.lock)
            .finish_non_exhaustive()
    }
}

impl IptablesFirewall {
    /// The backend over `runner`, locking `lock`, attributing addresses with [`ProcRoutes`].
    pub fn new(runner: Arc<dyn CommandRunner>, lock: HostLock) -> Self {
        Self {
            runner,
            lock,
            routes: Arc::new(ProcRoutes),
            nf: None,
        }
    }

    /// Read (and prune) iptables-nft's tables through `nf` where that spares an iptables exec.
    /// Not for hosts whose iptables is iptables-legacy (see [`crate::nfnl::iptables_flavor`]);
    /// `known_nft` when it is known to be iptables-nft, so that what nf_tables does not hold
    /// is not there at all.
    pub fn with_nf_rules(mut self, nf: Arc<dyn NfRules>, known_nft: bool) -> Self {
        self.nf = Some((nf, known_nft));
        self
    }

    /// Use `routes` to attribute the Go plugin's rules to bridges.
    pub fn with_routes(mut self, routes: Arc<dyn HostRoutes>) -> Self {
        self.routes = routes;
        self
    }

    /// Read, plan, write; re-read and re-plan when the write fails. For a `removal`, a family
    /// whose tools are missing or whose kernel has no such table holds nothing to remove.
    fn converge(
        &self,
        family: IpFamily,
        removal: bool,
        plan: impl Fn(&SavedTable) -> Result<Option<String>, NetfilterError>,
    ) -> Result<(), NetfilterError> {
        let tools = Iptables::new(self.runner.clone(), family);
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let saved = match tools.save(FILTER) {
                Ok(saved) => saved,
                Err(e) if removal && is_absent(&e) => return Ok(()),
                Err(e) => return Err(e),
            };
            let Some(batch) = plan(&saved)? else {
                return Ok(());
            };
            match self.write(family, &batch) {
                Ok(()) => return Ok(()),
                Err(e) if e.is_lock_timeout() => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(NetfilterError::Multiple(Vec::new())))
    }

    /// One `iptables-restore --noflush` of a planned batch.
    fn write(&self, family: IpFamily, batch: &str) -> Result<(), NetfilterError> {
        let args = exec::restore_args();
        run_checked(
            self.runner.as_ref(),
            family.restore_program(),
            &args,
            Some(batch),
        )?;
        Ok(())
    }

    /// The ledger of attachments set up through this backend's lock directory.
    fn ledger(&self) -> Ledger {
        Ledger::beside(self.lock.path())
    }

    /// A first ADD's rules in one batch, without reading the table with iptables: with the
    /// shared rules checked over netlink and an append-only batch, planned on the table read
    /// over netlink when they are missing (the bridge's first container), or else with the `-C`
    /// preconditions in the batch (see [`first_add_batch`]). An error means nothing changed and
    /// the reading path must run.
    fn first_add(
        &self,
        family: IpFamily,
        fw: &ContainerFirewall,
        ips: &[IpAddr],
    ) -> Result<(), NetfilterError> {
        let tools = Iptables::new(self.runner.clone(), family);
        let nf = self.nf.as_ref().map(|(nf, _)| nf.as_ref());
        match nf.map(|nf| requirements_met(nf, family, fw)) {
            Some(Ok(true)) => tools.restore(&append_only_batch(fw, ips)?),
            // The table lacks a shared rule: a `-C` batch would just fail; plan on the model.
            Some(Ok(false)) => match self.add_from_netlink_model(family, fw, ips)? {
                true => Ok(()),
                false => Err(NetfilterError::RuleMissing {
                    what: format!("a shared rule in {} table filter", family.iptables()),
                }),
            },
            Some(Err(_)) | None => tools.restore(&first_add_batch(fw, ips)?),
        }
    }

    /// A first ADD planned on the table as read over netlink ([`netlink_model`]) instead of
    /// `iptables-save`, and written with the same `iptables-restore` batch. `Ok(false)`: no
    /// model to plan on, nothing changed. A failed batch (the model's stand-ins for rules it
    /// does not interpret never make it into one unless the plan deletes them, which only a
    /// repeated ADD does) changed nothing either; the caller's reading path follows.
    fn add_from_netlink_model(
        &self,
        family: IpFamily,
        fw: &ContainerFirewall,
        ips: &[IpAddr],
    ) -> Result<bool, NetfilterError> {
        let Some((nf, known_nft)) = &self.nf else {
            return Ok(false);
        };
        let Some(model) = netlink_model(nf.as_ref(), family, *known_nft)? else {
            return Ok(false);
        };
        if let Some(batch) = plan_add(&model, fw, ips)? {
            self.write(family, &batch)?;
        }
        Ok(true)
    }

    /// Remove the rules of the owners `select` picks in both families; keep going on errors.
    fn remove(
        &self,
        select: &(dyn Fn(&Owner) -> bool + Sync),
        ips: &[IpAddr],
        bridge: Option<&str>,
    ) -> Result<(), NetfilterError> {
        let results = per_family(&IpFamily::ALL, |family| {
            let ips = family_ips(ips, family);
            let known = Known { ips: &ips, bridge };
            let plan =
                |saved: &SavedTable| plan_teardown_edit(saved, select, known, self.routes.as_ref());
            // A netlink failure is not an answer: the tools' path then reads and writes.
            if let Some((nf, known_nft)) = &self.nf
                && netlink_teardown(nf.as_ref(), family, &plan, *known_nft).unwrap_or(false)
            {
                return Ok(());
            }
            self.converge(family, true, |saved| Ok(plan(saved).into_batch()))
        });
        NetfilterError::collect(results.into_iter().filter_map(|(_, r)| r.err()).collect())
    }
}

/// The family cannot be used at all (no tool, no table): nothing of ours can be there.
fn is_absent(e: &NetfilterError) -> bool {
    matches!(e, NetfilterError::ProgramNotFound { .. }) || e.is_not_exist()
}

impl FirewallBackend for IptablesFirewall {
    fn kind(&self) -> FirewallKind {
        FirewallKind::Iptables
    }

    fn add(&self, fw: &ContainerFirewall) -> Result<(), FirewallError> {
        let _guard = self.lock.acquire()?;
        cni_core::phase::mark("firewall:lock");
        let families: Vec<IpFamily> = IpFamily::ALL
            .into_iter()
            .filter(|f| !family_ips(&fw.ips, *f).is_empty())
            .collect();
        let ledger = self.ledger();
        // A ledger we cannot write only costs speed: every family then takes the reading path.
        let first = ledger.record(&fw.owner).unwrap_or(false);
        let repeated = std::sync::atomic::AtomicBool::new(false);
        let results = per_family(&families, |family| {
            let ips = family_ips(&fw.ips, family);
            if first {
                match self.first_add(family, fw, &ips) {
                    Ok(()) => return Ok(()),
                    Err(e) if e.is_lock_timeout() => return Err(e),
                    Err(_) => {}
                }
            }
            self.converge(family, false, |saved| {
                if has_own_rules(saved, fw) {
                    repeated.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                plan_add(saved, fw, &ips)
            })
        });
        // A repeated ADD (out of spec, but runtimes do it) may have dropped an address family:
        // clear this attachment's rules there too. A first ADD never pays for this.
        if repeated.load(std::sync::atomic::Ordering::Relaxed) {
            let absent: Vec<IpFamily> = IpFamily::ALL
                .into_iter()
                .filter(|f| !families.contains(f))
                .collect();
            let cleared = per_family(&absent, |family| {
                self.converge(family, true, |saved| {
                    let owner = |o: &Owner| *o == fw.owner;
                    Ok(plan_teardown(
                        saved,
                        &owner,
                        Known::default(),
                        self.routes.as_ref(),
                    ))
                })
            });
            if let Some((_, Err(e))) = cleared.into_iter().find(|(_, r)| r.is_err()) {
                eprintln!(
                    "firewall: could not clear this attachment's rules of another family: {e}"
                );
            }
        }
        cni_core::phase::mark("firewall:rules");
        let (done, failed): (Vec<_>, Vec<_>) = results.into_iter().partition(|(_, r)| r.is_ok());
        let Some((_, Err(error))) = failed.into_iter().next() else {
            return Ok(());
        };
        // Undo the families that succeeded; the failure is the error to report.
        for (family, _) in done {
            let _ = self.converge(family, true, |saved| {
                let owner = |o: &Owner| *o == fw.owner;
                let known = Known::default();
                Ok(plan_teardown(saved, &owner, known, self.routes.as_ref()))
            });
        }
        let _ = ledger.forget(&fw.owner);
        Err(error.into())
    }

    fn del(&self, teardown: &Teardown) -> Result<(), FirewallError> {
        teardown.owner.validate()?;
        let _guard = self.lock.acquire()?;
        cni_core::phase::mark("firewall:lock");
        let owner = |o: &Owner| *o == teardown.owner;
        self.remove(&owner, &teardown.ips, teardown.bridge.as_deref())?;
        cni_core::phase::mark("firewall:teardown");
        self.ledger()
            .forget(&teardown.owner)
            .map_err(|source| FirewallError::Ledger {
                path: self.lock.path().to_path_buf(),
                source,
            })
    }

    fn check(&self, fw: &ContainerFirewall) -> Result<(), FirewallError> {
        for family in IpFamily::ALL {
            let ips = family_ips(&fw.ips, family);
            if ips.is_empty() {
                continue;
            }
            let saved = Iptables::new(self.runner.clone(), family).save(FILTER)?;
            check(&saved, family, fw, &ips)?;
        }
        Ok(())
    }

    fn gc(&self, network: &str, valid: &[(&str, &str)]) -> Result<(), FirewallError> {
        validate_name("network name", network)?;
        let _guard = self.lock.acquire()?;
        let stale = |o: &Owner| {
            o.network == network
                && !valid
                    .iter()
                    .any(|(cid, ifname)| o.container_id == *cid && o.ifname == *ifname)
        };
        self.remove(&stale, &[], None)?;
        self.ledger()
            .forget_stale(network, valid)
            .map_err(|source| FirewallError::Ledger {
                path: self.lock.path().to_path_buf(),
                source,
            })
    }

    fn status(&self) -> Result<(), FirewallError> {
        let unusable = |e| NetfilterError::Unusable {
            backend: "iptables",
            source: Box::new(e),
        };
        for program in [exec::IPTABLES_SAVE, exec::IPTABLES_RESTORE] {
            if !self.runner.has_program(program) {
                let program = program.to_owned();
                return Err(unusable(NetfilterError::ProgramNotFound { program }).into());
            }
        }
        run_checked(
            self.runner.as_ref(),
            exec::IPTABLES,
            &[
                exec::WAIT,
                exec::wait_seconds(),
                "-t",
                FILTER,
                "-S",
                "FORWARD",
            ],
            None,
        )
        .map_err(unusable)?;
        drop(self.lock.acquire()?);
        Ok(())
    }
}

#[cfg(test)]
mod tests;

//! The iptables portmap backend: the reference plugin's layout in table `nat` of iptables and
//! ip6tables.
//!
//! ```text
//! -N CNI-HOSTPORT-SETMARK ; -A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
//! -N CNI-HOSTPORT-MASQ    ; -A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
//! -I POSTROUTING 1 -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
//! -N CNI-HOSTPORT-DNAT ; -A PREROUTING|OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
//! -N CNI-DN-<21 hex of SHA-512(net + cid)>
//! -A CNI-DN-… -s <subnet> [-d <hostIP>] -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK   (snat)
//! -A CNI-DN-… -s 127.0.0.1/32 [-d <hostIP>] -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK (snat, IPv4)
//! -A CNI-DN-… [-d <hostIP>] -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.99.0.2:80
//! -A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"<net>\" id: \"<cid>\"" -m multiport --dports 8080,8443 [conditions] -j CNI-DN-…
//! ```
//!
//! Each operation takes the host lock, reads each family's table once (`iptables-save -t nat`)
//! and, only if something must change, writes one batch (`iptables-restore --noflush -w <s>`,
//! waiting a bounded time for the xtables lock). ADD reads every family before writing any, so a
//! host-port conflict changes nothing; a batch that fails because another tool changed the table
//! is re-planned from a fresh read (three attempts), one that timed out on the xtables lock is not.
//! The two families are independent tables and are worked on in parallel.
//!
//! Unlike the reference, DEL and GC also remove the shared chains once no container publishes a
//! port any more, so the host returns to its state before the first ADD.

mod plan;
mod rules;

use std::sync::Arc;

use self::plan::{Doomed, check, plan_add, plan_removal, stale};
use super::{ContainerPorts, PortmapBackend, PortmapError, PortmapKind, PortmapOwner, acquire};
use crate::NetfilterError;
use crate::exec::{self, CommandRunner, run_checked};
use crate::firewall::HostLock;
use crate::iptables::{IpFamily, Iptables, SavedTable, per_family};
use crate::names::validate_name;

/// The table everything lives in.
pub const NAT: &str = "nat";
/// The top-level DNAT chain, jumped to from `PREROUTING` and `OUTPUT` for local destinations.
pub const DNAT_CHAIN: &str = "CNI-HOSTPORT-DNAT";
/// The chain marking traffic that needs masquerading.
pub const SETMARK_CHAIN: &str = "CNI-HOSTPORT-SETMARK";
/// The chain masquerading marked traffic, jumped to first from `POSTROUTING`.
pub const MASQ_CHAIN: &str = "CNI-HOSTPORT-MASQ";
/// Reads and writes per family and operation before giving up on a table others keep changing.
const ATTEMPTS: usize = 3;

/// The iptables portmap backend.
#[derive(Clone)]
pub struct IptablesPortmap {
    runner: Arc<dyn CommandRunner>,
    lock: HostLock,
}

impl std::fmt::Debug for IptablesPortmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IptablesPortmap")
            .field("lock", &self.lock)
            .finish_non_exhaustive()
    }
}

type Plan<'a> = dyn Fn(&SavedTable) -> Result<Option<String>, PortmapError> + Sync + 'a;

impl IptablesPortmap {
    /// The backend over `runner`, locking `lock`.
    pub fn new(runner: Arc<dyn CommandRunner>, lock: HostLock) -> Self {
        Self { runner, lock }
    }

    fn tools(&self, family: IpFamily) -> Iptables {
        Iptables::new(self.runner.clone(), family)
    }

    /// Plan from `first` (or a fresh read), write; re-read and re-plan when the write fails —
    /// unless it gave up waiting for the xtables lock: another attempt would only wait again.
    /// For a `removal`, a family whose tools are missing or whose kernel has no such table holds
    /// nothing to remove.
    fn converge(
        &self,
        family: IpFamily,
        removal: bool,
        mut first: Option<SavedTable>,
        plan: &Plan<'_>,
    ) -> Result<(), PortmapError> {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let saved = match first.take() {
                Some(saved) => saved,
                None => match self.tools(family).save(NAT) {
                    Ok(saved) => saved,
                    Err(e) if removal && is_absent(&e) => return Ok(()),
                    Err(e) => return Err(e.into()),
                },
            };
            let Some(batch) = plan(&saved)? else {
                return Ok(());
            };
            let program = family.restore_program();
            match run_checked(
                self.runner.as_ref(),
                program,
                &exec::restore_args(),
                Some(&batch),
            ) {
                Ok(_) => return Ok(()),
                Err(e) if e.is_lock_timeout() => return Err(e.into()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(NetfilterError::Multiple(Vec::new())).into())
    }

    /// Remove what `doomed(saved)` selects in both families; keep going on errors.
    fn remove(&self, doomed: &(dyn Fn(&SavedTable) -> Doomed + Sync)) -> Result<(), PortmapError> {
        let results = per_family(&IpFamily::ALL, |family| {
            self.converge(family, true, None, &|saved| {
                Ok(plan_removal(saved, &doomed(saved)))
            })
        });
        let mut errors = Vec::new();
        for (_, result) in results {
            match result {
                Ok(()) => {}
                Err(PortmapError::Netfilter(e)) => errors.push(e),
                Err(other) => return Err(other),
            }
        }
        Ok(NetfilterError::collect(errors)?)
    }
}

/// The family cannot be used at all (no tool, no table): nothing of ours can be there.
fn is_absent(e: &NetfilterError) -> bool {
    matches!(e, NetfilterError::ProgramNotFound { .. }) || e.is_not_exist()
}

fn owner_doomed(owner: &PortmapOwner) -> Doomed {
    Doomed {
        chains: vec![owner.dnat_chain(), owner.legacy_snat_chain()],
        comments: vec![owner.iptables_comment()],
    }
}

impl PortmapBackend for IptablesPortmap {
    fn kind(&self) -> PortmapKind {
        PortmapKind::Iptables
    }

    fn add(&self, ports: &ContainerPorts) -> Result<(), PortmapError> {
        ports.owner.validate()?;
        let families = ports.families();
        if families.is_empty() || ports.mappings.is_empty() {
            return Ok(());
        }
        let _guard = acquire(&self.lock)?;
        // Read every family and look for conflicts before changing anything.
        let mut snapshots = Vec::new();
        for (family, saved) in per_family(&families, |f| {
            self.tools(f).save(NAT).map_err(PortmapError::from)
        }) {
            let saved = saved?;
            plan_add(&saved, ports, family)?;
            snapshots.push((family, saved));
        }
        let results = per_family(&families, |family| {
            let first = snapshots
                .iter()
                .find(|(f, _)| *f == family)
                .map(|(_, s)| s.clone());
            self.converge(family, false, first, &|saved| {
                plan_add(saved, ports, family)
            })
        });
        let (done, failed): (Vec<_>, Vec<_>) = results.into_iter().partition(|(_, r)| r.is_ok());
        let Some((_, Err(first))) = failed.into_iter().next() else {
            return Ok(());
        };
        // Undo the families that succeeded; the failure is the error to report.
        let doomed = owner_doomed(&ports.owner);
        for (family, _) in done {
            let _ = self.converge(family, true, None, &|saved| {
                Ok(plan_removal(saved, &doomed))
            });
        }
        Err(first)
    }

    fn del(&self, owner: &PortmapOwner) -> Result<(), PortmapError> {
        owner.validate()?;
        let _guard = acquire(&self.lock)?;
        let doomed = owner_doomed(owner);
        self.remove(&|_| doomed.clone())
    }

    fn check(&self, ports: &ContainerPorts) -> Result<(), PortmapError> {
        if ports.mappings.is_empty() {
            return Ok(());
        }
        for family in ports.families() {
            let saved = self.tools(family).save(NAT)?;
            check(&saved, ports, family)?;
        }
        Ok(())
    }

    fn gc(&self, network: &str, valid: &[&str]) -> Result<(), PortmapError> {
        validate_name("network name", network)?;
        let _guard = acquire(&self.lock)?;
        self.remove(&|saved| stale(saved, network, valid))
    }

    fn status(&self) -> Result<(), PortmapError> {
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
        self.tools(IpFamily::V4).probe().map_err(unusable)?;
        drop(acquire(&self.lock)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests;

//! ADD: record the previous values, write the backup, then set sysctls and link attributes;
//! a failure undoes what was set and puts the backup file back as it was.

use cni_core::CniError;
use cni_kernel::netlink::{Link, Netlink, format_mac, parse_mac};
use cni_kernel::sysctl::Sysctl;

use crate::backup::{Backup, BackupFile, Stored};
use crate::config::{LinkSettings, TuningConfig};
use crate::error;

/// One ADD.
#[derive(Debug, Clone, Copy)]
pub struct AddRequest<'a> {
    /// The validated config.
    pub cfg: &'a TuningConfig,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// The network name (recorded in the backup for GC).
    pub network: &'a str,
}

/// A change made, with the value that undoes it.
#[derive(Debug, Clone)]
enum Undo {
    Sysctl(String, String),
    Mac(u32, [u8; 6]),
    Promisc(u32, bool),
    Mtu(u32, u32),
    Allmulti(u32, bool),
    TxQLen(u32, u32),
}

/// The previous values of everything `cfg` changes (write-only sysctls cannot be recorded).
fn record(
    req: &AddRequest<'_>,
    link: Option<&Link>,
    sys: &mut dyn Sysctl,
) -> Result<Backup, CniError> {
    let mut backup = Backup {
        network: req.network.to_string(),
        ..Backup::default()
    };
    for e in &req.cfg.sysctls {
        match sys.read(&e.key) {
            Ok(v) => backup.sysctl.0.push((e.key.clone(), v)),
            Err(err) if error::is_write_only(&err) => {}
            Err(err) => {
                return Err(error::kernel(
                    &format!("failed to read sysctl {}", e.key),
                    &err,
                ));
            }
        }
    }
    if let Some(link) = link {
        let s = &req.cfg.link;
        if s.mac.is_some() {
            backup.mac.clone_from(&link.mac);
        }
        backup.promisc = s.promisc.then_some(link.promisc);
        backup.mtu = s.mtu.map(|_| link.mtu);
        backup.allmulti = s.allmulti.map(|_| link.allmulti);
        backup.tx_qlen = s.txqlen.map(|_| link.txqlen);
    }
    Ok(backup)
}

fn set_link(
    s: &LinkSettings,
    link: &Link,
    ifname: &str,
    nl: &mut dyn Netlink,
    journal: &mut Vec<Undo>,
) -> Result<(), CniError> {
    let i = link.index;
    let failed = |what: &'static str, to: String| {
        move |e| error::kernel(&format!("failed to set {what} of {ifname:?} to {to}"), &e)
    };
    if let Some(mac) = s.mac
        && format_mac(&mac) != link.mac
    {
        nl.set_mac(i, mac)
            .map_err(failed("MAC address", format_mac(&mac)))?;
        journal.extend(parse_mac(&link.mac).map(|old| Undo::Mac(i, old)));
    }
    if s.promisc && !link.promisc {
        nl.set_promisc(i, true)
            .map_err(failed("promiscuous mode", "on".into()))?;
        journal.push(Undo::Promisc(i, false));
    }
    if let Some(mtu) = s.mtu
        && mtu != link.mtu
    {
        nl.set_mtu(i, mtu).map_err(failed("MTU", mtu.to_string()))?;
        journal.push(Undo::Mtu(i, link.mtu));
    }
    if let Some(on) = s.allmulti
        && on != link.allmulti
    {
        nl.set_allmulti(i, on)
            .map_err(failed("all-multicast mode", on.to_string()))?;
        journal.push(Undo::Allmulti(i, link.allmulti));
    }
    if let Some(len) = s.txqlen
        && len != link.txqlen
    {
        nl.set_txqlen(i, len)
            .map_err(failed("transmit queue length", len.to_string()))?;
        journal.push(Undo::TxQLen(i, link.txqlen));
    }
    Ok(())
}

fn apply(
    req: &AddRequest<'_>,
    link: Option<&Link>,
    backup: &Backup,
    nl: &mut dyn Netlink,
    sys: &mut dyn Sysctl,
    journal: &mut Vec<Undo>,
) -> Result<(), CniError> {
    for e in &req.cfg.sysctls {
        sys.write(&e.key, &e.value).map_err(|err| {
            error::kernel(
                &format!("failed to set sysctl {} to {:?}", e.key, e.value),
                &err,
            )
        })?;
        if let Some((_, old)) = backup.sysctl.0.iter().find(|(k, _)| *k == e.key) {
            journal.push(Undo::Sysctl(e.key.clone(), old.clone()));
        }
    }
    match link {
        Some(link) => set_link(&req.cfg.link, link, req.ifname, nl, journal),
        None => Ok(()),
    }
}

/// Undoes `journal` newest first; returns what could not be undone.
fn undo(journal: Vec<Undo>, nl: &mut dyn Netlink, sys: &mut dyn Sysctl) -> Vec<String> {
    let mut problems = Vec::new();
    for step in journal.into_iter().rev() {
        let (what, result) = match &step {
            Undo::Sysctl(k, v) => (format!("sysctl {k}"), sys.write(k, v)),
            Undo::Mac(i, m) => ("MAC address".into(), nl.set_mac(*i, *m)),
            Undo::Promisc(i, on) => ("promiscuous mode".into(), nl.set_promisc(*i, *on)),
            Undo::Mtu(i, m) => ("MTU".into(), nl.set_mtu(*i, *m)),
            Undo::Allmulti(i, on) => ("all-multicast mode".into(), nl.set_allmulti(*i, *on)),
            Undo::TxQLen(i, l) => ("transmit queue length".into(), nl.set_txqlen(*i, *l)),
        };
        if let Err(e) = result {
            problems.push(format!("restoring {what}: {}", error::chain(&e)));
        }
    }
    problems
}

/// Applies `req.cfg` in the namespace `nl` and `sys` work in. Nothing is changed before the
/// backup is on disk; on failure everything changed is put back and the backup file too.
pub fn add(
    req: &AddRequest<'_>,
    nl: &mut dyn Netlink,
    sys: &mut dyn Sysctl,
    file: &BackupFile,
) -> Result<(), CniError> {
    let link = if req.cfg.link.is_empty() {
        None
    } else {
        Some(
            nl.link_by_name(req.ifname)
                .map_err(|e| error::kernel(&format!("failed to get {:?}", req.ifname), &e))?,
        )
    };
    let backup = record(req, link.as_ref(), sys)?;
    let previous = file.load()?;
    let wrote = !backup.is_empty();
    if wrote {
        let merged = match &previous {
            Stored::Present(older) => older.clone().completed_with(&backup),
            Stored::Absent | Stored::Corrupt(_) => backup.clone(),
        };
        file.store(&merged)?;
    }
    let mut journal = Vec::new();
    let Err(e) = apply(req, link.as_ref(), &backup, nl, sys, &mut journal) else {
        return Ok(());
    };
    let mut problems = undo(journal, nl, sys);
    if wrote && let Err(f) = file.reset(&previous) {
        problems.push(f.msg);
    }
    if problems.is_empty() {
        return Err(e);
    }
    let details = format!("rollback incomplete: {}", problems.join("; "));
    let details = if e.details.is_empty() {
        details
    } else {
        format!("{}; {details}", e.details)
    };
    Err(e.with_details(details))
}

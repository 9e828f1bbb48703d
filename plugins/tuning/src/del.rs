//! DEL: put back what the backup recorded (link attributes and sysctls), then remove it.
//!
//! Idempotent: no backup means nothing to do; an interface or sysctl that is gone is skipped.
//! Restoring continues past failures, which are reported together; the backup is then kept so
//! that a repeated DEL can try again.

use cni_core::CniError;
use cni_kernel::netlink::{Link, Netlink, format_mac, parse_mac};
use cni_kernel::sysctl::Sysctl;

use crate::backup::{Backup, BackupFile, Stored};
use crate::error;

fn restore_link(b: &Backup, link: &Link, nl: &mut dyn Netlink, problems: &mut Vec<String>) {
    let i = link.index;
    let mut step = |what: &str, r: Result<(), cni_kernel::KernelError>| {
        if let Err(e) = r {
            problems.push(format!("failed to restore {what}: {}", error::chain(&e)));
        }
    };
    if let Some(mtu) = b.mtu
        && mtu != link.mtu
    {
        step("MTU", nl.set_mtu(i, mtu));
    }
    if !b.mac.is_empty() {
        match parse_mac(&b.mac) {
            Some(mac) if format_mac(&mac) != link.mac => step("MAC address", nl.set_mac(i, mac)),
            Some(_) => {}
            None => step(
                "MAC address",
                Err(cni_kernel::KernelError::Decode {
                    op: "backup",
                    detail: format!("{:?} is not a MAC address", b.mac),
                }),
            ),
        }
    }
    if let Some(on) = b.promisc
        && on != link.promisc
    {
        step("promiscuous mode", nl.set_promisc(i, on));
    }
    if let Some(on) = b.allmulti
        && on != link.allmulti
    {
        step("all-multicast mode", nl.set_allmulti(i, on));
    }
    if let Some(len) = b.tx_qlen
        && len != link.txqlen
    {
        step("transmit queue length", nl.set_txqlen(i, len));
    }
}

/// Restores `ifname` and the sysctls from `file` in the namespace `nl` and `sys` work in.
pub fn restore(
    ifname: &str,
    nl: &mut dyn Netlink,
    sys: &mut dyn Sysctl,
    file: &BackupFile,
) -> Result<(), CniError> {
    let backup = match file.load()? {
        // Nothing to restore (and `remove` drops a half-written temporary file).
        Stored::Absent => return file.remove(),
        Stored::Corrupt(why) => {
            // Nothing can be restored from it, and keeping it would fail every later DEL.
            eprintln!(
                "tuning: ignoring unreadable backup {}: {why}",
                file.path().display()
            );
            return file.remove();
        }
        Stored::Present(b) => b,
    };
    let mut problems = Vec::new();
    if backup.has_link_attributes() {
        match nl.link_by_name(ifname) {
            Ok(link) => restore_link(&backup, &link, nl, &mut problems),
            Err(e) if error::is_gone(&e) => {}
            Err(e) => problems.push(format!("failed to get {ifname:?}: {}", error::chain(&e))),
        }
    }
    for (key, value) in backup.sysctl.0.iter().rev() {
        match sys.write(key, value) {
            Err(e) if !error::is_gone(&e) => problems.push(format!(
                "failed to restore sysctl {key} to {value:?}: {}",
                error::chain(&e)
            )),
            _ => {}
        }
    }
    // DEL must not fail on what it cannot restore: libcni stops a chain's DEL at the first
    // error, and tuning runs first, so failing here would leak the bridge's and IPAM's state.
    if !problems.is_empty() {
        eprintln!(
            "tuning: DEL could not restore everything: {}",
            problems.join("; ")
        );
    }
    file.remove()
}

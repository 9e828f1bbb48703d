//! DEL: remove the container interface (its host peer goes with it), release the IPAM
//! reservation, and remove masquerade and spoof-check rules — the rules by the attachment's
//! chain name, so they go even when the netns (and so the addresses) are already gone.
//!
//! The three touch unrelated state, so they run at the same time: the kernel's veth deletion
//! (RCU grace periods, 20–40 ms), the IPAM plugin's exec and the rule tools' execs would
//! otherwise add up. Every one is attempted whatever the others do.

use cni_core::CniError;
use cni_kernel::netlink::Netlink;

use crate::config::BridgeConfig;
use crate::error;
use crate::ports::{Ipam, Masquerade, SpoofChecker};

/// Runs DEL. `container` is None when there is no netns (not given, or already deleted).
/// Keeps going after a failure and reports every failure at the end (interface first, then
/// IPAM, spoof check, masquerade).
pub fn del(
    cfg: &BridgeConfig,
    ifname: &str,
    layer3: bool,
    container: Option<&mut dyn Netlink>,
    ipam: &(dyn Ipam + Sync),
    masq: &(dyn Masquerade + Sync),
    spoof: &(dyn SpoofChecker + Sync),
) -> Result<(), CniError> {
    let (link, ipam_result, rules) = std::thread::scope(|scope| {
        let ipam_thread = layer3.then(|| {
            scope.spawn(|| {
                let released = ipam.del();
                cni_core::phase::mark("bridge:del-ipam");
                released
            })
        });
        let rules_thread = scope.spawn(|| {
            let mut errors = Vec::new();
            if cfg.macspoofchk
                && let Err(e) = spoof.teardown()
            {
                errors.push(e);
            }
            if cfg.ip_masq
                && let Err(e) = masq.teardown()
            {
                errors.push(e);
            }
            cni_core::phase::mark("bridge:del-rules");
            errors
        });
        let link = container.and_then(|nl| delete_interface(nl, ifname).err());
        cni_core::phase::mark("bridge:del-link");
        let ipam_result = ipam_thread.map(|t| t.join().unwrap_or_else(|_| Err(crashed("IPAM"))));
        let rules = rules_thread
            .join()
            .unwrap_or_else(|_| vec![crashed("rule teardown")]);
        (link, ipam_result, rules)
    });
    let mut errors: Vec<CniError> = link.into_iter().collect();
    if let Some(Err(e)) = ipam_result {
        errors.push(e);
    }
    errors.extend(rules);
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => {
            let first = errors.remove(0);
            let rest: Vec<String> = errors.iter().map(|e| e.msg.clone()).collect();
            Err(first.with_details(format!("also: {}", rest.join("; "))))
        }
    }
}

/// Deletes `ifname` in the container; gone already is success.
fn delete_interface(nl: &mut dyn Netlink, ifname: &str) -> Result<(), CniError> {
    match nl.link_by_name(ifname) {
        Ok(link) => match nl.delete_link(link.index) {
            Err(e) if !e.is_not_found() => {
                Err(error::kernel(&format!("failed to delete {ifname}"), e))
            }
            _ => Ok(()),
        },
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(error::kernel(&format!("failed to look up {ifname}"), e)),
    }
}

/// A worker thread panicked (it cannot with panic=abort; kept so nothing is silently lost).
fn crashed(what: &str) -> CniError {
    CniError::plugin(
        cni_core::error::codes::PLUGIN_FAILURE,
        format!("{what} worker thread failed"),
    )
}

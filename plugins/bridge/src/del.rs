//! DEL: remove the container interface (its host peer goes with it), release the IPAM
//! reservation, and remove masquerade and spoof-check rules — the rules by the attachment's
//! chain name, so they go even when the netns (and so the addresses) are already gone.

use cni_core::CniError;
use cni_kernel::netlink::Netlink;

use crate::config::BridgeConfig;
use crate::error;
use crate::ports::{Ipam, Masquerade, SpoofChecker};

/// Runs DEL. `container` is None when there is no netns (not given, or already deleted).
/// Keeps going after a failure and reports every failure at the end.
pub fn del(
    cfg: &BridgeConfig,
    ifname: &str,
    layer3: bool,
    container: Option<&mut dyn Netlink>,
    ipam: &dyn Ipam,
    masq: &dyn Masquerade,
    spoof: &dyn SpoofChecker,
) -> Result<(), CniError> {
    let mut errors: Vec<CniError> = Vec::new();
    if let Some(nl) = container {
        match nl.link_by_name(ifname) {
            Ok(link) => {
                if let Err(e) = nl.delete_link(link.index)
                    && !e.is_not_found()
                {
                    errors.push(error::kernel(&format!("failed to delete {ifname}"), e));
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => errors.push(error::kernel(&format!("failed to look up {ifname}"), e)),
        }
    }
    if layer3 && let Err(e) = ipam.del() {
        errors.push(e);
    }
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

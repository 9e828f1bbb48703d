//! CHECK: the macvlan is still there, in the configured mode, with its MAC, on its master,
//! with the result's addresses and routes.

use cni_core::{CniError, CniResult};
use cni_kernel::netlink::Netlink;

use crate::codes;
use crate::config::MacvlanConfig;

fn drift(msg: impl Into<String>) -> CniError {
    CniError::plugin(codes::CHECK_FAILED, msg)
}

/// Runs CHECK against the cached result `prev`.
pub fn check(
    cfg: &MacvlanConfig,
    ifname: &str,
    sandbox: &str,
    prev: &CniResult,
    master_ns: &mut dyn Netlink,
    container: &mut dyn Netlink,
) -> Result<(), CniError> {
    let (idx, iface) = prev
        .interfaces
        .iter()
        .enumerate()
        .find(|(_, i)| i.name == ifname)
        .ok_or_else(|| drift(format!("interface {ifname} is not in the previous result")))?;
    if iface.sandbox != sandbox {
        return Err(drift(format!(
            "Sandbox in prevResult {} doesn't match configured netns: {sandbox}",
            iface.sandbox
        )));
    }
    let link = container.link_by_name(ifname).map_err(|_| {
        drift(format!(
            "container Interface name in prevResult: {ifname} not found"
        ))
    })?;
    if link.kind != "macvlan" {
        return Err(drift(format!(
            "container Interface {ifname} not of type macvlan"
        )));
    }
    if let Some(mode) = link.macvlan_mode
        && mode != cfg.mode
    {
        return Err(drift(format!(
            "container macvlan mode {} does not match expected value: {}",
            mode.as_str(),
            cfg.mode.as_str()
        )));
    }
    if !iface.mac.is_empty() && iface.mac != link.mac {
        return Err(drift(format!(
            "Interface {ifname} Mac {} doesn't match container Mac: {}",
            iface.mac, link.mac
        )));
    }
    let master = link
        .peer_index
        .and_then(|i| master_ns.link_by_index(i).ok());
    let master_ok = match (&master, &cfg.master) {
        (Some(m), Some(name)) => &m.name == name,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if !master_ok {
        let name = cfg.master.as_deref().unwrap_or("of the default route");
        return Err(drift(format!(
            "master interface {name} of {ifname} not found"
        )));
    }
    match cni_ipconfig::verify(container, ifname, link.index, idx, prev)? {
        None => Ok(()),
        Some(difference) => Err(drift(difference)),
    }
}

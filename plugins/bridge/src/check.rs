//! CHECK: the bridge, the container interface, the host veth joining them, the addresses,
//! the routes and the masquerade rules are all still as the ADD result says.

use cni_core::result::types::Interface;
use cni_core::{CniError, CniResult};
use cni_kernel::netlink::Netlink;
use ipnetwork::IpNetwork;

use crate::config::BridgeConfig;
use crate::error::{self, BridgeCode};
use crate::ports::Masquerade;

fn drift(msg: impl Into<String>) -> CniError {
    error::plugin(BridgeCode::CheckFailed, msg)
}

/// What CHECK compares against.
pub struct CheckRequest<'a> {
    /// Validated config.
    pub cfg: &'a BridgeConfig,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// `CNI_NETNS`.
    pub sandbox: &'a str,
    /// The cached ADD result (possibly modified by later plugins).
    pub prev: &'a CniResult,
}

fn find<'r>(prev: &'r CniResult, name: &str, in_sandbox: bool) -> Option<(usize, &'r Interface)> {
    prev.interfaces
        .iter()
        .enumerate()
        .find(|(_, i)| i.name == name && i.sandbox.is_empty() != in_sandbox)
}

/// Runs CHECK.
pub fn check(
    req: &CheckRequest<'_>,
    host: &mut dyn Netlink,
    container: &mut dyn Netlink,
    masq: &dyn Masquerade,
) -> Result<(), CniError> {
    let cfg = req.cfg;
    let (_, br_iface) = find(req.prev, &cfg.bridge, false).ok_or_else(|| {
        drift(format!(
            "bridge {} is not in the previous result",
            cfg.bridge
        ))
    })?;
    let bridge = host
        .link_by_name(&cfg.bridge)
        .map_err(|_| drift(format!("Interface name {} not found", cfg.bridge)))?;
    if bridge.kind != "bridge" {
        return Err(drift(format!(
            "Interface {} does not have link type of bridge",
            cfg.bridge
        )));
    }
    if !br_iface.mac.is_empty() && br_iface.mac != bridge.mac {
        return Err(drift(format!(
            "Bridge interface {} Mac doesn't match: {}",
            cfg.bridge, br_iface.mac
        )));
    }
    if bridge.promisc != cfg.promisc {
        return Err(drift(format!(
            "Bridge interface {} configured Promisc Mode {} doesn't match current state: {}",
            cfg.bridge, cfg.promisc, bridge.promisc
        )));
    }

    let (cont_idx, cont_iface) = req
        .prev
        .interfaces
        .iter()
        .enumerate()
        .find(|(_, i)| i.name == req.ifname)
        .ok_or_else(|| {
            drift(format!(
                "interface {} is not in the previous result",
                req.ifname
            ))
        })?;
    if cont_iface.sandbox != req.sandbox {
        return Err(drift(format!(
            "Sandbox in prevResult {} doesn't match configured netns: {}",
            cont_iface.sandbox, req.sandbox
        )));
    }
    let cont = container
        .link_by_name(req.ifname)
        .map_err(|_| drift(format!("Interface name {} not found", req.ifname)))?;
    if cont.kind != "veth" {
        return Err(drift(format!(
            "Error: Container interface {} not of type veth",
            req.ifname
        )));
    }
    if !cont_iface.mac.is_empty() && cont_iface.mac != cont.mac {
        return Err(drift(format!(
            "Interface {} Mac {} doesn't match container Mac: {}",
            req.ifname, cont_iface.mac, cont.mac
        )));
    }
    // Container interfaces in different namespaces share indexes (eth0 is often 2 in all of
    // them), so follow the container end's peer index to the host end, then check it back.
    let host_end = cont.peer_index.and_then(|i| host.link_by_index(i).ok());
    let joined = host_end.is_some_and(|l| {
        l.kind == "veth" && l.master == Some(bridge.index) && l.peer_index == Some(cont.index)
    });
    if !joined {
        return Err(drift(format!(
            "CNI veth created for bridge {} was not found",
            cfg.bridge
        )));
    }

    let mine: Vec<IpNetwork> = req
        .prev
        .ips
        .iter()
        .filter(|ip| ip.interface == Some(cont_idx))
        .map(|ip| ip.address)
        .collect();
    match cni_ipconfig::verify(container, req.ifname, cont.index, cont_idx, req.prev) {
        Ok(None) => {}
        Ok(Some(difference)) => return Err(drift(difference)),
        Err(e) => return Err(e),
    }
    if cfg.ip_masq {
        masq.check(&mine)?;
    }
    Ok(())
}

//! The container side of ADD: sysctls, addresses, link up, DAD, routes (the reference's
//! `ConfigureIface`), through a netlink socket opened in the container netns.

use std::net::IpAddr;
use std::time::Duration;

use cni_core::{CniError, CniResult};
use cni_kernel::netlink::RouteEntry;

use crate::error;
use crate::ports::Kernel;

/// Index of the container interface in the result's `interfaces`.
pub const CONTAINER_IFACE: usize = 2;

/// Applies the result's addresses and routes to `ifname` (index `index`) and sets it up.
pub fn configure(
    k: &mut Kernel<'_>,
    ifname: &str,
    index: u32,
    enable_dad: bool,
    result: &CniResult,
) -> Result<(), CniError> {
    // Best effort, like the reference: a kernel without IPv6 has no such keys.
    if enable_dad {
        let _ = k
            .container_sysctl
            .write(&format!("net/ipv6/conf/{ifname}/enhanced_dad"), "1");
        let _ = k
            .container_sysctl
            .write(&format!("net/ipv6/conf/{ifname}/accept_dad"), "1");
    } else {
        let _ = k
            .container_sysctl
            .write(&format!("net/ipv6/conf/{ifname}/accept_dad"), "0");
    }
    let _ = k
        .container_sysctl
        .write(&format!("net/ipv4/conf/{ifname}/arp_notify"), "1");

    let mine: Vec<_> = result
        .ips
        .iter()
        .filter(|ip| ip.interface == Some(CONTAINER_IFACE))
        .collect();
    if mine.iter().any(|ip| ip.address.is_ipv6()) {
        for dev in ["lo", ifname] {
            let key = format!("net/ipv6/conf/{dev}/disable_ipv6");
            if k.container_sysctl.read(&key).is_ok_and(|v| v == "1") {
                k.container_sysctl
                    .write(&key, "0")
                    .map_err(|e| error::kernel(&format!("failed to enable IPv6 on {dev}"), e))?;
            }
        }
        let _ = k
            .container_sysctl
            .write(&format!("net/ipv6/conf/{ifname}/keep_addr_on_down"), "1");
    }
    for ip in &mine {
        k.container.add_address(index, ip.address).map_err(|e| {
            error::kernel(
                &format!("failed to add IP addr {} to {ifname:?}", ip.address),
                e,
            )
        })?;
    }
    k.container
        .set_link_up(index, true)
        .map_err(|e| error::kernel(&format!("failed to set {ifname:?} UP"), e))?;
    let v6_gateway = mine
        .iter()
        .any(|ip| ip.address.is_ipv6() && ip.gateway.is_some());
    if enable_dad && v6_gateway {
        wait_for_dad(k, ifname, index)?;
    }
    for route in &result.routes {
        let gw = route.gw.or_else(|| {
            mine.iter()
                .filter(|ip| ip.address.is_ipv4() == route.dst.is_ipv4())
                .find_map(|ip| ip.gateway)
        });
        let entry = RouteEntry {
            dst: route.dst,
            gw,
            oif: Some(index),
            priority: route.priority,
            table: route.table,
            scope: route.scope,
        };
        k.container.add_route(&entry).map_err(|e| {
            let via = gw.map(|g| format!(" via {g}")).unwrap_or_default();
            error::kernel(
                &format!("failed to add route '{}{via} dev {ifname}'", route.dst),
                e,
            )
        })?;
    }
    Ok(())
}

/// Polls until no address of the interface is tentative (5 s at most).
fn wait_for_dad(k: &mut Kernel<'_>, ifname: &str, index: u32) -> Result<(), CniError> {
    for _ in 0..100 {
        let pending = k
            .container
            .tentative_addresses(index)
            .map_err(|e| error::kernel("failed to read addresses", e))?;
        if let Some((addr, _)) = pending.iter().find(|(_, failed)| *failed) {
            return Err(CniError::plugin(
                cni_core::error::codes::KERNEL,
                format!("link {ifname} has address {addr} in DADFAILED state"),
            ));
        }
        if pending.is_empty() {
            return Ok(());
        }
        (k.sleep)(Duration::from_millis(50));
    }
    Err(CniError::plugin(
        cni_core::error::codes::KERNEL,
        format!("link {ifname} still has tentative addresses after 5 seconds"),
    ))
}

/// True for an address the container interface must carry according to the result.
pub fn is_global_unicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback() || v4.is_link_local() || v4.is_multicast() || v4.is_unspecified())
        }
        IpAddr::V6(v6) => {
            !(v6.is_loopback()
                || v6.is_multicast()
                || v6.is_unspecified()
                || v6.segments()[0] & 0xffc0 == 0xfe80)
        }
    }
}

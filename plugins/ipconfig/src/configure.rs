//! Applying a result to an interface: sysctls, addresses, link up, DAD, routes.

use std::time::Duration;

use cni_core::{CniError, CniResult};
use cni_kernel::netlink::{Netlink, RouteEntry};
use cni_kernel::sysctl::Sysctl;

use crate::kernel_error;

/// The interface to configure and the handles to do it with, all in its namespace.
pub struct Configure<'a> {
    /// Netlink in the interface's namespace.
    pub netlink: &'a mut dyn Netlink,
    /// Sysctls of that namespace.
    pub sysctl: &'a mut dyn Sysctl,
    /// Interface name.
    pub ifname: &'a str,
    /// Interface index.
    pub index: u32,
    /// Position of the interface in the result's `interfaces`: its addresses name it.
    pub result_index: usize,
    /// Sleeps (real time, or nothing in tests).
    pub sleep: &'a dyn Fn(Duration),
}

/// Applies the result's addresses and routes to the interface and sets it up, as the
/// reference's `ConfigureIface` does (route `gw` defaults to the family's first gateway).
/// Plugin-specific sysctls (DAD, ARP notify) are the caller's, written before this.
pub fn configure(c: &mut Configure<'_>, result: &CniResult) -> Result<(), CniError> {
    let (ifname, index) = (c.ifname, c.index);
    let mine: Vec<_> = result
        .ips
        .iter()
        .filter(|ip| ip.interface == Some(c.result_index))
        .collect();
    if mine.iter().any(|ip| ip.address.is_ipv6()) {
        for dev in ["lo", ifname] {
            let key = format!("net/ipv6/conf/{dev}/disable_ipv6");
            if c.sysctl.read(&key).is_ok_and(|v| v == "1") {
                c.sysctl
                    .write(&key, "0")
                    .map_err(|e| kernel_error(&format!("failed to enable IPv6 on {dev}"), e))?;
            }
        }
        let _ = c
            .sysctl
            .write(&format!("net/ipv6/conf/{ifname}/keep_addr_on_down"), "1");
    }
    for ip in &mine {
        c.netlink.add_address(index, ip.address).map_err(|e| {
            kernel_error(
                &format!("failed to add IP addr {} to {ifname:?}", ip.address),
                e,
            )
        })?;
    }
    c.netlink
        .set_link_up(index, true)
        .map_err(|e| kernel_error(&format!("failed to set {ifname:?} UP"), e))?;
    let v6_gateway = mine
        .iter()
        .any(|ip| ip.address.is_ipv6() && ip.gateway.is_some());
    // As the reference: with an IPv6 gateway, wait until duplicate address detection is over
    // (instant when the plugin turned DAD off).
    if v6_gateway {
        wait_for_dad(c)?;
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
        c.netlink.add_route(&entry).map_err(|e| {
            let via = gw.map(|g| format!(" via {g}")).unwrap_or_default();
            kernel_error(
                &format!("failed to add route '{}{via} dev {ifname}'", route.dst),
                e,
            )
        })?;
    }
    Ok(())
}

/// Polls until no address of the interface is tentative (5 s at most).
fn wait_for_dad(c: &mut Configure<'_>) -> Result<(), CniError> {
    let (ifname, index) = (c.ifname, c.index);
    for _ in 0..100 {
        let pending = c
            .netlink
            .tentative_addresses(index)
            .map_err(|e| kernel_error("failed to read addresses", e))?;
        if let Some((addr, _)) = pending.iter().find(|(_, failed)| *failed) {
            return Err(CniError::plugin(
                cni_core::error::codes::KERNEL,
                format!("link {ifname} has address {addr} in DADFAILED state"),
            ));
        }
        if pending.is_empty() {
            return Ok(());
        }
        (c.sleep)(Duration::from_millis(50));
    }
    Err(CniError::plugin(
        cni_core::error::codes::KERNEL,
        format!("link {ifname} still has tentative addresses after 5 seconds"),
    ))
}

/// CHECK's side of [`configure`]: every address the result gives the interface (at
/// `result_index`) is on it and every route of the result is in the namespace. Returns the
/// first difference, worded like the reference.
pub fn verify(
    netlink: &mut dyn Netlink,
    ifname: &str,
    index: u32,
    result_index: usize,
    prev: &CniResult,
) -> Result<Option<String>, CniError> {
    let addrs = netlink
        .addresses(index)
        .map_err(|e| kernel_error("failed to list addresses", e))?;
    let mut routes = netlink
        .routes(true)
        .map_err(|e| kernel_error("failed to list routes", e))?;
    routes.extend(
        netlink
            .routes(false)
            .map_err(|e| kernel_error("failed to list routes", e))?,
    );
    let mine = prev
        .ips
        .iter()
        .filter(|ip| ip.interface == Some(result_index));
    for ip in mine {
        if !addrs.contains(&ip.address) {
            return Ok(Some(format!(
                "Failed to match addr {} on interface {ifname}",
                ip.address
            )));
        }
    }
    for route in &prev.routes {
        let gw = route.gw.or_else(|| {
            prev.ips
                .iter()
                .filter(|ip| ip.address.is_ipv4() == route.dst.is_ipv4())
                .find_map(|ip| ip.gateway)
        });
        let found = routes.iter().any(|r| {
            r.dst.network() == route.dst.network()
                && r.dst.prefix() == route.dst.prefix()
                && (gw.is_none() || r.gw == gw)
        });
        if !found {
            let via = gw.map(|g| format!(" via {g}")).unwrap_or_default();
            return Ok(Some(format!(
                "Expected Route {}{via} not found in routing table",
                route.dst
            )));
        }
    }
    Ok(None)
}

//! The loopback plugin: sets `lo` up in the container netns (ADD), down (DEL), and checks it (CHECK).
//!
//! The decisions live in [`bring_up`], [`bring_down`] and [`verify`], which work on any
//! [`Netlink`]; the [`Loopback`] plugin only opens the namespace and maps errors.

use std::net::IpAddr;

use cni_core::config::NoFields;
use cni_core::error::codes;
use cni_core::result::types::{Interface, IpConfig};
use cni_core::skel::{Attachment, Invocation, Plugin};
use cni_core::{CniError, CniResult};
use cni_kernel::KernelError;
use cni_kernel::netlink::{Netlink, RtnlSocket};
use cni_kernel::netns::Netns;

const LO: &str = "lo";

/// The plugin.
#[derive(Debug, Default, Clone, Copy)]
pub struct Loopback;

fn kernel_error(e: KernelError) -> CniError {
    cni_ipconfig::kernel_error("loopback", e)
}

/// Sets `lo` up and describes it: the first IPv4 and first IPv6 address, all of which must be
/// loopback addresses.
pub fn bring_up(nl: &mut dyn Netlink, sandbox: &str) -> Result<CniResult, CniError> {
    let lo = nl.link_by_name(LO).map_err(kernel_error)?;
    nl.set_link_up(lo.index, true).map_err(kernel_error)?;
    let addrs = nl.addresses(lo.index).map_err(kernel_error)?;
    if let Some(bad) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        return Err(CniError::plugin(
            codes::PLUGIN_FAILURE,
            format!(
                "loopback interface found with non-loopback address \"{}\"",
                bad.ip()
            ),
        ));
    }
    let first = |v4: bool| addrs.iter().find(|a| matches!(a.ip(), IpAddr::V4(_)) == v4);
    let ips = [first(true), first(false)]
        .into_iter()
        .flatten()
        .map(|a| IpConfig {
            address: *a,
            gateway: None,
            interface: Some(0),
        })
        .collect();
    let mac = if lo.mac.is_empty() {
        "00:00:00:00:00:00".to_string()
    } else {
        lo.mac
    };
    Ok(CniResult {
        interfaces: vec![Interface {
            name: LO.into(),
            mac,
            sandbox: sandbox.into(),
            ..Interface::default()
        }],
        ips,
        ..CniResult::default()
    })
}

/// Sets `lo` down.
pub fn bring_down(nl: &mut dyn Netlink) -> Result<(), CniError> {
    match nl.link_by_name(LO) {
        Ok(lo) => nl.set_link_up(lo.index, false).map_err(kernel_error),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(kernel_error(e)),
    }
}

/// CHECK: `lo` must be up.
pub fn verify(nl: &mut dyn Netlink) -> Result<(), CniError> {
    let lo = nl.link_by_name(LO).map_err(kernel_error)?;
    if !lo.up {
        return Err(CniError::plugin(
            codes::PLUGIN_FAILURE,
            "loopback interface is down",
        ));
    }
    Ok(())
}

fn socket_in(path: &std::path::Path) -> Result<RtnlSocket, KernelError> {
    RtnlSocket::open_in(&Netns::open(path)?)
}

impl Plugin for Loopback {
    type Conf = NoFields;
    const NAME: &'static str = "loopback";

    fn add(&self, inv: &Invocation<NoFields>, att: &Attachment) -> Result<CniResult, CniError> {
        let netns = att.netns()?;
        let mut nl = socket_in(netns).map_err(kernel_error)?;
        let own = bring_up(&mut nl, &netns.to_string_lossy())?;
        // Chained after another plugin: pass its result on unchanged.
        Ok(inv.conf.prev_result(inv.version)?.unwrap_or(own))
    }

    fn del(&self, _inv: &Invocation<NoFields>, att: &Attachment) -> Result<(), CniError> {
        let Some(netns) = att.netns.as_deref() else {
            return Ok(());
        };
        match socket_in(netns) {
            Ok(mut nl) => bring_down(&mut nl),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(kernel_error(e)),
        }
    }

    fn check(&self, _inv: &Invocation<NoFields>, att: &Attachment) -> Result<(), CniError> {
        let mut nl = socket_in(att.netns()?).map_err(kernel_error)?;
        verify(&mut nl)
    }
}

#[cfg(test)]
mod tests {
    use cni_kernel::netlink::FakeNetlink;

    use super::*;

    #[test]
    fn up_reports_first_address_of_each_family() {
        let mut nl = FakeNetlink::with_loopback();
        nl.links[0].1.insert(1, "127.0.0.2/8".parse().unwrap());
        let r = bring_up(&mut nl, "/run/netns/c").unwrap();
        assert_eq!(nl.calls, ["set_link_up 1 true"]);
        assert_eq!(r.interfaces[0].name, "lo");
        assert_eq!(r.interfaces[0].mac, "00:00:00:00:00:00");
        assert_eq!(r.interfaces[0].sandbox, "/run/netns/c");
        let ips: Vec<String> = r.ips.iter().map(|i| i.address.to_string()).collect();
        assert_eq!(ips, ["127.0.0.1/8", "::1/128"]);
        assert!(r.ips.iter().all(|i| i.interface == Some(0)));
        verify(&mut nl).unwrap();
    }

    #[test]
    fn v4_only_namespace() {
        let mut nl = FakeNetlink::with_loopback();
        nl.links[0].1.retain(|a| a.is_ipv4());
        let r = bring_up(&mut nl, "/x").unwrap();
        assert_eq!(r.ips.len(), 1);
    }

    #[test]
    fn non_loopback_address_is_refused() {
        let mut nl = FakeNetlink::with_loopback();
        nl.links[0].1.push("10.0.0.1/8".parse().unwrap());
        let e = bring_up(&mut nl, "/x").unwrap_err();
        assert_eq!(
            e.msg,
            "loopback interface found with non-loopback address \"10.0.0.1\""
        );
    }

    #[test]
    fn down_then_check_fails() {
        let mut nl = FakeNetlink::with_loopback();
        bring_up(&mut nl, "/x").unwrap();
        bring_down(&mut nl).unwrap();
        assert_eq!(
            verify(&mut nl).unwrap_err().msg,
            "loopback interface is down"
        );
    }

    #[test]
    fn down_without_lo_is_fine_and_kernel_errors_surface() {
        let mut nl = FakeNetlink::default();
        bring_down(&mut nl).unwrap();
        let mut nl = FakeNetlink::with_loopback();
        nl.fail_on = Some("set_link_up".into());
        let e = bring_up(&mut nl, "/x").unwrap_err();
        assert_eq!(e.code, cni_core::ErrorCode::Plugin(codes::KERNEL));
    }
}

//! ADD and DEL: create the macvlan in the container netns, rename it, apply the IPAM result;
//! undo everything on failure. DEL releases IPAM first, then deletes the link.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use cni_core::result::types::{Dns, Interface};
use cni_core::{CniError, CniResult};
use cni_ipconfig::{Configure, Ipam, configure, kernel_error};
use cni_kernel::netlink::{Link, MacvlanSpec, Netlink};
use cni_kernel::sysctl::Sysctl;

use crate::codes;
use crate::config::MacvlanConfig;

/// Everything ADD acts through.
pub struct Kernel<'a> {
    /// Netlink in the namespace of the master (host, or container with `linkInContainer`).
    pub master_ns: &'a mut dyn Netlink,
    /// Netlink in the container namespace (may be the same namespace as `master_ns`).
    pub container: &'a mut dyn Netlink,
    /// Sysctls of the container namespace.
    pub container_sysctl: &'a mut dyn Sysctl,
    /// Source of random temporary names.
    pub random: &'a mut dyn FnMut() -> u32,
    /// Sleeps.
    pub sleep: &'a dyn Fn(Duration),
}

/// The attachment being added.
pub struct AddRequest<'a> {
    /// Validated config.
    pub cfg: &'a MacvlanConfig,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// `CNI_NETNS` as given.
    pub sandbox: &'a str,
    /// Where to create the link: the container netns (None with `linkInContainer`, where the
    /// master's socket is already in it).
    pub create_in: Option<BorrowedFd<'a>>,
    /// L3 (an IPAM plugin is configured).
    pub layer3: bool,
    /// The config's `dns`.
    pub dns: Option<Dns>,
}

/// The master: the configured one, or the interface of the first IPv4 (else IPv6) default route.
pub fn find_master(nl: &mut dyn Netlink, name: Option<&str>) -> Result<Link, CniError> {
    let name = match name {
        Some(n) => n.to_string(),
        None => {
            let mut routes = nl
                .routes(true)
                .map_err(|e| kernel_error("failed to list routes", e))?;
            routes.extend(
                nl.routes(false)
                    .map_err(|e| kernel_error("failed to list routes", e))?,
            );
            let oif = routes
                .iter()
                .filter(|r| r.dst.prefix() == 0 && r.table.is_none())
                .find_map(|r| r.oif)
                .ok_or_else(|| {
                    CniError::plugin(codes::MASTER, "no default route interface found")
                })?;
            nl.link_by_index(oif)
                .map_err(|e| kernel_error("failed to look up the default route interface", e))?
                .name
        }
    };
    nl.link_by_name(&name).map_err(|e| {
        let msg = if e.is_not_found() {
            "Link not found".to_string()
        } else {
            cni_ipconfig::error_chain(&e)
        };
        CniError::plugin(
            codes::MASTER,
            format!("failed to lookup master {name:?}: {msg}"),
        )
    })
}

/// Runs ADD; on failure deletes the link and releases the IPAM reservation.
pub fn add(
    req: &AddRequest<'_>,
    k: &mut Kernel<'_>,
    ipam: &dyn Ipam,
) -> Result<CniResult, CniError> {
    let master = find_master(k.master_ns, req.cfg.master.as_deref())?;
    if let Some(mtu) = req.cfg.mtu
        && mtu > master.mtu
    {
        return Err(CniError::invalid_config(format!(
            "invalid MTU {mtu}, must be [0, master MTU({})]",
            master.mtu
        )));
    }
    match k.container.link_by_name(req.ifname) {
        Ok(_) => {
            return Err(CniError::plugin(
                codes::CONTAINER_IFACE_EXISTS,
                format!("container interface {} already exists", req.ifname),
            ));
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(kernel_error("failed to look up the container interface", e)),
    }
    let index = create(req, k, &master)?;
    let mut reserved = false;
    match finish(req, k, ipam, index, &mut reserved) {
        Ok(r) => Ok(r),
        Err(e) => {
            if let Err(undo) = k.container.delete_link(index) {
                eprintln!("rollback: failed to delete {}: {undo}", req.ifname);
            }
            if reserved && let Err(undo) = ipam.del() {
                eprintln!("rollback: IPAM DEL failed: {undo}");
            }
            Err(e)
        }
    }
}

/// Creates the link under a temporary name and renames it; returns its index in the container.
fn create(req: &AddRequest<'_>, k: &mut Kernel<'_>, master: &Link) -> Result<u32, CniError> {
    let mut attempt = 0;
    let tmp = loop {
        let name = format!("veth{:08x}", (k.random)());
        let spec = MacvlanSpec {
            name: &name,
            master: master.index,
            mode: req.cfg.mode,
            mtu: req.cfg.mtu,
            mac: req.cfg.mac,
            bcqueuelen: req.cfg.bcqueuelen,
            // The reference sends a zero queue length (its link attributes are built by hand).
            txqlen: Some(0),
            netns: req.create_in,
        };
        match k.master_ns.create_macvlan(&spec) {
            Ok(()) => break name,
            Err(e) if is_exists(&e) && attempt < 10 => attempt += 1,
            Err(e) => return Err(kernel_error("failed to create macvlan", e)),
        }
    };
    let link = k
        .container
        .link_by_name(&tmp)
        .map_err(|e| kernel_error("failed to find the new macvlan", e))?;
    if let Err(e) = k.container.set_name(link.index, req.ifname) {
        let _ = k.container.delete_link(link.index);
        return Err(kernel_error(
            &format!("failed to rename macvlan to {:?}", req.ifname),
            e,
        ));
    }
    Ok(link.index)
}

fn is_exists(e: &cni_kernel::KernelError) -> bool {
    matches!(e, cni_kernel::KernelError::Netlink { source, .. } if source.raw_os_error() == Some(17))
}

fn finish(
    req: &AddRequest<'_>,
    k: &mut Kernel<'_>,
    ipam: &dyn Ipam,
    index: u32,
    reserved: &mut bool,
) -> Result<CniResult, CniError> {
    let mut result = CniResult::default();
    if req.layer3 {
        let r = ipam.add()?;
        *reserved = true;
        if r.ips.is_empty() {
            return Err(CniError::invalid_config(
                "IPAM plugin returned missing IP config",
            ));
        }
        result = r;
        for ip in &mut result.ips {
            ip.interface = Some(0);
        }
        let _ = k
            .container_sysctl
            .write(&format!("net/ipv4/conf/{}/arp_notify", req.ifname), "1");
        let _ = k
            .container_sysctl
            .write(&format!("net/ipv6/conf/{}/ndisc_notify", req.ifname), "1");
        let mut c = Configure {
            netlink: &mut *k.container,
            sysctl: &mut *k.container_sysctl,
            ifname: req.ifname,
            index,
            result_index: 0,
            sleep: k.sleep,
        };
        configure(&mut c, &result)?;
    } else {
        k.container
            .set_link_up(index, true)
            .map_err(|e| kernel_error(&format!("failed to set {:?} up", req.ifname), e))?;
    }
    let link = k
        .container
        .link_by_index(index)
        .map_err(|e| kernel_error("failed to read the macvlan", e))?;
    result.interfaces = vec![Interface {
        name: req.ifname.to_string(),
        mac: link.mac,
        sandbox: req.sandbox.to_string(),
        ..Interface::default()
    }];
    // The config's dns wins when set; otherwise IPAM's is kept (the reference drops it).
    if let Some(dns) = &req.dns
        && !dns.is_empty()
    {
        result.dns = dns.clone();
    }
    Ok(result)
}

/// DEL: IPAM first, then the link. `container` is None when the netns is gone.
pub fn del(
    ifname: &str,
    layer3: bool,
    container: Option<&mut dyn Netlink>,
    ipam: &dyn Ipam,
) -> Result<(), CniError> {
    if layer3 {
        ipam.del()?;
    }
    let Some(nl) = container else { return Ok(()) };
    match nl.link_by_name(ifname) {
        Ok(link) => match nl.delete_link(link.index) {
            Err(e) if !e.is_not_found() => {
                Err(kernel_error(&format!("failed to delete {ifname:?}"), e))
            }
            _ => Ok(()),
        },
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(kernel_error(&format!("failed to look up {ifname:?}"), e)),
    }
}

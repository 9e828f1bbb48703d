//! ADD: bridge, veth pair, VLANs, IPAM, container addresses and routes, gateway, masquerade —
//! every step journaled, and all of it undone when a later step fails.

use std::net::IpAddr;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use cni_core::result::types::{Dns, Interface};
use cni_core::{CniError, CniResult};
use cni_kernel::KernelError;
use cni_kernel::netlink::{BridgeVlan, Link, VethSpec};
use ipnetwork::IpNetwork;

use cni_ipconfig::{Configure, configure};

use crate::config::BridgeConfig;
use crate::error::{self, BridgeCode};
use crate::journal::{Journal, Step, Undoer};
use crate::ports::{Ipam, Kernel, Masquerade, SpoofChecker, default_gateway};

/// Position of the container interface in the result's `interfaces`.
pub const CONTAINER_IFACE: usize = 2;

/// The attachment being added.
pub struct AddRequest<'a> {
    /// Validated config.
    pub cfg: &'a BridgeConfig,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// `CNI_NETNS` as given (the `sandbox` of the container interface).
    pub sandbox: &'a str,
    /// The container netns.
    pub container_ns: BorrowedFd<'a>,
    /// The host netns (peer of a VLAN gateway veth).
    pub host_ns: BorrowedFd<'a>,
    /// Whether an IPAM plugin is configured (L3) or not (L2 only).
    pub layer3: bool,
    /// The config's `dns` section, which overrides IPAM's when any field is set.
    pub dns: Option<Dns>,
}

/// The side effects ADD may need to undo.
pub struct Services<'a> {
    /// IPAM.
    pub ipam: &'a dyn Ipam,
    /// Masquerade rules.
    pub masq: &'a dyn Masquerade,
    /// MAC spoof check rules.
    pub spoof: &'a dyn SpoofChecker,
}

/// Runs ADD; on failure, undoes what was done and returns the error.
pub fn add(
    req: &AddRequest<'_>,
    k: &mut Kernel<'_>,
    svc: &Services<'_>,
) -> Result<CniResult, CniError> {
    let mut journal = Journal::default();
    match run(req, k, svc, &mut journal) {
        Ok(r) => Ok(r),
        Err(e) => {
            let mut u = Undoer {
                host: &mut *k.host,
                host_sysctl: &mut *k.host_sysctl,
                ipam: svc.ipam,
                masq: svc.masq,
                spoof: svc.spoof,
            };
            journal.undo(&mut u);
            Err(e)
        }
    }
}

fn run(
    req: &AddRequest<'_>,
    k: &mut Kernel<'_>,
    svc: &Services<'_>,
    j: &mut Journal,
) -> Result<CniResult, CniError> {
    let cfg = req.cfg;
    let bridge = ensure_bridge(cfg, k, j)?;
    cni_core::phase::mark("bridge:ensure-bridge");
    match k.container.link_by_name(req.ifname) {
        Ok(_) => {
            return Err(error::plugin(
                BridgeCode::ContainerIfaceExists,
                format!(
                    "container veth name provided ({}) already exists",
                    req.ifname
                ),
            ));
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => {
            return Err(error::kernel(
                "failed to look up the container interface",
                e,
            ));
        }
    }
    let host_veth = create_port(
        k,
        j,
        &bridge,
        req.ifname,
        req.container_ns,
        cfg.mac,
        cfg.vlan,
        &cfg.trunk,
        cfg,
    )?;
    // Test hooks (inert unless CNI_TEST_ABORT_AT names them): crash points of the fault suite.
    cni_core::fault::point("bridge:veth");
    cni_core::phase::mark("bridge:veth");
    if j.steps().contains(&Step::Bridge(bridge.index)) {
        pin_bridge_mac(k, bridge.index);
    }
    let container_link = k
        .container
        .link_by_name(req.ifname)
        .map_err(|e| error::kernel("failed to find the new container interface", e))?;

    let mut result = CniResult {
        interfaces: vec![
            Interface {
                name: bridge.name.clone(),
                mac: bridge.mac.clone(),
                ..Interface::default()
            },
            Interface {
                name: host_veth.name.clone(),
                mac: host_veth.mac.clone(),
                ..Interface::default()
            },
            Interface {
                name: req.ifname.to_string(),
                mac: container_link.mac.clone(),
                sandbox: req.sandbox.to_string(),
                ..Interface::default()
            },
        ],
        ..CniResult::default()
    };

    if cfg.macspoofchk {
        svc.spoof.setup(&host_veth.name, &container_link.mac)?;
        j.push(Step::SpoofCheck);
    }

    if req.layer3 {
        let ipam = svc.ipam.add()?;
        j.push(Step::Ipam);
        cni_core::fault::point("bridge:ipam");
        cni_core::phase::mark("bridge:ipam");
        if ipam.ips.is_empty() {
            return Err(CniError::invalid_config(
                "IPAM plugin returned missing IP config",
            ));
        }
        result.ips = ipam.ips;
        result.routes = ipam.routes;
        result.dns = ipam.dns;
        for ip in &mut result.ips {
            ip.interface = Some(2);
            if cfg.is_gateway && ip.gateway.is_none() {
                ip.gateway = default_gateway(&ip.address);
            }
        }
        if cfg.is_default_gateway {
            add_default_routes(&mut result);
        }
        container_sysctls(k, req.ifname, cfg.enable_dad);
        let mut c = Configure {
            netlink: &mut *k.container,
            sysctl: &mut *k.container_sysctl,
            ifname: req.ifname,
            index: container_link.index,
            result_index: CONTAINER_IFACE,
            sleep: k.sleep,
        };
        configure(&mut c, &result)?;
        cni_core::fault::point("bridge:addresses");
        cni_core::phase::mark("bridge:container-addresses");
        if cfg.is_gateway {
            let extra = set_gateways(req, k, j, &bridge, &result)?;
            result.interfaces.extend(extra);
            cni_core::phase::mark("bridge:gateway");
        }
        if cfg.ip_masq {
            let ips: Vec<IpNetwork> = result.ips.iter().map(|i| i.address).collect();
            svc.masq.setup(&ips)?;
            j.push(Step::Masquerade);
            cni_core::fault::point("bridge:masquerade");
            cni_core::phase::mark("bridge:masquerade");
        }
    } else if !cfg.disable_container_interface {
        k.container
            .set_link_up(container_link.index, true)
            .map_err(|e| error::kernel(&format!("failed to set {} up", req.ifname), e))?;
    }

    if !cfg.disable_container_interface {
        wait_port_up(k, host_veth.index)?;
        cni_core::phase::mark("bridge:port-up");
    }
    // MACs may change when the first port joins or the gateway address is set.
    let host_now = k
        .host
        .link_by_index(host_veth.index)
        .map_err(|e| error::kernel("failed to refresh the host veth", e))?;
    result.interfaces[1].mac = host_now.mac;
    let bridge_now = k
        .host
        .link_by_index(bridge.index)
        .map_err(|e| error::kernel("failed to refresh the bridge", e))?;
    result.interfaces[0].mac = bridge_now.mac;
    if let Some(dns) = &req.dns
        && !dns.is_empty()
    {
        result.dns = dns.clone();
    }
    cni_core::fault::point("bridge:done");
    cni_core::phase::mark("bridge:done");
    Ok(result)
}

/// Pins the MAC of a bridge this ADD created, once its first port has joined. Left alone, it
/// follows the lowest port MAC, so an L2 bridge's address (and every cached result naming it)
/// would change as containers come and go; isGateway pins it too, as the reference does.
/// (Pinning before any port joins leaves the bridge's operstate UNKNOWN.)
fn pin_bridge_mac(k: &mut Kernel<'_>, index: u32) {
    if let Ok(now) = k.host.link_by_index(index)
        && let Some(mac) = cni_kernel::netlink::parse_mac(&now.mac)
    {
        let _ = k.host.set_mac(index, mac);
    }
}

/// The container interface's sysctls, best effort like the reference (a kernel without IPv6
/// has no such keys): DAD off unless `enabledad`, gratuitous ARP on address changes.
fn container_sysctls(k: &mut Kernel<'_>, ifname: &str, enable_dad: bool) {
    let s = &mut *k.container_sysctl;
    if enable_dad {
        let _ = s.write(&format!("net/ipv6/conf/{ifname}/enhanced_dad"), "1");
        let _ = s.write(&format!("net/ipv6/conf/{ifname}/accept_dad"), "1");
    } else {
        let _ = s.write(&format!("net/ipv6/conf/{ifname}/accept_dad"), "0");
    }
    let _ = s.write(&format!("net/ipv4/conf/{ifname}/arp_notify"), "1");
}

/// Finds or creates the bridge, makes it promiscuous if asked, and sets it up.
fn ensure_bridge(
    cfg: &BridgeConfig,
    k: &mut Kernel<'_>,
    j: &mut Journal,
) -> Result<Link, CniError> {
    let name = &cfg.bridge;
    let lookup = |k: &mut Kernel<'_>| k.host.link_by_name(name);
    let existing = match lookup(k) {
        Ok(l) => Some(l),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(error::kernel(&format!("could not lookup {name:?}"), e)),
    };
    let link = match existing {
        Some(l) => l,
        None => {
            match k.host.create_bridge(name, cfg.mtu, cfg.vlan_filtering()) {
                Ok(()) => {
                    let l = lookup(k)
                        .map_err(|e| error::kernel(&format!("could not lookup {name:?}"), e))?;
                    j.push(Step::Bridge(l.index));
                    l
                }
                // Created concurrently by another ADD: use it.
                Err(e) if is_exists(&e) => lookup(k)
                    .map_err(|e| error::kernel(&format!("could not lookup {name:?}"), e))?,
                Err(e) => {
                    return Err(error::kernel(
                        &format!("failed to create bridge {name:?}: could not add {name:?}"),
                        e,
                    ));
                }
            }
        }
    };
    if link.kind != "bridge" {
        return Err(error::plugin(
            BridgeCode::NotABridge,
            format!(
                "failed to create bridge \"{name}\": \"{name}\" already exists but is not a bridge"
            ),
        ));
    }
    if cfg.promisc && !link.promisc {
        k.host
            .set_promisc(link.index, true)
            .map_err(|e| error::kernel("could not set promiscuous mode", e))?;
        j.push(Step::Promisc(link.index));
    }
    // We own the routes of this interface; IPv6 may be off, which is fine.
    set_host_sysctl(k, j, &format!("net/ipv6/conf/{name}/accept_ra"), "0");
    if !link.up {
        k.host
            .set_link_up(link.index, true)
            .map_err(|e| error::kernel(&format!("failed to set {name} up"), e))?;
        j.push(Step::LinkUp(link.index));
    }
    k.host
        .link_by_index(link.index)
        .map_err(|e| error::kernel(&format!("could not lookup {name:?}"), e))
}

fn is_errno(e: &KernelError, errno: i32) -> bool {
    matches!(e, KernelError::Netlink { source, .. } if source.raw_os_error() == Some(errno))
}

/// EEXIST.
fn is_exists(e: &KernelError) -> bool {
    is_errno(e, 17)
}

/// Writes a host sysctl when it differs, journaling the old value; a missing key is ignored.
fn set_host_sysctl(k: &mut Kernel<'_>, j: &mut Journal, key: &str, value: &str) {
    if let Ok(old) = k.host_sysctl.read(key)
        && old != value
        && k.host_sysctl.write(key, value).is_ok()
    {
        j.push(Step::HostSysctl(key.to_string(), old));
    }
}

/// Creates a veth pair with `peer_name` in `peer_ns`, attaches the host end to the bridge with
/// the port flags and VLANs, and sets it up. Returns the host end.
#[allow(clippy::too_many_arguments)]
fn create_port(
    k: &mut Kernel<'_>,
    j: &mut Journal,
    bridge: &Link,
    peer_name: &str,
    peer_ns: BorrowedFd<'_>,
    peer_mac: Option<[u8; 6]>,
    vlan: u16,
    trunk: &[u16],
    cfg: &BridgeConfig,
) -> Result<Link, CniError> {
    let mut attempt = 0;
    let host_name = loop {
        let name = format!("veth{:08x}", (k.random)());
        let spec = VethSpec {
            name: &name,
            peer_name,
            peer_netns: peer_ns,
            mtu: cfg.mtu,
            peer_mac,
        };
        match k.host.create_veth(&spec) {
            Ok(()) => break name,
            Err(e) if is_exists(&e) && attempt < 10 => attempt += 1,
            Err(e) if is_exists(&e) => {
                return Err(error::kernel("failed to find a unique veth name", e));
            }
            Err(e) => return Err(error::kernel("failed to create the veth pair", e)),
        }
    };
    let host = k
        .host
        .link_by_name(&host_name)
        .map_err(|e| error::kernel(&format!("failed to lookup {host_name:?}"), e))?;
    j.push(Step::HostLink(host.index));
    k.host
        .set_master(host.index, Some(bridge.index))
        .map_err(|e| {
            error::kernel(
                &format!("failed to connect {host_name:?} to bridge {}", bridge.name),
                e,
            )
        })?;
    k.host
        .set_bridge_port(host.index, cfg.hairpin, cfg.port_isolation)
        .map_err(|e| {
            error::kernel(
                &format!("failed to set bridge port flags on {host_name}"),
                e,
            )
        })?;
    if (vlan != 0 || !trunk.is_empty()) && !cfg.preserve_default_vlan {
        let existing = k
            .host
            .bridge_vlans(host.index)
            .map_err(|e| error::kernel("failed to list port VLANs", e))?;
        for v in existing {
            k.host.del_bridge_vlan(host.index, v.vid).map_err(|e| {
                error::kernel(
                    &format!("failed to remove default vlan on interface {host_name:?}"),
                    e,
                )
            })?;
        }
    }
    if vlan != 0 {
        let access = BridgeVlan {
            vid: vlan,
            pvid: true,
            untagged: true,
        };
        k.host.add_bridge_vlan(host.index, access).map_err(|e| {
            error::kernel(
                &format!("failed to setup vlan tag on interface {host_name:?}"),
                e,
            )
        })?;
    }
    for &vid in trunk {
        k.host
            .add_bridge_vlan(
                host.index,
                BridgeVlan {
                    vid,
                    pvid: false,
                    untagged: false,
                },
            )
            .map_err(|e| {
                error::kernel(
                    &format!("failed to setup vlan tag on interface {host_name:?}"),
                    e,
                )
            })?;
    }
    let _ = k
        .host_sysctl
        .write(&format!("net/ipv6/conf/{host_name}/accept_ra"), "0");
    k.host
        .set_link_up(host.index, true)
        .map_err(|e| error::kernel(&format!("failed to set {host_name} up"), e))?;
    k.host
        .link_by_index(host.index)
        .map_err(|e| error::kernel(&format!("failed to lookup {host_name:?}"), e))
}

/// `isDefaultGateway`: a default route via each family's gateway unless IPAM gave one.
fn add_default_routes(result: &mut CniResult) {
    for v4 in [true, false] {
        let has_default = result
            .routes
            .iter()
            .any(|r| r.dst.is_ipv4() == v4 && r.dst.prefix() == 0);
        let gw = result
            .ips
            .iter()
            .filter(|ip| ip.address.is_ipv4() == v4)
            .find_map(|ip| ip.gateway);
        if let (false, Some(gw)) = (has_default, gw) {
            let any = if v4 {
                IpAddr::from([0u8; 4])
            } else {
                IpAddr::from([0u16; 8])
            };
            if let Ok(dst) = IpNetwork::new(any, 0) {
                result
                    .routes
                    .push(cni_core::result::types::Route::new(dst, Some(gw)));
            }
        }
    }
}

/// Puts each family's gateway on the bridge (or on `<bridge>.<vlan>`), enables forwarding.
/// Returns the VLAN gateway interface when one was used.
fn set_gateways(
    req: &AddRequest<'_>,
    k: &mut Kernel<'_>,
    j: &mut Journal,
    bridge: &Link,
    result: &CniResult,
) -> Result<Vec<Interface>, CniError> {
    let cfg = req.cfg;
    let mut extra = Vec::new();
    let target = if cfg.vlan != 0 {
        let link = ensure_vlan_gateway(req, k, j, bridge)?;
        extra.push(Interface {
            name: link.name.clone(),
            mac: link.mac.clone(),
            ..Interface::default()
        });
        link
    } else {
        bridge.clone()
    };
    let mut families = Vec::new();
    for ip in &result.ips {
        let Some(gw) = ip.gateway else { continue };
        let gw_net = IpNetwork::new(gw, ip.address.prefix())
            .map_err(|e| CniError::invalid_config(format!("invalid gateway {gw}: {e}")))?;
        ensure_address(k, j, bridge.index, &target, gw_net, cfg.force_address)?;
        families.push(gw.is_ipv4());
    }
    if cfg.vlan == 0 {
        // Pin the bridge MAC (its current one: the value read at the start of this ADD may be
        // stale when other ADDs attach ports concurrently).
        pin_bridge_mac(k, bridge.index);
    }
    if families.contains(&true) {
        set_host_sysctl(k, j, "net/ipv4/ip_forward", "1");
    }
    if families.contains(&false) {
        set_host_sysctl(k, j, "net/ipv6/conf/all/forwarding", "1");
    }
    Ok(extra)
}

/// The `<bridge>.<vlan>` veth whose peer is an access port of the VLAN, created when missing.
fn ensure_vlan_gateway(
    req: &AddRequest<'_>,
    k: &mut Kernel<'_>,
    j: &mut Journal,
    bridge: &Link,
) -> Result<Link, CniError> {
    let name = format!("{}.{}", bridge.name, req.cfg.vlan);
    match k.host.link_by_name(&name) {
        Ok(l) => return Ok(l),
        Err(e) if e.is_not_found() => {}
        Err(e) => {
            return Err(error::kernel(
                &format!("failed to find interface {name:?}"),
                e,
            ));
        }
    }
    create_port(
        k,
        j,
        bridge,
        &name,
        req.host_ns,
        None,
        req.cfg.vlan,
        &[],
        req.cfg,
    )?;
    let link = k
        .host
        .link_by_name(&name)
        .map_err(|e| error::kernel(&format!("failed to lookup {name:?}"), e))?;
    k.host
        .set_link_up(link.index, true)
        .map_err(|e| error::kernel(&format!("failed to up {name:?}"), e))?;
    Ok(link)
}

/// Ensures `addr` is on `target`. IPv4: any other IPv4 address conflicts; IPv6: only one in
/// an overlapping prefix. A conflict is an error unless `force`, which removes the old address.
fn ensure_address(
    k: &mut Kernel<'_>,
    j: &mut Journal,
    bridge_index: u32,
    target: &Link,
    addr: IpNetwork,
    force: bool,
) -> Result<(), CniError> {
    let existing = k
        .host
        .addresses(target.index)
        .map_err(|e| error::kernel("failed to list bridge addresses", e))?;
    if existing.contains(&addr) {
        return Ok(());
    }
    for old in existing.iter().filter(|a| a.is_ipv4() == addr.is_ipv4()) {
        let conflicts = match addr {
            IpNetwork::V4(_) => true,
            IpNetwork::V6(_) => old.contains(addr.ip()) || addr.contains(old.ip()),
        };
        if !conflicts || is_link_local(old) {
            continue;
        }
        if !force {
            return Err(error::plugin(
                BridgeCode::GatewayConflict,
                format!(
                    "failed to set bridge addr: \"{}\" already has an IP address different from {addr}",
                    target.name
                ),
            ));
        }
        k.host.del_address(target.index, *old).map_err(|e| {
            error::kernel(
                &format!("could not remove IP address from {:?}", target.name),
                e,
            )
        })?;
    }
    k.host
        .add_address(target.index, addr)
        .map_err(|e| error::kernel(&format!("could not add IP address to {:?}", target.name), e))?;
    j.push(Step::BridgeAddress(bridge_index, target.index, addr));
    Ok(())
}

fn is_link_local(net: &IpNetwork) -> bool {
    match net.ip() {
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
        IpAddr::V4(_) => false,
    }
}

/// Waits for the host veth to be operationally up, as the reference does.
fn wait_port_up(k: &mut Kernel<'_>, index: u32) -> Result<(), CniError> {
    for ms in [0u64, 50, 500, 1000, 1000] {
        (k.sleep)(Duration::from_millis(ms));
        let link = k
            .host
            .link_by_index(index)
            .map_err(|e| error::kernel("failed to read the host veth", e))?;
        if link.oper_up {
            return Ok(());
        }
    }
    Err(error::plugin(
        BridgeCode::PortDown,
        "bridge port in error state: not up",
    ))
}

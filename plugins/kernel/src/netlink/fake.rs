//! An in-memory [`Netlink`] for unit tests of plugin logic: one namespace, with a log of
//! every mutating call. A veth's peer is only recorded (its namespace is not modelled).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use ipnetwork::IpNetwork;

use super::{BridgeVlan, Link, MacvlanSpec, Netlink, RouteEntry, VethSpec, format_mac};
use crate::error::KernelError;

/// A fake namespace.
#[derive(Debug, Default, Clone)]
pub struct FakeNetlink {
    /// Links with their addresses.
    pub links: Vec<(Link, Vec<IpNetwork>)>,
    /// Routes.
    pub routes: Vec<RouteEntry>,
    /// VLANs per bridge port index.
    pub vlans: BTreeMap<u32, Vec<BridgeVlan>>,
    /// Bridge-port flags (hairpin, isolated) per port index.
    pub port_flags: BTreeMap<u32, (bool, bool)>,
    /// Mutating calls, e.g. `set_link_up 1 true`.
    pub calls: Vec<String>,
    /// When set, mutating calls whose log line starts with this prefix fail with EPERM.
    pub fail_on: Option<String>,
    /// Where a veth's peer is created (the container side); None = not modelled.
    pub peer_ns: Option<Rc<RefCell<FakeNetlink>>>,
    /// Addresses reported as tentative (IPv6 DAD in progress).
    pub tentative: Vec<IpNetwork>,
}

/// A [`FakeNetlink`] shared between the test and the code under test (e.g. the container side,
/// which the host side's `create_veth` also writes to). Borrows only for the duration of a call.
#[derive(Debug, Clone, Default)]
pub struct SharedFake(pub Rc<RefCell<FakeNetlink>>);

fn errno(op: &'static str, e: nix::errno::Errno) -> KernelError {
    KernelError::Netlink {
        op,
        source: std::io::Error::from_raw_os_error(e as i32),
    }
}

impl FakeNetlink {
    /// A namespace with only `lo` (index 1, down, 127.0.0.1/8 and ::1/128).
    pub fn with_loopback() -> Self {
        let lo = Link {
            index: 1,
            name: "lo".into(),
            mac: "00:00:00:00:00:00".into(),
            mtu: 65536,
            ..Link::default()
        };
        let addrs = ["127.0.0.1/8", "::1/128"]
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        FakeNetlink {
            links: vec![(lo, addrs)],
            ..Default::default()
        }
    }

    /// Adds a link and returns its index.
    pub fn add_link(&mut self, name: &str, kind: &str) -> u32 {
        let index = self.links.iter().map(|(l, _)| l.index).max().unwrap_or(0) + 1;
        let mac = format_mac(&[0x02, 0, 0, 0, 0, u8::try_from(index % 256).unwrap_or(0)]);
        let link = Link {
            index,
            name: name.into(),
            kind: kind.into(),
            mac,
            mtu: 1500,
            ..Link::default()
        };
        self.links.push((link, Vec::new()));
        index
    }

    fn mutate(&mut self, op: &'static str, line: String) -> Result<(), KernelError> {
        let fail = self
            .fail_on
            .as_ref()
            .is_some_and(|p| line.starts_with(p.as_str()));
        self.calls.push(line);
        if fail {
            Err(errno(op, nix::errno::Errno::EPERM))
        } else {
            Ok(())
        }
    }

    fn entry(&mut self, index: u32) -> Result<&mut (Link, Vec<IpNetwork>), KernelError> {
        self.links
            .iter_mut()
            .find(|(l, _)| l.index == index)
            .ok_or(errno("link lookup", nix::errno::Errno::ENODEV))
    }

    fn link_mut(&mut self, index: u32) -> Result<&mut Link, KernelError> {
        Ok(&mut self.entry(index)?.0)
    }
}

impl Netlink for FakeNetlink {
    fn link_by_name(&mut self, name: &str) -> Result<Link, KernelError> {
        self.links
            .iter()
            .find(|(l, _)| l.name == name)
            .map(|(l, _)| l.clone())
            .ok_or_else(|| KernelError::LinkNotFound { name: name.into() })
    }

    fn link_by_index(&mut self, index: u32) -> Result<Link, KernelError> {
        self.links
            .iter()
            .find(|(l, _)| l.index == index)
            .map(|(l, _)| l.clone())
            .ok_or_else(|| KernelError::LinkNotFound {
                name: format!("index {index}"),
            })
    }

    fn links(&mut self) -> Result<Vec<Link>, KernelError> {
        Ok(self.links.iter().map(|(l, _)| l.clone()).collect())
    }

    fn create_bridge(
        &mut self,
        name: &str,
        mtu: Option<u32>,
        vlan_filtering: bool,
    ) -> Result<(), KernelError> {
        self.mutate(
            "create bridge",
            format!("create_bridge {name} {mtu:?} {vlan_filtering}"),
        )?;
        if self.link_by_name(name).is_ok() {
            return Err(errno("create bridge", nix::errno::Errno::EEXIST));
        }
        let index = self.add_link(name, "bridge");
        if let Some(mtu) = mtu {
            self.link_mut(index)?.mtu = mtu;
        }
        Ok(())
    }

    fn create_veth(&mut self, spec: &VethSpec<'_>) -> Result<(), KernelError> {
        self.mutate(
            "create veth",
            format!(
                "create_veth {} {} {:?}",
                spec.name, spec.peer_name, spec.mtu
            ),
        )?;
        if self.link_by_name(spec.name).is_ok() {
            return Err(errno("create veth", nix::errno::Errno::EEXIST));
        }
        let index = self.add_link(spec.name, "veth");
        if let Some(mtu) = spec.mtu {
            self.link_mut(index)?.mtu = mtu;
        }
        if let Some(peer_ns) = self.peer_ns.clone() {
            let mut peer_ns = peer_ns.borrow_mut();
            let peer = peer_ns.add_link(spec.peer_name, "veth");
            let link = peer_ns.link_mut(peer)?;
            link.mtu = spec.mtu.unwrap_or(1500);
            link.peer_index = Some(index);
            if let Some(mac) = spec.peer_mac {
                link.mac = format_mac(&mac);
            }
            self.link_mut(index)?.peer_index = Some(peer);
        }
        Ok(())
    }

    fn create_macvlan(&mut self, spec: &MacvlanSpec<'_>) -> Result<(), KernelError> {
        let line = format!(
            "create_macvlan {} {} {}",
            spec.name,
            spec.master,
            spec.mode.as_str()
        );
        self.mutate("create macvlan", line)?;
        let target = match (spec.netns, &self.peer_ns) {
            (Some(_), Some(peer)) => peer.clone(),
            _ => Rc::new(RefCell::new(std::mem::take(self))),
        };
        let in_self = spec.netns.is_none() || self.peer_ns.is_none();
        {
            let mut ns = target.borrow_mut();
            if ns.link_by_name(spec.name).is_ok() {
                drop(ns);
                if in_self {
                    *self = Rc::try_unwrap(target)
                        .map(RefCell::into_inner)
                        .unwrap_or_default();
                }
                return Err(errno("create macvlan", nix::errno::Errno::EEXIST));
            }
            let index = ns.add_link(spec.name, "macvlan");
            let link = ns.link_mut(index)?;
            link.mtu = spec.mtu.unwrap_or(1500);
            link.macvlan_mode = Some(spec.mode);
            link.peer_index = Some(spec.master);
            if let Some(mac) = spec.mac {
                link.mac = format_mac(&mac);
            }
        }
        if in_self {
            *self = Rc::try_unwrap(target)
                .map(RefCell::into_inner)
                .unwrap_or_default();
        }
        Ok(())
    }

    fn set_name(&mut self, index: u32, name: &str) -> Result<(), KernelError> {
        self.mutate("rename link", format!("set_name {index} {name}"))?;
        self.link_mut(index)?.name = name.into();
        Ok(())
    }

    fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<(), KernelError> {
        self.mutate("set mtu", format!("set_mtu {index} {mtu}"))?;
        self.link_mut(index)?.mtu = mtu;
        Ok(())
    }

    fn set_allmulti(&mut self, index: u32, on: bool) -> Result<(), KernelError> {
        self.mutate("set allmulti", format!("set_allmulti {index} {on}"))?;
        self.link_mut(index)?.allmulti = on;
        Ok(())
    }

    fn set_txqlen(&mut self, index: u32, len: u32) -> Result<(), KernelError> {
        self.mutate("set txqlen", format!("set_txqlen {index} {len}"))?;
        self.link_mut(index)?.txqlen = len;
        Ok(())
    }

    fn delete_link(&mut self, index: u32) -> Result<(), KernelError> {
        self.mutate("delete link", format!("delete_link {index}"))?;
        let link = self.entry(index)?.0.clone();
        self.links.retain(|(l, _)| l.index != index);
        if let (Some(peer_ns), "veth", Some(peer)) =
            (&self.peer_ns, link.kind.as_str(), link.peer_index)
        {
            peer_ns.borrow_mut().links.retain(|(l, _)| l.index != peer);
        }
        Ok(())
    }

    fn set_link_up(&mut self, index: u32, up: bool) -> Result<(), KernelError> {
        self.mutate("set link", format!("set_link_up {index} {up}"))?;
        let link = self.link_mut(index)?;
        link.up = up;
        link.oper_up = up;
        Ok(())
    }

    fn set_promisc(&mut self, index: u32, on: bool) -> Result<(), KernelError> {
        self.mutate("set promisc", format!("set_promisc {index} {on}"))?;
        self.link_mut(index)?.promisc = on;
        Ok(())
    }

    fn set_master(&mut self, index: u32, master: Option<u32>) -> Result<(), KernelError> {
        self.mutate("set master", format!("set_master {index} {master:?}"))?;
        self.link_mut(index)?.master = master;
        Ok(())
    }

    fn set_mac(&mut self, index: u32, mac: [u8; 6]) -> Result<(), KernelError> {
        self.mutate("set mac", format!("set_mac {index} {}", format_mac(&mac)))?;
        self.link_mut(index)?.mac = format_mac(&mac);
        Ok(())
    }

    fn set_bridge_port(
        &mut self,
        index: u32,
        hairpin: bool,
        isolated: bool,
    ) -> Result<(), KernelError> {
        self.mutate(
            "set bridge port",
            format!("set_bridge_port {index} {hairpin} {isolated}"),
        )?;
        self.port_flags.insert(index, (hairpin, isolated));
        Ok(())
    }

    fn bridge_vlans(&mut self, index: u32) -> Result<Vec<BridgeVlan>, KernelError> {
        Ok(self.vlans.get(&index).cloned().unwrap_or_default())
    }

    fn add_bridge_vlan(&mut self, index: u32, vlan: BridgeVlan) -> Result<(), KernelError> {
        self.mutate(
            "add bridge vlan",
            format!(
                "add_bridge_vlan {index} {} {} {}",
                vlan.vid, vlan.pvid, vlan.untagged
            ),
        )?;
        let vlans = self.vlans.entry(index).or_default();
        vlans.retain(|v| v.vid != vlan.vid);
        vlans.push(vlan);
        Ok(())
    }

    fn del_bridge_vlan(&mut self, index: u32, vid: u16) -> Result<(), KernelError> {
        self.mutate(
            "delete bridge vlan",
            format!("del_bridge_vlan {index} {vid}"),
        )?;
        self.vlans
            .entry(index)
            .or_default()
            .retain(|v| v.vid != vid);
        Ok(())
    }

    fn addresses(&mut self, index: u32) -> Result<Vec<IpNetwork>, KernelError> {
        Ok(self.entry(index)?.1.clone())
    }

    fn tentative_addresses(&mut self, index: u32) -> Result<Vec<(IpNetwork, bool)>, KernelError> {
        let addrs = self.entry(index)?.1.clone();
        Ok(addrs
            .into_iter()
            .filter(|a| self.tentative.contains(a))
            .map(|a| (a, false))
            .collect())
    }

    fn add_address(&mut self, index: u32, addr: IpNetwork) -> Result<(), KernelError> {
        self.mutate("add address", format!("add_address {index} {addr}"))?;
        let addrs = &mut self.entry(index)?.1;
        if addrs.contains(&addr) {
            return Err(errno("add address", nix::errno::Errno::EEXIST));
        }
        addrs.push(addr);
        Ok(())
    }

    fn del_address(&mut self, index: u32, addr: IpNetwork) -> Result<(), KernelError> {
        self.mutate("delete address", format!("del_address {index} {addr}"))?;
        self.entry(index)?.1.retain(|a| *a != addr);
        Ok(())
    }

    fn routes(&mut self, ipv4: bool) -> Result<Vec<RouteEntry>, KernelError> {
        Ok(self
            .routes
            .iter()
            .filter(|r| r.dst.is_ipv4() == ipv4)
            .cloned()
            .collect())
    }

    fn add_route(&mut self, route: &RouteEntry) -> Result<(), KernelError> {
        self.mutate(
            "add route",
            format!("add_route {} {:?} {:?}", route.dst, route.gw, route.oif),
        )?;
        self.routes.push(route.clone());
        Ok(())
    }
}

macro_rules! delegate {
    ($(fn $name:ident(&mut self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        impl Netlink for SharedFake {
            $(fn $name(&mut self $(, $arg: $ty)*) -> $ret { self.0.borrow_mut().$name($($arg),*) })*
        }
    };
}

delegate! {
    fn link_by_name(&mut self, name: &str) -> Result<Link, KernelError>;
    fn link_by_index(&mut self, index: u32) -> Result<Link, KernelError>;
    fn links(&mut self) -> Result<Vec<Link>, KernelError>;
    fn create_bridge(&mut self, name: &str, mtu: Option<u32>, vlan_filtering: bool) -> Result<(), KernelError>;
    fn create_veth(&mut self, spec: &VethSpec<'_>) -> Result<(), KernelError>;
    fn create_macvlan(&mut self, spec: &MacvlanSpec<'_>) -> Result<(), KernelError>;
    fn set_name(&mut self, index: u32, name: &str) -> Result<(), KernelError>;
    fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<(), KernelError>;
    fn set_allmulti(&mut self, index: u32, on: bool) -> Result<(), KernelError>;
    fn set_txqlen(&mut self, index: u32, len: u32) -> Result<(), KernelError>;
    fn delete_link(&mut self, index: u32) -> Result<(), KernelError>;
    fn set_link_up(&mut self, index: u32, up: bool) -> Result<(), KernelError>;
    fn set_promisc(&mut self, index: u32, on: bool) -> Result<(), KernelError>;
    fn set_master(&mut self, index: u32, master: Option<u32>) -> Result<(), KernelError>;
    fn set_mac(&mut self, index: u32, mac: [u8; 6]) -> Result<(), KernelError>;
    fn set_bridge_port(&mut self, index: u32, hairpin: bool, isolated: bool) -> Result<(), KernelError>;
    fn bridge_vlans(&mut self, index: u32) -> Result<Vec<BridgeVlan>, KernelError>;
    fn add_bridge_vlan(&mut self, index: u32, vlan: BridgeVlan) -> Result<(), KernelError>;
    fn del_bridge_vlan(&mut self, index: u32, vid: u16) -> Result<(), KernelError>;
    fn addresses(&mut self, index: u32) -> Result<Vec<IpNetwork>, KernelError>;
    fn tentative_addresses(&mut self, index: u32) -> Result<Vec<(IpNetwork, bool)>, KernelError>;
    fn add_address(&mut self, index: u32, addr: IpNetwork) -> Result<(), KernelError>;
    fn del_address(&mut self, index: u32, addr: IpNetwork) -> Result<(), KernelError>;
    fn routes(&mut self, ipv4: bool) -> Result<Vec<RouteEntry>, KernelError>;
    fn add_route(&mut self, route: &RouteEntry) -> Result<(), KernelError>;
}

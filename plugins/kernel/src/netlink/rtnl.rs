//! [`Netlink`] over the blocking [`RtnlSocket`]. Messages are built with rtnetlink's builders
//! and sent on our own socket, so no async runtime is involved.

use std::net::IpAddr;
use std::os::fd::AsRawFd;

use ipnetwork::IpNetwork;
use netlink_packet_core::{NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    AfSpecBridge, BridgeVlanInfoFlags, InfoBridge, InfoBridgePort, InfoData, InfoKind, InfoMacVlan,
    InfoPortData, InfoPortKind, InfoVeth, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo,
    LinkMessage, MacVlanMode, State,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{
    AddressMessageBuilder, LinkBridgeVlan, LinkMacVlan, LinkMessageBuilder, LinkUnspec, LinkVeth,
    RouteMessageBuilder,
};

use super::socket::RtnlSocket;
use super::{
    BridgeVlan, Link, MacvlanMode, MacvlanSpec, Netlink, RouteEntry, VethSpec, format_mac,
};
use crate::error::KernelError;

fn link_from(msg: &LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        up: msg.header.flags.contains(LinkFlags::Up),
        promisc: msg.header.flags.contains(LinkFlags::Promisc),
        allmulti: msg.header.flags.contains(LinkFlags::Allmulti),
        ..Link::default()
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name.clone_from(n),
            LinkAttribute::Address(a) => link.mac = format_mac(a),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            LinkAttribute::Controller(m) => link.master = Some(*m),
            LinkAttribute::Link(p) => link.peer_index = Some(*p),
            LinkAttribute::OperState(s) => link.oper_up = *s == State::Up,
            LinkAttribute::TxQueueLen(q) => link.txqlen = *q,
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(kind) => link.kind = kind.to_string(),
                        LinkInfo::Data(InfoData::MacVlan(data)) => {
                            link.macvlan_mode = data.iter().find_map(|d| match d {
                                InfoMacVlan::Mode(m) => macvlan_mode_from(*m),
                                _ => None,
                            });
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    link
}

fn macvlan_mode_from(m: MacVlanMode) -> Option<MacvlanMode> {
    Some(match m {
        MacVlanMode::Private => MacvlanMode::Private,
        MacVlanMode::Vepa => MacvlanMode::Vepa,
        MacVlanMode::Bridge => MacvlanMode::Bridge,
        MacVlanMode::Passthrough => MacvlanMode::Passthru,
        MacVlanMode::Source => MacvlanMode::Source,
        _ => return None,
    })
}

fn macvlan_mode_to(m: MacvlanMode) -> MacVlanMode {
    match m {
        MacvlanMode::Private => MacVlanMode::Private,
        MacvlanMode::Vepa => MacVlanMode::Vepa,
        MacvlanMode::Bridge => MacVlanMode::Bridge,
        MacvlanMode::Passthru => MacVlanMode::Passthrough,
        MacvlanMode::Source => MacVlanMode::Source,
    }
}

fn links_of(replies: Vec<RouteNetlinkMessage>) -> Vec<Link> {
    replies
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(link_from(l)),
            _ => None,
        })
        .collect()
}

fn address_message(index: u32, addr: IpNetwork) -> AddressMessage {
    match addr {
        IpNetwork::V4(n) => AddressMessageBuilder::<std::net::Ipv4Addr>::new()
            .index(index)
            .address(n.ip(), n.prefix())
            .build(),
        IpNetwork::V6(n) => AddressMessageBuilder::<std::net::Ipv6Addr>::new()
            .index(index)
            .address(n.ip(), n.prefix())
            .build(),
    }
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn route_from(msg: &RouteMessage) -> Option<RouteEntry> {
    let v4 = msg.header.address_family == AddressFamily::Inet;
    let mut dst = None;
    let mut gw = None;
    let mut oif = None;
    let mut priority = 0;
    let mut table = u32::from(msg.header.table);
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(a) => dst = ip_of(a),
            RouteAttribute::Gateway(a) => gw = ip_of(a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => priority = *p,
            RouteAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    let unspecified = if v4 {
        IpAddr::from([0u8; 4])
    } else {
        IpAddr::from([0u16; 8])
    };
    let dst = IpNetwork::new(
        dst.unwrap_or(unspecified),
        msg.header.destination_prefix_length,
    )
    .ok()?;
    Some(RouteEntry {
        dst,
        gw,
        oif,
        priority,
        table: (table != 254).then_some(table),
        scope: Some(u8::from(msg.header.scope)),
    })
}

fn route_message(r: &RouteEntry) -> Result<RouteMessage, KernelError> {
    let mismatch = || KernelError::Decode {
        op: "build route",
        detail: format!("gateway family differs from {}", r.dst),
    };
    let mut msg = match r.dst {
        IpNetwork::V4(n) => {
            let mut b = RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                .destination_prefix(n.network(), n.prefix());
            if let Some(gw) = r.gw {
                let IpAddr::V4(gw) = gw else {
                    return Err(mismatch());
                };
                b = b.gateway(gw);
            }
            b.build()
        }
        IpNetwork::V6(n) => {
            let mut b = RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                .destination_prefix(n.network(), n.prefix());
            if let Some(gw) = r.gw {
                let IpAddr::V6(gw) = gw else {
                    return Err(mismatch());
                };
                b = b.gateway(gw);
            }
            b.build()
        }
    };
    if let Some(oif) = r.oif {
        msg.attributes.push(RouteAttribute::Oif(oif));
    }
    if r.priority != 0 {
        msg.attributes.push(RouteAttribute::Priority(r.priority));
    }
    if let Some(table) = r.table {
        msg.header.table = u8::try_from(table).unwrap_or(252);
        msg.attributes.push(RouteAttribute::Table(table));
    }
    // Like the reference (and `ip route add` without `proto`): `boot`, not rtnetlink's `static`.
    msg.header.protocol = RouteProtocol::Boot;
    msg.header.scope = match r.scope {
        Some(s) => RouteScope::from(s),
        None if r.gw.is_none() => RouteScope::Link,
        None => RouteScope::Universe,
    };
    Ok(msg)
}

impl RtnlSocket {
    /// The address messages of one link: one dump that the kernel filters by link when the
    /// socket has strict checking, and that is filtered here again for kernels without it.
    fn address_messages(&mut self, index: u32) -> Result<Vec<AddressMessage>, KernelError> {
        let mut filter = AddressMessage::default();
        filter.header.index = index;
        let replies = self.request(
            "dump addresses",
            RouteNetlinkMessage::GetAddress(filter),
            NLM_F_DUMP,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => Some(a),
                _ => None,
            })
            .collect())
    }

    fn set_link(&mut self, op: &'static str, msg: LinkMessage) -> Result<(), KernelError> {
        self.request(op, RouteNetlinkMessage::SetLink(msg), NLM_F_ACK)
            .map(drop)
    }

    fn get_link(&mut self, msg: LinkMessage, what: &str) -> Result<Link, KernelError> {
        let replies = match self.request("get link", RouteNetlinkMessage::GetLink(msg), 0) {
            Err(e) if e.is_not_found() => {
                return Err(KernelError::LinkNotFound { name: what.into() });
            }
            other => other?,
        };
        links_of(replies)
            .pop()
            .ok_or_else(|| KernelError::LinkNotFound { name: what.into() })
    }
}

impl Netlink for RtnlSocket {
    fn link_by_name(&mut self, name: &str) -> Result<Link, KernelError> {
        self.get_link(LinkUnspec::new_with_name(name).build(), name)
    }

    fn link_by_index(&mut self, index: u32) -> Result<Link, KernelError> {
        self.get_link(
            LinkUnspec::new_with_index(index).build(),
            &format!("index {index}"),
        )
    }

    fn links(&mut self) -> Result<Vec<Link>, KernelError> {
        let replies = self.request(
            "dump links",
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(links_of(replies))
    }

    fn create_bridge(
        &mut self,
        name: &str,
        mtu: Option<u32>,
        vlan_filtering: bool,
    ) -> Result<(), KernelError> {
        let mut b =
            LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Bridge).name(name);
        if let Some(mtu) = mtu {
            b = b.mtu(mtu);
        }
        if vlan_filtering {
            b = b.set_info_data(InfoData::Bridge(vec![InfoBridge::VlanFiltering(true)]));
        }
        let msg = RouteNetlinkMessage::NewLink(b.build());
        self.request("create bridge", msg, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
            .map(drop)
    }

    fn create_veth(&mut self, spec: &VethSpec<'_>) -> Result<(), KernelError> {
        let mut peer =
            LinkUnspec::new_with_name(spec.peer_name).setns_by_fd(spec.peer_netns.as_raw_fd());
        if let Some(mtu) = spec.mtu {
            peer = peer.mtu(mtu);
        }
        if let Some(mac) = spec.peer_mac {
            peer = peer.address(mac.to_vec());
        }
        let mut b = LinkVeth::new(spec.name, spec.peer_name)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())));
        if let Some(mtu) = spec.mtu {
            b = b.mtu(mtu);
        }
        let msg = RouteNetlinkMessage::NewLink(b.build());
        self.request("create veth", msg, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
            .map(drop)
    }

    fn create_macvlan(&mut self, spec: &MacvlanSpec<'_>) -> Result<(), KernelError> {
        let mut b = LinkMacVlan::new(spec.name, spec.master, macvlan_mode_to(spec.mode));
        if let Some(q) = spec.bcqueuelen {
            b = b.append_info_data(InfoMacVlan::BcQueueLen(q));
        }
        if let Some(mtu) = spec.mtu {
            b = b.mtu(mtu);
        }
        if let Some(mac) = spec.mac {
            b = b.address(mac.to_vec());
        }
        if let Some(q) = spec.txqlen {
            b = b.txqueuelen(q);
        }
        if let Some(ns) = spec.netns {
            b = b.setns_by_fd(ns.as_raw_fd());
        }
        let msg = RouteNetlinkMessage::NewLink(b.build());
        self.request("create macvlan", msg, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
            .map(drop)
    }

    fn set_name(&mut self, index: u32, name: &str) -> Result<(), KernelError> {
        self.set_link(
            "rename link",
            LinkUnspec::new_with_index(index).name(name).build(),
        )
    }

    fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<(), KernelError> {
        self.set_link(
            "set mtu",
            LinkUnspec::new_with_index(index).mtu(mtu).build(),
        )
    }

    fn set_allmulti(&mut self, index: u32, on: bool) -> Result<(), KernelError> {
        self.set_link(
            "set allmulti",
            LinkUnspec::new_with_index(index).allmulticast(on).build(),
        )
    }

    fn set_txqlen(&mut self, index: u32, len: u32) -> Result<(), KernelError> {
        self.set_link(
            "set txqueuelen",
            LinkUnspec::new_with_index(index).txqueuelen(len).build(),
        )
    }

    fn delete_link(&mut self, index: u32) -> Result<(), KernelError> {
        let msg = RouteNetlinkMessage::DelLink(LinkUnspec::new_with_index(index).build());
        self.request("delete link", msg, NLM_F_ACK).map(drop)
    }

    fn set_link_up(&mut self, index: u32, up: bool) -> Result<(), KernelError> {
        let b = LinkUnspec::new_with_index(index);
        self.set_link(
            "set link up/down",
            if up { b.up() } else { b.down() }.build(),
        )
    }

    fn set_promisc(&mut self, index: u32, on: bool) -> Result<(), KernelError> {
        self.set_link(
            "set promisc",
            LinkUnspec::new_with_index(index).promiscuous(on).build(),
        )
    }

    fn set_master(&mut self, index: u32, master: Option<u32>) -> Result<(), KernelError> {
        let b = LinkUnspec::new_with_index(index);
        let b = match master {
            Some(m) => b.controller(m),
            None => b.nocontroller(),
        };
        self.set_link("set master", b.build())
    }

    fn set_mac(&mut self, index: u32, mac: [u8; 6]) -> Result<(), KernelError> {
        self.set_link(
            "set mac",
            LinkUnspec::new_with_index(index)
                .address(mac.to_vec())
                .build(),
        )
    }

    fn set_bridge_port(
        &mut self,
        index: u32,
        hairpin: bool,
        isolated: bool,
    ) -> Result<(), KernelError> {
        let msg = LinkUnspec::new_with_index(index)
            .set_port_kind(InfoPortKind::Bridge)
            .set_port_data(InfoPortData::BridgePort(vec![
                InfoBridgePort::HairpinMode(hairpin),
                InfoBridgePort::Isolated(isolated),
            ]))
            .build();
        self.request(
            "set bridge port",
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_ACK,
        )
        .map(drop)
    }

    fn bridge_vlans(&mut self, index: u32) -> Result<Vec<BridgeVlan>, KernelError> {
        let mut msg = LinkMessage::default();
        msg.header.interface_family = AddressFamily::Bridge;
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::Brvlan]));
        let replies = self.request(
            "dump bridge vlans",
            RouteNetlinkMessage::GetLink(msg),
            NLM_F_DUMP,
        )?;
        let mut out = Vec::new();
        for m in replies {
            let RouteNetlinkMessage::NewLink(l) = m else {
                continue;
            };
            if l.header.index != index {
                continue;
            }
            for attr in &l.attributes {
                let LinkAttribute::AfSpecBridge(specs) = attr else {
                    continue;
                };
                for spec in specs {
                    if let AfSpecBridge::VlanInfo(v) = spec {
                        out.push(BridgeVlan {
                            vid: v.vid,
                            pvid: v.flags.contains(BridgeVlanInfoFlags::Pvid),
                            untagged: v.flags.contains(BridgeVlanInfoFlags::Untagged),
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    fn add_bridge_vlan(&mut self, index: u32, vlan: BridgeVlan) -> Result<(), KernelError> {
        let mut flags = BridgeVlanInfoFlags::empty();
        if vlan.pvid {
            flags |= BridgeVlanInfoFlags::Pvid;
        }
        if vlan.untagged {
            flags |= BridgeVlanInfoFlags::Untagged;
        }
        let msg = LinkBridgeVlan::new(index).vlan(vlan.vid, flags).build();
        self.set_link("add bridge vlan", msg)
    }

    fn del_bridge_vlan(&mut self, index: u32, vid: u16) -> Result<(), KernelError> {
        let msg = LinkBridgeVlan::new(index)
            .vlan(vid, BridgeVlanInfoFlags::empty())
            .build();
        self.request(
            "delete bridge vlan",
            RouteNetlinkMessage::DelLink(msg),
            NLM_F_ACK,
        )
        .map(drop)
    }

    fn addresses(&mut self, index: u32) -> Result<Vec<IpNetwork>, KernelError> {
        let mut out = Vec::new();
        for a in self.address_messages(index)? {
            // IFA_LOCAL is the interface's own address on point-to-point links; else IFA_ADDRESS.
            let find = |want_local: bool| {
                a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Local(ip) if want_local => Some(*ip),
                    AddressAttribute::Address(ip) if !want_local => Some(*ip),
                    _ => None,
                })
            };
            if let Some(ip) = find(true).or_else(|| find(false))
                && let Ok(net) = IpNetwork::new(ip, a.header.prefix_len)
            {
                out.push(net);
            }
        }
        Ok(out)
    }

    fn tentative_addresses(&mut self, index: u32) -> Result<Vec<(IpNetwork, bool)>, KernelError> {
        let mut out = Vec::new();
        for a in self.address_messages(index)? {
            let flags = a
                .attributes
                .iter()
                .find_map(|x| match x {
                    AddressAttribute::Flags(f) => Some(*f),
                    _ => None,
                })
                .unwrap_or_else(|| {
                    AddressFlags::from_bits_truncate(u32::from(a.header.flags.bits()))
                });
            if !flags.intersects(AddressFlags::Tentative | AddressFlags::Dadfailed) {
                continue;
            }
            let ip = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            if let Some(ip) = ip
                && let Ok(net) = IpNetwork::new(ip, a.header.prefix_len)
            {
                out.push((net, flags.contains(AddressFlags::Dadfailed)));
            }
        }
        Ok(out)
    }

    fn add_address(&mut self, index: u32, addr: IpNetwork) -> Result<(), KernelError> {
        let msg = RouteNetlinkMessage::NewAddress(address_message(index, addr));
        self.request("add address", msg, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
            .map(drop)
    }

    fn del_address(&mut self, index: u32, addr: IpNetwork) -> Result<(), KernelError> {
        let msg = RouteNetlinkMessage::DelAddress(address_message(index, addr));
        self.request("delete address", msg, NLM_F_ACK).map(drop)
    }

    fn routes(&mut self, ipv4: bool) -> Result<Vec<RouteEntry>, KernelError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = if ipv4 {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        let replies = self.request(
            "dump routes",
            RouteNetlinkMessage::GetRoute(msg),
            NLM_F_DUMP,
        )?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => route_from(r),
                _ => None,
            })
            .collect())
    }

    fn add_route(&mut self, route: &RouteEntry) -> Result<(), KernelError> {
        let msg = RouteNetlinkMessage::NewRoute(route_message(route)?);
        self.request("add route", msg, NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND)
            .map(drop)
    }
}

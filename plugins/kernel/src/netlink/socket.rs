//! A blocking rtnetlink socket (netlink-sys + netlink-packet-route): no async runtime to start,
//! which keeps a once-per-container exec cheap.

use std::io;

use ipnetwork::IpNetwork;
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::{Link, Netlink, format_mac};
use crate::error::KernelError;
use crate::netns::Netns;

/// A route-netlink socket bound to one network namespace.
#[derive(Debug)]
pub struct RtnlSocket {
    socket: Socket,
    seq: u32,
}

impl RtnlSocket {
    /// A socket in the calling thread's namespace.
    pub fn open() -> Result<RtnlSocket, KernelError> {
        let sock_err = |op| move |source| KernelError::Socket { op, source };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(sock_err("create"))?;
        socket.bind_auto().map_err(sock_err("bind"))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(sock_err("connect"))?;
        Ok(RtnlSocket { socket, seq: 0 })
    }

    /// A socket in `netns`: the thread enters the namespace only to create the socket, which
    /// stays bound to it; every later request runs from the caller's own namespace.
    pub fn open_in(netns: &Netns) -> Result<RtnlSocket, KernelError> {
        let _inside = netns.enter()?;
        Self::open()
    }

    /// Sends `msg` and collects the replies until ACK or end of dump.
    fn request(
        &mut self,
        op: &'static str,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, KernelError> {
        self.seq = self.seq.wrapping_add(1);
        let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(msg));
        packet.header.flags = NLM_F_REQUEST | flags;
        packet.header.sequence_number = self.seq;
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf[..]);
        self.socket
            .send(&buf, 0)
            .map_err(|source| KernelError::Socket { op: "send", source })?;

        let mut replies = Vec::new();
        loop {
            let (data, _) = self
                .socket
                .recv_from_full()
                .map_err(|source| KernelError::Socket { op: "recv", source })?;
            let mut offset = 0;
            while offset < data.len() {
                let reply: NetlinkMessage<RouteNetlinkMessage> =
                    NetlinkMessage::deserialize(&data[offset..]).map_err(|e| {
                        KernelError::Decode {
                            op,
                            detail: e.to_string(),
                        }
                    })?;
                let len = reply.header.length as usize;
                if reply.header.sequence_number == self.seq {
                    match reply.payload {
                        NetlinkPayload::Done(_) => return Ok(replies),
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                None => Ok(replies),
                                Some(code) => Err(KernelError::Netlink {
                                    op,
                                    source: io::Error::from_raw_os_error(-code.get()),
                                }),
                            };
                        }
                        NetlinkPayload::InnerMessage(m) => {
                            replies.push(m);
                            if flags & NLM_F_DUMP != NLM_F_DUMP && flags & NLM_F_ACK == 0 {
                                return Ok(replies);
                            }
                        }
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }
}

fn link_from(msg: &LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        mac: String::new(),
        mtu: 0,
        up: msg.header.flags.contains(LinkFlags::Up),
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name.clone_from(n),
            LinkAttribute::Address(a) => link.mac = format_mac(a),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            _ => {}
        }
    }
    link
}

impl Netlink for RtnlSocket {
    fn link_by_name(&mut self, name: &str) -> Result<Link, KernelError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        let replies = match self.request("get link", RouteNetlinkMessage::GetLink(msg), 0) {
            Err(e) if e.is_not_found() => {
                return Err(KernelError::LinkNotFound { name: name.into() });
            }
            other => other?,
        };
        replies
            .iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_from(l)),
                _ => None,
            })
            .ok_or_else(|| KernelError::LinkNotFound { name: name.into() })
    }

    fn set_link_up(&mut self, index: u32, up: bool) -> Result<(), KernelError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.change_mask = LinkFlags::Up;
        if up {
            msg.header.flags = LinkFlags::Up;
        }
        self.request("set link", RouteNetlinkMessage::SetLink(msg), NLM_F_ACK)
            .map(drop)
    }

    fn addresses(&mut self, index: u32) -> Result<Vec<IpNetwork>, KernelError> {
        let replies = self.request(
            "dump addresses",
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
        )?;
        let mut out = Vec::new();
        for m in replies {
            let RouteNetlinkMessage::NewAddress(a) = m else {
                continue;
            };
            if a.header.index != index {
                continue;
            }
            // IFA_LOCAL is the interface's own address on point-to-point links; else IFA_ADDRESS.
            let local = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let addr = local.or_else(|| {
                a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
            if let Some(ip) = addr
                && let Ok(net) = IpNetwork::new(ip, a.header.prefix_len)
            {
                out.push(net);
            }
        }
        Ok(out)
    }
}

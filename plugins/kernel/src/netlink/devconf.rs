//! Per-device and per-namespace IP settings over rtnetlink: what `/proc/sys/net/ipv{4,6}/conf`
//! shows, as the kernel also reports it in link messages (`IFLA_AF_SPEC`) and netconf messages
//! (`RTM_GETNETCONF`), and, for IPv4, accepts in `RTM_SETLINK`.
//!
//! netlink-packet-route has no netconf messages, so that one request and its reply are framed
//! here: a one-byte `struct netconfmsg` (the family), padded to four bytes, then attributes.

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NetlinkBuffer, NlasIterator,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    AfSpecInet, AfSpecInet6, AfSpecUnspec, Inet6DevConf, InetDevConf, LinkAttribute, LinkMessage,
};
use rtnetlink::LinkUnspec;

use super::socket::{Next, RtnlSocket};
use crate::error::KernelError;

/// `RTM_GETNETCONF` and its answer `RTM_NEWNETCONF` (linux/rtnetlink.h).
const RTM_NEWNETCONF: u16 = 80;
const RTM_GETNETCONF: u16 = 82;
/// Netconf attributes (linux/netconf.h).
const NETCONFA_IFINDEX: u16 = 1;
const NETCONFA_FORWARDING: u16 = 2;
/// `NETCONFA_IFINDEX` value naming the namespace-wide `all` settings.
const NETCONFA_IFINDEX_ALL: i32 = -1;
/// `IFLA_INET_CONF` inside `IFLA_AF_SPEC` / `AF_INET`, and the nested-attribute flag.
const IFLA_INET_CONF: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_HEADER: usize = 4;
const NLMSG_HEADER: usize = 16;
/// `sizeof(struct netconfmsg)` rounded up to the netlink alignment.
const NETCONFMSG_ALIGNED: usize = 4;

/// The IP families netconf knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpFamily {
    fn af(self) -> u8 {
        let af = match self {
            IpFamily::V4 => nix::libc::AF_INET,
            IpFamily::V6 => nix::libc::AF_INET6,
        };
        af as u8
    }
}

/// The `RTM_GETNETCONF` request for the namespace-wide settings of `family`, with `seq`.
fn netconf_request(family: IpFamily, seq: u32) -> Vec<u8> {
    let attr_len = NLA_HEADER + 4;
    let len = NLMSG_HEADER + NETCONFMSG_ALIGNED + attr_len;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&RTM_GETNETCONF.to_ne_bytes());
    out.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&[family.af(), 0, 0, 0]);
    out.extend_from_slice(&(attr_len as u16).to_ne_bytes());
    out.extend_from_slice(&NETCONFA_IFINDEX.to_ne_bytes());
    out.extend_from_slice(&NETCONFA_IFINDEX_ALL.to_ne_bytes());
    out
}

/// What one netlink message answering a netconf request says.
#[derive(Debug, PartialEq, Eq)]
enum NetconfReply {
    /// `RTM_NEWNETCONF`: the forwarding value when the message carries one.
    Forwarding(Option<i32>),
    /// `NLMSG_ERROR` with this (negative) errno, or 0 for an ACK.
    Error(i32),
    /// `NLMSG_DONE`: the answer ended without a netconf message.
    Done,
    /// Anything else (another sequence number is filtered before this).
    Other,
}

/// Decodes one message of a netconf answer (`payload` after the 16-byte header).
fn parse_netconf(message_type: u16, payload: &[u8]) -> NetconfReply {
    match message_type {
        NLMSG_ERROR => match payload.get(..4) {
            Some(code) => {
                NetconfReply::Error(i32::from_ne_bytes([code[0], code[1], code[2], code[3]]))
            }
            None => NetconfReply::Other,
        },
        RTM_NEWNETCONF => {
            let attrs = payload.get(NETCONFMSG_ALIGNED..).unwrap_or_default();
            let forwarding = NlasIterator::new(attrs)
                .filter_map(Result::ok)
                .find(|nla| nla.kind() == NETCONFA_FORWARDING)
                .and_then(|nla| <[u8; 4]>::try_from(nla.value()).ok())
                .map(i32::from_ne_bytes);
            NetconfReply::Forwarding(forwarding)
        }
        NLMSG_DONE => NetconfReply::Done,
        _ => NetconfReply::Other,
    }
}

/// `IFLA_AF_SPEC` / `AF_INET` / `IFLA_INET_CONF` setting one IPv4 devconf entry (1-based
/// `IPV4_DEVCONF_*` id) to `value`; unlike the crate's request form it can also set 0.
fn inet_conf_attribute(id: u16, value: u32) -> LinkAttribute {
    let mut entry = Vec::with_capacity(NLA_HEADER + 4);
    entry.extend_from_slice(&((NLA_HEADER + 4) as u16).to_ne_bytes());
    entry.extend_from_slice(&id.to_ne_bytes());
    entry.extend_from_slice(&value.to_ne_bytes());
    let conf = netlink_packet_core::DefaultNla::new(IFLA_INET_CONF | NLA_F_NESTED, entry);
    LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![AfSpecInet::Other(conf)])])
}

impl RtnlSocket {
    /// The namespace-wide forwarding setting of `family` (`net.ipv4.ip_forward`,
    /// `net.ipv6.conf.all.forwarding`); `None` when the kernel's answer does not carry it.
    pub fn forwarding(&mut self, family: IpFamily) -> Result<Option<i32>, KernelError> {
        const OP: &str = "get netconf";
        let seq = self.next_seq();
        self.send_raw(&netconf_request(family, seq))?;
        self.answer(OP, seq, |bytes| {
            let msg = NetlinkBuffer::new(bytes);
            Ok(match parse_netconf(msg.message_type(), msg.payload()) {
                NetconfReply::Forwarding(f) => Next::Done(f),
                NetconfReply::Error(0) | NetconfReply::Done => Next::Done(None),
                NetconfReply::Error(code) => {
                    return Err(KernelError::Netlink {
                        op: OP,
                        source: std::io::Error::from_raw_os_error(-code),
                    });
                }
                NetconfReply::Other => Next::More,
            })
        })
    }

    /// The link message of `name` with its per-family settings.
    fn link_message(&mut self, name: &str) -> Result<LinkMessage, KernelError> {
        let replies = self.request(
            "get link",
            RouteNetlinkMessage::GetLink(LinkUnspec::new_with_name(name).build()),
            0,
        )?;
        replies
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .ok_or_else(|| KernelError::LinkNotFound { name: name.into() })
    }

    /// The IPv4 settings of interface `name` (`net.ipv4.conf.<name>.*`); `None` when the
    /// kernel reports none (no IPv4 on it).
    pub fn inet_devconf(&mut self, name: &str) -> Result<Option<InetDevConf>, KernelError> {
        Ok(
            af_specs(&self.link_message(name)?).find_map(|spec| match spec {
                AfSpecUnspec::Inet(items) => items.iter().find_map(|i| match i {
                    AfSpecInet::DevConf(c) => Some(*c),
                    _ => None,
                }),
                _ => None,
            }),
        )
    }

    /// The IPv6 settings of interface `name` (`net.ipv6.conf.<name>.*`); `None` when the
    /// kernel reports none (IPv6 disabled).
    pub fn inet6_devconf(&mut self, name: &str) -> Result<Option<Inet6DevConf>, KernelError> {
        Ok(
            af_specs(&self.link_message(name)?).find_map(|spec| match spec {
                AfSpecUnspec::Inet6(items) => items.iter().find_map(|i| match i {
                    AfSpecInet6::DevConf(c) => Some(*c),
                    _ => None,
                }),
                _ => None,
            }),
        )
    }

    /// Sets IPv4 setting `id` (1-based `IPV4_DEVCONF_*`) of interface `name` to `value`.
    pub fn set_inet_devconf(&mut self, name: &str, id: u16, value: u32) -> Result<(), KernelError> {
        let mut msg = LinkUnspec::new_with_name(name).build();
        msg.attributes.push(inet_conf_attribute(id, value));
        self.request(
            "set ipv4 devconf",
            RouteNetlinkMessage::SetLink(msg),
            NLM_F_ACK,
        )
        .map(drop)
    }
}

fn af_specs(msg: &LinkMessage) -> impl Iterator<Item = &AfSpecUnspec> {
    msg.attributes.iter().flat_map(|a| match a {
        LinkAttribute::AfSpecUnspec(specs) => specs.as_slice(),
        _ => &[],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_netconf_request_asks_for_the_all_settings_of_one_family() {
        let req = netconf_request(IpFamily::V6, 7);
        assert_eq!(req.len(), 28);
        let msg = NetlinkBuffer::new_checked(&req[..]).unwrap();
        assert_eq!(msg.length(), 28);
        assert_eq!(msg.message_type(), RTM_GETNETCONF);
        assert_eq!(msg.flags(), NLM_F_REQUEST);
        assert_eq!(msg.sequence_number(), 7);
        let payload = msg.payload();
        assert_eq!(payload[0], 10, "AF_INET6");
        let attrs: Vec<_> = NlasIterator::new(&payload[4..])
            .map(Result::unwrap)
            .collect();
        assert_eq!(attrs.len(), 1);
        assert_eq!(attrs[0].kind(), NETCONFA_IFINDEX);
        assert_eq!(attrs[0].value(), (-1i32).to_ne_bytes());
        assert_eq!(netconf_request(IpFamily::V4, 1)[16], 2, "AF_INET");
    }

    fn netconf_reply(attrs: &[(u16, i32)]) -> Vec<u8> {
        let mut out = vec![2, 0, 0, 0];
        for (kind, value) in attrs {
            out.extend_from_slice(&8u16.to_ne_bytes());
            out.extend_from_slice(&kind.to_ne_bytes());
            out.extend_from_slice(&value.to_ne_bytes());
        }
        out
    }

    #[test]
    fn netconf_replies_decode_forwarding_errors_and_nothing_else() {
        let reply = netconf_reply(&[(NETCONFA_IFINDEX, -1), (NETCONFA_FORWARDING, 1), (3, 0)]);
        assert_eq!(
            parse_netconf(RTM_NEWNETCONF, &reply),
            NetconfReply::Forwarding(Some(1))
        );
        let without = netconf_reply(&[(NETCONFA_IFINDEX, -1)]);
        assert_eq!(
            parse_netconf(RTM_NEWNETCONF, &without),
            NetconfReply::Forwarding(None)
        );
        assert_eq!(
            parse_netconf(NLMSG_ERROR, &(-95i32).to_ne_bytes()),
            NetconfReply::Error(-95)
        );
        assert_eq!(parse_netconf(NLMSG_DONE, &[]), NetconfReply::Done);
        assert_eq!(parse_netconf(RTM_GETNETCONF, &[]), NetconfReply::Other);
    }

    #[test]
    fn truncated_netconf_replies_never_panic() {
        let reply = netconf_reply(&[(NETCONFA_IFINDEX, -1), (NETCONFA_FORWARDING, 1)]);
        for cut in 0..reply.len() {
            let _ = parse_netconf(RTM_NEWNETCONF, &reply[..cut]);
            let _ = parse_netconf(NLMSG_ERROR, &reply[..cut]);
        }
        // A forwarding attribute shorter than four bytes is no value.
        let mut short = vec![2, 0, 0, 0];
        short.extend_from_slice(&6u16.to_ne_bytes());
        short.extend_from_slice(&NETCONFA_FORWARDING.to_ne_bytes());
        short.extend_from_slice(&[1, 0, 0, 0]);
        assert_eq!(
            parse_netconf(RTM_NEWNETCONF, &short),
            NetconfReply::Forwarding(None)
        );
    }

    #[test]
    fn the_ipv4_setting_attribute_nests_one_entry_and_can_carry_zero() {
        use netlink_packet_core::Emitable;
        let LinkAttribute::AfSpecUnspec(specs) = inet_conf_attribute(22, 0) else {
            panic!("not an AF_SPEC attribute");
        };
        let AfSpecUnspec::Inet(inet) = &specs[0] else {
            panic!("not AF_INET");
        };
        let AfSpecInet::Other(conf) = &inet[0] else {
            panic!("not a raw attribute");
        };
        let mut buf = vec![0; conf.buffer_len()];
        conf.emit(&mut buf);
        assert_eq!(
            u16::from_ne_bytes([buf[2], buf[3]]),
            IFLA_INET_CONF | NLA_F_NESTED
        );
        let inner: Vec<_> = NlasIterator::new(&buf[4..]).map(Result::unwrap).collect();
        assert_eq!(inner.len(), 1);
        assert_eq!(inner[0].kind(), 22);
        assert_eq!(inner[0].value(), 0u32.to_ne_bytes());
    }
}

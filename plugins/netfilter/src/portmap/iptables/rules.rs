//! The reference's portmap rules as argument vectors in the exact form `iptables-save` prints
//! them (so a planned rule compares equal to a saved one), and the reverse: which mapping a
//! saved DNAT rule publishes.

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::{DNAT_CHAIN, MASQ_CHAIN};
use crate::iptables::{IpFamily, SavedRule};
use crate::names::parse_comment;
use crate::portmap::{ContainerPorts, PortMapping, Protocol};

/// A rule's arguments after `-A CHAIN`.
pub(crate) type Args = Vec<String>;

/// Comment of the mark rule in `CNI-HOSTPORT-SETMARK`.
const SETMARK_COMMENT: &str = "CNI portfwd masquerade mark";
/// Comment of the `POSTROUTING → CNI-HOSTPORT-MASQ` jump.
const MASQ_JUMP_COMMENT: &str = "CNI portfwd requiring masquerade";
/// `multiport` takes at most this many ports per rule.
const MULTIPORT_MAX: usize = 15;

fn args(list: &[&str]) -> Args {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// `0x2000/0x2000` for bit 13 (Go's `%#x`).
pub(crate) fn mark_value(bit: u8) -> String {
    let value = 1u32 << u32::from(bit.min(31));
    format!("{value:#x}/{value:#x}")
}

/// `-m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark <mark>`.
pub(crate) fn setmark_rule(bit: u8) -> Args {
    let mark = mark_value(bit);
    args(&[
        "-m",
        "comment",
        "--comment",
        SETMARK_COMMENT,
        "-j",
        "MARK",
        "--set-xmark",
        &mark,
    ])
}

/// `-m mark --mark <mark> -j MASQUERADE`.
pub(crate) fn masq_rule(bit: u8) -> Args {
    args(&["-m", "mark", "--mark", &mark_value(bit), "-j", "MASQUERADE"])
}

/// `-m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ` (in
/// `POSTROUTING`, first).
pub(crate) fn masq_jump() -> Args {
    args(&[
        "-m",
        "comment",
        "--comment",
        MASQ_JUMP_COMMENT,
        "-j",
        MASQ_CHAIN,
    ])
}

/// `-m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT` (in `PREROUTING` and `OUTPUT`).
pub(crate) fn dnat_jump() -> Args {
    args(&["-m", "addrtype", "--dst-type", "LOCAL", "-j", DNAT_CHAIN])
}

/// A mark rule of any bit (shared boilerplate of `CNI-HOSTPORT-SETMARK`).
pub(crate) fn is_setmark_rule(rule: &[String]) -> bool {
    rule.len() == 8 && rule[..7] == setmark_rule(0)[..7]
}

/// A masquerade-on-mark rule of any bit (shared boilerplate of `CNI-HOSTPORT-MASQ`).
pub(crate) fn is_masq_rule(rule: &[String]) -> bool {
    rule.len() == 6 && rule[..3] == masq_rule(0)[..3] && rule[4..] == masq_rule(0)[4..]
}

/// `host/32` (`/128`).
fn host(ip: IpAddr) -> String {
    format!("{ip}/{}", IpFamily::of(&ip).host_prefix())
}

/// `10.99.0.2:80`, `[fd00::2]:80`.
fn ip_port(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(ip) => format!("{ip}:{port}"),
        IpAddr::V6(ip) => format!("[{ip}]:{port}"),
    }
}

/// The ports of every mapping (of any family, as the reference does), grouped by protocol name
/// in sorted order, at most 15 per group, duplicates removed.
fn port_groups(ports: &ContainerPorts) -> Vec<(Protocol, String)> {
    let mut protocols: Vec<Protocol> = ports.mappings.iter().map(|m| m.protocol).collect();
    protocols.sort_by_key(|p| p.as_str());
    protocols.dedup();
    let mut groups = Vec::new();
    for protocol in protocols {
        let mut list: Vec<u16> = Vec::new();
        for m in ports.mappings.iter().filter(|m| m.protocol == protocol) {
            if !list.contains(&m.host_port) {
                list.push(m.host_port);
            }
        }
        for chunk in list.chunks(MULTIPORT_MAX) {
            let text: Vec<String> = chunk.iter().map(u16::to_string).collect();
            groups.push((protocol, text.join(",")));
        }
    }
    groups
}

/// The entry rules in `CNI-HOSTPORT-DNAT`: one per protocol and ≤ 15 ports, commented with the
/// owner, the family's conditions last, jumping to the container's chain.
pub(crate) fn entry_rules(ports: &ContainerPorts, family: IpFamily) -> Vec<Args> {
    let comment = ports.owner.iptables_comment();
    let chain = ports.owner.dnat_chain();
    port_groups(ports)
        .into_iter()
        .map(|(protocol, list)| {
            let p = protocol.as_str();
            let mut rule = args(&[
                "-p",
                p,
                "-m",
                "comment",
                "--comment",
                &comment,
                "-m",
                "multiport",
                "--dports",
                &list,
            ]);
            rule.extend(ports.options.conditions(family).iter().cloned());
            rule.extend(args(&["-j", &chain]));
            rule
        })
        .collect()
}

/// Whether `rule` is the entry rule for `(protocol, ports)` to `chain`, whatever conditions it
/// carries (their saved form cannot be predicted).
pub(crate) fn same_entry(rule: &SavedRule, want: &[String], chain: &str) -> bool {
    let opt = |flag: &str| {
        want.iter()
            .position(|a| a == flag)
            .and_then(|i| want.get(i + 1))
            .map(String::as_str)
    };
    rule.target() == Some(chain)
        && rule.option("-p") == opt("-p")
        && rule.option("--dports") == opt("--dports")
}

/// The rules of the container's `CNI-DN-…` chain for its address `addr`: per mapping (of this
/// family) the hairpin mark rule, the localhost mark rule (IPv4, not `masqAll`) and the DNAT.
pub(crate) fn chain_rules(ports: &ContainerPorts, family: IpFamily, addr: IpNetwork) -> Vec<Args> {
    let opts = &ports.options;
    let setmark = opts.mark.setmark_chain();
    let mut rules = Vec::new();
    for m in ports.mappings_for(family) {
        let p = m.protocol.as_str();
        let port = m.host_port.to_string();
        let mut dst = Vec::new();
        if let Some(ip) = m.destination() {
            dst = args(&["-d", &host(ip)]);
        }
        let tail = args(&["-p", p, "-m", p, "--dport", &port]);
        let matching = |src: Option<&str>| {
            let mut r = src.map(|s| args(&["-s", s])).unwrap_or_default();
            r.extend(dst.iter().cloned());
            r.extend(tail.iter().cloned());
            r
        };
        if opts.snat {
            // `-s 0.0.0.0/0` matches everything; iptables-save leaves it out.
            let subnet = format!("{}/{}", addr.network(), addr.prefix());
            let hairpin = matching((!opts.masq_all).then_some(subnet.as_str()));
            rules.push([hairpin, args(&["-j", setmark])].concat());
            if family == IpFamily::V4 && !opts.masq_all {
                let local = matching(Some("127.0.0.1/32"));
                rules.push([local, args(&["-j", setmark])].concat());
            }
        }
        let to = ip_port(addr.ip(), m.container_port);
        rules.push(
            [
                matching(None),
                args(&["-j", "DNAT", "--to-destination", &to]),
            ]
            .concat(),
        );
    }
    rules
}

/// The mapping a saved `-j DNAT` rule of a `CNI-DN-…` chain publishes.
pub(crate) fn dnat_mapping(rule: &SavedRule) -> Option<PortMapping> {
    if rule.target() != Some("DNAT") {
        return None;
    }
    let protocol = Protocol::parse(rule.option("-p")?)?;
    let host_port = rule.option("--dport")?.parse().ok()?;
    let host_ip = match rule.option("-d") {
        Some(d) => Some(d.split('/').next()?.parse().ok()?),
        None => None,
    };
    let to = rule.option("--to-destination")?;
    let container_port = to.rsplit_once(':')?.1.parse().ok()?;
    Some(PortMapping {
        host_port,
        container_port,
        protocol,
        host_ip,
    })
}

/// `(network, container ID)` from an entry rule's `dnat name: "<net>" id: "<cid>"` comment.
pub(crate) fn parse_entry_comment(text: &str) -> Option<(String, String)> {
    parse_comment(text.strip_prefix("dnat ")?)
}

/// `[-p tcp --dport 80 -j DNAT]`: a rule as the reference's CHECK errors print it.
pub(crate) fn go_list(rule: &[String]) -> String {
    format!("[{}]", rule.join(" "))
}

/// The chain the setmark rules of `ports` jump to is ours (not `externalSetMarkChain`).
pub(crate) fn own_mark_bit(ports: &ContainerPorts) -> Option<u8> {
    match ports.options.mark {
        crate::portmap::MarkMode::Bit(bit) if ports.options.snat => Some(bit),
        _ => None,
    }
}

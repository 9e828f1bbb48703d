//! Reading portmap rules back from `nft -j` expressions, and writing them as nft text.
//!
//! Both directions go through [`DnatRule`] and [`MasqRule`], so a planned rule compares equal to
//! a listed one whatever spelling nft chose when it printed it. Rules the reference's nftables
//! backend wrote (`ip protocol tcp th dport 8080 dnat ip addr . port to …`) are understood too,
//! as far as conflict detection needs.

use std::net::IpAddr;

use serde_json::Value;

use crate::iptables::IpFamily;
use crate::portmap::{PortMapping, Protocol};

/// `ip` / `ip6`: the table family and the address payload protocol.
pub(crate) fn family_name(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "ip",
        IpFamily::V6 => "ip6",
    }
}

/// One DNAT rule of `hostports` / `hostip_hostports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DnatRule {
    /// Protocol, host port, destination match (`host_ip`) and container port.
    pub(crate) mapping: PortMapping,
    /// Where it sends the traffic (`None` when the rule's target could not be read).
    pub(crate) to: Option<IpAddr>,
}

impl DnatRule {
    /// `[ip daddr H ]tcp dport 8080 dnat to 10.99.0.2:80`.
    pub(crate) fn text(&self, family: IpFamily) -> String {
        let m = &self.mapping;
        let mut text = String::new();
        if let Some(ip) = m.host_ip {
            text.push_str(&format!("{} daddr {ip} ", family_name(family)));
        }
        let to = match self.to {
            Some(IpAddr::V6(ip)) => format!("[{ip}]:{}", m.container_port),
            Some(ip) => format!("{ip}:{}", m.container_port),
            None => String::new(),
        };
        text.push_str(&format!(
            "{} dport {} dnat to {to}",
            m.protocol.as_str(),
            m.host_port
        ));
        text
    }
}

/// One rule of `masquerading`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MasqRule {
    /// Source match (`None`: any source).
    pub(crate) saddr: Option<IpAddr>,
    /// Destination match: the container.
    pub(crate) daddr: IpAddr,
    /// `ct status dnat` (the `masqAll` form).
    pub(crate) dnatted: bool,
}

impl MasqRule {
    /// `ip saddr S ip daddr D masquerade` / `ip daddr D ct status dnat masquerade`.
    pub(crate) fn text(&self, family: IpFamily) -> String {
        let ipx = family_name(family);
        let mut text = String::new();
        if let Some(s) = self.saddr {
            text.push_str(&format!("{ipx} saddr {s} "));
        }
        text.push_str(&format!("{ipx} daddr {} ", self.daddr));
        if self.dnatted {
            text.push_str("ct status dnat ");
        }
        text.push_str("masquerade");
        text
    }
}

/// The `match` objects of an expression.
fn matches(expr: &Value) -> impl Iterator<Item = &Value> {
    expr.as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item.get("match"))
}

fn has(expr: &Value, key: &str) -> bool {
    expr.as_array()
        .into_iter()
        .flatten()
        .any(|item| item.get(key).is_some())
}

fn payload(m: &Value) -> Option<(&str, &str)> {
    let p = m.pointer("/left/payload")?;
    Some((p.get("protocol")?.as_str()?, p.get("field")?.as_str()?))
}

fn equals(m: &Value) -> bool {
    m.get("op").and_then(Value::as_str) == Some("==")
}

fn right_ip(m: &Value) -> Option<IpAddr> {
    m.get("right")?.as_str()?.parse().ok()
}

/// A DNAT rule's mapping, from its expression; `None` for anything else.
pub(crate) fn parse_dnat(expr: &Value) -> Option<DnatRule> {
    let mut protocol = None;
    let mut l4 = None;
    let mut port = None;
    let mut host_ip = None;
    for m in matches(expr) {
        if !equals(m) {
            continue;
        }
        match payload(m) {
            Some(("ip" | "ip6", "daddr")) => host_ip = right_ip(m),
            Some(("ip", "protocol")) | Some(("ip6", "nexthdr")) => {
                l4 = m
                    .get("right")
                    .and_then(Value::as_str)
                    .and_then(Protocol::parse);
            }
            Some((proto, "dport")) => {
                port = m.get("right").and_then(Value::as_u64);
                protocol = Protocol::parse(proto);
            }
            _ => {
                if m.pointer("/left/meta/key").and_then(Value::as_str) == Some("l4proto") {
                    l4 = m
                        .get("right")
                        .and_then(Value::as_str)
                        .and_then(Protocol::parse);
                }
            }
        }
    }
    let dnat = expr.as_array()?.iter().find_map(|item| item.get("dnat"))?;
    let to = dnat
        .get("addr")
        .and_then(Value::as_str)
        .and_then(|a| a.parse().ok());
    let container_port = dnat.get("port").and_then(Value::as_u64).unwrap_or(0);
    Some(DnatRule {
        mapping: PortMapping {
            host_port: u16::try_from(port?).ok()?,
            container_port: u16::try_from(container_port).unwrap_or(0),
            protocol: protocol.or(l4)?,
            host_ip,
        },
        to,
    })
}

/// A masquerade rule, from its expression; `None` for anything else.
pub(crate) fn parse_masq(expr: &Value) -> Option<MasqRule> {
    if !has(expr, "masquerade") {
        return None;
    }
    let mut saddr = None;
    let mut daddr = None;
    let mut dnatted = false;
    for m in matches(expr) {
        match payload(m) {
            Some((_, "saddr")) if equals(m) => saddr = right_ip(m),
            Some((_, "daddr")) if equals(m) => daddr = right_ip(m),
            _ => {
                let ct = m.pointer("/left/ct/key").and_then(Value::as_str) == Some("status");
                let right = m.get("right");
                let dnat = right.and_then(Value::as_str) == Some("dnat")
                    || right
                        .and_then(Value::as_array)
                        .is_some_and(|a| a.iter().any(|v| v == "dnat"));
                dnatted |= ct && dnat;
            }
        }
    }
    Some(MasqRule {
        saddr,
        daddr: daddr?,
        dnatted,
    })
}

/// Whether the expression is exactly `fib daddr type local jump <target>`.
pub(crate) fn is_local_jump(expr: &Value, target: &str) -> bool {
    let Some(items) = expr.as_array() else {
        return false;
    };
    let [fib, jump] = items.as_slice() else {
        return false;
    };
    let m = fib.get("match");
    let fib_ok = m.is_some_and(|m| {
        equals(m)
            && m.pointer("/left/fib/result").and_then(Value::as_str) == Some("type")
            && m.get("right").and_then(Value::as_str) == Some("local")
    });
    fib_ok && jump_target(jump) == Some(target)
}

fn jump_target(item: &Value) -> Option<&str> {
    item.get("jump")?.get("target")?.as_str()
}

/// Whether the expression is exactly `jump <target>`.
pub(crate) fn is_jump(expr: &Value, target: &str) -> bool {
    match expr.as_array().map(Vec::as_slice) {
        Some([only]) => jump_target(only) == Some(target),
        _ => false,
    }
}

/// Whether the expression jumps to `target` anywhere.
pub(crate) fn jumps_to(expr: &Value, target: &str) -> bool {
    expr.as_array()
        .into_iter()
        .flatten()
        .any(|item| jump_target(item) == Some(target))
}

//! Parsing `create`'s flags: `k=v` pairs, `--opt`s per driver, subnets, gateways and ranges.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::{CreateError, invalid};
use crate::podman::{self, Isolate};
use crate::subnets;

pub(super) fn key_value(text: &str, what: &str) -> Result<(String, String), CreateError> {
    let (k, v) = text.split_once('=').unwrap_or((text, ""));
    if k.is_empty() {
        return Err(invalid(format!("{what} {text:?} has no key")));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// Parsed `--opt`s: what goes into plugin fields and what podman stores in `podman_options`.
#[derive(Debug, Default)]
pub(super) struct Options {
    pub(super) stored: BTreeMap<String, String>,
    pub(super) mtu: Option<u32>,
    pub(super) vlan: Option<u16>,
    pub(super) isolate: Option<Isolate>,
    pub(super) mode: Option<String>,
    pub(super) parent: Option<String>,
    pub(super) bridge_name: Option<String>,
}

pub(super) fn parse_options(opts: &[String], driver: &str) -> Result<Options, CreateError> {
    let mut o = Options::default();
    let not_for = |option: &str| CreateError::OptionDriver {
        option: option.to_owned(),
        driver: driver.to_owned(),
    };
    let bridge = driver == "bridge";
    for text in opts {
        let (key, value) = key_value(text, "option")?;
        match key.as_str() {
            "mtu" | "com.docker.network.driver.mtu" => {
                let mtu: u32 = value
                    .parse()
                    .ok()
                    .filter(|m| (68..=65535).contains(m))
                    .ok_or_else(|| {
                        invalid(format!("mtu {value:?} must be between 68 and 65535"))
                    })?;
                o.mtu = Some(mtu);
                o.stored.insert("mtu".into(), value);
            }
            "vlan" if !bridge => return Err(not_for("vlan")),
            "vlan" => {
                let vlan: u16 = value.parse().ok().filter(|v| *v <= 4094).ok_or_else(|| {
                    invalid(format!("vlan ID {value:?} must be between 0 and 4094"))
                })?;
                o.vlan = (vlan != 0).then_some(vlan);
                o.stored.insert(key, value);
            }
            "isolate" if !bridge => return Err(not_for("isolate")),
            "isolate" => {
                o.isolate = match value.as_str() {
                    "true" | "1" => Some(Isolate::SameBridge),
                    "strict" => Some(Isolate::Strict),
                    "false" | "0" => None,
                    _ => {
                        return Err(invalid(format!(
                            "isolate value {value:?} must be true, strict or false"
                        )));
                    }
                };
                o.stored.insert(key, value);
            }
            "mode" if bridge => return Err(not_for("mode")),
            "mode" => {
                if !matches!(value.as_str(), "bridge" | "private" | "vepa" | "passthru") {
                    return Err(invalid(format!(
                        "unknown macvlan mode {value:?} (bridge, private, vepa, passthru)"
                    )));
                }
                o.mode = Some(value.clone());
                o.stored.insert(key, value);
            }
            "parent" if bridge => return Err(not_for("parent")),
            "parent" => o.parent = Some(value),
            "com.docker.network.bridge.name" if !bridge => return Err(not_for(&key)),
            "com.docker.network.bridge.name" => o.bridge_name = Some(value),
            _ => return Err(invalid(format!("unsupported network option {key}"))),
        }
    }
    Ok(o)
}

pub(super) fn parse_subnet(text: &str) -> Result<IpNetwork, CreateError> {
    let net: IpNetwork = text
        .split_once('/')
        .and_then(|_| text.parse().ok())
        .ok_or_else(|| invalid(format!("subnet {text:?} is not in address/prefix form")))?;
    let too_small = if net.is_ipv4() {
        net.prefix() > 30
    } else {
        net.prefix() > 126
    };
    if too_small {
        return Err(invalid(format!(
            "subnet {text} is too small to allocate from"
        )));
    }
    if net.ip() != net.network() {
        return Err(invalid(format!(
            "subnet {text} has host bits set: the network address for prefix {} is {}",
            net.prefix(),
            net.network()
        )));
    }
    Ok(net)
}

pub(super) fn usable_in(subnet: &IpNetwork, ip: IpAddr) -> bool {
    if !subnet.contains(ip) || ip == subnet.network() {
        return false;
    }
    match subnet {
        IpNetwork::V4(n) => IpAddr::V4(n.broadcast()) != ip,
        IpNetwork::V6(_) => true,
    }
}

/// `--ip-range` (CIDR or `start-end`) inside `subnet`, as `(rangeStart, rangeEnd)`.
pub(super) fn parse_range(text: &str, subnet: &IpNetwork) -> Result<(IpAddr, IpAddr), CreateError> {
    let outside = || CreateError::RangeOutsideSubnet {
        range: text.to_owned(),
        subnet: *subnet,
    };
    let (start, end) = if let Some((a, b)) = text.split_once('-') {
        let parse = |s: &str| {
            s.trim()
                .parse::<IpAddr>()
                .map_err(|_| invalid(format!("ip range {text:?}: {s:?} is not an address")))
        };
        (parse(a)?, parse(b)?)
    } else {
        let range: IpNetwork = text
            .split_once('/')
            .and_then(|_| text.parse().ok())
            .ok_or_else(|| invalid(format!("ip range {text:?} is neither CIDR nor start-end")))?;
        let first = podman::first_host(&range).ok_or_else(outside)?;
        let last = subnets::last_address(&range);
        // podman writes the range's last address even when it is the subnet's broadcast
        // address; host-local would then hand the broadcast address to a container.
        (first, subnets::clamp_broadcast(subnet, last))
    };
    if !usable_in(subnet, start) || !usable_in(subnet, end) {
        return Err(outside());
    }
    if subnets::to_bits(start) > subnets::to_bits(end) {
        return Err(invalid(format!(
            "ip range {text}: start {start} is after end {end}"
        )));
    }
    Ok((start, end))
}

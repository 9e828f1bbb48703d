//! Subnet arithmetic and bookkeeping: which subnets and bridges the directory's networks and the
//! host's addresses already use, overlap, podman's free-/24 search and random ULA /64s.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;
use serde_json::{Map, Value};

use crate::host::HostSnapshot;
use crate::model::{ConfDir, ConfList};

/// A subnet somebody already uses, and who.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedSubnet {
    /// The subnet.
    pub subnet: IpNetwork,
    /// Human-readable owner, e.g. `network "web" (/etc/cni/net.d/web.conflist)`.
    pub owner: String,
}

/// Address as an integer (v4 in the low 32 bits).
pub fn to_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(a.to_bits()),
        IpAddr::V6(a) => a.to_bits(),
    }
}

/// The last address of a network (the broadcast address for IPv4).
pub fn last_address(net: &IpNetwork) -> IpAddr {
    match net {
        IpNetwork::V4(n) => IpAddr::V4(n.broadcast()),
        IpNetwork::V6(n) => {
            let host_bits = 128 - u32::from(n.prefix());
            let mask = if host_bits == 128 {
                u128::MAX
            } else {
                (1u128 << host_bits) - 1
            };
            IpAddr::V6(Ipv6Addr::from_bits(n.network().to_bits() | mask))
        }
    }
}

/// `ip`, moved one address down when it is `subnet`'s IPv4 broadcast address.
pub fn clamp_broadcast(subnet: &IpNetwork, ip: IpAddr) -> IpAddr {
    match (subnet, ip) {
        (IpNetwork::V4(n), IpAddr::V4(a)) if a == n.broadcast() => {
            IpAddr::V4(Ipv4Addr::from_bits(a.to_bits().saturating_sub(1)))
        }
        _ => ip,
    }
}

/// Whether two networks share an address.
pub fn overlap(a: &IpNetwork, b: &IpNetwork) -> bool {
    a.is_ipv4() == b.is_ipv4() && (a.contains(b.network()) || b.contains(a.network()))
}

/// The subnets (one per range, legacy `subnet` first) of an `ipam` object, as written.
pub fn ipam_subnets(ipam: &Map<String, Value>) -> Vec<IpNetwork> {
    let parse = |v: Option<&Value>| -> Option<IpNetwork> {
        let n: IpNetwork = v?.as_str()?.parse().ok()?;
        IpNetwork::new(n.network(), n.prefix()).ok()
    };
    let mut out: Vec<IpNetwork> = parse(ipam.get("subnet")).into_iter().collect();
    for set in ipam
        .get("ranges")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for range in set.as_array().into_iter().flatten() {
            out.extend(parse(range.get("subnet")));
        }
    }
    out
}

/// Every subnet any plugin of `list` allocates from.
pub fn list_subnets(list: &ConfList) -> Vec<IpNetwork> {
    list.plugins
        .iter()
        .filter_map(|p| p.get("ipam").and_then(Value::as_object))
        .flat_map(ipam_subnets)
        .collect()
}

/// The bridge a list's first plugin uses (`cni0` when unset), if it is a bridge network.
pub fn list_bridge(list: &ConfList) -> Option<String> {
    let first = list.plugins.first()?;
    if first.get("type").and_then(Value::as_str) != Some("bridge") {
        return None;
    }
    let name = first.get("bridge").and_then(Value::as_str).unwrap_or("");
    Some(if name.is_empty() { "cni0" } else { name }.to_owned())
}

/// `(bridge, network name)` for every bridge network of the directory.
pub fn bridges_in_use(dir: &ConfDir) -> Vec<(String, String)> {
    dir.lists()
        .filter_map(|(_, l)| list_bridge(l).map(|b| (b, l.name.clone())))
        .collect()
}

/// Subnets of every network in the directory and of every address on the host.
pub fn used_subnets(dir: &ConfDir, host: &HostSnapshot) -> Vec<UsedSubnet> {
    let mut used = Vec::new();
    for (file, list) in dir.lists() {
        for subnet in list_subnets(list) {
            used.push(UsedSubnet {
                subnet,
                owner: format!("network {:?} ({})", list.name, file.path.display()),
            });
        }
    }
    for (link, addr) in host.addresses() {
        if let Ok(subnet) = IpNetwork::new(addr.network(), addr.prefix()) {
            used.push(UsedSubnet {
                subnet,
                owner: format!("address {addr} on {link}"),
            });
        }
    }
    used
}

/// The first /24 of `pools` (in order) that overlaps nothing in `used`.
pub fn free_v4(pools: &[&str], used: &[UsedSubnet]) -> Option<IpNetwork> {
    for pool in pools {
        let Ok(IpNetwork::V4(pool)) = pool.parse::<IpNetwork>() else {
            continue;
        };
        let base = pool.network().to_bits();
        let count = 1u32 << (24u8.saturating_sub(pool.prefix()));
        for i in 0..count {
            let candidate = IpNetwork::new(IpAddr::V4(Ipv4Addr::from_bits(base + (i << 8))), 24);
            if let Ok(c) = candidate
                && !used.iter().any(|u| overlap(&u.subnet, &c))
            {
                return Some(c);
            }
        }
    }
    None
}

/// A unique-local /64 `fdXX:XXXX:XXXX::/64` from 40 random bits (RFC 4193, subnet ID 0).
pub fn ula_subnet(random: [u8; 5]) -> IpNetwork {
    let mut bytes = [0u8; 16];
    bytes[0] = 0xfd;
    bytes[1..6].copy_from_slice(&random);
    let addr = Ipv6Addr::from(bytes);
    IpNetwork::new(IpAddr::V6(addr), 64).unwrap_or(IpNetwork::V6(ipnetwork::Ipv6Network::from(
        Ipv6Addr::UNSPECIFIED,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(nets: &[&str]) -> Vec<UsedSubnet> {
        nets.iter()
            .map(|n| UsedSubnet {
                subnet: n.parse().unwrap(),
                owner: (*n).to_owned(),
            })
            .collect()
    }

    #[test]
    fn free_v4_skips_used_and_host_ranges() {
        let pools = ["10.89.0.0/16", "10.90.0.0/15"];
        assert_eq!(free_v4(&pools, &[]).unwrap().to_string(), "10.89.0.0/24");
        let u = used(&["10.89.0.0/24", "10.89.1.128/25", "10.0.0.0/8"]);
        assert_eq!(free_v4(&pools, &u), None);
        let u = used(&["10.89.0.0/24", "10.89.1.128/25"]);
        assert_eq!(free_v4(&pools, &u).unwrap().to_string(), "10.89.2.0/24");
        let u = used(&["10.89.0.0/16"]);
        assert_eq!(free_v4(&pools, &u).unwrap().to_string(), "10.90.0.0/24");
    }

    #[test]
    fn arithmetic() {
        let n: IpNetwork = "10.1.2.0/24".parse().unwrap();
        assert_eq!(last_address(&n).to_string(), "10.1.2.255");
        assert_eq!(
            clamp_broadcast(&n, last_address(&n)).to_string(),
            "10.1.2.254"
        );
        let v6: IpNetwork = "fd00::/120".parse().unwrap();
        assert_eq!(last_address(&v6).to_string(), "fd00::ff");
        assert!(overlap(&n, &"10.1.0.0/16".parse().unwrap()));
        assert!(!overlap(&n, &"10.1.3.0/24".parse().unwrap()));
        assert!(!overlap(&n, &v6));
        assert_eq!(ula_subnet([1, 2, 3, 4, 5]).to_string(), "fd01:203:405::/64");
    }
}

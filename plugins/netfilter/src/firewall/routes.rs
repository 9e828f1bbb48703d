//! Which host interface an address lives behind: attributes the Go plugin's per-address rules,
//! which carry no owner comment, to bridges, so we never remove the isolation rules of a bridge
//! one of its containers still relies on.
//!
//! Read from `/proc/thread-self/net/route` and `/proc/thread-self/net/ipv6_route` (the calling
//! thread's netns, no exec, no netlink socket); longest prefix wins, reject routes are skipped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Route lookups on the host.
pub trait HostRoutes: Send + Sync {
    /// The interface of the longest-prefix route to `ip`: `Ok(None)` when no route matches,
    /// `Err` (with a reason) when the table cannot be read.
    fn route_interface(&self, ip: IpAddr) -> Result<Option<String>, String>;
}

/// [`HostRoutes`] from procfs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcRoutes;

impl HostRoutes for ProcRoutes {
    fn route_interface(&self, ip: IpAddr) -> Result<Option<String>, String> {
        let (path, parse): (&str, fn(&str) -> Vec<Route>) = match ip {
            IpAddr::V4(_) => ("/proc/thread-self/net/route", parse_ipv4),
            IpAddr::V6(_) => ("/proc/thread-self/net/ipv6_route", parse_ipv6),
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(longest_match(&parse(&text), ip)),
            // No IPv6 in this kernel: no IPv6 route leads anywhere.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && ip.is_ipv6() => Ok(None),
            Err(e) => Err(format!("cannot read {path}: {e}")),
        }
    }
}

/// One usable route: destination prefix and output interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) dst: IpAddr,
    pub(crate) prefix: u8,
    pub(crate) iface: String,
}

/// `RTF_UP`.
const RTF_UP: u32 = 0x0001;
/// `RTF_REJECT`.
const RTF_REJECT: u32 = 0x0200;

/// `/proc/net/route`: `Iface Destination Gateway Flags RefCnt Use Metric Mask …`, addresses as
/// the raw big-endian word printed in host byte order.
pub(crate) fn parse_ipv4(text: &str) -> Vec<Route> {
    let word = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::to_ne_bytes);
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (iface, dst, flags, mask) =
                (cols.first()?, cols.get(1)?, cols.get(3)?, cols.get(7)?);
            let flags = u32::from_str_radix(flags, 16).ok()?;
            if flags & RTF_UP == 0 || flags & RTF_REJECT != 0 {
                return None;
            }
            let mask = u32::from_be_bytes(word(mask)?);
            // Only contiguous masks are routes the kernel can hold.
            let prefix = u8::try_from(mask.leading_ones()).ok()?;
            if mask.count_ones() != u32::from(prefix) {
                return None;
            }
            Some(Route {
                dst: IpAddr::V4(Ipv4Addr::from(word(dst)?)),
                prefix,
                iface: (*iface).to_owned(),
            })
        })
        .collect()
}

/// `/proc/net/ipv6_route`: `dst dst_len src src_len next_hop metric refcnt use flags iface`, all
/// hex.
pub(crate) fn parse_ipv6(text: &str) -> Vec<Route> {
    text.lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 {
                return None;
            }
            let dst = u128::from_str_radix(cols[0], 16).ok()?;
            let prefix = u8::from_str_radix(cols[1], 16).ok()?;
            let flags = u32::from_str_radix(cols[8], 16).ok()?;
            if prefix > 128 || flags & RTF_UP == 0 || flags & RTF_REJECT != 0 {
                return None;
            }
            Some(Route {
                dst: IpAddr::V6(Ipv6Addr::from(dst)),
                prefix,
                iface: cols[9].to_owned(),
            })
        })
        .collect()
}

/// The interface of the most specific route containing `ip`.
pub(crate) fn longest_match(routes: &[Route], ip: IpAddr) -> Option<String> {
    routes
        .iter()
        .filter(|r| contains(r.dst, r.prefix, ip))
        .max_by_key(|r| r.prefix)
        .map(|r| r.iface.clone())
}

fn contains(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/net/route` of a netns with a default route via eth0 and a bridge on 10.99.0.0/24
    /// (x86-64, little endian).
    const V4: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
        cnix0\t0000630A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
        cnix1\t0000620A\t00000000\t0201\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";

    const V6: &str = "\
fd000099000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001    cnix0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn ipv4_longest_prefix_wins_and_reject_routes_are_skipped() {
        let routes = parse_ipv4(V4);
        assert_eq!(routes.len(), 2, "{routes:?}");
        assert_eq!(
            longest_match(&routes, ip("10.99.0.2")).as_deref(),
            Some("cnix0")
        );
        assert_eq!(
            longest_match(&routes, ip("10.98.0.2")).as_deref(),
            Some("eth0")
        );
        assert_eq!(longest_match(&routes[1..], ip("10.98.0.2")), None);
    }

    #[test]
    fn ipv6_routes() {
        let routes = parse_ipv6(V6);
        assert_eq!(routes.len(), 1, "{routes:?}");
        assert_eq!(
            longest_match(&routes, ip("fd00:99::2")).as_deref(),
            Some("cnix0")
        );
        assert_eq!(longest_match(&routes, ip("fd00:98::2")), None);
        assert_eq!(longest_match(&routes, ip("10.99.0.2")), None);
    }

    #[test]
    fn garbage_lines_are_ignored() {
        assert!(parse_ipv4("header\nx y\n").is_empty());
        assert!(parse_ipv6("zz 40\n").is_empty());
    }

    #[test]
    fn proc_routes_reads_this_netns() {
        // Whatever the table holds, reading it works and answers for both families.
        assert!(ProcRoutes.route_interface(ip("127.0.0.1")).is_ok());
        assert!(ProcRoutes.route_interface(ip("::1")).is_ok());
    }
}

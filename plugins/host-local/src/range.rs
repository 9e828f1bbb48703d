//! Validated address ranges ([`Range`]) and range sets ([`RangeSet`]): canonicalisation with
//! the reference defaults, membership, overlap, and the round-robin iteration order.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

use crate::config::RangeConfig;
use crate::error::HostLocalError;

/// One validated, canonical range: a subnet and the inclusive `[range_start, range_end]` pool
/// inside it, plus the gateway that is never handed out.
///
/// Every address is canonical (IPv4-mapped IPv6 addresses become IPv4), `range_start` and
/// `range_end` lie in the subnet, and `range_start <= range_end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    subnet: IpNetwork,
    range_start: IpAddr,
    range_end: IpAddr,
    gateway: IpAddr,
}

impl Range {
    /// Validates a configured range and fills the defaults: `rangeStart` = network + 1,
    /// `rangeEnd` = broadcast − 1 (IPv4) or the last address (IPv6), `gateway` = network + 1.
    ///
    /// Checks, in the reference's order: subnet present, prefix leaves at least two addresses,
    /// address family of address and mask agree, no host bits, start and end inside the subnet
    /// and `start <= end`. The gateway is not checked (the reference accepts any address).
    pub fn canonicalize(cfg: &RangeConfig) -> Result<Range, HostLocalError> {
        let subnet = cfg.subnet.ok_or(HostLocalError::MissingSubnet)?;
        let addr = subnet.ip().to_canonical();
        let prefix = subnet.prefix();
        let mask_bits: u8 = if subnet.is_ipv4() { 32 } else { 128 };
        if prefix > mask_bits - 2 {
            return Err(HostLocalError::NetworkTooSmall {
                network: go_ipnet_string(addr, prefix, mask_bits),
            });
        }
        if addr.is_ipv4() != subnet.is_ipv4() {
            return Err(HostLocalError::FamilyMismatch);
        }
        let v4 = addr.is_ipv4();
        let network_value = to_u128(addr) & prefix_mask(prefix, v4);
        let network = from_u128(network_value, v4);
        if network != addr {
            return Err(HostLocalError::HostBitsSet { prefix, network });
        }
        let subnet = IpNetwork::new(network, prefix).map_err(|_| HostLocalError::FamilyMismatch)?;
        let network_text = format!("{network}/{prefix}");
        let first_host = from_u128(network_value + 1, v4);

        let gateway = cfg.gateway.map_or(first_host, |g| g.to_canonical());
        // The start is checked against the effective end: without a configured `rangeEnd`
        // that is the default one, so a `rangeStart` on the IPv4 broadcast address (past the
        // default end) is refused instead of making an inverted range that hands it out.
        let default_end = {
            let last = network_value | (!prefix_mask(prefix, v4) & family_max(v4));
            from_u128(if v4 { last - 1 } else { last }, v4)
        };
        let raw_end = cfg.range_end.map(|e| e.to_canonical());
        let effective_end = raw_end.unwrap_or(default_end);

        let range_start = match cfg.range_start {
            Some(start) => {
                let start = start.to_canonical();
                let before_end = to_u128(start) <= to_u128(effective_end);
                if !(same_family(start, network) && subnet.contains(start) && before_end) {
                    return Err(HostLocalError::RangeStartNotInNetwork {
                        start,
                        network: network_text,
                    });
                }
                start
            }
            None => first_host,
        };
        let range_end = match raw_end {
            Some(end) => {
                let in_net = same_family(end, network) && subnet.contains(end);
                if !(in_net && to_u128(end) >= to_u128(range_start)) {
                    return Err(HostLocalError::RangeEndNotInNetwork {
                        end,
                        network: network_text,
                    });
                }
                end
            }
            None => default_end,
        };
        Ok(Range {
            subnet,
            range_start,
            range_end,
            gateway,
        })
    }

    /// The subnet (network address and prefix).
    pub fn subnet(&self) -> IpNetwork {
        self.subnet
    }

    /// First allocatable address (inclusive).
    pub fn range_start(&self) -> IpAddr {
        self.range_start
    }

    /// Last allocatable address (inclusive).
    pub fn range_end(&self) -> IpAddr {
        self.range_end
    }

    /// The gateway: reported in results, never allocated.
    pub fn gateway(&self) -> IpAddr {
        self.gateway
    }

    /// True for an IPv4 range.
    pub fn is_ipv4(&self) -> bool {
        self.range_start.is_ipv4()
    }

    /// True when `ip` (canonicalised first) is in the subnet and within `[start, end]`.
    /// The gateway counts as contained.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        same_family(ip, self.range_start)
            && self.subnet.contains(ip)
            && to_u128(ip) >= to_u128(self.range_start)
            && to_u128(ip) <= to_u128(self.range_end)
    }

    /// True when the two ranges share an address (always false across families).
    pub fn overlaps(&self, other: &Range) -> bool {
        self.is_ipv4() == other.is_ipv4()
            && (self.contains(other.range_start)
                || self.contains(other.range_end)
                || other.contains(self.range_start)
                || other.contains(self.range_end))
    }

    /// Number of addresses the allocator can hand out (the pool minus the gateway).
    pub fn capacity(&self) -> u128 {
        let span = to_u128(self.range_end)
            .saturating_sub(to_u128(self.range_start))
            .saturating_add(1);
        if self.contains(self.gateway) {
            span.saturating_sub(1)
        } else {
            span
        }
    }
}

impl fmt::Display for Range {
    /// `start-end`, as the reference prints ranges in error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.range_start, self.range_end)
    }
}

/// A validated range set: one or more non-overlapping ranges of one address family. One address
/// is allocated per range set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<Range>,
}

impl RangeSet {
    /// Canonicalises every range, then rejects an empty set, mixed families and overlaps
    /// (`subnets A and B overlap`, with ranges printed as `start-end`).
    pub fn canonicalize(cfgs: &[RangeConfig]) -> Result<RangeSet, HostLocalError> {
        let mut ranges: Vec<Range> = Vec::with_capacity(cfgs.len());
        for cfg in cfgs {
            let range = Range::canonicalize(cfg)?;
            if let Some(first) = ranges.first()
                && first.is_ipv4() != range.is_ipv4()
            {
                return Err(HostLocalError::MixedAddressFamilies);
            }
            ranges.push(range);
        }
        if ranges.is_empty() {
            return Err(HostLocalError::EmptyRangeSet);
        }
        for (i, first) in ranges.iter().enumerate() {
            for second in &ranges[i + 1..] {
                if first.overlaps(second) {
                    return Err(HostLocalError::RangesOverlap {
                        first: first.to_string(),
                        second: second.to_string(),
                    });
                }
            }
        }
        Ok(RangeSet { ranges })
    }

    /// The ranges, in configuration order (never empty).
    pub fn ranges(&self) -> &[Range] {
        &self.ranges
    }

    /// True for an IPv4 set.
    pub fn is_ipv4(&self) -> bool {
        self.ranges.first().is_some_and(Range::is_ipv4)
    }

    /// True when some range of the set contains `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.range_for(ip).is_some()
    }

    /// The first range containing `ip`.
    pub fn range_for(&self, ip: IpAddr) -> Option<&Range> {
        self.ranges.iter().find(|r| r.contains(ip))
    }

    /// True when any range of `self` overlaps any range of `other`.
    pub fn overlaps(&self, other: &RangeSet) -> bool {
        self.ranges
            .iter()
            .any(|a| other.ranges.iter().any(|b| a.overlaps(b)))
    }

    /// Total number of allocatable addresses (saturating).
    pub fn capacity(&self) -> u128 {
        self.ranges
            .iter()
            .fold(0u128, |acc, r| acc.saturating_add(r.capacity()))
    }

    /// The candidate addresses in the reference's round-robin order: starting right after
    /// `last_reserved` when that address lies in the set, otherwise at the first range's start;
    /// walking each range up to its end, then on to the next range's start (wrapping from the
    /// last range to the first), skipping each range's own gateway, and stopping after one full
    /// cycle. Each item carries the range it belongs to.
    pub fn round_robin(&self, last_reserved: Option<IpAddr>) -> RoundRobin<'_> {
        let first = match last_reserved.and_then(|ip| self.position_of(ip)) {
            Some(pos) => self.advance(pos),
            None => self.ranges.first().map(|r| (0, to_u128(r.range_start))),
        };
        RoundRobin {
            set: self,
            first,
            next: first,
        }
    }

    fn position_of(&self, ip: IpAddr) -> Option<(usize, u128)> {
        let ip = ip.to_canonical();
        self.ranges
            .iter()
            .position(|r| r.contains(ip))
            .map(|i| (i, to_u128(ip)))
    }

    fn advance(&self, (idx, value): (usize, u128)) -> Option<(usize, u128)> {
        let range = self.ranges.get(idx)?;
        if value >= to_u128(range.range_end) {
            let next = (idx + 1) % self.ranges.len();
            self.ranges
                .get(next)
                .map(|r| (next, to_u128(r.range_start)))
        } else {
            Some((idx, value + 1))
        }
    }
}

impl fmt::Display for RangeSet {
    /// Ranges as `start-end`, joined by `,`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Iterator over a range set's candidate addresses; see [`RangeSet::round_robin`].
#[derive(Debug, Clone)]
pub struct RoundRobin<'a> {
    set: &'a RangeSet,
    first: Option<(usize, u128)>,
    next: Option<(usize, u128)>,
}

impl<'a> Iterator for RoundRobin<'a> {
    type Item = (IpAddr, &'a Range);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let pos = self.next?;
            let following = self.set.advance(pos);
            self.next = if following == self.first {
                None
            } else {
                following
            };
            let range = self.set.ranges.get(pos.0)?;
            let ip = from_u128(pos.1, range.is_ipv4());
            if ip != range.gateway {
                return Some((ip, range));
            }
        }
    }
}

/// The address as an integer (IPv4 in the low 32 bits).
pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The inverse of [`to_u128`] (IPv4 takes the low 32 bits).
pub(crate) fn from_u128(value: u128, v4: bool) -> IpAddr {
    if v4 {
        // Truncation is intended: IPv4 values live in the low 32 bits.
        IpAddr::V4(Ipv4Addr::from(value as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(value))
    }
}

fn family_max(v4: bool) -> u128 {
    if v4 { u128::from(u32::MAX) } else { u128::MAX }
}

fn prefix_mask(prefix: u8, v4: bool) -> u128 {
    let bits: u32 = if v4 { 32 } else { 128 };
    let host_bits = bits.saturating_sub(u32::from(prefix));
    let host = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    family_max(v4) & !host
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// Go's `IPNet.String()` for a canonicalised address: an IPv4 address under an IPv6-length mask
/// prints the mask's last 32 bits.
fn go_ipnet_string(addr: IpAddr, prefix: u8, mask_bits: u8) -> String {
    if addr.is_ipv4() && mask_bits == 128 {
        format!("{addr}/{}", prefix.saturating_sub(96))
    } else {
        format!("{addr}/{prefix}")
    }
}

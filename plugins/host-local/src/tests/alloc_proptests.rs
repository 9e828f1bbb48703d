//! Property tests of allocation over random range sets (one to three ranges, IPv4 or IPv6,
//! random `rangeStart` / `rangeEnd` / `gateway`), on the real store in a temporary directory:
//! never a duplicate, never the gateway, always inside the range set, round-robin order, every
//! free address used before the set reports itself exhausted.

use std::collections::HashSet;
use std::net::IpAddr;

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::{ErrorKind, IpamConfig, NormalizedConfig, RangeSet, allocate, release};

/// One range as `(subnet index, prefix, start offset, end offset, gateway offset)`; offsets are
/// taken modulo the subnet size, `None` leaves the field out.
type RangeSpec = (u8, u8, Option<u8>, Option<u8>, Option<u8>);

fn range_spec() -> impl Strategy<Value = RangeSpec> {
    (
        0u8..4,
        26u8..=30,
        proptest::option::of(any::<u8>()),
        proptest::option::of(any::<u8>()),
        proptest::option::of(any::<u8>()),
    )
}

/// The `ranges` entry of one spec; subnets differ by index so ranges of a set do not overlap.
fn range_json(v6: bool, (index, prefix, start, end, gateway): RangeSpec) -> Value {
    let size = 1u32 << (32 - u32::from(prefix));
    let addr = |offset: u8| -> String {
        let host = u32::from(offset) % size;
        if v6 {
            format!("fd00:{index}::{host:x}")
        } else {
            format!("10.{index}.0.{host}")
        }
    };
    let subnet = if v6 {
        format!("fd00:{index}::/{}", u32::from(prefix) + 96)
    } else {
        format!("10.{index}.0.0/{prefix}")
    };
    let mut r = json!({ "subnet": subnet });
    for (key, offset) in [
        ("rangeStart", start),
        ("rangeEnd", end),
        ("gateway", gateway),
    ] {
        if let Some(o) = offset {
            r[key] = json!(addr(o));
        }
    }
    r
}

/// A normalised single-set config in `dir`, or `None` when the random ranges are invalid (start
/// after end, start on the network address, …: the validator's business, not this test's).
fn config(dir: &std::path::Path, v6: bool, specs: &[RangeSpec]) -> Option<NormalizedConfig> {
    let mut seen = HashSet::new();
    let ranges: Vec<Value> = specs
        .iter()
        .filter(|s| seen.insert(s.0))
        .map(|s| range_json(v6, *s))
        .collect();
    let ipam = json!({"type": "host-local", "dataDir": dir, "ranges": [ranges]});
    let ipam = IpamConfig::try_from(ipam).ok()?;
    ipam.normalize(&[], "1.1.0").ok()
}

/// Every address a set may hand out: each range's addresses except that range's gateway.
fn free_addresses(set: &RangeSet) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for r in set.ranges() {
        let (start, end) = (value(r.range_start()), value(r.range_end()));
        for v in start..=end {
            let ip = from_value(v, r.is_ipv4());
            if ip != r.gateway() {
                out.push(ip);
            }
        }
    }
    out
}

fn value(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_value(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::from(u32::try_from(v).unwrap_or(0).to_be_bytes())
    } else {
        IpAddr::from(v.to_be_bytes())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Fill a fresh store until it is exhausted: the addresses come exactly in the set's
    /// round-robin order, are distinct, inside the set, never a range's gateway, and all of
    /// them are used before ADD fails with "exhausted" (code 111).
    #[test]
    fn fill_until_exhausted(v6 in any::<bool>(), specs in proptest::collection::vec(range_spec(), 1..4)) {
        let dir = tempfile::tempdir().unwrap();
        let Some(cfg) = config(dir.path(), v6, &specs) else {
            return Ok(());
        };
        let set = &cfg.range_sets[0];
        let expected: Vec<IpAddr> = set.round_robin(None).map(|(ip, _)| ip).collect();
        let mut free = free_addresses(set);
        let mut got = Vec::new();
        for i in 0..=free.len() {
            match allocate(&cfg, "net", &format!("c{i}"), "eth0", &[]) {
                Ok(a) => {
                    prop_assert_eq!(a.len(), 1);
                    let ip = a[0].address.ip();
                    let range = set.range_for(ip);
                    prop_assert!(range.is_some(), "{} outside {}", ip, set);
                    let range = range.unwrap();
                    prop_assert!(ip != range.gateway(), "gateway {} handed out", ip);
                    prop_assert_eq!(a[0].gateway, Some(range.gateway()));
                    prop_assert_eq!(a[0].address.prefix(), range.subnet().prefix());
                    prop_assert!(!got.contains(&ip), "{} handed out twice", ip);
                    got.push(ip);
                }
                Err(e) => {
                    prop_assert_eq!(e.kind(), ErrorKind::RangeExhausted, "{}", e.message());
                    break;
                }
            }
        }
        prop_assert_eq!(&got, &expected, "not the round-robin order of {}", set);
        let mut sorted = got.clone();
        sorted.sort();
        free.sort();
        prop_assert_eq!(sorted, free, "not every free address of {} was used", set);
    }

    /// After releasing some attachments, new ADDs continue the round robin after the last
    /// reserved address (no immediate reuse), never hand out a held address, and refill the
    /// set completely.
    #[test]
    fn release_then_refill(
        v6 in any::<bool>(),
        specs in proptest::collection::vec(range_spec(), 1..3),
        drop_mask in any::<u64>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let Some(cfg) = config(dir.path(), v6, &specs) else {
            return Ok(());
        };
        let set = &cfg.range_sets[0];
        let mut held: Vec<(String, IpAddr)> = Vec::new();
        for i in 0.. {
            let id = format!("a{i}");
            match allocate(&cfg, "net", &id, "eth0", &[]) {
                Ok(a) => held.push((id, a[0].address.ip())),
                Err(_) => break,
            }
        }
        let Some(&(_, last)) = held.last() else {
            return Ok(());
        };
        let mut released = Vec::new();
        held.retain(|(id, ip)| {
            let drop = drop_mask >> (value(*ip) % 64) & 1 == 1;
            if drop {
                released.push(*ip);
                let _ = release(&cfg, "net", id, "eth0");
            }
            !drop
        });
        // Round robin from the last reservation: the released addresses in that order.
        let order: Vec<IpAddr> = set
            .round_robin(Some(last))
            .map(|(ip, _)| ip)
            .filter(|ip| released.contains(ip))
            .collect();
        let mut again = Vec::new();
        for i in 0..released.len() {
            let a = allocate(&cfg, "net", &format!("b{i}"), "eth0", &[]);
            prop_assert!(a.is_ok(), "refill {} failed: {}", i, a.err().map(|e| e.message()).unwrap_or_default());
            let ip = a.map(|a| a[0].address.ip()).unwrap_or(last);
            prop_assert!(!held.iter().any(|(_, h)| *h == ip), "{} is still held", ip);
            prop_assert!(!again.contains(&ip), "{} handed out twice", ip);
            again.push(ip);
        }
        prop_assert_eq!(again, order, "refill is not round robin after {}", last);
        let full = allocate(&cfg, "net", "full", "eth0", &[]);
        prop_assert_eq!(full.err().map(|e| e.kind()), Some(ErrorKind::RangeExhausted));
    }

    /// A requested address is granted exactly when it is a free non-gateway address of the set;
    /// the gateway and addresses outside the set are refused, and nothing is left reserved.
    #[test]
    fn requested_address(
        v6 in any::<bool>(),
        specs in proptest::collection::vec(range_spec(), 1..3),
        offset in any::<u8>(),
        sub in 0u8..4,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let Some(cfg) = config(dir.path(), v6, &specs) else {
            return Ok(());
        };
        let set = &cfg.range_sets[0];
        let wanted: IpAddr = if v6 {
            format!("fd00:{sub}::{offset:x}").parse().unwrap()
        } else {
            format!("10.{sub}.0.{offset}").parse().unwrap()
        };
        let free = free_addresses(set);
        match allocate(&cfg, "net", "req", "eth0", &[wanted]) {
            Ok(a) => {
                prop_assert!(free.contains(&wanted), "{} granted but not free in {}", wanted, set);
                prop_assert_eq!(a[0].address.ip(), wanted);
            }
            Err(e) => {
                let gateway = set.range_for(wanted).map(|r| r.gateway()) == Some(wanted);
                prop_assert!(!free.contains(&wanted) || gateway, "{} refused: {}", wanted, e.message());
                // Outside the set, the set's own allocation runs first and may find it full.
                let full = !set.contains(wanted) && free.is_empty();
                let kind = if full { ErrorKind::RangeExhausted } else { ErrorKind::AddressUnavailable };
                prop_assert_eq!(e.kind(), kind, "{}", e.message());
                let released = release(&cfg, "net", "req", "eth0").unwrap_or_default();
                prop_assert!(released.is_empty(), "a refused ADD left {:?}", released);
            }
        }
    }

    /// Round robin over a set visits every free address exactly once, starting right after any
    /// given last reservation and wrapping around.
    #[test]
    fn round_robin_is_a_rotation(
        v6 in any::<bool>(),
        specs in proptest::collection::vec(range_spec(), 1..4),
        pick in any::<usize>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let Some(cfg) = config(dir.path(), v6, &specs) else {
            return Ok(());
        };
        let set = &cfg.range_sets[0];
        let base: Vec<IpAddr> = set.round_robin(None).map(|(ip, _)| ip).collect();
        prop_assert_eq!(&base, &free_addresses(set));
        let all: Vec<IpAddr> = set
            .ranges()
            .iter()
            .flat_map(|r| (value(r.range_start())..=value(r.range_end())).map(|v| from_value(v, r.is_ipv4())))
            .collect();
        let last = all[pick % all.len()];
        let rotated: Vec<IpAddr> = set.round_robin(Some(last)).map(|(ip, _)| ip).collect();
        let at = all.iter().position(|ip| *ip == last).unwrap_or(0);
        let want: Vec<IpAddr> = all[at + 1..]
            .iter()
            .chain(&all[..=at])
            .copied()
            .filter(|ip| base.contains(ip))
            .collect();
        prop_assert_eq!(rotated, want);
    }
}

/// Found by `fill_until_exhausted`: a `rangeStart` on the IPv4 broadcast address without a
/// `rangeEnd` made an inverted range (start after the default end) that handed the broadcast
/// address to a container. It is refused like any start after the end.
#[test]
fn range_start_on_broadcast_without_end_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ipam = json!({"type": "host-local", "dataDir": dir.path(),
        "ranges": [[{"subnet": "10.0.0.0/28", "rangeStart": "10.0.0.15"}]]});
    let e = IpamConfig::try_from(ipam)
        .unwrap()
        .normalize(&[], "1.1.0")
        .unwrap_err();
    assert_eq!(
        e.message(),
        "invalid range set 0: RangeStart 10.0.0.15 not in network 10.0.0.0/28"
    );
    // The last host address is still a valid one-address range.
    let ipam = json!({"type": "host-local", "dataDir": dir.path(),
        "ranges": [[{"subnet": "10.0.0.0/28", "rangeStart": "10.0.0.14", "gateway": "10.0.0.1"}]]});
    let cfg = IpamConfig::try_from(ipam)
        .unwrap()
        .normalize(&[], "1.1.0")
        .unwrap();
    let a = allocate(&cfg, "net", "c1", "eth0", &[]).unwrap();
    assert_eq!(a[0].address.to_string(), "10.0.0.14/28");
}

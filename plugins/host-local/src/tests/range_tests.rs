//! Range and range-set behaviour: membership, overlap, capacity and round-robin order.

use std::net::IpAddr;

use serde_json::{Value, json};

use crate::{RangeSet, RangeSetConfig};

fn set(ranges: Value) -> RangeSet {
    let cfg: RangeSetConfig = serde_json::from_value(ranges).unwrap();
    RangeSet::canonicalize(&cfg).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn order(set: &RangeSet, last: Option<&str>) -> Vec<String> {
    set.round_robin(last.map(ip))
        .map(|(a, _)| a.to_string())
        .collect()
}

#[test]
fn contains_respects_the_pool_and_family() {
    let s = set(
        json!([{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.10", "rangeEnd": "10.0.0.20"},
                       {"subnet": "10.0.5.0/30"}]),
    );
    for (addr, want) in [
        ("10.0.0.9", false),
        ("10.0.0.10", true),
        ("10.0.0.20", true),
        ("10.0.0.21", false),
        ("::ffff:10.0.0.15", true),
        ("10.0.5.0", false),
        ("10.0.5.1", true), // the gateway is contained (but never handed out)
        ("10.0.5.2", true),
        ("10.0.5.3", false), // broadcast
        ("fd00::1", false),
    ] {
        assert_eq!(s.contains(ip(addr)), want, "{addr}");
    }
    assert_eq!(
        s.range_for(ip("10.0.5.2")).unwrap().subnet().to_string(),
        "10.0.5.0/30"
    );
    assert_eq!(s.to_string(), "10.0.0.10-10.0.0.20,10.0.5.1-10.0.5.2");
}

#[test]
fn overlap_is_per_family_and_pool_based() {
    let a = set(json!([{"subnet": "10.0.0.0/24", "rangeEnd": "10.0.0.100"}]));
    let b = set(json!([{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.101"}]));
    let c = set(json!([{"subnet": "10.0.0.0/25"}]));
    let d = set(json!([{"subnet": "fd00::/64"}]));
    assert!(
        !a.overlaps(&b),
        "disjoint pools in one subnet do not overlap"
    );
    assert!(a.overlaps(&c) && c.overlaps(&a));
    assert!(!a.overlaps(&d));
    let inner =
        set(json!([{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.50", "rangeEnd": "10.0.0.60"}]));
    assert!(
        a.overlaps(&inner) && inner.overlaps(&a),
        "containment is an overlap"
    );
}

#[test]
fn capacity_excludes_the_gateway_only_when_in_the_pool() {
    let cases = [
        (json!([{"subnet": "10.0.0.0/30"}]), 1u128),
        (json!([{"subnet": "10.0.0.0/24"}]), 253),
        (
            json!([{"subnet": "10.0.0.0/24", "gateway": "10.0.0.254"}]),
            253,
        ),
        (
            json!([{"subnet": "10.0.0.0/24", "gateway": "10.0.1.1"}]),
            254,
        ),
        (
            json!([{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.10"}]),
            245,
        ),
        (
            json!([{"subnet": "10.0.0.0/29"}, {"subnet": "10.0.1.0/30"}]),
            5 + 1,
        ),
        (json!([{"subnet": "fd00::/120"}]), 254),
        (json!([{"subnet": "::/0"}]), u128::MAX - 1),
    ];
    for (ranges, want) in cases {
        assert_eq!(set(ranges.clone()).capacity(), want, "{ranges}");
    }
}

#[test]
fn round_robin_without_history_starts_at_the_first_range() {
    let s =
        set(json!([{"subnet": "10.0.0.0/29", "gateway": "10.0.0.3"}, {"subnet": "10.0.1.0/30"}]));
    let all = [
        "10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.1.2",
    ];
    assert_eq!(order(&s, None), all);
    // a last-reserved address outside the set is ignored
    assert_eq!(order(&s, Some("10.9.9.9")), all);
    assert_eq!(order(&s, Some("fd00::1")), all);
}

#[test]
fn round_robin_resumes_after_the_last_reserved_address_and_wraps() {
    let s =
        set(json!([{"subnet": "10.0.0.0/29", "gateway": "10.0.0.3"}, {"subnet": "10.0.1.0/30"}]));
    assert_eq!(
        order(&s, Some("10.0.0.2")),
        [
            "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.1.2", "10.0.0.1", "10.0.0.2"
        ]
    );
    assert_eq!(
        order(&s, Some("10.0.0.6")),
        [
            "10.0.1.2", "10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6"
        ]
    );
    // last range end wraps to the first range's start
    assert_eq!(
        order(&s, Some("10.0.1.2")),
        [
            "10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.1.2"
        ]
    );
    // the gateway itself as last reserved address (it is contained)
    assert_eq!(
        order(&s, Some("10.0.0.3")),
        [
            "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.1.2", "10.0.0.1", "10.0.0.2"
        ]
    );
}

#[test]
fn round_robin_handles_gateway_at_start_and_single_address_ranges() {
    // start == end == gateway: nothing to hand out
    let s =
        set(json!([{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.1", "rangeEnd": "10.0.0.1"}]));
    assert!(order(&s, None).is_empty());
    assert!(order(&s, Some("10.0.0.1")).is_empty());
    // /30 with the default gateway: exactly one address
    let s = set(json!([{"subnet": "10.0.0.0/30"}]));
    assert_eq!(order(&s, None), ["10.0.0.2"]);
    assert_eq!(order(&s, Some("10.0.0.2")), ["10.0.0.2"]);
    // the gateway of one range is only skipped in that range
    let s =
        set(json!([{"subnet": "10.0.0.0/30", "gateway": "10.0.1.1"}, {"subnet": "10.0.1.0/30"}]));
    assert_eq!(order(&s, None), ["10.0.0.1", "10.0.0.2", "10.0.1.2"]);
}

#[test]
fn round_robin_over_ipv6() {
    let s = set(
        json!([{"subnet": "fd00:95::/64", "rangeStart": "fd00:95::fffe", "rangeEnd": "fd00:95::1:2"}]),
    );
    assert_eq!(
        order(&s, None),
        [
            "fd00:95::fffe",
            "fd00:95::ffff",
            "fd00:95::1:0",
            "fd00:95::1:1",
            "fd00:95::1:2"
        ]
    );
    assert_eq!(order(&s, Some("fd00:95::ffff"))[0], "fd00:95::1:0");
    // a huge range iterates lazily
    let big = set(json!([{"subnet": "fd00::/16"}]));
    let first: Vec<String> = big
        .round_robin(None)
        .take(3)
        .map(|(a, _)| a.to_string())
        .collect();
    assert_eq!(first, ["fd00::2", "fd00::3", "fd00::4"]);
    let last = Some(ip("fd00:ffff:ffff:ffff:ffff:ffff:ffff:fffe"));
    let next: Vec<String> = big
        .round_robin(last)
        .take(2)
        .map(|(a, _)| a.to_string())
        .collect();
    assert_eq!(next, ["fd00:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fd00::2"]);
}

#[test]
fn round_robin_reports_the_range_of_each_candidate() {
    let s =
        set(json!([{"subnet": "10.0.0.0/30"}, {"subnet": "10.0.8.0/22", "rangeEnd": "10.0.8.3"}]));
    let got: Vec<(String, String)> = s
        .round_robin(None)
        .map(|(a, r)| (a.to_string(), r.subnet().to_string()))
        .collect();
    let want = [
        ("10.0.0.2", "10.0.0.0/30"),
        ("10.0.8.2", "10.0.8.0/22"),
        ("10.0.8.3", "10.0.8.0/22"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    assert_eq!(got, want);
}

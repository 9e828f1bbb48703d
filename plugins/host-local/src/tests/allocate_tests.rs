//! ADD: the reference allocation algorithm. Sequences marked "observed" were produced by the Go
//! plugin (v1.1.1) on the same configuration.

use std::fs;
use std::net::IpAddr;

use serde_json::json;

use super::{add, add_err, add1, config, config_ranges, files, net_dir, read};
use crate::{ErrorKind, allocate, release};

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn observed_round_robin_across_two_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_ranges(
        dir.path(),
        json!([{"subnet": "10.0.0.0/29", "gateway": "10.0.0.3"}, {"subnet": "10.0.1.0/30"}]),
    );
    let got: Vec<String> = (1..=6)
        .map(|i| add(&cfg, &format!("c{i}")).remove(0))
        .collect();
    assert_eq!(
        got,
        [
            "10.0.0.1/29",
            "10.0.0.2/29",
            "10.0.0.4/29",
            "10.0.0.5/29",
            "10.0.0.6/29",
            "10.0.1.2/30"
        ]
    );
    let e = add_err(&cfg, "c7", &[]);
    assert_eq!(
        e.message(),
        "failed to allocate for range 0: no IP addresses available in range set: \
         10.0.0.1-10.0.0.6,10.0.1.1-10.0.1.2"
    );
    assert_eq!(e.kind(), ErrorKind::RangeExhausted);
    assert_eq!(read(dir.path(), "last_reserved_ip.0"), "10.0.1.2");

    release(&cfg, "net", "c2", "eth0").unwrap();
    release(&cfg, "net", "c5", "eth0").unwrap();
    // wraps from the end of the last range to the first range
    assert_eq!(add(&cfg, "c10"), ["10.0.0.2/29"]);
    assert_eq!(add(&cfg, "c11"), ["10.0.0.6/29"]);
    assert_eq!(read(dir.path(), "last_reserved_ip.0"), "10.0.0.6");
}

#[test]
fn released_addresses_are_not_reused_until_the_range_wraps() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_ranges(dir.path(), json!([{"subnet": "10.99.0.0/24"}]));
    for (id, want) in [("a", "10.99.0.2"), ("b", "10.99.0.3"), ("c", "10.99.0.4")] {
        assert_eq!(add1(&cfg, id), want);
    }
    release(&cfg, "net", "a", "eth0").unwrap();
    assert_eq!(
        add1(&cfg, "d"),
        "10.99.0.5",
        "observed: after releasing .2 the next ADD got .5"
    );
}

#[test]
fn resumes_from_a_cursor_left_by_the_go_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_ranges(dir.path(), json!([{"subnet": "10.99.0.0/24"}]));
    // state as the Go plugin leaves it (0644 files, same content format)
    let net = net_dir(dir.path());
    fs::create_dir_all(&net).unwrap();
    for (ip, owner) in [("10.99.0.2", "go1\r\neth0"), ("10.99.0.3", "go2\r\neth0")] {
        fs::write(net.join(ip), owner).unwrap();
    }
    fs::write(net.join("last_reserved_ip.0"), "10.99.0.3").unwrap();
    fs::write(net.join("lock"), "").unwrap();
    assert_eq!(add1(&cfg, "rs1"), "10.99.0.4");
    // a cursor outside the set restarts at rangeStart (gateway skipped, taken ones skipped)
    fs::write(net.join("last_reserved_ip.0"), "10.100.0.9").unwrap();
    assert_eq!(add1(&cfg, "rs2"), "10.99.0.5");
    // an unparsable cursor likewise
    fs::write(net.join("last_reserved_ip.0"), "garbage").unwrap();
    assert_eq!(add1(&cfg, "rs3"), "10.99.0.6");
}

#[test]
fn slash_30_with_default_gateway_has_exactly_one_address() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_ranges(dir.path(), json!([{"subnet": "10.0.0.0/30"}]));
    assert_eq!(add(&cfg, "a"), ["10.0.0.2/30"]);
    let e = add_err(&cfg, "b", &[]);
    assert_eq!(
        e.message(),
        "failed to allocate for range 0: no IP addresses available in range set: 10.0.0.1-10.0.0.2"
    );
}

#[test]
fn ipv6_allocation_uses_compressed_lower_case_names() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_ranges(
        dir.path(),
        json!([{"subnet": "FD00:95:0:0:1::/80", "rangeStart": "fd00:95:0:0:1::a"}]),
    );
    let a = allocate(&cfg, "net", "a", "eth0", &[]).unwrap();
    assert_eq!(a[0].address.to_string(), "fd00:95::1:0:0:a/80");
    assert_eq!(
        a[0].gateway.unwrap().to_string(),
        "fd00:95::1:0:0:1",
        "observed"
    );
    assert_eq!(add1(&cfg, "b"), "fd00:95::1:0:0:b");
    assert_eq!(
        files(dir.path()),
        [
            "fd00:95::1:0:0:a",
            "fd00:95::1:0:0:b",
            "last_reserved_ip.0",
            "lock"
        ]
    );
    assert_eq!(read(dir.path(), "last_reserved_ip.0"), "fd00:95::1:0:0:b");
}

#[test]
fn dual_stack_keeps_one_cursor_per_range_set() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]],
               "routes": [{"dst": "0.0.0.0/0"}]}),
    );
    let a = allocate(&cfg, "net", "ctr", "eth0", &[]).unwrap();
    let got: Vec<(String, String)> = a
        .iter()
        .map(|x| (x.address.to_string(), x.gateway.unwrap().to_string()))
        .collect();
    assert_eq!(
        got,
        [
            ("10.0.0.2/24".into(), "10.0.0.1".into()),
            ("fd00::2/64".into(), "fd00::1".into())
        ]
    );
    assert_eq!(read(dir.path(), "last_reserved_ip.0"), "10.0.0.2");
    assert_eq!(read(dir.path(), "last_reserved_ip.1"), "fd00::2");
    assert_eq!(read(dir.path(), "fd00::2"), "ctr\r\neth0");
    assert_eq!(a[0].to_ip_config().interface, None);
    assert_eq!(cfg.routes[0].dst.to_string(), "0.0.0.0/0");
}

#[test]
fn legacy_range_is_set_zero() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        json!({"subnet": "10.7.0.0/24", "rangeStart": "10.7.0.10",
               "ranges": [[{"subnet": "10.0.0.0/24"}]]}),
    );
    assert_eq!(
        add(&cfg, "c11"),
        ["10.7.0.10/24", "10.0.0.2/24"],
        "observed"
    );
    assert_eq!(read(dir.path(), "last_reserved_ip.0"), "10.7.0.10");
    assert_eq!(read(dir.path(), "last_reserved_ip.1"), "10.0.0.2");
}

#[test]
fn requested_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        json!({"ranges": [[{"subnet": "10.99.0.0/24"}], [{"subnet": "fd00::/64"}]]}),
    );
    let got = allocate(&cfg, "net", "a", "eth0", &ips(&["10.99.0.50", "fd00::50"])).unwrap();
    assert_eq!(got[0].address.to_string(), "10.99.0.50/24");
    assert_eq!(got[1].address.to_string(), "fd00::50/64");
    // the cursor follows requested reservations too
    assert_eq!(read(dir.path(), "last_reserved_ip.0"), "10.99.0.50");
    // one set requested, the other allocated
    let got = allocate(&cfg, "net", "b", "eth0", &ips(&["::ffff:10.99.0.7"])).unwrap();
    assert_eq!(got[0].address.to_string(), "10.99.0.7/24");
    assert_eq!(got[1].address.to_string(), "fd00::51/64");
    // a requested address skips the duplicate check (as in the reference)
    let got = allocate(&cfg, "net", "b", "eth0", &ips(&["10.99.0.8", "fd00::8"])).unwrap();
    assert_eq!(got.len(), 2);

    let cases: [(&[&str], &str, ErrorKind); 5] = [
        (
            &["10.99.0.50"],
            "failed to allocate for range 0: requested IP address 10.99.0.50 is not available \
             in range set 10.99.0.1-10.99.0.254",
            ErrorKind::AddressUnavailable,
        ),
        (
            &["10.99.0.1"],
            "failed to allocate for range 0: requested ip 10.99.0.1 is subnet's gateway",
            ErrorKind::AddressUnavailable,
        ),
        (
            &["10.98.0.5"],
            "failed to allocate for range 0: 10.99.0.7 has been allocated to b, duplicate \
             allocation is not allowed",
            ErrorKind::DuplicateAllocation,
        ),
        (
            &["10.99.0.60", "fd00::60", "192.0.2.1", "10.99.0.61"],
            "failed to allocate all requested IPs: 192.0.2.1 10.99.0.61",
            ErrorKind::AddressUnavailable,
        ),
        (
            &["fd00::50"],
            "failed to allocate for range 1: requested IP address fd00::50 is not available in \
             range set fd00::1-fd00::ffff:ffff:ffff:ffff",
            ErrorKind::AddressUnavailable,
        ),
    ];
    let before = files(dir.path());
    for (requested, msg, kind) in cases {
        let id = if requested == ["10.98.0.5"] { "b" } else { "z" };
        let e = add_err(&cfg, id, requested);
        assert_eq!(e.message(), msg, "{requested:?}");
        assert_eq!(e.kind(), kind, "{requested:?}");
    }
    let mut after = files(dir.path());
    after.retain(|f| !f.starts_with("last_reserved_ip"));
    let mut before_ips = before;
    before_ips.retain(|f| !f.starts_with("last_reserved_ip"));
    assert_eq!(after, before_ips, "failed calls left no reservation behind");
    // duplicate requested addresses collapse
    let got = allocate(
        &cfg,
        "net",
        "d",
        "eth0",
        &ips(&["10.99.0.70", "10.99.0.70"]),
    )
    .unwrap();
    assert_eq!(got[0].address.to_string(), "10.99.0.70/24");
}

#[test]
fn duplicate_allocation_is_refused_per_attachment() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_ranges(dir.path(), json!([{"subnet": "10.0.0.0/24"}]));
    assert_eq!(add1(&cfg, "c10"), "10.0.0.2");
    let e = add_err(&cfg, "c10", &[]);
    assert_eq!(
        e.message(),
        "failed to allocate for range 0: 10.0.0.2 has been allocated to c10, duplicate allocation \
         is not allowed"
    );
    assert_eq!(e.kind(), ErrorKind::DuplicateAllocation);
    // another interface of the same container is a different attachment
    let other = allocate(&cfg, "net", "c10", "eth1", &[]).unwrap();
    assert_eq!(other[0].address.to_string(), "10.0.0.3/24");
    // a legacy (ID-only) reservation counts as owned by every interface of that container
    fs::write(net_dir(dir.path()).join("10.0.0.200"), "old").unwrap();
    let e = allocate(&cfg, "net", "old", "eth5", &[]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DuplicateAllocation);
    // an address outside the set does not count
    fs::write(net_dir(dir.path()).join("10.1.0.5"), "new\r\neth0").unwrap();
    assert_eq!(add1(&cfg, "new"), "10.0.0.4");
}

#[test]
fn failure_in_a_later_range_set_rolls_back_earlier_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.1.0.0/30"}]]}),
    );
    assert_eq!(add(&cfg, "a"), ["10.0.0.2/24", "10.1.0.2/30"]);
    let e = add_err(&cfg, "b", &[]);
    assert_eq!(
        e.message(),
        "failed to allocate for range 1: no IP addresses available in range set: 10.1.0.1-10.1.0.2"
    );
    assert_eq!(
        files(dir.path()),
        [
            "10.0.0.2",
            "10.1.0.2",
            "last_reserved_ip.0",
            "last_reserved_ip.1",
            "lock"
        ],
        "10.0.0.3 was reserved and rolled back"
    );
    // the cursor moved on (as in the reference), so the next ADD continues after .3
    release(&cfg, "net", "a", "eth0").unwrap();
    assert_eq!(add(&cfg, "c"), ["10.0.0.4/24", "10.1.0.2/30"]);
}

#[test]
fn invalid_attachment_or_network_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_ranges(dir.path(), json!([{"subnet": "10.0.0.0/24"}]));
    for (network, id, ifname) in [
        ("../escape", "a", "eth0"),
        ("..", "a", "eth0"),
        ("a/b", "a", "eth0"),
        ("net", "../../x", "eth0"),
        ("net", "a\r\nb", "eth0"),
        ("net", "a", "eth0\r\nx"),
        ("net", "a", "../x"),
    ] {
        let e = allocate(&cfg, network, id, ifname, &[]).unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::InvalidConfig,
            "{network} {id} {ifname}"
        );
        assert!(crate::release(&cfg, network, id, ifname).is_err());
        assert!(crate::check(&cfg, network, id, ifname).is_err());
        if network != "net" {
            assert_eq!(
                crate::status(&cfg, network).unwrap_err().kind(),
                ErrorKind::InvalidConfig
            );
            assert_eq!(
                crate::gc(&cfg, network, &[]).unwrap_err().kind(),
                ErrorKind::InvalidConfig
            );
        }
    }
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing created"
    );
    assert!(!dir.path().parent().unwrap().join("escape").exists());
}

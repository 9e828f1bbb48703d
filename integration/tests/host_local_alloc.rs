//! host-local dynamic allocation: every config field, the store's exact bytes, round robin,
//! exhaustion, duplicates, and results converted to each spec version.

use integration_tests::{
    HostLocal, Plugin, SUPPORTED_VERSIONS, World, config, read_tree, strip_empty,
};
use serde_json::{Value, json};

const V: &str = "1.1.0";

fn bench<'w>(world: &'w World, name: &str, ipam: Value) -> HostLocal<'w> {
    HostLocal::ours(world, config::host_local(V, name, &world.data_dir(), ipam))
}

#[test]
fn ranges_allocate_network_plus_two_skipping_the_gateway() {
    let world = World::new();
    let hl = bench(&world, "net1", config::ranges(&["10.77.0.0/24"]));
    let baseline = hl.snapshot();

    let result = strip_empty(hl.add("c1", "eth0").result());
    assert_eq!(
        result,
        json!({"cniVersion": V, "ips": [{"address": "10.77.0.2/24", "gateway": "10.77.0.1"}]})
    );
    assert_eq!(hl.add_ok("c2", "eth0"), ["10.77.0.3/24"]);

    hl.del("c1", "eth0").expect_silent_success();
    hl.del("c2", "eth0").expect_silent_success();
    hl.assert_at_baseline(&baseline);
}

#[test]
fn store_layout_is_byte_exact() {
    let world = World::new();
    let hl = bench(
        &world,
        "net1",
        config::ranges(&["10.79.0.0/24", "fd00:79::/64"]),
    );
    let baseline = hl.snapshot();
    hl.add("c1", "eth0").expect_success();

    let tree = read_tree(&world.data_dir());
    // Our owner cache: not part of the Go layout, checked on its own (inode numbers vary).
    let cache = &tree["net1/.reservation-owners"];
    assert_eq!(cache.mode() & 0o777, 0o600);
    let cache_text = String::from_utf8(cache.content().to_vec()).unwrap();
    let cache_lines: Vec<&str> = cache_text.lines().collect();
    assert_eq!(cache_lines.len(), 3, "{cache_text}");
    assert_eq!(cache_lines[0], "host-local reservation owners v1");
    for (line, ip) in cache_lines[1..].iter().zip(["10.79.0.2", "fd00:79::2"]) {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(
            (fields[0], fields[1], fields[3], fields[4]),
            ("a", ip, "c1", "eth0"),
            "{line}"
        );
    }
    let listing: Vec<String> = tree
        .iter()
        .filter(|(p, _)| p.as_str() != "net1/.reservation-owners")
        .map(|(p, e)| format!("{p} {e}"))
        .collect();
    assert_eq!(
        listing,
        [
            "net1 dir 0755",
            r#"net1/10.79.0.2 file 0600 "c1\r\neth0""#,
            r#"net1/fd00:79::2 file 0600 "c1\r\neth0""#,
            r#"net1/last_reserved_ip.0 file 0600 "10.79.0.2""#,
            r#"net1/last_reserved_ip.1 file 0600 "fd00:79::2""#,
            &format!("net1/lock {}", tree["net1/lock"]),
        ]
    );
    assert!(
        tree["net1/lock"].content().is_empty(),
        "lock file must be empty"
    );
    assert_eq!(
        tree["net1/lock"].mode() & 0o022,
        0,
        "lock must not be group/world writable"
    );

    hl.del("c1", "eth0").expect_silent_success();
    let left: Vec<String> = hl.store().into_keys().collect();
    assert_eq!(left, ["last_reserved_ip.0", "last_reserved_ip.1", "lock"]);
    hl.assert_at_baseline(&baseline);
}

#[test]
fn legacy_subnet_range_and_gateway_fields() {
    let world = World::new();
    let ipam = json!({
        "subnet": "10.78.0.0/24", "rangeStart": "10.78.0.10",
        "rangeEnd": "10.78.0.11", "gateway": "10.78.0.254",
    });
    let hl = bench(&world, "legacy", ipam);
    let baseline = hl.snapshot();

    let result = strip_empty(hl.add("c1", "eth0").result());
    assert_eq!(
        result["ips"],
        json!([{"address": "10.78.0.10/24", "gateway": "10.78.0.254"}])
    );
    assert_eq!(hl.add_ok("c2", "eth0"), ["10.78.0.11/24"]);

    let before_failure = world.snapshot();
    hl.add("c3", "eth0").expect_error(
        111,
        "no IP addresses available in range set: 10.78.0.10-10.78.0.11",
    );
    integration_tests::assert_same!(
        before_failure,
        world.snapshot(),
        "a failed ADD writes nothing"
    );

    hl.del("c1", "eth0").expect_silent_success();
    hl.del("c2", "eth0").expect_silent_success();
    hl.assert_at_baseline(&baseline);
}

#[test]
fn legacy_subnet_is_prepended_to_ranges() {
    let world = World::new();
    let ipam = json!({"subnet": "10.78.0.0/24", "ranges": [[{"subnet": "fd00:78::/64"}]]});
    let hl = bench(&world, "mixed", ipam);
    let baseline = hl.snapshot();
    assert_eq!(hl.add_ok("c1", "eth0"), ["10.78.0.2/24", "fd00:78::2/64"]);
    hl.del_all(&[("c1", "eth0")]);
    hl.assert_at_baseline(&baseline);
}

#[test]
fn routes_are_copied_into_the_result() {
    let world = World::new();
    let routes = json!([
        {"dst": "0.0.0.0/0"},
        {"dst": "192.168.0.0/16", "gw": "10.77.0.254"},
    ]);
    let mut ipam = config::ranges(&["10.77.0.0/24"]);
    ipam["routes"] = routes.clone();
    let hl = bench(&world, "routes", ipam);
    let baseline = hl.snapshot();
    assert_eq!(hl.add("c1", "eth0").result()["routes"], routes);
    hl.del_all(&[("c1", "eth0")]);
    hl.assert_at_baseline(&baseline);
}

#[test]
fn routes_keep_spec_1_1_fields() {
    let world = World::new();
    let route = json!({"dst": "10.9.0.0/16", "gw": "10.77.0.254", "mtu": 1400,
                       "advmss": 1360, "priority": 100, "table": 200, "scope": 253});
    let mut ipam = config::ranges(&["10.77.0.0/24"]);
    ipam["routes"] = json!([route]);
    let hl = bench(&world, "routes11", ipam);
    let baseline = hl.snapshot();
    assert_eq!(hl.add("c1", "eth0").result()["routes"], json!([route]));
    hl.del_all(&[("c1", "eth0")]);
    hl.assert_at_baseline(&baseline);
}

#[test]
fn resolv_conf_becomes_the_result_dns() {
    let world = World::new();
    let resolv = world.write_file(
        "state/resolv.conf",
        b"# generated\nnameserver 10.0.0.53\nnameserver fd00::53\n; other comment\n\
          domain example.test\nsearch a.test b.test\noptions ndots:2 timeout:1\n",
    );
    let mut ipam = config::ranges(&["10.77.0.0/24"]);
    ipam["resolvConf"] = json!(resolv.to_string_lossy());
    let hl = bench(&world, "dns", ipam);
    let baseline = hl.snapshot();
    assert_eq!(
        hl.add("c1", "eth0").result()["dns"],
        json!({
            "nameservers": ["10.0.0.53", "fd00::53"],
            "domain": "example.test",
            "search": ["a.test", "b.test"],
            "options": ["ndots:2", "timeout:1"],
        })
    );
    hl.del_all(&[("c1", "eth0")]);
    hl.assert_at_baseline(&baseline);
}

#[test]
fn data_dir_is_honoured() {
    let world = World::new();
    let dir = world.state_dir().join("elsewhere/ipam");
    // The dataDir is the operator's; only what the plugin puts inside it is under test.
    std::fs::create_dir_all(&dir).unwrap();
    let mut ipam = config::ranges(&["10.77.0.0/24"]);
    ipam["dataDir"] = json!(dir.to_string_lossy());
    let hl = bench(&world, "dd", ipam);
    let baseline = hl.snapshot();
    hl.add("c1", "eth0").expect_success();
    assert_eq!(
        read_tree(&dir.join("dd"))["10.77.0.2"].content(),
        b"c1\r\neth0"
    );
    assert!(
        read_tree(&world.data_dir()).is_empty(),
        "default test dataDir untouched"
    );
    hl.del_all(&[("c1", "eth0")]);
    hl.assert_at_baseline(&baseline);
}

#[test]
fn dual_stack_gets_one_address_per_range_set() {
    let world = World::new();
    let hl = bench(
        &world,
        "dual",
        config::ranges(&["10.79.0.0/24", "fd00:79::/64"]),
    );
    let baseline = hl.snapshot();
    let result = strip_empty(hl.add("c1", "eth0").result());
    assert_eq!(
        result["ips"],
        json!([
            {"address": "10.79.0.2/24", "gateway": "10.79.0.1"},
            {"address": "fd00:79::2/64", "gateway": "fd00:79::1"},
        ])
    );
    assert_eq!(hl.add_ok("c2", "eth0"), ["10.79.0.3/24", "fd00:79::3/64"]);
    hl.del("c1", "eth0").expect_silent_success();
    hl.del("c2", "eth0").expect_silent_success();
    hl.assert_at_baseline(&baseline);
}

/// The dual-stack result with routes of both families, as each spec version shapes it.
fn expected_in_version(version: &str) -> Value {
    let r4 = [
        json!({"dst": "0.0.0.0/0"}),
        json!({"dst": "10.9.0.0/16", "gw": "10.79.0.254"}),
    ];
    let r6 = [json!({"dst": "::/0"})];
    let (a4, g4, a6, g6) = ("10.79.0.2/24", "10.79.0.1", "fd00:79::2/64", "fd00:79::1");
    match version {
        "0.1.0" | "0.2.0" => json!({
            "cniVersion": version,
            "ip4": {"ip": a4, "gateway": g4, "routes": r4},
            "ip6": {"ip": a6, "gateway": g6, "routes": r6},
        }),
        "0.3.0" | "0.3.1" | "0.4.0" => json!({
            "cniVersion": version,
            "ips": [
                {"version": "4", "address": a4, "gateway": g4},
                {"version": "6", "address": a6, "gateway": g6},
            ],
            "routes": [r4[0], r4[1], r6[0]],
        }),
        _ => json!({
            "cniVersion": version,
            "ips": [{"address": a4, "gateway": g4}, {"address": a6, "gateway": g6}],
            "routes": [r4[0], r4[1], r6[0]],
        }),
    }
}

#[test]
fn result_is_converted_to_the_config_version() {
    let world = World::new();
    let ctr = world.container();
    for &version in SUPPORTED_VERSIONS {
        let mut ipam = config::ranges(&["10.79.0.0/24", "fd00:79::/64"]);
        ipam["routes"] = json!([
            {"dst": "0.0.0.0/0"}, {"dst": "10.9.0.0/16", "gw": "10.79.0.254"}, {"dst": "::/0"}
        ]);
        let conf = config::host_local(version, &format!("v{version}"), &world.data_dir(), ipam);
        let hl = HostLocal::in_netns(&world, Plugin::ours("host-local"), conf, ctr.clone());
        let baseline = hl.snapshot();
        let result = strip_empty(hl.add("c1", "eth0").result());
        assert_eq!(result, expected_in_version(version), "cniVersion {version}");
        hl.del_all(&[("c1", "eth0")]);
        hl.assert_at_baseline(&baseline);
    }
}

#[test]
fn round_robin_continues_after_a_release() {
    let world = World::new();
    let hl = bench(&world, "rr", config::ranges(&["10.77.0.0/24"]));
    let baseline = hl.snapshot();
    for (id, want) in [
        ("c1", "10.77.0.2/24"),
        ("c2", "10.77.0.3/24"),
        ("c3", "10.77.0.4/24"),
    ] {
        assert_eq!(hl.add_ok(id, "eth0"), [want]);
    }
    hl.del("c1", "eth0").expect_silent_success();
    assert_eq!(
        hl.add_ok("c4", "eth0"),
        ["10.77.0.5/24"],
        "no reuse of .2 before wrapping"
    );
    assert_eq!(hl.store()["last_reserved_ip.0"].content(), b"10.77.0.5");
    hl.del_all(&[("c2", "eth0"), ("c3", "eth0"), ("c4", "eth0")]);
    hl.assert_at_baseline(&baseline);
}

#[test]
fn round_robin_wraps_to_the_range_start() {
    let world = World::new();
    let ipam = json!({"ranges": [[{"subnet": "10.77.0.0/24",
                                   "rangeStart": "10.77.0.10", "rangeEnd": "10.77.0.12"}]]});
    let hl = bench(&world, "wrap", ipam);
    let baseline = hl.snapshot();
    for (id, want) in [
        ("c1", "10.77.0.10/24"),
        ("c2", "10.77.0.11/24"),
        ("c3", "10.77.0.12/24"),
    ] {
        assert_eq!(hl.add_ok(id, "eth0"), [want]);
    }
    hl.del("c2", "eth0").expect_silent_success();
    assert_eq!(hl.add_ok("c4", "eth0"), ["10.77.0.11/24"]);
    hl.del_all(&[("c1", "eth0"), ("c3", "eth0"), ("c4", "eth0")]);
    hl.assert_at_baseline(&baseline);
}

#[test]
fn a_range_set_pools_several_ranges() {
    let world = World::new();
    let ipam = json!({"ranges": [[
        {"subnet": "10.82.1.0/24", "rangeStart": "10.82.1.10", "rangeEnd": "10.82.1.10"},
        {"subnet": "10.82.2.0/24", "rangeStart": "10.82.2.20", "rangeEnd": "10.82.2.20"},
    ]]});
    let hl = bench(&world, "pool", ipam);
    let baseline = hl.snapshot();
    let first = strip_empty(hl.add("c1", "eth0").result());
    assert_eq!(
        first["ips"],
        json!([{"address": "10.82.1.10/24", "gateway": "10.82.1.1"}])
    );
    let second = strip_empty(hl.add("c2", "eth0").result());
    assert_eq!(
        second["ips"],
        json!([{"address": "10.82.2.20/24", "gateway": "10.82.2.1"}])
    );
    hl.add("c3", "eth0").expect_error(
        111,
        "no IP addresses available in range set: 10.82.1.10-10.82.1.10",
    );
    hl.del_all(&[("c1", "eth0"), ("c2", "eth0")]);
    hl.assert_at_baseline(&baseline);
}

#[test]
fn a_slash_30_has_exactly_one_usable_address() {
    let world = World::new();
    let hl = bench(&world, "tiny", config::ranges(&["10.83.0.0/30"]));
    let baseline = hl.snapshot();
    assert_eq!(hl.add_ok("c1", "eth0"), ["10.83.0.2/30"]);
    let before = world.snapshot();
    let err = hl.add("c2", "eth0").expect_error(
        111,
        "no IP addresses available in range set: 10.83.0.1-10.83.0.2",
    );
    assert_eq!(err.cni_version.as_deref(), Some(V));
    integration_tests::assert_same!(before, world.snapshot(), "exhaustion writes nothing");
    hl.del_all(&[("c1", "eth0")]);
    hl.assert_at_baseline(&baseline);
}

#[test]
fn duplicate_allocation_is_refused_but_another_ifname_is_fine() {
    let world = World::new();
    let hl = bench(&world, "dup", config::ranges(&["10.77.0.0/24"]));
    let baseline = hl.snapshot();
    assert_eq!(hl.add_ok("c1", "eth0"), ["10.77.0.2/24"]);
    let before = world.snapshot();
    hl.add("c1", "eth0").expect_error(
        112,
        "10.77.0.2 has been allocated to c1, duplicate allocation is not allowed",
    );
    integration_tests::assert_same!(before, world.snapshot(), "refused ADD writes nothing");
    assert_eq!(hl.add_ok("c1", "eth1"), ["10.77.0.3/24"]);
    assert_eq!(hl.reservations()["10.77.0.3"], b"c1\r\neth1");
    hl.del_all(&[("c1", "eth0"), ("c1", "eth1")]);
    hl.assert_at_baseline(&baseline);
}

#[test]
fn a_last_reserved_ip_outside_the_set_restarts_at_the_range_start() {
    let world = World::new();
    let hl = bench(&world, "stale", config::ranges(&["10.77.0.0/24"]));
    let baseline = hl.snapshot();
    // Left behind by an earlier config of the same network name.
    std::fs::create_dir_all(hl.store_dir()).unwrap();
    std::fs::write(hl.store_dir().join("last_reserved_ip.0"), b"192.168.1.1").unwrap();
    assert_eq!(hl.add_ok("c1", "eth0"), ["10.77.0.2/24"]);
    assert_eq!(hl.store()["last_reserved_ip.0"].content(), b"10.77.0.2");
    hl.del_all(&[("c1", "eth0")]);
    hl.assert_at_baseline(&baseline);
}

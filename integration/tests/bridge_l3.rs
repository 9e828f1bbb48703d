//! bridge: layer-3 options — L2-only networks (no IPAM), isDefaultGateway, forceAddress,
//! enabledad, disableContainerInterface and the `dns` override.

use integration_tests::bridge::result_shape;
use integration_tests::inspect::{default_route, global_addrs, has_flag, link, sysctl};
use integration_tests::traffic::assert_reachable;
use integration_tests::{BridgeBench, World, assert_same, config};
use serde_json::json;

#[test]
fn l2_only_bridge_has_no_addresses_and_check_passes() {
    let world = World::new();
    let b = BridgeBench::new(&world, "l2net");
    // `ipam: {}` and no `ipam` at all both mean L2 only.
    let other = b.sibling("l2none");
    b.write("1.0.0", json!({"ipam": {}}));
    other.write("1.0.0", json!({}));
    let (c1, c2) = (world.container(), world.container());
    let baseline = b.snapshot();

    for (bench, ctr) in [(&b, &c1), (&other, &c2)] {
        let result = bench.add(ctr);
        assert_eq!(
            result_shape(&result),
            json!({
                "cniVersion": "1.0.0",
                "interfaces": [
                    {"name": b.bridge, "mac": "<mac>"},
                    {"name": "<veth>", "mac": "<mac>"},
                    {"name": "eth0", "mac": "<mac>", "sandbox": ctr.path_str()},
                ],
            }),
            "{}",
            bench.net
        );
        bench.assert_result_matches_kernel(&result, ctr, "eth0");
        assert!(
            has_flag(&link(ctr, "eth0"), "UP"),
            "L2 container iface is up"
        );
        assert!(global_addrs(ctr, "eth0").is_empty());
        bench.check(ctr).expect_silent_success();
    }
    assert!(
        global_addrs(world.host(), &b.bridge).is_empty(),
        "no gateway address"
    );
    // Link-local addresses work between the two containers.
    let ll = integration_tests::inspect::addrs_with_scope(&c2, "eth0")
        .into_iter()
        .find(|(_, scope)| scope == "link")
        .map(|(a, _)| a.split('/').next().unwrap_or_default().to_owned())
        .expect("c2 has a link-local address");
    assert_reachable(&c1, &format!("{ll}%eth0"));

    b.del(&c1);
    other.del(&c2);
    assert_same!(baseline, b.snapshot(), "after DEL");
}

#[test]
fn is_default_gateway_adds_a_default_route_per_family() {
    let world = World::new();
    let b = BridgeBench::new(&world, "defgw");
    b.write(
        "1.0.0",
        json!({"isDefaultGateway": true, "ipam": b.ipam(&["10.89.0.0/24", "fd89::/64"])}),
    );
    let ctr = world.container();
    let baseline = b.snapshot();

    let result = b.add(&ctr);
    assert_eq!(
        result["routes"],
        json!([
            {"dst": "0.0.0.0/0", "gw": "10.89.0.1"},
            {"dst": "::/0", "gw": "fd89::1"},
        ])
    );
    let v4 = default_route(&ctr, "-4").expect("IPv4 default route");
    assert_eq!(
        (v4["gateway"].as_str(), v4["dev"].as_str()),
        (Some("10.89.0.1"), Some("eth0"))
    );
    let v6 = default_route(&ctr, "-6").expect("IPv6 default route");
    assert_eq!(
        (v6["gateway"].as_str(), v6["dev"].as_str()),
        (Some("fd89::1"), Some("eth0"))
    );
    // isDefaultGateway implies isGateway.
    assert_eq!(
        global_addrs(world.host(), &b.bridge),
        ["10.89.0.1/24", "fd89::1/64"]
    );
    b.check(&ctr).expect_silent_success();

    b.del(&ctr);
    assert_same!(baseline, b.snapshot(), "after DEL");
}

#[test]
fn force_address_replaces_a_different_bridge_address() {
    let world = World::new();
    let b = BridgeBench::new(&world, "forcenet");
    let host = world.host();
    host.run_ok(&["ip", "link", "add", &b.bridge, "type", "bridge"]);
    host.run_ok(&["ip", "addr", "add", "10.90.9.1/24", "dev", &b.bridge]);
    b.write(
        "1.0.0",
        json!({"isGateway": true, "forceAddress": true, "ipam": b.ipam(&["10.90.0.0/24"])}),
    );
    let ctr = world.container();
    let baseline = b.snapshot();

    b.add(&ctr);
    assert_eq!(
        global_addrs(host, &b.bridge),
        ["10.90.0.1/24"],
        "old address replaced"
    );
    assert_reachable(&ctr, "10.90.0.1");

    b.del(&ctr);
    assert_same!(baseline, b.snapshot(), "after DEL");
    assert_eq!(
        global_addrs(host, &b.bridge),
        ["10.90.0.1/24"],
        "bridge keeps the new one"
    );
}

#[test]
fn enabledad_turns_dad_on_for_the_container_interface() {
    let world = World::new();
    let off = BridgeBench::new(&world, "dadoff");
    let on = off.sibling("dadon");
    off.write("1.0.0", json!({"ipam": off.ipam(&["fd91::/64"])}));
    on.write(
        "1.0.0",
        json!({"enabledad": true, "ipam": on.ipam(&["fd92::/64"])}),
    );
    let (c1, c2) = (world.container(), world.container());
    let baseline = off.snapshot();

    off.add(&c1);
    on.add(&c2);
    assert_eq!(sysctl(&c1, "net/ipv6/conf/eth0/accept_dad"), "0");
    assert_eq!(sysctl(&c2, "net/ipv6/conf/eth0/accept_dad"), "1");
    assert_eq!(sysctl(&c2, "net/ipv6/conf/eth0/enhanced_dad"), "1");
    assert_eq!(sysctl(&c1, "net/ipv4/conf/eth0/arp_notify"), "1");

    off.del(&c1);
    on.del(&c2);
    assert_same!(baseline, off.snapshot(), "after DEL");
}

#[test]
fn disable_container_interface_leaves_it_down() {
    let world = World::new();
    let b = BridgeBench::new(&world, "downnet");
    b.write("1.0.0", json!({"disableContainerInterface": true}));
    let ctr = world.container();
    let baseline = b.snapshot();

    let result = b.add(&ctr);
    b.assert_result_matches_kernel(&result, &ctr, "eth0");
    let eth0 = link(&ctr, "eth0");
    assert!(
        !has_flag(&eth0, "UP"),
        "container iface must stay down: {eth0}"
    );

    b.del(&ctr);
    assert_same!(baseline, b.snapshot(), "after DEL");
}

#[test]
fn dns_from_the_config_overrides_ipam_dns() {
    let world = World::new();
    let b = BridgeBench::new(&world, "dnsnet");
    let resolv = world.write_file(
        "state/resolv.conf",
        b"nameserver 10.93.0.53\nsearch ipam.example\n",
    );
    let dns =
        json!({"nameservers": ["10.93.0.10"], "domain": "cfg.example", "search": ["cfg.example"]});
    let ipam = config::merge(b.ipam(&["10.93.0.0/24"]), json!({"resolvConf": resolv}));
    let from_ipam = b.sibling("dnsipam");
    b.write("1.0.0", json!({"dns": dns, "ipam": ipam}));
    from_ipam.write("1.0.0", json!({"ipam": config::merge(from_ipam.ipam(&["10.94.0.0/24"]), json!({"resolvConf": resolv}))}));
    let (c1, c2) = (world.container(), world.container());
    let baseline = b.snapshot();

    assert_eq!(b.add(&c1)["dns"], dns);
    assert_eq!(
        from_ipam.add(&c2)["dns"],
        json!({"nameservers": ["10.93.0.53"], "search": ["ipam.example"]})
    );

    b.del(&c1);
    from_ipam.del(&c2);
    assert_same!(baseline, b.snapshot(), "after DEL");
}

#[test]
fn ipv6_gateways_of_disjoint_subnets_coexist_but_overlapping_ones_conflict() {
    let world = World::new();
    let n1 = BridgeBench::new(&world, "six1");
    let n2 = n1.sibling("six2");
    let n3 = n1.sibling("six3");
    n1.write(
        "1.0.0",
        json!({"isGateway": true, "ipam": n1.ipam(&["fd61::/64"])}),
    );
    n2.write(
        "1.0.0",
        json!({"isGateway": true, "ipam": n2.ipam(&["fd62::/64"])}),
    );
    // fd61::/48 overlaps fd61::/64: its gateway fd61::1/48 conflicts with fd61::1/64.
    n3.write(
        "1.0.0",
        json!({"isGateway": true, "ipam": n3.ipam(&["fd61::/48"])}),
    );
    let (c1, c2, c3) = (world.container(), world.container(), world.container());
    let baseline = n1.snapshot();

    n1.add(&c1);
    n2.add(&c2);
    let host = world.host();
    let mut addrs = global_addrs(host, &n1.bridge);
    addrs.sort();
    assert_eq!(addrs, ["fd61::1/64", "fd62::1/64"]);

    let attached = n1.snapshot();
    let out = n3.tool().add("six3", &c3);
    assert_eq!(out.status, Some(1), "{}", out.describe());
    let message = format!(
        "failed to set bridge addr: \"{}\" already has an IP address different from fd61::1/48",
        n1.bridge
    );
    assert!(out.stderr_str().contains(&message), "{}", out.describe());
    assert_same!(attached, n1.snapshot(), "after the conflicting ADD");
    assert!(n3.reservations().is_empty());

    n3.del(&c3);
    n1.del(&c1);
    n2.del(&c2);
    assert_same!(baseline, n1.snapshot(), "after DEL");
}

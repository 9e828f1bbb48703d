//! bridge: real traffic. Containers on one bridge reach each other and the gateway (IPv4,
//! IPv6, dual-stack); a routed "outside" namespace sees masqueraded or original sources.
//! Every test ends with DEL and a return to the baseline (the bridge and its address stay).

use integration_tests::bridge::{masq_rules, result_shape};
use integration_tests::inspect::{global_addrs, link, nat_rules, ports_of, sysctl};
use integration_tests::traffic::{assert_reachable, udp_bind, udp_source_seen};
use integration_tests::{BridgeBench, Netns, Outside, World, assert_same, config};
use serde_json::{Value, json};

/// ADDs every container, checking each result against the kernel; returns the results.
fn add_all(b: &BridgeBench<'_>, ctrs: &[Netns]) -> Vec<Value> {
    ctrs.iter()
        .map(|ctr| {
            let result = b.add(ctr);
            b.assert_result_matches_kernel(&result, ctr, "eth0");
            result
        })
        .collect()
}

#[test]
fn two_containers_ping_each_other_and_the_gateway_ipv4() {
    let world = World::new();
    let b = BridgeBench::new(&world, "ping4");
    b.write(
        "1.0.0",
        json!({"isGateway": true, "ipam": b.ipam(&["10.71.0.0/24"])}),
    );
    let (c1, c2) = (&world.container(), &world.container());
    let baseline = b.snapshot();

    let results = add_all(&b, &[c1.clone(), c2.clone()]);
    let (r1, r2) = (&results[0], &results[1]);
    let expected = |addr: &str, ctr: &Netns| {
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": b.bridge, "mac": "<mac>"},
                {"name": "<veth>", "mac": "<mac>"},
                {"name": "eth0", "mac": "<mac>", "sandbox": ctr.path_str()},
            ],
            "ips": [{"interface": 2, "address": addr, "gateway": "10.71.0.1"}],
        })
    };
    assert_eq!(result_shape(r1), expected("10.71.0.2/24", c1));
    assert_eq!(result_shape(r2), expected("10.71.0.3/24", c2));
    // With a gateway address the bridge's MAC is pinned: ports coming and going keep it.
    let bridge_mac = r1["interfaces"][0]["mac"].clone();
    assert_eq!(r2["interfaces"][0]["mac"], bridge_mac);

    let host = world.host();
    assert_eq!(global_addrs(host, &b.bridge), ["10.71.0.1/24"]);
    assert_eq!(global_addrs(c1, "eth0"), ["10.71.0.2/24"]);
    assert_eq!(global_addrs(c2, "eth0"), ["10.71.0.3/24"]);
    assert_eq!(ports_of(host, &b.bridge).len(), 2);
    assert_eq!(
        sysctl(host, "net/ipv4/ip_forward"),
        "1",
        "isGateway enables forwarding"
    );

    assert_reachable(c1, "10.71.0.3");
    assert_reachable(c2, "10.71.0.2");
    assert_reachable(c1, "10.71.0.1");
    assert_reachable(c2, "10.71.0.1");
    assert_reachable(host, "10.71.0.2");

    b.del(c1);
    b.del(c2);
    assert_same!(baseline, b.snapshot(), "after DEL of both containers");
    b.assert_bridge_kept();
    assert_eq!(
        global_addrs(host, &b.bridge),
        ["10.71.0.1/24"],
        "bridge keeps its address"
    );
    assert_eq!(
        link(host, &b.bridge)["address"],
        bridge_mac,
        "bridge MAC stays pinned"
    );
}

#[test]
fn two_containers_ping_each_other_and_the_gateway_ipv6() {
    let world = World::new();
    let b = BridgeBench::new(&world, "ping6");
    b.write(
        "1.0.0",
        json!({"isGateway": true, "ipam": b.ipam(&["fd71::/64"])}),
    );
    let (c1, c2) = (&world.container(), &world.container());
    let baseline = b.snapshot();

    let results = add_all(&b, &[c1.clone(), c2.clone()]);
    let r1 = &results[0];
    assert_eq!(
        result_shape(r1)["ips"],
        json!([{"interface": 2, "address": "fd71::2/64", "gateway": "fd71::1"}])
    );
    let host = world.host();
    assert_eq!(global_addrs(host, &b.bridge), ["fd71::1/64"]);
    assert_eq!(global_addrs(c1, "eth0"), ["fd71::2/64"]);
    assert_eq!(global_addrs(c2, "eth0"), ["fd71::3/64"]);
    // DAD is off by default on the container side: the address is usable at once.
    assert_eq!(sysctl(c1, "net/ipv6/conf/eth0/accept_dad"), "0");
    assert_eq!(sysctl(host, "net/ipv6/conf/all/forwarding"), "1");

    assert_reachable(c1, "fd71::3");
    assert_reachable(c2, "fd71::2");
    assert_reachable(c1, "fd71::1");

    b.del(c1);
    b.del(c2);
    assert_same!(baseline, b.snapshot(), "after DEL of both containers");
    b.assert_bridge_kept();
}

#[test]
fn dual_stack_containers_reach_each_other_over_both_families() {
    let world = World::new();
    let b = BridgeBench::new(&world, "ping46");
    b.write(
        "1.0.0",
        json!({"isGateway": true, "ipam": b.ipam(&["10.72.0.0/24", "fd72::/64"])}),
    );
    let (c1, c2) = (&world.container(), &world.container());
    let baseline = b.snapshot();

    let results = add_all(&b, &[c1.clone(), c2.clone()]);
    let r1 = &results[0];
    assert_eq!(
        result_shape(r1)["ips"],
        json!([
            {"interface": 2, "address": "10.72.0.2/24", "gateway": "10.72.0.1"},
            {"interface": 2, "address": "fd72::2/64", "gateway": "fd72::1"},
        ])
    );
    let host = world.host();
    assert_eq!(
        global_addrs(host, &b.bridge),
        ["10.72.0.1/24", "fd72::1/64"]
    );
    assert_eq!(global_addrs(c2, "eth0"), ["10.72.0.3/24", "fd72::3/64"]);

    for (from, to) in [
        (c1, "10.72.0.3"),
        (c1, "fd72::3"),
        (c2, "10.72.0.2"),
        (c2, "fd72::2"),
    ] {
        assert_reachable(from, to);
    }
    assert_reachable(c1, "10.72.0.1");
    assert_reachable(c1, "fd72::1");

    b.del(c1);
    b.del(c2);
    assert_same!(baseline, b.snapshot(), "after DEL of both containers");
}

/// ipam with a default route, so outside traffic leaves through the bridge's gateway.
fn routed_ipam(b: &BridgeBench<'_>, subnet: &str) -> Value {
    config::merge(b.ipam(&[subnet]), json!({"routes": [{"dst": "0.0.0.0/0"}]}))
}

#[test]
fn outside_world_sees_the_host_address_with_ipmasq() {
    let world = World::new();
    let b = BridgeBench::new(&world, "masqout");
    b.write(
        "1.0.0",
        json!({"isGateway": true, "ipMasq": true, "ipam": routed_ipam(&b, "10.73.0.0/24")}),
    );
    // No route back to 10.73.0.0/24 in the outside namespace: only masquerading makes
    // replies find their way.
    let outside = Outside::connect(&world, &[]);
    let ctr = world.container();
    let id = b.tool().effective_container_id(&ctr);
    let baseline = b.snapshot();

    let result = b.add(&ctr);
    assert_eq!(result["routes"], json!([{"dst": "0.0.0.0/0"}]));
    assert_eq!(
        sorted(nat_rules(world.host(), false)),
        masq_rules("masqout", &id, "10.73.0.2", "10.73.0.0/24")
    );
    assert_reachable(&ctr, Outside::ADDR);
    let sock = udp_bind(&outside.ns, format!("{}:0", Outside::ADDR).parse().unwrap());
    let seen = udp_source_seen(&ctr, &sock, b"masqueraded?");
    assert_eq!(
        seen.to_string(),
        Outside::HOST_ADDR,
        "source must be masqueraded"
    );

    b.del(&ctr);
    assert!(nat_rules(world.host(), false).is_empty());
    assert_same!(baseline, b.snapshot(), "after DEL");
}

#[test]
fn outside_world_sees_the_container_address_without_ipmasq() {
    let world = World::new();
    let b = BridgeBench::new(&world, "plainout");
    b.write(
        "1.0.0",
        json!({"isGateway": true, "ipam": routed_ipam(&b, "10.74.0.0/24")}),
    );
    let outside = Outside::connect(&world, &["10.74.0.0/24"]);
    let ctr = world.container();
    let baseline = b.snapshot();

    b.add(&ctr);
    assert!(
        nat_rules(world.host(), false).is_empty(),
        "no masquerading asked for"
    );
    assert_reachable(&ctr, Outside::ADDR);
    let sock = udp_bind(&outside.ns, format!("{}:0", Outside::ADDR).parse().unwrap());
    let seen = udp_source_seen(&ctr, &sock, b"original source?");
    assert_eq!(
        seen.to_string(),
        "10.74.0.2",
        "source must be the container's own"
    );

    b.del(&ctr);
    assert_same!(baseline, b.snapshot(), "after DEL");
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

//! bridge: per-port and per-bridge link settings — hairpinMode, mtu, promiscMode,
//! portIsolation — and the container MAC precedence CNI_ARGS < args.cni < runtimeConfig.

use integration_tests::bridge::iface_name;
use integration_tests::inspect::{has_flag, link, port};
use integration_tests::traffic::{assert_reachable, assert_unreachable};
use integration_tests::{BridgeBench, World, assert_same};
use serde_json::json;

#[test]
fn hairpin_mode_is_set_on_the_host_port_only_when_asked() {
    let world = World::new();
    let on = BridgeBench::new(&world, "hairon");
    let off = on.sibling("hairoff");
    on.write(
        "1.0.0",
        json!({"hairpinMode": true, "ipam": on.ipam(&["10.81.0.0/24"])}),
    );
    off.write("1.0.0", json!({"ipam": off.ipam(&["10.82.0.0/24"])}));
    let (c1, c2) = (world.container(), world.container());
    let baseline = on.snapshot();

    let r1 = on.add(&c1);
    let r2 = off.add(&c2);
    let host = world.host();
    let p1 = port(host, &iface_name(&r1, 1));
    let p2 = port(host, &iface_name(&r2, 1));
    assert_eq!(p1["hairpin"], true, "{p1}");
    assert_eq!(p2["hairpin"], false, "{p2}");
    assert_eq!(p1["master"], json!(on.bridge));
    assert_eq!(p1["state"], "forwarding");

    on.del(&c1);
    off.del(&c2);
    assert_same!(baseline, on.snapshot(), "after DEL");
}

#[test]
fn mtu_applies_to_both_veth_ends_and_to_a_bridge_the_plugin_creates() {
    let world = World::new();
    let b = BridgeBench::new(&world, "mtunet");
    b.write(
        "1.0.0",
        json!({"mtu": 1400, "isGateway": true, "ipam": b.ipam(&["10.83.0.0/24"])}),
    );
    let ctr = world.container();
    let baseline = b.snapshot();

    let result = b.add(&ctr);
    let host = world.host();
    assert_eq!(
        link(host, &b.bridge)["mtu"],
        1400,
        "new bridge gets the MTU"
    );
    assert_eq!(
        link(host, &iface_name(&result, 1))["mtu"],
        1400,
        "host veth"
    );
    assert_eq!(link(&ctr, "eth0")["mtu"], 1400, "container veth");
    // A 1372-byte ICMP payload fills exactly 1400 bytes; with DF set it must pass.
    let out = ctr.run(&[
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "-M",
        "do",
        "-s",
        "1372",
        "10.83.0.1",
    ]);
    assert!(out.success(), "full-MTU ping failed\n{}", out.describe());
    let out = ctr.run(&[
        "ping",
        "-c",
        "1",
        "-W",
        "1",
        "-M",
        "do",
        "-s",
        "1373",
        "10.83.0.1",
    ]);
    assert!(
        !out.success(),
        "ping above the MTU must not pass with DF\n{}",
        out.describe()
    );

    b.del(&ctr);
    assert_same!(baseline, b.snapshot(), "after DEL");
}

#[test]
fn mtu_does_not_change_an_existing_bridge() {
    let world = World::new();
    let b = BridgeBench::new(&world, "mtuold");
    let host = world.host();
    host.run_ok(&["ip", "link", "add", &b.bridge, "type", "bridge"]);
    host.run_ok(&["ip", "link", "set", &b.bridge, "mtu", "9000"]);
    b.write(
        "1.0.0",
        json!({"mtu": 1400, "ipam": b.ipam(&["10.84.0.0/24"])}),
    );
    let ctr = world.container();
    let baseline = b.snapshot();

    let result = b.add(&ctr);
    assert_eq!(
        link(host, &b.bridge)["mtu"],
        9000,
        "existing bridge keeps its MTU"
    );
    assert_eq!(link(host, &iface_name(&result, 1))["mtu"], 1400);
    assert_eq!(link(&ctr, "eth0")["mtu"], 1400);

    b.del(&ctr);
    assert_same!(baseline, b.snapshot(), "after DEL");
    assert_eq!(link(host, &b.bridge)["mtu"], 9000);
}

#[test]
fn promisc_mode_sets_the_bridge_promiscuous() {
    let world = World::new();
    let b = BridgeBench::new(&world, "promnet");
    b.write(
        "1.0.0",
        json!({"promiscMode": true, "ipam": b.ipam(&["10.85.0.0/24"])}),
    );
    let ctr = world.container();
    let baseline = b.snapshot();

    let result = b.add(&ctr);
    let br = link(world.host(), &b.bridge);
    assert!(has_flag(&br, "PROMISC"), "bridge must be PROMISC: {br}");
    let veth = port(world.host(), &iface_name(&result, 1));
    assert_eq!(veth["hairpin"], false);
    b.check(&ctr).expect_silent_success();

    b.del(&ctr);
    assert_same!(baseline, b.snapshot(), "after DEL");
    assert!(
        has_flag(&link(world.host(), &b.bridge), "PROMISC"),
        "bridge is kept as is"
    );
}

#[test]
fn port_isolation_blocks_isolated_ports_from_each_other_only() {
    let world = World::new();
    // Two networks on one bridge and one subnet, with disjoint ranges.
    let iso = BridgeBench::new(&world, "isonet");
    let open = iso.sibling("opennet");
    let ipam = |b: &BridgeBench<'_>, start: &str, end: &str| {
        json!({"type": "host-local", "dataDir": b.world.data_dir(),
               "ranges": [[{"subnet": "10.86.0.0/24", "rangeStart": start, "rangeEnd": end}]]})
    };
    iso.write(
        "1.0.0",
        json!({"portIsolation": true, "ipam": ipam(&iso, "10.86.0.10", "10.86.0.19")}),
    );
    open.write(
        "1.0.0",
        json!({"ipam": ipam(&open, "10.86.0.20", "10.86.0.29")}),
    );
    let (a, b, c) = (world.container(), world.container(), world.container());
    let baseline = iso.snapshot();

    let ra = iso.add(&a);
    let rb = iso.add(&b);
    let rc = open.add(&c);
    let host = world.host();
    assert_eq!(port(host, &iface_name(&ra, 1))["isolated"], true);
    assert_eq!(port(host, &iface_name(&rb, 1))["isolated"], true);
    assert_eq!(port(host, &iface_name(&rc, 1))["isolated"], false);

    assert_reachable(&a, "10.86.0.20");
    assert_reachable(&b, "10.86.0.20");
    assert_reachable(&c, "10.86.0.10");
    assert_unreachable(&a, "10.86.0.11");
    assert_unreachable(&b, "10.86.0.10");

    iso.del(&a);
    iso.del(&b);
    open.del(&c);
    assert_same!(baseline, iso.snapshot(), "after DEL");
}

#[test]
fn container_mac_precedence_cni_args_then_args_cni_then_runtime_config() {
    let world = World::new();
    let b = BridgeBench::new(&world, "macnet");
    let ipam = b.ipam(&["10.87.0.0/24"]);
    let (mac_env, mac_args, mac_rt) = (
        "0a:58:0a:57:00:01",
        "0a:58:0a:57:00:02",
        "0a:58:0a:57:00:03",
    );
    let env = format!("IgnoreUnknown=1;MAC={mac_env}");

    // Only CNI_ARGS.
    let only_env = b.sibling("macenv");
    only_env.write("1.0.0", json!({"ipam": ipam}));
    // args.cni.mac beats CNI_ARGS.
    let with_args = b.sibling("macargs");
    with_args.write(
        "1.0.0",
        json!({"ipam": ipam, "args": {"cni": {"mac": mac_args}}}),
    );
    // runtimeConfig.mac (capability "mac") beats both.
    let with_rt = b.sibling("macrt");
    with_rt.write(
        "1.0.0",
        json!({"ipam": ipam, "args": {"cni": {"mac": mac_args}}, "capabilities": {"mac": true}}),
    );
    let ctrs = [world.container(), world.container(), world.container()];
    let baseline = b.snapshot();

    let cases = [
        (&only_env, None, mac_env),
        (&with_args, None, mac_args),
        (&with_rt, Some(json!({"mac": mac_rt})), mac_rt),
    ];
    for ((bench, caps, want), ctr) in cases.iter().zip(&ctrs) {
        let mut tool = bench.tool().args(&env);
        if let Some(caps) = caps {
            tool = tool.cap_args(caps);
        }
        let result = tool.add(&bench.net, ctr).result();
        assert_eq!(
            result["interfaces"][2]["mac"],
            json!(want),
            "{}: result",
            bench.net
        );
        assert_eq!(
            link(ctr, "eth0")["address"],
            json!(want),
            "{}: kernel",
            bench.net
        );
        let mut check = bench.tool().args(&env);
        if let Some(caps) = caps {
            check = check.cap_args(caps);
        }
        check.check(&bench.net, ctr).expect_silent_success();
        let mut del = bench.tool().args(&env);
        if let Some(caps) = caps {
            del = del.cap_args(caps);
        }
        del.del(&bench.net, ctr).expect_silent_success();
    }
    assert_same!(baseline, b.snapshot(), "after DEL");
}

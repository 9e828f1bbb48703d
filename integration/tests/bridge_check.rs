//! bridge CHECK: passes right after ADD (also with gateway-less routes and on L2 bridges whose
//! ports come and go) and fails with code 123 and a message naming the drifted thing after
//! each kind of drift (one fresh container per case). DEL afterwards still returns the world to
//! its baseline.

use integration_tests::bridge::{iface_name, masq_chain};
use integration_tests::{BridgeBench, Netns, PluginCall, World, assert_same, config};
use serde_json::{Value, json};

const NET: &str = "drift";
const SUBNET: &str = "10.95.0.0/24";

/// What a drift case gets to work with.
struct Attached<'a> {
    bench: &'a BridgeBench<'a>,
    ctr: &'a Netns,
    id: String,
    result: Value,
}

impl Attached<'_> {
    fn addr(&self) -> String {
        self.result["ips"][0]["address"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn ip(&self) -> String {
        self.addr().split('/').next().unwrap_or_default().to_owned()
    }
}

/// ADD (cnitool), CHECK ok, `drift`, CHECK must fail with 123 and a message containing one of
/// `tokens(attachment)`, then DEL back to the baseline.
fn drift_case(drift: impl Fn(&Attached<'_>), tokens: impl Fn(&Attached<'_>) -> Vec<String>) {
    let world = World::new();
    let b = BridgeBench::new(&world, NET);
    let extra = json!({
        "isGateway": true,
        "ipMasq": true,
        "ipam": config::merge(b.ipam(&[SUBNET]), json!({"routes": [{"dst": "10.200.0.0/16", "gw": "10.95.0.1"}]})),
    });
    b.write("1.0.0", extra.clone());
    let ctr = world.container();
    let baseline = b.snapshot();

    let id = b.tool().effective_container_id(&ctr);
    let result = b.add(&ctr);
    let att = Attached {
        bench: &b,
        ctr: &ctr,
        id: id.clone(),
        result,
    };
    b.check(&ctr).expect_silent_success();
    let mut conf = b.conf("1.0.0", extra);
    let cache = world.read_cache(NET, &id, "eth0");
    assert!(cache.is_some(), "libcni cached the ADD result");
    conf["prevResult"] = cache.map(|c| c["result"].clone()).unwrap_or_default();
    let check = PluginCall::check(&conf).id(&id).ifname("eth0").netns(&ctr);
    b.exec(&check).expect_silent_success();

    drift(&att);
    let out = b.exec(&check);
    let err = out.cni_error();
    assert_eq!(err.code, 123, "CHECK drift code\n{}", out.describe());
    let text = err.text();
    eprintln!("CHECK after drift: code {} {text}", err.code);
    let wanted = tokens(&att);
    assert!(
        wanted.iter().any(|t| text.contains(t.as_str())),
        "CHECK message must name one of {wanted:?}\n{}",
        out.describe()
    );
    let via_tool = b.check(&ctr);
    assert_eq!(via_tool.status, Some(1), "{}", via_tool.describe());

    b.del(&ctr);
    assert_same!(
        baseline,
        b.snapshot(),
        "after DEL of the drifted attachment"
    );
}

#[test]
fn check_fails_when_the_container_address_is_removed() {
    drift_case(
        |a| {
            a.ctr
                .run_ok(&["ip", "addr", "del", &a.addr(), "dev", "eth0"]);
        },
        |a| vec![a.ip()],
    );
}

#[test]
fn check_fails_when_a_route_is_removed() {
    drift_case(
        |a| {
            a.ctr.run_ok(&["ip", "route", "del", "10.200.0.0/16"]);
        },
        |_| vec!["10.200.0.0/16".to_owned()],
    );
}

#[test]
fn check_fails_when_the_container_mac_changes() {
    drift_case(
        |a| {
            a.ctr
                .run_ok(&["ip", "link", "set", "eth0", "address", "0a:58:0a:5f:00:99"]);
        },
        |a| {
            vec![
                "0a:58:0a:5f:00:99".to_owned(),
                a.result["interfaces"][2]["mac"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ]
        },
    );
}

#[test]
fn check_fails_when_the_host_veth_leaves_the_bridge() {
    drift_case(
        |a| {
            let veth = iface_name(&a.result, 1);
            a.bench
                .world
                .host()
                .run_ok(&["ip", "link", "set", &veth, "nomaster"]);
        },
        |a| vec![iface_name(&a.result, 1), a.bench.bridge.clone()],
    );
}

#[test]
fn check_fails_when_the_masquerade_rule_is_deleted() {
    drift_case(
        |a| {
            let comment = format!("name: \"{NET}\" id: \"{}\"", a.id);
            let source = format!("{}/32", a.ip());
            let chain = masq_chain(NET, &a.id);
            a.bench.world.host().run_ok(&[
                "iptables",
                "-t",
                "nat",
                "-D",
                "POSTROUTING",
                "-s",
                &source,
                "-m",
                "comment",
                "--comment",
                &comment,
                "-j",
                &chain,
            ]);
        },
        |a| vec![masq_chain(NET, &a.id), a.ip()],
    );
}

#[test]
fn check_passes_after_add_with_routes_that_name_no_gateway() {
    // A route without `gw` is installed via the family's gateway; CHECK must accept that
    // (Go v1.1.1 compares the route with a nil gateway and fails right after ADD).
    let world = World::new();
    let b = BridgeBench::new(&world, "gwless");
    let routes = json!({"routes": [{"dst": "10.200.0.0/16"}, {"dst": "0.0.0.0/0"}]});
    b.write(
        "1.0.0",
        json!({"isGateway": true, "ipam": config::merge(b.ipam(&["10.96.0.0/24"]), routes)}),
    );
    let ctr = world.container();
    let baseline = b.snapshot();

    let result = b.add(&ctr);
    assert_eq!(
        result["routes"],
        json!([{"dst": "10.200.0.0/16"}, {"dst": "0.0.0.0/0"}])
    );
    let route: Value = serde_json::from_str(&ctr.run_ok(&[
        "ip",
        "-d",
        "-j",
        "-4",
        "route",
        "show",
        "10.200.0.0/16",
    ]))
    .unwrap();
    assert_eq!(route[0]["gateway"], "10.96.0.1", "{route}");
    assert_eq!(route[0]["dev"], "eth0", "{route}");
    // Like the reference (vishvananda/netlink's default RTPROT_BOOT, printed as nothing by a
    // plain `ip route`), not `proto unspec`.
    assert_eq!(route[0]["protocol"], "boot", "{route}");
    b.check(&ctr).expect_silent_success();

    b.del(&ctr);
    assert_same!(baseline, b.snapshot(), "after DEL");
}

#[test]
fn check_fails_when_the_bridge_promisc_mode_drifts() {
    drift_case(
        |a| {
            let host = a.bench.world.host();
            host.run_ok(&["ip", "link", "set", &a.bench.bridge, "promisc", "on"]);
        },
        |a| vec![a.bench.bridge.clone()],
    );
}

#[test]
fn check_fails_when_the_bridge_mac_changes() {
    drift_case(
        |a| {
            let host = a.bench.world.host();
            host.run_ok(&[
                "ip",
                "link",
                "set",
                &a.bench.bridge,
                "address",
                "0a:58:0a:5f:00:01",
            ]);
        },
        |a| vec![a.bench.bridge.clone()],
    );
}

#[test]
fn check_fails_when_the_container_interface_is_gone() {
    drift_case(
        |a| {
            a.ctr.run_ok(&["ip", "link", "del", "eth0"]);
        },
        |_| vec!["eth0".to_owned()],
    );
}

#[test]
fn l2_check_keeps_passing_while_other_containers_come_and_go() {
    // Without a gateway address nobody pins the bridge MAC and the kernel makes it follow the
    // lowest port MAC. Removing the container whose host veth has that MAC must not make the
    // other attachments' CHECK fail.
    let world = World::new();
    let b = BridgeBench::new(&world, "l2churn");
    b.write("1.0.0", json!({}));
    let ctrs: Vec<Netns> = (0..3).map(|_| world.container()).collect();
    let baseline = b.snapshot();

    let results: Vec<Value> = ctrs.iter().map(|c| b.add(c)).collect();
    for c in &ctrs {
        b.check(c).expect_silent_success();
    }
    let bridge_mac = integration_tests::inspect::link(world.host(), &b.bridge)["address"].clone();
    let lowest = results
        .iter()
        .position(|r| r["interfaces"][1]["mac"] == bridge_mac)
        .unwrap_or(0);
    b.del(&ctrs[lowest]);
    for (i, c) in ctrs.iter().enumerate().filter(|(i, _)| *i != lowest) {
        let out = b.check(c);
        assert!(
            out.success(),
            "CHECK of container {i} after DEL of container {lowest} (whose veth MAC the \
             bridge had)\n{}",
            out.describe()
        );
    }
    for (_, c) in ctrs.iter().enumerate().filter(|(i, _)| *i != lowest) {
        b.del(c);
    }
    assert_same!(baseline, b.snapshot(), "after DEL");
}

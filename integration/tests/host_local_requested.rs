//! host-local requested addresses (CNI_ARGS `IP`, `args.cni.ips`, `runtimeConfig.ips`) and
//! runtime ranges (`runtimeConfig.ipRanges`), directly and through cnitool capabilities.

use integration_tests::hostlocal::addresses;
use integration_tests::{HostLocal, PluginCall, World, assert_same, config, strip_empty};
use serde_json::{Value, json};

const V: &str = "1.1.0";

fn bench<'w>(world: &'w World, name: &str, ipam: Value) -> HostLocal<'w> {
    HostLocal::ours(world, config::host_local(V, name, &world.data_dir(), ipam))
}

fn v4(world: &World) -> HostLocal<'_> {
    bench(world, "req", config::ranges(&["10.77.0.0/24"]))
}

#[test]
fn cni_args_ip_requests_an_address_and_round_robin_follows_it() {
    let world = World::new();
    let hl = v4(&world);
    let baseline = hl.snapshot();
    let out = hl.exec(&hl.call("ADD", "c1", "eth0").args("IP=10.77.0.50"));
    assert_eq!(
        strip_empty(out.result())["ips"],
        json!([{"address": "10.77.0.50/24", "gateway": "10.77.0.1"}])
    );
    assert_eq!(hl.reservations()["10.77.0.50"], b"c1\r\neth0");
    assert_eq!(
        hl.add_ok("c2", "eth0"),
        ["10.77.0.51/24"],
        "next dynamic follows the request"
    );
    hl.del("c1", "eth0").expect_silent_success();
    hl.del("c2", "eth0").expect_silent_success();
    hl.assert_at_baseline(&baseline);
}

#[test]
fn cni_args_ignore_unknown_lets_other_keys_through() {
    let world = World::new();
    let hl = v4(&world);
    let baseline = hl.snapshot();
    let call = hl
        .call("ADD", "c1", "eth0")
        .args("IgnoreUnknown=1;K8S_POD_NAME=web;FOO=bar;IP=10.77.0.51");
    assert_eq!(addresses(&hl.exec(&call).result()), ["10.77.0.51/24"]);
    hl.del_all(&[("c1", "eth0")]);
    hl.assert_at_baseline(&baseline);
}

#[test]
fn args_cni_ips_request_an_address() {
    let world = World::new();
    let mut hl = v4(&world);
    hl.conf["args"] = json!({"cni": {"ips": ["10.77.0.52"]}});
    let baseline = hl.snapshot();
    assert_eq!(hl.add_ok("c1", "eth0"), ["10.77.0.52/24"]);
    hl.del_all(&[("c1", "eth0")]);
    hl.assert_at_baseline(&baseline);
}

#[test]
fn runtime_config_ips_request_one_address_per_family() {
    let world = World::new();
    let mut hl = bench(
        &world,
        "req6",
        config::ranges(&["10.79.0.0/24", "fd00:79::/64"]),
    );
    hl.conf["capabilities"] = json!({"ips": true});
    hl.conf["runtimeConfig"] = json!({"ips": ["fd00:79::53/64", "10.79.0.53/24"]});
    let baseline = hl.snapshot();
    assert_eq!(hl.add_ok("c1", "eth0"), ["10.79.0.53/24", "fd00:79::53/64"]);
    let files: Vec<String> = hl.reservations().into_keys().collect();
    assert_eq!(files, ["10.79.0.53", "fd00:79::53"]);
    hl.del_all(&[("c1", "eth0")]);
    hl.assert_at_baseline(&baseline);
}

#[test]
fn a_taken_requested_address_is_refused() {
    let world = World::new();
    let hl = v4(&world);
    let baseline = hl.snapshot();
    hl.exec(&hl.call("ADD", "c1", "eth0").args("IP=10.77.0.50"))
        .expect_success();
    let before = world.snapshot();
    let err = hl
        .exec(&hl.call("ADD", "c2", "eth0").args("IP=10.77.0.50"))
        .expect_error(
            110,
            "requested IP address 10.77.0.50 is not available in range set 10.77.0.1-10.77.0.254",
        );
    assert_eq!(err.cni_version.as_deref(), Some(V));
    assert_same!(before, world.snapshot(), "refused request writes nothing");
    hl.del_all(&[("c1", "eth0"), ("c2", "eth0")]);
    hl.assert_at_baseline(&baseline);
}

#[test]
fn the_gateway_cannot_be_requested() {
    let world = World::new();
    let hl = v4(&world);
    // Opening the store (directory, lock) is not a reservation.
    let before = hl.snapshot();
    hl.exec(&hl.call("ADD", "c1", "eth0").args("IP=10.77.0.1"))
        .expect_error(110, "requested ip 10.77.0.1 is subnet's gateway");
    assert_same!(before, hl.snapshot(), "refused request reserves nothing");
    assert!(hl.reservations().is_empty());
}

#[test]
fn a_requested_address_outside_every_range_is_refused() {
    let world = World::new();
    let hl = v4(&world);
    // Opening the store (directory, lock) is not a reservation.
    let before = hl.snapshot();
    hl.exec(&hl.call("ADD", "c1", "eth0").args("IP=10.200.0.5"))
        .expect_error(110, "failed to allocate all requested IPs: 10.200.0.5");
    assert_same!(before, hl.snapshot(), "refused request reserves nothing");
    assert!(hl.reservations().is_empty());
}

#[test]
fn a_failed_request_releases_what_was_already_reserved() {
    let world = World::new();
    let mut hl = bench(
        &world,
        "rollback",
        config::ranges(&["10.79.0.0/24", "fd00:79::/64"]),
    );
    hl.conf["runtimeConfig"] = json!({"ips": ["fd00:79::50/64"]});
    let baseline = hl.snapshot();
    assert_eq!(hl.add_ok("c1", "eth0"), ["10.79.0.2/24", "fd00:79::50/64"]);
    let before = hl.reservations();
    // c2 gets an IPv4 address first, then fails on the taken IPv6 request.
    hl.add("c2", "eth0").expect_error(110, "fd00:79::50");
    assert_eq!(
        hl.reservations(),
        before,
        "the IPv4 reservation of the failed ADD is released"
    );
    hl.del_all(&[("c1", "eth0"), ("c2", "eth0")]);
    hl.assert_at_baseline(&baseline);
}

#[test]
fn runtime_config_ip_ranges_are_prepended_to_the_configured_ranges() {
    let world = World::new();
    let mut hl = v4(&world);
    hl.conf["capabilities"] = json!({"ipRanges": true});
    hl.conf["runtimeConfig"] = json!({"ipRanges": [[{"subnet": "10.81.0.0/24",
                                                     "rangeStart": "10.81.0.100"}]]});
    let baseline = hl.snapshot();
    let result = strip_empty(hl.add("c1", "eth0").result());
    assert_eq!(
        result["ips"],
        json!([
            {"address": "10.81.0.100/24", "gateway": "10.81.0.1"},
            {"address": "10.77.0.2/24", "gateway": "10.77.0.1"},
        ])
    );
    let store = hl.store();
    assert_eq!(store["last_reserved_ip.0"].content(), b"10.81.0.100");
    assert_eq!(store["last_reserved_ip.1"].content(), b"10.77.0.2");
    hl.del_all(&[("c1", "eth0")]);
    hl.assert_at_baseline(&baseline);
}

#[test]
fn cnitool_passes_ip_ranges_ips_and_cni_args() {
    let world = World::new();
    let ctr = world.container();
    // host-local as the list's only plugin still reads its settings from `ipam`.
    let plugin = json!({
        "type": "host-local",
        "capabilities": {"ipRanges": true, "ips": true},
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": "10.77.0.0/24"}]],
            "dataDir": world.data_dir().to_string_lossy(),
        },
    });
    world.write_conflist(
        "20-capnet",
        &config::conflist("1.0.0", "capnet", vec![plugin]),
    );
    let store = world.data_dir().join("capnet");
    let baseline = world.snapshot();
    let tool = world
        .cnitool()
        .cap_args(&json!({"ipRanges": [[{"subnet": "10.81.0.0/24"}]], "ips": ["10.81.0.7/24"]}))
        .args("IgnoreUnknown=1;K8S_POD_NAME=web");
    let id = tool.effective_container_id(&ctr);

    let result = strip_empty(tool.add("capnet", &ctr).result());
    assert_eq!(
        result,
        json!({"cniVersion": "1.0.0", "ips": [
            {"address": "10.81.0.7/24", "gateway": "10.81.0.1"},
            {"address": "10.77.0.2/24", "gateway": "10.77.0.1"},
        ]})
    );
    let files = integration_tests::read_tree(&store);
    assert_eq!(
        files["10.81.0.7"].content(),
        format!("{id}\r\neth0").as_bytes()
    );
    let cache = world
        .read_cache("capnet", &id, "eth0")
        .expect("cache written");
    assert_eq!(
        cache["cniArgs"],
        json!([["IgnoreUnknown", "1"], ["K8S_POD_NAME", "web"]])
    );

    tool.check("capnet", &ctr).expect_silent_success();
    tool.del("capnet", &ctr).expect_silent_success();
    tool.del("capnet", &ctr).expect_silent_success();
    let after = world.snapshot().without_lines(|l| {
        l.starts_with("ipam/capnet dir ")
            || l.starts_with("ipam/capnet/lock ")
            || l.starts_with("ipam/capnet/last_reserved_ip.")
    });
    assert_same!(baseline, after, "after cnitool del");
}

#[test]
fn del_of_a_requested_address_needs_no_args() {
    let world = World::new();
    let hl = v4(&world);
    let baseline = hl.snapshot();
    hl.exec(&hl.call("ADD", "c1", "eth0").args("IP=10.77.0.50"))
        .expect_success();
    hl.exec(&PluginCall::del(&hl.conf).id("c1").ifname("eth0"))
        .expect_silent_success();
    hl.assert_at_baseline(&baseline);
}

#[test]
fn requested_ipv6_is_stored_under_its_canonical_name() {
    let world = World::new();
    let mut hl = bench(&world, "canon", config::ranges(&["fd00:79::/64"]));
    hl.conf["runtimeConfig"] = json!({"ips": ["FD00:0079:0000:0000::0053/64"]});
    let baseline = hl.snapshot();
    assert_eq!(hl.add_ok("c1", "eth0"), ["fd00:79::53/64"]);
    let files: Vec<String> = hl.reservations().into_keys().collect();
    assert_eq!(files, ["fd00:79::53"]);
    assert_eq!(hl.store()["last_reserved_ip.0"].content(), b"fd00:79::53");
    hl.del_all(&[("c1", "eth0")]);
    hl.assert_at_baseline(&baseline);
}

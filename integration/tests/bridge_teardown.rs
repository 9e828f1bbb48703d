//! bridge DEL and failed ADDs: DEL is idempotent, works after the netns is gone (and still
//! removes the masquerade rules), works when the IPAM reservation is already gone; a failed ADD
//! rolls back everything it created (veths, addresses, rules, the IPAM reservation).

use std::thread;
use std::time::{Duration, Instant};

use integration_tests::bridge::{iface_name, masq_rules};
use integration_tests::inspect::{global_addrs, has_link, nat_rules, ports_of};
use integration_tests::{BridgeBench, PluginCall, World, assert_same};
use serde_json::json;

#[test]
fn del_twice_succeeds_and_returns_to_the_baseline() {
    let world = World::new();
    let b = BridgeBench::new(&world, "deltwice");
    let extra = json!({"isGateway": true, "ipMasq": true, "ipam": b.ipam(&["10.60.0.0/24"])});
    b.write("1.0.0", extra.clone());
    let ctr = world.container();
    let baseline = b.snapshot();

    b.add(&ctr);
    b.del(&ctr);
    assert_same!(baseline, b.snapshot(), "after the first DEL");
    // The second cnitool DEL has no cached result; a direct DEL has no prevResult either.
    b.del(&ctr);
    let id = b.tool().effective_container_id(&ctr);
    let del = PluginCall::del(&b.conf("1.0.0", extra))
        .id(&id)
        .ifname("eth0")
        .netns(&ctr);
    b.exec(&del).expect_silent_success();
    assert_same!(baseline, b.snapshot(), "after repeated DELs");
}

#[test]
fn del_after_the_netns_is_gone_still_removes_the_masquerade_rules() {
    let world = World::new();
    let b = BridgeBench::new(&world, "delgone");
    b.write(
        "1.0.0",
        json!({"isGateway": true, "ipMasq": true, "ipam": b.ipam(&["10.61.0.0/24"])}),
    );
    let ctr = world.container();
    let id = b.tool().effective_container_id(&ctr);
    let baseline = b.host_snapshot();

    let result = b.add(&ctr);
    let veth = iface_name(&result, 1);
    let mut rules = nat_rules(world.host(), false);
    rules.sort();
    assert_eq!(
        rules,
        masq_rules("delgone", &id, "10.61.0.2", "10.61.0.0/24")
    );

    let path = ctr.path_str();
    world.delete_netns(&ctr);
    wait_for_link_gone(&b, &veth);
    b.tool().del_path("delgone", &path).expect_silent_success();
    assert_eq!(
        nat_rules(world.host(), false),
        Vec::<String>::new(),
        "masquerade leaked"
    );
    assert!(b.reservations().is_empty(), "{:?}", b.reservations());
    assert_same!(baseline, b.host_snapshot(), "after DEL without the netns");
    // And once more, as runtimes retry.
    b.tool().del_path("delgone", &path).expect_silent_success();
}

/// The kernel destroys a deleted namespace's veth asynchronously; wait for the host end.
fn wait_for_link_gone(b: &BridgeBench<'_>, name: &str) {
    let start = Instant::now();
    while has_link(b.world.host(), name) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{name} outlived its peer's namespace"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn del_succeeds_when_the_ipam_reservation_is_already_gone() {
    let world = World::new();
    let b = BridgeBench::new(&world, "delnoipam");
    b.write(
        "1.0.0",
        json!({"isGateway": true, "ipMasq": true, "ipam": b.ipam(&["10.62.0.0/24"])}),
    );
    let ctr = world.container();
    let baseline = b.snapshot();

    b.add(&ctr);
    let reservation = b.store_dir().join("10.62.0.2");
    assert!(reservation.is_file(), "host-local reserved 10.62.0.2");
    std::fs::remove_file(&reservation).expect("remove the reservation");
    b.del(&ctr);
    assert_same!(baseline, b.snapshot(), "after DEL");
}

#[test]
fn failed_add_with_an_exhausted_range_leaves_nothing_behind() {
    let world = World::new();
    let b = BridgeBench::new(&world, "exhaust");
    // A /30 with the default gateway has exactly one usable address.
    let extra = json!({"isGateway": true, "ipMasq": true, "ipam": b.ipam(&["10.63.0.0/30"])});
    b.write("1.0.0", extra.clone());
    let (c1, c2) = (world.container(), world.container());
    let empty = b.snapshot();

    b.add(&c1);
    let baseline = b.snapshot();
    let ports = ports_of(world.host(), &b.bridge);

    let out = b.tool().add("exhaust", &c2);
    assert_eq!(out.status, Some(1), "{}", out.describe());
    assert!(
        out.stderr_str().contains("no IP addresses available"),
        "{}",
        out.describe()
    );
    assert_same!(baseline, b.snapshot(), "after the failed ADD (cnitool)");

    let add = PluginCall::add(&b.conf("1.0.0", extra))
        .id("second")
        .ifname("eth0")
        .netns(&c2);
    b.exec(&add).expect_error(
        111,
        "no IP addresses available in range set: 10.63.0.1-10.63.0.2",
    );
    assert_same!(baseline, b.snapshot(), "after the failed ADD (direct)");
    assert_eq!(
        ports_of(world.host(), &b.bridge),
        ports,
        "no new bridge port"
    );
    assert!(!has_link(&c2, "eth0"));

    // The runtime still runs DEL for the failed attachment; it must not disturb c1.
    b.del(&c2);
    assert_same!(baseline, b.snapshot(), "after DEL of the failed attachment");
    b.del(&c1);
    assert_same!(empty, b.snapshot(), "after DEL of the first container");
}

#[test]
fn failed_add_on_a_gateway_conflict_leaves_nothing_behind() {
    let world = World::new();
    let b = BridgeBench::new(&world, "gwclash");
    let host = world.host();
    host.run_ok(&["ip", "link", "add", &b.bridge, "type", "bridge"]);
    host.run_ok(&["ip", "addr", "add", "10.64.9.1/24", "dev", &b.bridge]);
    host.run_ok(&["ip", "link", "set", &b.bridge, "up"]);
    let extra = json!({"isGateway": true, "ipMasq": true, "ipam": b.ipam(&["10.64.0.0/24"])});
    b.write("1.0.0", extra.clone());
    let ctr = world.container();
    let baseline = b.snapshot();
    let message = format!(
        "failed to set bridge addr: \"{}\" already has an IP address different from 10.64.0.1/24",
        b.bridge
    );

    let out = b.tool().add("gwclash", &ctr);
    assert_eq!(out.status, Some(1), "{}", out.describe());
    assert!(out.stderr_str().contains(&message), "{}", out.describe());
    assert_same!(baseline, b.snapshot(), "after the failed ADD (cnitool)");
    assert!(b.reservations().is_empty(), "{:?}", b.reservations());
    assert_eq!(
        global_addrs(host, &b.bridge),
        ["10.64.9.1/24"],
        "bridge untouched"
    );

    let add = PluginCall::add(&b.conf("1.0.0", extra))
        .id("direct")
        .ifname("eth0")
        .netns(&ctr);
    b.exec(&add).expect_error(120, &message);
    assert_same!(baseline, b.snapshot(), "after the failed ADD (direct)");
    assert!(
        ports_of(host, &b.bridge).is_empty(),
        "no port left on the bridge"
    );

    b.del(&ctr);
    assert_same!(baseline, b.snapshot(), "after DEL of the failed attachment");
}

#[test]
fn a_second_add_of_a_live_attachment_fails_and_leaves_the_first_intact() {
    let world = World::new();
    let b = BridgeBench::new(&world, "addtwice");
    let extra = json!({"isGateway": true, "ipMasq": true, "ipam": b.ipam(&["10.65.0.0/24"])});
    b.write("1.0.0", extra.clone());
    let ctr = world.container();
    let empty = b.snapshot();

    b.add_id(&ctr, "first");
    let attached = b.snapshot();
    let reservations = b.reservations();
    // The same attachment again, and another container ID with the same ifname in the same
    // netns: both must fail without undoing anything of the live attachment.
    for id in ["first", "other"] {
        let add = PluginCall::add(&b.conf("1.0.0", extra.clone()))
            .id(id)
            .ifname("eth0")
            .netns(&ctr);
        b.exec(&add).expect_error(122, "eth0");
        assert_same!(attached, b.snapshot(), "after the second ADD as {id}");
        assert_eq!(b.reservations(), reservations);
    }
    b.tool()
        .container_id("first")
        .del("addtwice", &ctr)
        .expect_silent_success();
    assert_same!(empty, b.snapshot(), "after DEL");
}

#[test]
fn del_succeeds_after_the_bridge_was_deleted_by_hand() {
    let world = World::new();
    let b = BridgeBench::new(&world, "nobridge");
    b.write(
        "1.0.0",
        json!({"isGateway": true, "ipMasq": true, "ipam": b.ipam(&["10.66.0.0/24"])}),
    );
    let ctr = world.container();
    let baseline = b.snapshot();

    b.add(&ctr);
    world.host().run_ok(&["ip", "link", "del", &b.bridge]);
    b.del(&ctr);
    assert!(!has_link(&ctr, "eth0"));
    assert!(nat_rules(world.host(), false).is_empty());
    assert!(b.reservations().is_empty());
    assert_same!(baseline, b.snapshot(), "after DEL");
}

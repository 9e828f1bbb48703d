//! macvlan's master and DEL robustness: the master found through the host's default route (and
//! the error without one), `linkInContainer` with the master inside the container netns, and
//! DEL when the master, the link or the netns is gone, or run twice — always releasing the IPAM
//! reservation and leaving the world at its baseline.

use std::thread;
use std::time::{Duration, Instant};

use integration_tests::inspect::{has_link, link};
use integration_tests::macvlan::{ip_of, without_ipam_bookkeeping};
use integration_tests::traffic::assert_reachable;
use integration_tests::{MacvlanBench, PluginCall, Snapshot, World, assert_same};
use serde_json::json;

/// A dummy link with an address and a non-default route, so "the first link" or "the first
/// route" is never the right answer by accident.
fn add_decoy(world: &World) {
    let host = world.host();
    host.run_ok(&[
        "ip", "link", "add", "decoy0", "type", "veth", "peer", "name", "decoy1",
    ]);
    for dev in ["decoy0", "decoy1"] {
        host.run_ok(&[
            "sysctl",
            "-q",
            "-w",
            &format!("net.ipv6.conf.{dev}.accept_dad=0"),
        ]);
        host.run_ok(&["ip", "link", "set", dev, "up"]);
    }
    host.run_ok(&["ip", "addr", "add", "10.179.0.1/24", "dev", "decoy0"]);
    host.run_ok(&["ip", "route", "add", "10.180.0.0/16", "via", "10.179.0.2"]);
}

/// Waits until `current()` equals `baseline` (the kernel tears a deleted namespace down
/// asynchronously); panics with the diff after ten seconds.
fn eventually_same(baseline: &Snapshot, current: impl Fn() -> Snapshot, context: &str) {
    let start = Instant::now();
    loop {
        let now = current();
        if baseline.diff(&now).is_none() || start.elapsed() > Duration::from_secs(10) {
            assert_same!(baseline, now, "{context}");
            return;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn without_master_the_default_route_interface_is_used() {
    let world = World::new();
    let b = MacvlanBench::new(&world, "mvdefault", "10.81.0.0/24");
    add_decoy(&world);
    b.add_default_route();
    b.write("1.0.0", json!({"master": null, "ipam": b.ipam()}));
    let ctr = world.container();
    let baseline = b.snapshot();

    let result = b.add(&ctr);
    b.assert_result_matches_kernel(&result, &ctr, "eth0", "bridge");
    assert_eq!(ip_of(&result, 0), "10.81.0.2");
    assert_reachable(&ctr, &b.lan_addr());
    b.check(&ctr).expect_silent_success();

    b.del(&ctr);
    assert_same!(baseline, b.snapshot(), "after DEL");
}

#[test]
fn without_master_and_default_route_add_fails_and_changes_nothing() {
    let world = World::new();
    let b = MacvlanBench::new(&world, "mvnoroute", "10.82.0.0/24");
    add_decoy(&world);
    let conf = b.conf("1.0.0", json!({"master": null, "ipam": b.ipam()}));
    b.write("1.0.0", json!({"master": null, "ipam": b.ipam()}));
    let ctr = world.container();
    let baseline = b.snapshot();

    let out = b.exec(&PluginCall::add(&conf).id("c1").ifname("eth0").netns(&ctr));
    let err = out.cni_error();
    assert_eq!(
        err.msg,
        "no default route interface found",
        "{}",
        out.describe()
    );
    assert!(
        err.code >= 100,
        "a plugin failure, not a config error\n{}",
        out.describe()
    );
    let via_tool = b.tool().add(&b.net, &ctr);
    assert!(
        via_tool
            .stderr_str()
            .contains("no default route interface found"),
        "{}",
        via_tool.describe()
    );
    assert!(b.reservations().is_empty(), "{:?}", b.reservations());
    assert_same!(baseline, b.snapshot(), "after the failed ADDs");
}

#[test]
fn link_in_container_uses_a_master_inside_the_container_netns() {
    let world = World::new();
    let b = MacvlanBench::new(&world, "mvinctr", "10.83.0.0/24");
    let ctr = world.container();
    // The container's own "NIC", wired to the same LAN bridge.
    world.host().run_ok(&[
        "ip",
        "link",
        "add",
        "cmaster0",
        "netns",
        ctr.name(),
        "type",
        "veth",
        "peer",
        "name",
        "lan1",
        "netns",
        b.lan.name(),
    ]);
    b.lan.run_ok(&[
        "ip",
        "link",
        "set",
        "lan1",
        "master",
        MacvlanBench::LAN_BRIDGE,
    ]);
    b.lan.run_ok(&["ip", "link", "set", "lan1", "up"]);
    ctr.run_ok(&["sysctl", "-q", "-w", "net.ipv6.conf.cmaster0.accept_dad=0"]);
    ctr.run_ok(&["ip", "link", "set", "cmaster0", "up"]);
    b.write(
        "1.0.0",
        json!({"master": "cmaster0", "linkInContainer": true, "ipam": b.ipam()}),
    );
    assert!(!has_link(world.host(), "cmaster0"));
    let tool = b.tool().ifname("net1");
    let baseline = b.snapshot();

    let result = tool.add(&b.net, &ctr).result();
    assert_eq!(result["interfaces"][0]["name"], json!("net1"), "{result}");
    let l = link(&ctr, "net1");
    let parent = link(&ctr, "cmaster0");
    assert_eq!(l["linkinfo"]["info_kind"], json!("macvlan"), "{l}");
    assert_eq!(
        l["link"],
        json!("cmaster0"),
        "parent in the same netns: {l}"
    );
    assert!(parent["ifindex"].is_u64(), "{parent}");
    assert_eq!(l["address"], result["interfaces"][0]["mac"]);
    assert_reachable(&ctr, &b.lan_addr());
    tool.check(&b.net, &ctr).expect_silent_success();

    tool.del(&b.net, &ctr).expect_silent_success();
    assert!(has_link(&ctr, "cmaster0"), "DEL must not touch the master");
    assert_same!(baseline, b.snapshot(), "after DEL");
}

#[test]
fn del_succeeds_and_releases_the_address_after_the_master_was_deleted() {
    let world = World::new();
    let b = MacvlanBench::new(&world, "mvnomaster", "10.84.0.0/24");
    b.write("1.0.0", json!({"ipam": b.ipam()}));
    let ctr = world.container();
    let id = b.tool().effective_container_id(&ctr);
    let ctr_baseline = Snapshot::netns(&ctr).merge(Snapshot::dir("world", world.root()));
    let ctr_baseline = without_ipam_bookkeeping(&ctr_baseline);

    let result = b.add(&ctr);
    assert_eq!(
        b.reservations().keys().cloned().collect::<Vec<_>>(),
        vec![ip_of(&result, 0)]
    );
    world
        .host()
        .run_ok(&["ip", "link", "del", MacvlanBench::MASTER]);
    // The kernel removes macvlans together with their lower device.
    assert!(!has_link(&ctr, "eth0"));

    b.del(&ctr);
    assert!(
        b.reservations().is_empty(),
        "reservation kept: {:?}",
        b.reservations()
    );
    assert!(
        world.read_cache(&b.net, &id, "eth0").is_none(),
        "cache kept"
    );
    let after = Snapshot::netns(&ctr).merge(Snapshot::dir("world", world.root()));
    assert_same!(
        ctr_baseline,
        without_ipam_bookkeeping(&after),
        "container and files after DEL"
    );
    // And again, as runtimes retry.
    b.del(&ctr);
}

#[test]
fn del_twice_and_del_of_a_vanished_link_succeed() {
    let world = World::new();
    let b = MacvlanBench::new(&world, "mvdeltwice", "10.85.0.0/24");
    b.write("1.0.0", json!({"ipam": b.ipam()}));
    let conf = b.conf("1.0.0", json!({"ipam": b.ipam()}));
    let ctr = world.container();
    let baseline = b.snapshot();

    b.add(&ctr);
    b.del(&ctr);
    assert_same!(baseline, b.snapshot(), "after the first DEL");
    b.del(&ctr);
    assert_same!(baseline, b.snapshot(), "after the second DEL");

    // The link removed by someone else before DEL; DEL still releases the address.
    b.add(&ctr);
    ctr.run_ok(&["ip", "link", "del", "eth0"]);
    b.del(&ctr);
    assert_same!(baseline, b.snapshot(), "after DEL of a vanished link");

    // Direct DEL without CNI_NETNS (allowed by the spec) releases the address too.
    let add = b.exec(
        &PluginCall::add(&conf)
            .id("direct")
            .ifname("eth0")
            .netns(&ctr),
    );
    let ip = ip_of(&add.result(), 0);
    assert_eq!(
        b.reservations().get(&ip).map(String::as_str),
        Some("direct\r\neth0")
    );
    b.exec(&PluginCall::del(&conf).id("direct").ifname("eth0"))
        .expect_silent_success();
    assert!(b.reservations().is_empty(), "{:?}", b.reservations());
    ctr.run_ok(&["ip", "link", "del", "eth0"]);
    assert_same!(baseline, b.snapshot(), "after DEL without CNI_NETNS");
}

#[test]
fn del_after_the_netns_is_gone_releases_the_address() {
    let world = World::new();
    let b = MacvlanBench::new(&world, "mvnsgone", "10.86.0.0/24");
    b.write("1.0.0", json!({"ipam": b.ipam()}));
    let ctr = world.container();
    let baseline = b.host_snapshot();

    let result = b.add(&ctr);
    assert_eq!(ip_of(&result, 0), "10.86.0.2");
    let path = ctr.path_str();
    world.delete_netns(&ctr);

    b.tool().del_path(&b.net, &path).expect_silent_success();
    assert!(b.reservations().is_empty(), "{:?}", b.reservations());
    eventually_same(
        &baseline,
        || b.host_snapshot(),
        "after DEL without the netns",
    );
    b.tool().del_path(&b.net, &path).expect_silent_success();
}

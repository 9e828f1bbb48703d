//! macvlan modes over a veth master, attached with cnitool: `bridge` containers talk to each
//! other, `private` ones cannot (not even through a hairpinning LAN), `vepa` ones only through
//! a hairpinning LAN, `passthru` takes the master for one container. Every DEL returns the
//! world to its baseline (links, addresses, master promiscuity, IPAM files).

use integration_tests::inspect::{has_link, link};
use integration_tests::macvlan::{ip_of, macvlan_mode};
use integration_tests::traffic::{assert_reachable, assert_unreachable};
use integration_tests::{MacvlanBench, Netns, World, assert_same};
use serde_json::json;

fn promiscuity(ns: &Netns, dev: &str) -> u64 {
    link(ns, dev)["promiscuity"].as_u64().unwrap_or(u64::MAX)
}

#[test]
fn bridge_mode_containers_reach_each_other_and_the_lan() {
    let world = World::new();
    let b = MacvlanBench::new(&world, "mvbridge", "10.71.0.0/24");
    b.write("1.0.0", json!({"mode": "bridge", "ipam": b.ipam()}));
    let (c1, c2) = (world.container(), world.container());
    let baseline = b.snapshot();
    let r1 = b.add(&c1);
    let r2 = b.add(&c2);
    b.assert_result_matches_kernel(&r1, &c1, "eth0", "bridge");
    b.assert_result_matches_kernel(&r2, &c2, "eth0", "bridge");
    assert_eq!(ip_of(&r1, 0), "10.71.0.2", "{r1}");
    assert_eq!(ip_of(&r2, 0), "10.71.0.3", "{r2}");
    assert_eq!(r1["ips"][0]["gateway"], json!("10.71.0.1"), "{r1}");
    assert_eq!(
        b.reservations().keys().cloned().collect::<Vec<_>>(),
        vec!["10.71.0.2".to_owned(), "10.71.0.3".to_owned()]
    );
    assert_eq!(
        link(&c1, "eth0")["mtu"],
        json!(MacvlanBench::MASTER_MTU),
        "inherits the master's MTU"
    );

    assert_reachable(&c1, &ip_of(&r2, 0));
    assert_reachable(&c2, &ip_of(&r1, 0));
    assert_reachable(&c1, &b.lan_addr());
    assert_reachable(&b.lan, &ip_of(&r2, 0));

    b.del(&c1);
    b.del(&c2);
    assert!(b.reservations().is_empty(), "{:?}", b.reservations());
    assert_same!(baseline, b.snapshot(), "after DEL of both");
}

#[test]
fn private_mode_isolates_containers_even_behind_a_hairpinning_lan() {
    let world = World::new();
    let b = MacvlanBench::new(&world, "mvpriv", "10.72.0.0/24");
    b.set_lan_hairpin(true);
    b.write("1.0.0", json!({"mode": "private", "ipam": b.ipam()}));
    let (c1, c2) = (world.container(), world.container());
    let baseline = b.snapshot();
    let r1 = b.add(&c1);
    let r2 = b.add(&c2);
    b.assert_result_matches_kernel(&r1, &c1, "eth0", "private");
    b.assert_result_matches_kernel(&r2, &c2, "eth0", "private");

    // Positive control: both reach the LAN through the same master.
    assert_reachable(&c1, &b.lan_addr());
    assert_reachable(&c2, &b.lan_addr());
    assert_unreachable(&c1, &ip_of(&r2, 0));
    assert_unreachable(&c2, &ip_of(&r1, 0));

    b.del(&c1);
    b.del(&c2);
    assert_same!(baseline, b.snapshot(), "after DEL of both");
}

#[test]
fn vepa_mode_is_created_and_relies_on_the_lan_to_hairpin() {
    let world = World::new();
    let b = MacvlanBench::new(&world, "mvvepa", "10.73.0.0/24");
    b.write("1.0.0", json!({"mode": "vepa", "ipam": b.ipam()}));
    let (c1, c2) = (world.container(), world.container());
    let baseline = b.snapshot();
    let r1 = b.add(&c1);
    let r2 = b.add(&c2);
    b.assert_result_matches_kernel(&r1, &c1, "eth0", "vepa");
    b.assert_result_matches_kernel(&r2, &c2, "eth0", "vepa");
    assert_eq!(macvlan_mode(&link(&c2, "eth0")), "vepa");

    assert_reachable(&c1, &b.lan_addr());
    assert_reachable(&c2, &b.lan_addr());
    // VEPA sends everything to the "switch"; ours does not reflect…
    assert_unreachable(&c1, &ip_of(&r2, 0));
    // …until it hairpins.
    b.set_lan_hairpin(true);
    assert_reachable(&c1, &ip_of(&r2, 0));
    b.set_lan_hairpin(false);

    b.del(&c1);
    b.del(&c2);
    assert_same!(baseline, b.snapshot(), "after DEL of both");
}

#[test]
fn passthru_takes_the_master_for_one_container_only() {
    let world = World::new();
    let b = MacvlanBench::new(&world, "mvpass", "10.74.0.0/24");
    b.write("1.0.0", json!({"mode": "passthru", "ipam": b.ipam()}));
    let (c1, c2) = (world.container(), world.container());
    let baseline = b.snapshot();
    let host = world.host();
    assert_eq!(promiscuity(host, MacvlanBench::MASTER), 0);

    let r1 = b.add(&c1);
    b.assert_result_matches_kernel(&r1, &c1, "eth0", "passthru");
    assert!(
        promiscuity(host, MacvlanBench::MASTER) >= 1,
        "passthru puts the master in promiscuous mode: {}",
        link(host, MacvlanBench::MASTER)
    );
    assert_reachable(&c1, &b.lan_addr());

    // A second passthru macvlan on the same master is refused by the kernel; the failed ADD
    // leaves no link and no reservation behind.
    let out = b.tool().add(&b.net, &c2);
    assert!(
        !out.success(),
        "second passthru ADD must fail\n{}",
        out.describe()
    );
    eprintln!("second passthru: {}", out.stderr_str().trim());
    assert!(
        out.stderr_str().contains("macvlan"),
        "error names the macvlan\n{}",
        out.describe()
    );
    assert!(!has_link(&c2, "eth0"), "failed ADD left eth0 in c2");
    assert_eq!(
        b.reservations().keys().cloned().collect::<Vec<_>>(),
        vec![ip_of(&r1, 0)],
        "only the first container holds an address"
    );

    b.del(&c1);
    b.del(&c2);
    assert_eq!(promiscuity(host, MacvlanBench::MASTER), 0);
    assert_same!(baseline, b.snapshot(), "after DEL");
}

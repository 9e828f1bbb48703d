//! firewall DEL: removes exactly the container's rules, a bridge's isolation rules with its last
//! container, the shared chains (or our nft table) with the last rule, so that after DEL of
//! every container `iptables-save`, `ip6tables-save` and `nft list ruleset` equal the baseline
//! (the reference leaves chains and isolation rules behind). DEL also works without
//! `prevResult` (a runtime whose ADD failed has no cached result), after the netns is gone and
//! twice.

use integration_tests::firewall::{
    self, Firewall, filter_rules, host_snapshot, ip_of, nft_table, snapshot,
};
use integration_tests::{FirewallNet, Netns, World, assert_same};
use serde_json::json;

/// Every rule line (iptables, ip6tables, our nft table) in the world's host mentioning `needle`.
fn rules_with(world: &World, needle: &str) -> Vec<String> {
    let host = world.host();
    let mut lines: Vec<String> = [false, true]
        .into_iter()
        .flat_map(|v6| filter_rules(host, v6))
        .collect();
    lines.extend(
        nft_table(host)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned),
    );
    lines.into_iter().filter(|l| l.contains(needle)).collect()
}

/// The isolation rules of `bridge` (rules naming it without naming an attachment).
fn isolation_rules(world: &World, bridge: &str) -> Vec<String> {
    rules_with(world, bridge)
        .into_iter()
        .filter(|l| !l.contains("id: "))
        .collect()
}

/// How many isolation rules a bridge has: per family with addresses on it (iptables) or once
/// (nftables' inet table); `isolated` adds the intra-bridge drop.
fn isolation_count(backend: &str, policy: &str, families: usize) -> usize {
    let per_family = if policy == "isolated" { 3 } else { 2 };
    match backend {
        "nftables" => per_family,
        _ => per_family * families,
    }
}

/// The attachment's owner marker as it appears in rules of `backend`.
fn owner_needle(backend: &str, id: &str) -> String {
    match backend {
        "nftables" => format!("id: {id}\""),
        _ => format!("id: \\\"{id}\\\""),
    }
}

/// Networks A (dual-stack) and B (IPv4), both `same-bridge` with `backend`; a1, a2 on A, b1 on
/// B. DEL one by one: a1's rules go but A's isolation stays (a2 is left); with a2 A's isolation
/// goes; with b1 everything.
fn teardown_in_order(backend: &str) {
    let world = World::new();
    let fw = json!({"backend": backend, "ingressPolicy": "same-bridge"});
    let a = FirewallNet::new(
        &world,
        "down-a",
        "a",
        &["10.93.1.0/24", "fd93:1::/64"],
        fw.clone(),
    );
    let b = FirewallNet::new(&world, "down-b", "b", &["10.93.2.0/24"], fw);
    a.write();
    b.write();
    let (a1, a2, b1) = (world.container(), world.container(), world.container());
    let baseline = snapshot(&world, &[&a, &b]);

    let ra1 = a.add(&a1, "ctr-a1");
    a.add(&a2, "ctr-a2");
    b.add(&b1, "ctr-b1");
    let (br_a, br_b) = (a.bridge().to_owned(), b.bridge().to_owned());
    let a1_needle = owner_needle(backend, "ctr-a1");
    assert_eq!(
        rules_with(&world, &a1_needle).len(),
        4,
        "a1: 2 rules per address"
    );
    let count_a = isolation_count(backend, "same-bridge", 2);
    let count_b = isolation_count(backend, "same-bridge", 1);
    assert_eq!(isolation_rules(&world, &br_a).len(), count_a);
    assert_eq!(isolation_rules(&world, &br_b).len(), count_b);

    a.del(&a1, "ctr-a1");
    assert_eq!(
        rules_with(&world, &a1_needle),
        Vec::<String>::new(),
        "a1's rules stay"
    );
    for ip in [ip_of(&ra1, 4), ip_of(&ra1, 6)] {
        assert_eq!(rules_with(&world, &format!("{ip}/")), Vec::<String>::new());
        assert_eq!(
            rules_with(&world, &format!("addr {ip} ")),
            Vec::<String>::new()
        );
    }
    assert_eq!(
        rules_with(&world, &owner_needle(backend, "ctr-a2")).len(),
        4
    );
    assert_eq!(
        isolation_rules(&world, &br_a).len(),
        count_a,
        "A's isolation rules must stay while a2 is on A"
    );

    a.del(&a2, "ctr-a2");
    assert_eq!(
        rules_with(&world, &br_a),
        Vec::<String>::new(),
        "A's isolation rules must go with A's last container"
    );
    assert_eq!(
        isolation_rules(&world, &br_b).len(),
        count_b,
        "B's isolation rules stay"
    );
    assert_eq!(
        rules_with(&world, &owner_needle(backend, "ctr-b1")).len(),
        2
    );

    b.del(&b1, "ctr-b1");
    assert_same!(
        baseline,
        snapshot(&world, &[&a, &b]),
        "after DEL of every container"
    );
}

#[test]
fn iptables_del_one_by_one_returns_to_the_baseline() {
    teardown_in_order("iptables");
}

#[test]
fn nftables_del_one_by_one_returns_to_the_baseline() {
    teardown_in_order("nftables");
}

/// A network with one container attached through cnitool.
/// A dual-stack `isolated` network with one (not yet attached) container.
fn one_container<'w>(world: &'w World, backend: &str, net: &str) -> (FirewallNet<'w>, Netns) {
    let fw = json!({"backend": backend, "ingressPolicy": "isolated"});
    let n = FirewallNet::new(world, net, "a", &["10.94.1.0/24", "fd94:1::/64"], fw);
    n.write();
    let ctr = world.container();
    (n, ctr)
}

/// ADD through cnitool, then a direct firewall DEL with the same config but no `prevResult`:
/// every rule of the container (and, it being the bridge's last, the isolation rules) goes;
/// a second container keeps its rules.
fn del_without_prev_result(backend: &str) {
    let world = World::new();
    let (net, ctr) = one_container(&world, backend, "noprev");
    let other = world.container();
    let baseline = snapshot(&world, &[&net]);

    net.add(&other, "ctr-other");
    let with_other = snapshot(&world, &[&net]);
    let r = net.add(&ctr, "ctr-noprev");
    let needle = owner_needle(backend, "ctr-noprev");
    assert_eq!(rules_with(&world, &needle).len(), 4);
    let isolation = isolation_count(backend, "isolated", 2);
    assert_eq!(isolation_rules(&world, net.bridge()).len(), isolation);

    let conf = net.conf("1.0.0", None);
    assert!(conf.get("prevResult").is_none());
    let del = net.call("DEL", &conf, "ctr-noprev", &ctr);
    net.exec(Firewall::Ours, &del).expect_silent_success();
    assert_eq!(
        rules_with(&world, &needle),
        Vec::<String>::new(),
        "rules leaked"
    );
    for ip in [ip_of(&r, 4), ip_of(&r, 6)] {
        assert_eq!(rules_with(&world, &format!("{ip}/")), Vec::<String>::new());
        assert_eq!(
            rules_with(&world, &format!("addr {ip} ")),
            Vec::<String>::new()
        );
    }
    assert_eq!(
        rules_with(&world, &owner_needle(backend, "ctr-other")).len(),
        4,
        "the other container's rules must stay"
    );
    assert_eq!(
        isolation_rules(&world, net.bridge()).len(),
        isolation,
        "the bridge's isolation must stay for the other container"
    );
    // The runtime's full DEL (cached result) still succeeds and finishes the bridge side.
    net.del(&ctr, "ctr-noprev");
    assert_same!(
        with_other,
        snapshot(&world, &[&net]),
        "after DEL of one of two"
    );

    // The other one, last on its bridge, also without prevResult: isolation and chains go.
    let del = net.call("DEL", &conf, "ctr-other", &other);
    net.exec(Firewall::Ours, &del).expect_silent_success();
    assert_eq!(rules_with(&world, net.bridge()), Vec::<String>::new());
    assert_eq!(
        rules_with(&world, "CNI-"),
        Vec::<String>::new(),
        "shared chains stay"
    );
    assert_eq!(nft_table(world.host()), None, "our nft table stays");
    net.del(&other, "ctr-other");
    assert_same!(baseline, snapshot(&world, &[&net]), "after DEL of both");
}

#[test]
fn iptables_del_without_prev_result_removes_the_rules() {
    del_without_prev_result("iptables");
}

#[test]
fn nftables_del_without_prev_result_removes_the_rules() {
    del_without_prev_result("nftables");
}

fn del_after_netns_gone(backend: &str) {
    let world = World::new();
    let (net, ctr) = one_container(&world, backend, "nsgone");
    let baseline = host_snapshot(&world, &[&net]);
    net.add(&ctr, "ctr-gone");
    let path = ctr.path_str();
    world.delete_netns(&ctr);
    let tool = net.tool(Firewall::Ours).container_id("ctr-gone");
    tool.del_path(net.net(), &path).expect_silent_success();
    assert_eq!(rules_with(&world, net.bridge()), Vec::<String>::new());
    // The host veth disappears with the namespace, asynchronously; give it a moment.
    let start = std::time::Instant::now();
    while host_snapshot(&world, &[&net]).diff(&baseline).is_some()
        && start.elapsed() < std::time::Duration::from_secs(10)
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_same!(
        baseline,
        host_snapshot(&world, &[&net]),
        "after DEL without netns"
    );
    tool.del_path(net.net(), &path).expect_silent_success();
    // Direct DEL without netns and without prevResult, as a runtime retrying.
    let del = firewall_del_no_netns(&net, "ctr-gone");
    net.exec(Firewall::Ours, &del).expect_silent_success();
    assert_same!(
        baseline,
        host_snapshot(&world, &[&net]),
        "after repeated DELs"
    );
}

fn firewall_del_no_netns(net: &FirewallNet<'_>, id: &str) -> integration_tests::PluginCall {
    integration_tests::PluginCall::del(&net.conf("1.0.0", None))
        .id(id)
        .ifname(firewall::IFNAME)
}

#[test]
fn iptables_del_after_the_netns_is_gone() {
    del_after_netns_gone("iptables");
}

#[test]
fn nftables_del_after_the_netns_is_gone() {
    del_after_netns_gone("nftables");
}

fn del_twice(backend: &str) {
    let world = World::new();
    let (net, ctr) = one_container(&world, backend, "twice");
    let baseline = snapshot(&world, &[&net]);
    let r = net.add(&ctr, "ctr-twice");
    net.del(&ctr, "ctr-twice");
    assert_same!(baseline, snapshot(&world, &[&net]), "after the first DEL");
    net.del(&ctr, "ctr-twice");
    // Direct DELs, with and without prevResult.
    for prev in [Some(&r), None] {
        let conf = net.conf("1.0.0", prev);
        let del = net.call("DEL", &conf, "ctr-twice", &ctr);
        net.exec(Firewall::Ours, &del).expect_silent_success();
    }
    assert_same!(baseline, snapshot(&world, &[&net]), "after repeated DELs");
}

#[test]
fn iptables_del_twice_succeeds() {
    del_twice("iptables");
}

#[test]
fn nftables_del_twice_succeeds() {
    del_twice("nftables");
}

/// The attachment ledger in the firewall's dataDir never follows a planted symlink: with
/// `attachments` pointing outside, ADD (then on the reading path), CHECK and DEL still work, the
/// state returns to baseline, and nothing in the symlink's target is created or removed.
#[test]
fn planted_ledger_symlink_is_not_followed() {
    let world = World::new();
    let (net, ctr) = one_container(&world, "iptables", "ledger");
    let outside = world.root().join("outside-ledger");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("0123456789abcdef-0123456789abcdef"), [0xff]).unwrap();
    let lock_dir = firewall::lock_dir(&world);
    std::fs::create_dir_all(&lock_dir).unwrap();
    std::os::unix::fs::symlink(&outside, lock_dir.join("attachments")).unwrap();
    let baseline = snapshot(&world, &[&net]);

    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(&outside)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let result = net.add(&ctr, "ctr-ledger");
    assert!(!ip_of(&result, 4).is_empty(), "{result}");
    assert_eq!(
        listing(),
        ["0123456789abcdef-0123456789abcdef"],
        "ADD wrote through"
    );
    let check = net.check(&ctr, "ctr-ledger");
    assert!(check.success(), "{}", check.describe());
    net.del(&ctr, "ctr-ledger");
    assert_eq!(
        listing(),
        ["0123456789abcdef-0123456789abcdef"],
        "DEL removed outside"
    );
    assert_same!(baseline, snapshot(&world, &[&net]), "after DEL");
}

/// Real iptables: after another tool deleted the FORWARD jump, the next container's ADD (which
/// would otherwise write without reading) notices, restores the jump once and adds its rules.
#[test]
fn a_new_container_restores_the_forward_jump_someone_deleted() {
    let world = World::new();
    let (net, ctr) = one_container(&world, "iptables", "rejump");
    let other = world.container();
    net.add(&ctr, "ctr-rejump-1");
    let jump = [
        "iptables",
        "-w",
        "5",
        "-D",
        "FORWARD",
        "-m",
        "comment",
        "--comment",
        "CNI firewall plugin rules",
        "-j",
        "CNI-FORWARD",
    ];
    world.host().run_ok(&jump);
    let jumps = || {
        filter_rules(world.host(), false)
            .iter()
            .filter(|l| l.starts_with("-A FORWARD") && l.ends_with("-j CNI-FORWARD"))
            .count()
    };
    assert_eq!(jumps(), 0);
    let result = net.add(&other, "ctr-rejump-2");
    assert_eq!(jumps(), 1, "the second ADD must restore the FORWARD jump");
    let ip = ip_of(&result, 4);
    let host_ip = ip.split('/').next().unwrap_or_default().to_owned();
    assert_eq!(rules_with(&world, &format!("{host_ip}/32")).len(), 2);
    let check = net.check(&other, "ctr-rejump-2");
    assert!(check.success(), "{}", check.describe());
    net.del(&other, "ctr-rejump-2");
    net.del(&ctr, "ctr-rejump-1");
}

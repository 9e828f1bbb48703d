//! firewall GC and STATUS (spec 1.1.0, direct exec: the installed cnitool speaks ≤ 1.0.0).
//!
//! GC with `cni.dev/valid-attachments` removes the rules of this network's attachments not in
//! the list (found by their owner comment), keeps the listed ones and other networks' rules,
//! and drops a bridge's isolation rules with its last container. STATUS succeeds when the
//! backend works and reports code 50 when its tools fail (fake binaries first on `PATH`).

use integration_tests::firewall::{self, Firewall, filter_rules, nft_table, tool_stand_ins};
use integration_tests::{FirewallNet, PluginCall, World, assert_same};
use serde_json::json;

/// Every rule line (iptables, ip6tables, our nft table) in the world's host containing `needle`.
fn rules_with(world: &World, needle: &str) -> usize {
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
    lines.iter().filter(|l| l.contains(needle)).count()
}

/// Isolation rules of `bridge`: rules naming it but no attachment.
fn isolation_rules(world: &World, bridge: &str) -> usize {
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
    lines
        .iter()
        .filter(|l| l.contains(bridge) && !l.contains("id: "))
        .count()
}

fn owner_needle(backend: &str, id: &str) -> String {
    match backend {
        "nftables" => format!("id: {id}\""),
        _ => format!("id: \\\"{id}\\\""),
    }
}

fn gc(backend: &str) {
    let world = World::new();
    let fw = json!({"backend": backend, "ingressPolicy": "same-bridge"});
    let a = FirewallNet::new(&world, "gc-a", "a", &["10.98.1.0/24"], fw.clone());
    let b = FirewallNet::new(&world, "gc-b", "b", &["10.98.2.0/24"], fw);
    a.write();
    b.write();
    let ctrs: Vec<_> = (0..4).map(|_| world.container()).collect();
    let baseline = firewall::snapshot(&world, &[&a, &b]);
    let ids = ["ctr-keep", "ctr-stale1", "ctr-stale2"];
    for (ctr, id) in ctrs.iter().zip(ids) {
        a.add(ctr, id);
    }
    b.add(&ctrs[3], "ctr-stale1"); // same ID, other network: not this GC's business
    let count = |id: &str| rules_with(&world, &owner_needle(backend, id));
    assert_eq!(count("ctr-stale1"), 4, "two rules in each network");
    // Stage-1 and stage-2 rule per bridge (IPv4 only, or nftables' one inet table).
    assert_eq!(isolation_rules(&world, a.bridge()), 2);
    assert_eq!(isolation_rules(&world, b.bridge()), 2);

    let mut conf = a.conf("1.1.0", None);
    conf["cni.dev/valid-attachments"] = json!([{"containerID": "ctr-keep", "ifname": "eth0"}]);
    a.exec(Firewall::Ours, &PluginCall::gc(&conf))
        .expect_silent_success();
    assert_eq!(count("ctr-keep"), 2, "a listed attachment keeps its rules");
    assert_eq!(
        count("ctr-stale2"),
        0,
        "GC left an unlisted attachment's rules"
    );
    assert_eq!(
        count("ctr-stale1"),
        2,
        "only network B's rules of ctr-stale1 may stay"
    );
    assert_eq!(
        isolation_rules(&world, a.bridge()),
        2,
        "A's isolation rules went while ctr-keep is on A"
    );

    // Nothing valid: A's last rules go, and with them A's isolation rules; B is untouched.
    conf["cni.dev/valid-attachments"] = json!([]);
    a.exec(Firewall::Ours, &PluginCall::gc(&conf))
        .expect_silent_success();
    assert_eq!(count("ctr-keep"), 0);
    assert_eq!(
        rules_with(&world, a.bridge()),
        0,
        "A's isolation rules must go"
    );
    assert_eq!(count("ctr-stale1"), 2);
    assert!(
        rules_with(&world, b.bridge()) > 0,
        "B's isolation rules must stay"
    );

    for (ctr, id) in ctrs.iter().zip(ids) {
        a.del(ctr, id);
    }
    b.del(&ctrs[3], "ctr-stale1");
    assert_same!(
        baseline,
        firewall::snapshot(&world, &[&a, &b]),
        "after GC and DELs"
    );
}

#[test]
fn iptables_gc_removes_unlisted_attachments() {
    gc("iptables");
}

#[test]
fn nftables_gc_removes_unlisted_attachments() {
    gc("nftables");
}

/// `<world>/fakebin` holding failing stand-ins for every netfilter tool.
fn fake_tools(world: &World) -> String {
    tool_stand_ins(world, "fakebin", |_, _| {
        "#!/bin/sh\necho \"$0: Could not fetch rule set generation id: \
         Permission denied (you must be root)\" >&2\nexit 4\n"
            .to_owned()
    })
}

fn status(backend: &str) {
    let world = World::new();
    let net = FirewallNet::new(
        &world,
        "status",
        "a",
        &["10.98.3.0/24"],
        json!({"backend": backend}),
    );
    let fake = fake_tools(&world);
    let conf = net.conf("1.1.0", None);
    net.exec(Firewall::Ours, &PluginCall::status(&conf))
        .expect_silent_success();
    // A PATH without the sbin directories still works: the plugin falls back to them.
    net.exec(
        Firewall::Ours,
        &PluginCall::status(&conf).env("PATH", "/usr/bin:/bin"),
    )
    .expect_silent_success();

    let broken = PluginCall::status(&conf).env("PATH", &format!("{fake}:/usr/bin:/bin"));
    let err = net.exec(Firewall::Ours, &broken).expect_error(50, backend);
    assert!(
        err.text().contains("Permission denied"),
        "STATUS should say why: {}",
        err.text()
    );
    assert_eq!(err.cni_version.as_deref(), Some("1.1.0"));

    // ADD with the broken tools fails cleanly and changes nothing.
    let ctr = world.container();
    let before_add = firewall::snapshot(&world, &[&net]);
    let prev = json!({
        "cniVersion": "1.1.0",
        "interfaces": [{"name": net.bridge()}, {"name": "veth0"}, {"name": "eth0", "sandbox": ctr.path_str()}],
        "ips": [{"interface": 2, "address": "10.98.3.2/24", "gateway": "10.98.3.1"}],
    });
    let add = net
        .call("ADD", &net.conf("1.1.0", Some(&prev)), "ctr-broken", &ctr)
        .env("PATH", &format!("{fake}:/usr/bin:/bin"));
    let out = net.exec(Firewall::Ours, &add);
    let err = out.cni_error();
    assert!(
        err.text().contains("failed to add firewall rules"),
        "{}",
        out.describe()
    );
    assert_eq!(err.code, 105, "the kernel refused: {}", out.describe());
    assert_eq!(before_add.diff(&firewall::snapshot(&world, &[&net])), None);
}

#[test]
fn iptables_status_ok_and_code_50_when_the_tools_fail() {
    status("iptables");
}

#[test]
fn nftables_status_ok_and_code_50_when_the_tools_fail() {
    status("nftables");
}

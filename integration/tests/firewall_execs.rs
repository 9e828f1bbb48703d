//! firewall cost: each ADD and DEL reads every table it touches once and writes it at most once
//! (`iptables-save` + one `iptables-restore --noflush` batch per family; one `nft -j list` + one
//! `nft -f -` transaction), a verb with nothing to change writes nothing, and with iptables-nft
//! a later container's ADD reads nothing and its DEL runs no tool (netlink does it). The netfilter tools
//! are wrapped by logging scripts placed first on the plugin's `PATH`.

use integration_tests::firewall::{Firewall, filter_rules, nft_table, tool_stand_ins};
use integration_tests::locate::CHILD_PATH;
use integration_tests::{FirewallNet, World};
use serde_json::{Value, json};

/// `<world>/wrapbin/<tool>` for every tool: append `<tool> <args>` to `<world>/tool.log`, then
/// exec the real tool. Returns the PATH to hand to the plugin.
fn wrap_tools(world: &World) -> String {
    let log = world.root().join("tool.log");
    let dir = tool_stand_ins(world, "wrapbin", |tool, real| {
        format!(
            "#!/bin/sh\necho \"{tool} $*\" >> '{}'\nexec {real} \"$@\"\n",
            log.display()
        )
    });
    format!("{dir}:{CHILD_PATH}")
}

/// The tool calls logged since the last call (the log is emptied).
fn take_log(world: &World) -> Vec<String> {
    let path = world.root().join("tool.log");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let _ = std::fs::remove_file(&path);
    let mut calls: Vec<String> = text.lines().map(str::to_owned).collect();
    calls.sort();
    calls
}

fn count(calls: &[String], prefix: &str) -> usize {
    calls.iter().filter(|c| c.starts_with(prefix)).count()
}

/// Runs `command` once with the wrapped tools; returns the sorted tool calls.
fn run(net: &FirewallNet<'_>, path: &str, command: &str, conf: &Value) -> Vec<String> {
    let ctr = &net.world().containers()[0];
    let call = net.call(command, conf, "ctr-cost", ctr).env("PATH", path);
    let out = net.exec(Firewall::Ours, &call);
    assert!(out.success(), "{}", out.describe());
    take_log(net.world())
}

fn prev(net: &FirewallNet<'_>) -> Value {
    let ctr = &net.world().containers()[0];
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": net.bridge()}, {"name": "vethcost0"},
                       {"name": "eth0", "sandbox": ctr.path_str()}],
        "ips": [{"interface": 2, "address": "10.102.0.2/24", "gateway": "10.102.0.1"},
                {"interface": 2, "address": "fd66::2/64", "gateway": "fd66::1"}],
    })
}

#[test]
fn iptables_one_read_and_at_most_one_batch_per_family() {
    let world = World::new();
    let fw = json!({"backend": "iptables", "ingressPolicy": "same-bridge"});
    let net = FirewallNet::new(&world, "cost", "a", &["10.102.0.0/24"], fw);
    world.container();
    let path = wrap_tools(&world);
    let conf = net.conf("1.0.0", Some(&prev(&net)));

    // The bridge's first container: nf_tables (read over netlink, no exec) shows the shared
    // chains missing, so one read and one write per family create everything.
    let add = run(&net, &path, "ADD", &conf);
    assert_eq!(
        add,
        [
            "ip6tables-restore --noflush -w 30",
            "ip6tables-save -t filter",
            "iptables-restore --noflush -w 30",
            "iptables-save -t filter",
        ],
        "first ADD"
    );
    assert_eq!(filter_rules(world.host(), false).len(), 2 + 1 + 2 + 2 + 2);
    let again = run(&net, &path, "ADD", &conf);
    assert_eq!(
        count(&again, "iptables-restore") + count(&again, "ip6tables-restore"),
        0,
        "{again:?}"
    );
    assert!(again.len() <= 2, "repeated ADD: {again:?}");
    let check = run(&net, &path, "CHECK", &conf);
    assert!(
        check.len() <= 2 && check.iter().all(|c| c.contains("-save -t filter")),
        "CHECK only reads: {check:?}"
    );

    // Every later container on the bridge: its ADD is one write per family and no read (the
    // shared rules are checked over netlink), its DEL no tool at all (its rules are deleted by
    // handle over netlink), so neither cost grows with the number of rules in the table.
    let mut prev2 = prev(&net);
    prev2["ips"][0]["address"] = json!("10.102.0.3/24");
    prev2["ips"][1]["address"] = json!("fd66::3/64");
    let conf2 = net.conf("1.0.0", Some(&prev2));
    let ctr = &net.world().containers()[0];
    let rules_before = filter_rules(world.host(), false).len();
    for (verb, want) in [
        (
            "ADD",
            &[
                "ip6tables-restore --noflush -w 30",
                "iptables-restore --noflush -w 30",
            ][..],
        ),
        ("DEL", &[][..]),
    ] {
        let call = net.call(verb, &conf2, "ctr-cost2", ctr).env("PATH", &path);
        let out = net.exec(Firewall::Ours, &call);
        assert!(out.success(), "{}", out.describe());
        assert_eq!(take_log(&world), want, "{verb} of a second container");
    }
    assert_eq!(
        filter_rules(world.host(), false).len(),
        rules_before,
        "the second container's rules came and went"
    );

    // The bridge's last container: the same teardown plan, made on the tables read over
    // netlink, removes the shared rules and chains too, in one nf_tables transaction per family.
    let del = run(&net, &path, "DEL", &conf);
    assert_eq!(del, Vec::<String>::new(), "DEL of the last container");
    assert_eq!(filter_rules(world.host(), false), Vec::<String>::new());
    let del2 = run(&net, &path, "DEL", &conf);
    assert_eq!(
        count(&del2, "iptables-restore") + count(&del2, "ip6tables-restore"),
        0,
        "{del2:?}"
    );
    assert!(del2.len() <= 2, "repeated DEL: {del2:?}");
}

#[test]
fn nftables_one_read_and_at_most_one_transaction() {
    let world = World::new();
    let fw = json!({"backend": "nftables", "ingressPolicy": "same-bridge"});
    let net = FirewallNet::new(&world, "cost", "a", &["10.102.0.0/24"], fw);
    world.container();
    let path = wrap_tools(&world);
    let conf = net.conf("1.0.0", Some(&prev(&net)));

    let writes = |calls: &[String]| calls.iter().filter(|c| c.starts_with("nft -f")).count();
    let add = run(&net, &path, "ADD", &conf);
    assert_eq!(add.len(), 2, "first ADD: {add:?}");
    assert_eq!(writes(&add), 1, "{add:?}");
    assert!(nft_table(world.host()).is_some());
    for verb in ["ADD", "CHECK"] {
        let calls = run(&net, &path, verb, &conf);
        assert_eq!(calls.len(), 1, "{verb} with nothing to change: {calls:?}");
        assert_eq!(writes(&calls), 0, "{calls:?}");
    }
    let del = run(&net, &path, "DEL", &conf);
    assert_eq!(del.len(), 2, "DEL: {del:?}");
    assert_eq!(writes(&del), 1, "{del:?}");
    assert_eq!(nft_table(world.host()), None);
    let del2 = run(&net, &path, "DEL", &conf);
    assert_eq!(del2.len(), 1, "repeated DEL: {del2:?}");
    assert!(count(&del2, "iptables") == 0, "{del2:?}");
}

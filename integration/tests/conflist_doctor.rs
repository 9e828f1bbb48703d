//! `cni-conflist doctor` finds each kind of staleness planted in a world — a cache entry whose
//! netns is gone, a reservation nobody holds, an orphaned masquerade chain, isolation rules for
//! a bridge that no longer exists, a bridge no file names, a missing plugin — and `--fix`
//! clears what is provably stale without touching the live attachment.

use std::fs;

use integration_tests::bridge::{masq_chain, prime_nat};
use integration_tests::inspect::{global_addrs, has_link, nat_chains};
use integration_tests::{World, cnitool_container_id};
use serde_json::{Value, json};

fn kinds(report: &Value) -> Vec<(String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    report["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (text(&p["kind"]), text(&p["subject"])))
        .collect()
}

fn filter_rules(world: &World) -> Vec<String> {
    world
        .host()
        .run_ok(&["iptables-save", "-t", "filter"])
        .lines()
        .filter(|l| l.starts_with("-A CNI-ISOLATION"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn doctor_finds_planted_staleness_and_fix_clears_it() {
    let world = World::new();
    prime_nat(world.host());
    let host = world.host();
    let tool = world.conflist_tool();
    let data = world.data_dir().display().to_string();
    tool.ok(&["create", "--ipam-data-dir", &data, "web"]);
    let live = world.container();
    let dead = world.container();
    tool.exec("add", "web", &live).expect_success();
    tool.exec("add", "web", &dead).expect_success();
    let live_id = cnitool_container_id(&live.path());
    let dead_id = cnitool_container_id(&dead.path());
    assert_eq!(
        tool.json(&["doctor"])["problems"],
        json!([]),
        "a clean world has no problems"
    );

    // 1. the runtime removed a netns without DEL
    world.delete_netns(&dead);
    // 2. a reservation with no cached attachment
    fs::write(world.data_dir().join("web/10.89.0.200"), "ghost\r\neth0").unwrap();
    // 3. a masquerade chain of an attachment nobody knows
    let chain = masq_chain("web", "ghost2");
    let comment = r#"name: "web" id: "ghost2""#;
    host.run_ok(&["iptables", "-t", "nat", "-N", &chain]);
    host.run_ok(&[
        "iptables",
        "-t",
        "nat",
        "-A",
        &chain,
        "-d",
        "10.89.0.0/24",
        "-m",
        "comment",
        "--comment",
        comment,
        "-j",
        "ACCEPT",
    ]);
    host.run_ok(&[
        "iptables",
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-s",
        "10.89.0.201/32",
        "-m",
        "comment",
        "--comment",
        comment,
        "-j",
        &chain,
    ]);
    // 4. isolation rules of a bridge that is gone
    for c in ["CNI-ISOLATION-STAGE-1", "CNI-ISOLATION-STAGE-2"] {
        host.run_ok(&["iptables", "-N", c]);
    }
    host.run_ok(&[
        "iptables",
        "-A",
        "CNI-ISOLATION-STAGE-1",
        "-i",
        "cni-gone",
        "!",
        "-o",
        "cni-gone",
        "-j",
        "CNI-ISOLATION-STAGE-2",
    ]);
    host.run_ok(&[
        "iptables",
        "-A",
        "CNI-ISOLATION-STAGE-2",
        "-o",
        "cni-gone",
        "-j",
        "DROP",
    ]);
    // 5. a bridge no network file names
    host.run_ok(&["ip", "link", "add", "cni-orphan", "type", "bridge"]);

    let out = tool.run(&["doctor"]);
    assert_eq!(out.status, Some(1), "{}", out.describe());
    let report = tool.json(&["doctor"]);
    let found = kinds(&report);
    let has =
        |kind: &str, subject: &str| found.iter().any(|(k, s)| k == kind && s.contains(subject));
    assert!(has("stale-cache", &format!("{dead_id}/eth0")), "{found:#?}");
    assert!(
        has("orphan-reservation", "10.89.0.200 (ghost/eth0)"),
        "{found:#?}"
    );
    assert!(has("orphan-masquerade", &chain), "{found:#?}");
    assert_eq!(
        found
            .iter()
            .filter(|(k, _)| k == "orphan-isolation")
            .count(),
        2,
        "{found:#?}"
    );
    assert!(has("orphan-bridge", "cni-orphan"), "{found:#?}");
    assert!(
        !found.iter().any(|(_, s)| s.contains(&live_id)),
        "the live attachment is fine: {found:#?}"
    );

    let fixed = tool.json(&["doctor", "--fix"]);
    for p in fixed["problems"].as_array().unwrap() {
        assert_eq!(p["status"]["state"], "fixed", "{p:#}");
    }
    let again = tool.run(&["doctor"]);
    again.expect_success();
    assert!(
        again.stdout_str().contains("no problems found"),
        "{}",
        again.describe()
    );

    assert!(world.read_cache("web", &dead_id, "eth0").is_none());
    assert!(!world.data_dir().join("web/10.89.0.200").exists());
    let chains = nat_chains(host, false);
    assert!(!chains.contains(&chain), "{chains:?}");
    assert!(!chains.contains(&masq_chain("web", &dead_id)), "{chains:?}");
    assert!(chains.contains(&masq_chain("web", &live_id)), "{chains:?}");
    assert!(filter_rules(&world).iter().all(|r| !r.contains("cni-gone")));
    assert!(!has_link(host, "cni-orphan"));
    // The live attachment is untouched and still passes CHECK.
    assert_eq!(global_addrs(&live, "eth0").len(), 1);
    assert!(world.read_cache("web", &live_id, "eth0").is_some());
    tool.exec("check", "web", &live).expect_silent_success();
    tool.exec("del", "web", &live).expect_silent_success();
}

#[test]
fn doctor_reports_missing_plugins_and_cannot_fix_them() {
    let world = World::new();
    world.write_conflist(
        "odd",
        &json!({"cniVersion": "1.0.0", "name": "odd", "plugins": [
        {"type": "bridge", "bridge": "cni-odd0"}, {"type": "nosuchplugin"}]}),
    );
    let tool = world.conflist_tool();
    let report = tool.json(&["doctor", "--fix"]);
    let found = kinds(&report);
    assert_eq!(
        found,
        [("plugin-missing".to_owned(), "nosuchplugin".to_owned())]
    );
    assert_eq!(tool.run(&["doctor", "odd"]).status, Some(1));
    assert_eq!(tool.run(&["doctor", "other"]).status, Some(0));
}

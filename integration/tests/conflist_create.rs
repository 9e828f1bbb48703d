//! `cni-conflist create` in a world: podman's defaults, free names and subnets that avoid other
//! networks and the host's addresses, refusals, and output the real libcni (cnitool) runs with
//! our plugins for add/check/del — plus `validate`, `inspect`, `ls` and `rm` on what it wrote.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use integration_tests::bridge::{prime_nat, without_kept_state};
use integration_tests::inspect::{default_route, global_addrs, has_link, nat_chains};
use integration_tests::{Snapshot, World, assert_same};
use serde_json::Value;

fn settled(world: &World, bridge: &str) -> Snapshot {
    without_kept_state(&world.snapshot(), world.host(), bridge)
}

#[test]
fn create_output_runs_through_cnitool_and_round_trips_validate_and_inspect() {
    let world = World::new();
    prime_nat(world.host());
    let tool = world.conflist_tool();
    let data = world.data_dir().display().to_string();
    let name = tool.ok(&[
        "create",
        "--ipam-data-dir",
        &data,
        "--opt",
        "isolate=true",
        "--opt",
        "mtu=1400",
        "--label",
        "app=web",
        "web",
    ]);
    assert_eq!(name.trim(), "web");
    let file = world.netconf_dir().join("web.conflist");
    let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    let text = fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with("{\n   \"args\": {"),
        "podman's layout:\n{text}"
    );

    let report = tool.json(&["validate", "web"]);
    assert_eq!(report["errors"], 0, "{report:#}");
    assert_eq!(report["warnings"], 0, "{report:#}");
    let view = tool.json(&["inspect", "web"]);
    assert_eq!(view["driver"], "bridge");
    assert_eq!(view["network_interface"], "cni-podman1");
    assert_eq!(view["subnets"][0]["subnet"], "10.89.0.0/24");
    assert_eq!(view["subnets"][0]["gateway"], "10.89.0.1");
    assert_eq!(view["isolate"], "same-bridge");
    assert_eq!(view["mtu"], 1400);
    assert_eq!(view["labels"]["app"], "web");
    assert_eq!(view["options"]["isolate"], "true");
    let plugins: Vec<&str> = view["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(plugins, ["bridge", "portmap", "firewall", "tuning"]);

    let cnitool = world.cnitool().plugin_dir(tool.cni_path());
    let warm = world.container();
    cnitool.add("web", &warm).expect_success();
    cnitool.del("web", &warm).expect_silent_success();
    world.delete_netns(&warm);
    let ctr = world.container();
    let baseline = settled(&world, "cni-podman1");

    let result = cnitool.add("web", &ctr).expect_success().json();
    let address = result["ips"][0]["address"].as_str().unwrap().to_owned();
    assert!(address.starts_with("10.89.0."), "{result:#}");
    assert_eq!(global_addrs(&ctr, "eth0"), [address]);
    assert!(default_route(&ctr, "-4").is_some());
    cnitool.check("web", &ctr).expect_silent_success();
    cnitool.del("web", &ctr).expect_silent_success();
    assert!(!has_link(&ctr, "eth0"));
    assert_same!(
        baseline,
        settled(&world, "cni-podman1"),
        "after cnitool del"
    );
}

#[test]
fn defaults_avoid_other_networks_and_host_addresses() {
    let world = World::new();
    let host = world.host();
    host.run_ok(&[
        "ip", "link", "add", "vdev0", "type", "veth", "peer", "name", "vdev0p",
    ]);
    host.run_ok(&["ip", "addr", "add", "10.89.0.1/24", "dev", "vdev0"]);
    host.run_ok(&["ip", "link", "add", "cni-podman2", "type", "bridge"]);
    let tool = world.conflist_tool();
    tool.ok(&["create", "--subnet", "10.89.1.0/24", "first"]);
    let name = tool.ok(&["create"]);
    assert_eq!(name.trim(), "cni-podman3");
    let view = tool.json(&["inspect", "cni-podman3"]);
    assert_eq!(view["subnets"][0]["subnet"], "10.89.2.0/24");
    assert_eq!(view["network_interface"], "cni-podman3");
    assert_eq!(
        tool.json(&["inspect", "first"])["network_interface"],
        "cni-podman1"
    );
    let rows = tool.json(&["ls"]);
    let names: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cni-podman3", "first"]);

    let listing = || {
        let mut v: Vec<String> = fs::read_dir(world.netconf_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let before = listing();
    let dry = tool.ok(&["create", "--dry-run", "--internal", "dry"]);
    let parsed: Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(parsed["plugins"][0]["isGateway"], false);
    assert_eq!(listing(), before, "--dry-run wrote something");

    let refusals: &[(&[&str], &str)] = &[
        (
            &["create", "first"],
            "network name \"first\" is already used by",
        ),
        (
            &["create", "--subnet", "10.89.0.128/25", "x"],
            "overlaps with address 10.89.0.1/24 on vdev0",
        ),
        (
            &["create", "--subnet", "10.89.1.128/25", "x"],
            "overlaps with network \"first\"",
        ),
        (
            &[
                "create",
                "--subnet",
                "10.91.0.0/24",
                "--gateway",
                "10.92.0.1",
                "x",
            ],
            "gateway 10.92.0.1 is not a usable address",
        ),
        (
            &[
                "create",
                "--subnet",
                "10.91.0.0/24",
                "--ip-range",
                "10.91.1.0/25",
                "x",
            ],
            "is not inside subnet",
        ),
        (
            &["create", "--opt", "mode=vepa", "x"],
            "option \"mode\" is not supported with driver \"bridge\"",
        ),
        (
            &["create", "--driver", "macvlan", "--opt", "parent=eth9", "x"],
            "parent interface eth9 does not exist",
        ),
        (
            &["create", "--interface-name", "vdev0", "x"],
            "not a bridge",
        ),
        (&["create", "../evil"], "invalid network name"),
        (&["rm", "../first"], "invalid network name"),
        (&["rm", "nosuch"], "no network \"nosuch\""),
        (
            &["inspect", "nosuch"],
            "no net configuration with name \"nosuch\"",
        ),
    ];
    for (args, want) in refusals {
        let out = tool.run(args);
        assert_eq!(out.status, Some(1), "{args:?}:\n{}", out.describe());
        assert!(
            out.stderr_str().contains(want),
            "{args:?} wanted {want:?}:\n{}",
            out.describe()
        );
    }
    assert_eq!(listing(), before, "a refused command wrote something");
    let usage = tool.run(&["create", "--no-such-flag"]);
    assert_eq!(usage.status, Some(2), "{}", usage.describe());

    tool.ok(&["rm", "first"]);
    assert!(!world.netconf_dir().join("first.conflist").exists());
}

#[test]
fn rm_force_deletes_the_bridge_only_when_no_container_uses_it() {
    let world = World::new();
    prime_nat(world.host());
    let tool = world.conflist_tool();
    let data = world.data_dir().display().to_string();
    tool.ok(&["create", "--ipam-data-dir", &data, "busy"]);
    tool.ok(&["create", "--ipam-data-dir", &data, "idle"]);
    let cnitool = world.cnitool().plugin_dir(tool.cni_path());
    let a = world.container();
    let b = world.container();
    cnitool.add("busy", &a).expect_success();
    cnitool.add("idle", &b).expect_success();
    cnitool.del("idle", &b).expect_silent_success();
    let busy_bridge = tool.json(&["inspect", "busy"])["network_interface"]
        .as_str()
        .unwrap()
        .to_owned();
    let idle_bridge = tool.json(&["inspect", "idle"])["network_interface"]
        .as_str()
        .unwrap()
        .to_owned();

    let refused = tool.run(&["rm", "busy"]);
    assert_eq!(refused.status, Some(1));
    assert!(
        refused
            .stderr_str()
            .contains("attachments in the result cache"),
        "{}",
        refused.describe()
    );
    // Kept to detach `a` at the end: the podman-style firewall has no dataDir of the test's
    // own, so its state for `a` lives in the machine's /run/cni/firewall until a DEL.
    let busy_conflist = world.netconf_dir().join("busy.conflist");
    let busy_text = std::fs::read(&busy_conflist).unwrap();
    let out = tool.run(&["rm", "--force", "busy"]);
    out.expect_success();
    assert!(
        out.stderr_str().contains("kept the bridge"),
        "{}",
        out.describe()
    );
    assert!(has_link(world.host(), &busy_bridge));
    let out = tool.run(&["rm", "--force", "idle"]);
    out.expect_success();
    assert!(!has_link(world.host(), &idle_bridge), "{}", out.describe());
    assert!(
        nat_chains(world.host(), false)
            .iter()
            .any(|c| c.starts_with("CNI-"))
    );
    std::fs::write(&busy_conflist, busy_text).unwrap();
    cnitool.del("busy", &a).expect_silent_success();
}

#[test]
fn macvlan_and_internal_networks_run_through_cnitool() {
    let world = World::new();
    prime_nat(world.host());
    let host = world.host();
    host.run_ok(&[
        "ip", "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p",
    ]);
    host.run_ok(&["ip", "link", "set", "lan0", "up"]);
    let tool = world.conflist_tool();
    let data = world.data_dir().display().to_string();
    tool.ok(&[
        "create",
        "--driver",
        "macvlan",
        "--opt",
        "parent=lan0",
        "--opt",
        "mode=bridge",
        "--subnet",
        "192.168.77.0/24",
        "--ipam-data-dir",
        &data,
        "lan",
    ]);
    tool.ok(&[
        "create",
        "--internal",
        "--opt",
        "isolate=true",
        "--ipam-data-dir",
        &data,
        "backend",
    ]);
    let report = tool.json(&["validate", "--all"]);
    assert_eq!(report["errors"], 0, "{report:#}");

    let cnitool = world.cnitool().plugin_dir(tool.cni_path());
    let ctr = world.container();
    let lan = cnitool.add("lan", &ctr).expect_success().json();
    assert!(
        lan["ips"][0]["address"]
            .as_str()
            .unwrap()
            .starts_with("192.168.77.")
    );
    cnitool.check("lan", &ctr).expect_silent_success();
    let internal = cnitool
        .clone()
        .ifname("eth1")
        .add("backend", &ctr)
        .expect_success()
        .json();
    assert_eq!(
        internal["interfaces"][0]["name"], "cni-podman1",
        "{internal:#}"
    );
    let bridge_addrs = global_addrs(world.host(), "cni-podman1");
    assert!(
        bridge_addrs.is_empty(),
        "an internal bridge is no gateway: {bridge_addrs:?}"
    );
    assert!(
        default_route(&ctr, "-4").is_none_or(|r| r["dev"] != "eth1"),
        "an internal network has no default route"
    );
    cnitool
        .clone()
        .ifname("eth1")
        .del("backend", &ctr)
        .expect_silent_success();
    cnitool.del("lan", &ctr).expect_silent_success();
    assert!(!has_link(&ctr, "eth0") && !has_link(&ctr, "eth1"));
}

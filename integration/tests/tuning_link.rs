//! tuning chained after bridge (through cnitool): the container side's MTU (1450, and jumbo
//! 9000 with and without a jumbo bridge), MAC (config, CNI_ARGS, `runtimeConfig.mac` through
//! the `mac` capability, `args.cni.mac`; visible in the libcni cache and on the link),
//! promiscuous and all-multicast mode and txqueuelen — each applied on ADD, recorded in the
//! backup, put back by tuning's own DEL (run directly, while the veth still exists) and gone
//! with the bridge's DEL, back to the baseline.

use std::os::unix::fs::PermissionsExt;

use integration_tests::bridge::iface_name;
use integration_tests::inspect::link;
use integration_tests::traffic::assert_reachable;
use integration_tests::tuning::{container_iface, link_tunables};
use integration_tests::{PluginCall, TuningNet, World, assert_same};
use serde_json::{Value, json};

/// Tuning's DEL alone, with the same tuning config the ADD had.
fn tuning_del(t: &TuningNet<'_>, tuning: &Value, id: &str, ctr: &integration_tests::Netns) {
    let conf = t.direct_conf("1.0.0", tuning.clone(), None);
    t.exec(&PluginCall::del(&conf).id(id).ifname("eth0").netns(ctr))
        .expect_silent_success();
}

#[test]
fn mtu_1450_is_set_on_the_container_side_and_restored() {
    let world = World::new();
    let t = TuningNet::new(&world, "tunmtu", "10.131.0.0/24");
    let tuning = json!({"mtu": 1450});
    t.write("1.0.0", json!({}), tuning.clone());
    let ctr = world.container();
    let baseline = t.snapshot();
    let id = t.tool().effective_container_id(&ctr);

    let result = t.add(&ctr);
    assert_eq!(link(&ctr, "eth0")["mtu"], json!(1450));
    let veth = iface_name(&result, 1);
    assert_eq!(
        link(world.host(), &veth)["mtu"],
        json!(1500),
        "host side untouched"
    );
    let backup = t.backup(&id, "eth0").expect("backup written at ADD");
    assert_eq!(backup["mtu"], json!(1500), "{backup}");
    for key in ["mac", "promisc", "allmulti", "txQLen"] {
        assert!(backup.get(key).is_none(), "{key} was not touched: {backup}");
    }
    let meta = std::fs::metadata(t.backup_path(&id, "eth0")).expect("stat backup");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(t.backup_path(&id, "eth0")).unwrap_or_default();
    assert!(
        text.starts_with("{\n \""),
        "indented by one space: {text:?}"
    );
    t.check(&ctr).expect_silent_success();

    tuning_del(&t, &tuning, &id, &ctr);
    assert_eq!(
        link(&ctr, "eth0")["mtu"],
        json!(1500),
        "restored by tuning DEL"
    );
    assert_eq!(t.backup_files(), Vec::<String>::new());

    t.del(&ctr);
    assert_same!(baseline, t.snapshot(), "after DEL");
}

#[test]
fn jumbo_mtu_9000_is_set_and_carries_jumbo_frames_on_a_jumbo_bridge() {
    let world = World::new();
    let t = TuningNet::new(&world, "tunjumbo", "10.132.0.0/24");
    let ctr = world.container();
    let tuning = json!({"mtu": 9000});

    // On a 1500 bridge: only the container side is raised.
    t.write("1.0.0", json!({}), tuning.clone());
    let baseline = t.snapshot();
    let id = t.tool().effective_container_id(&ctr);
    let result = t.add(&ctr);
    assert_eq!(link(&ctr, "eth0")["mtu"], json!(9000));
    assert_eq!(
        link(world.host(), &iface_name(&result, 1))["mtu"],
        json!(1500)
    );
    assert_eq!(
        t.backup(&id, "eth0").map(|b| b["mtu"].clone()),
        Some(json!(1500))
    );
    t.check(&ctr).expect_silent_success();
    t.del(&ctr);
    assert_same!(baseline, t.snapshot(), "after DEL on the 1500 bridge");

    // On a jumbo bridge the whole path carries 9000-byte packets without fragmenting.
    t.write("1.0.0", json!({"mtu": 9000}), tuning);
    let result = t.add(&ctr);
    assert_eq!(link(&ctr, "eth0")["mtu"], json!(9000));
    assert_eq!(
        link(world.host(), &iface_name(&result, 1))["mtu"],
        json!(9000)
    );
    assert_reachable(&ctr, "10.132.0.1");
    let big = ctr.run(&[
        "ping",
        "-n",
        "-q",
        "-c",
        "1",
        "-W",
        "2",
        "-M",
        "do",
        "-s",
        "8972",
        "10.132.0.1",
    ]);
    assert!(big.success(), "jumbo DF ping\n{}", big.describe());
    t.check(&ctr).expect_silent_success();
    t.del(&ctr);
    assert_eq!(t.backup_files(), Vec::<String>::new());
    // The bridge keeps its new MTU (snapshots leave the bridge out); the conflist changed.
    let no_netconf =
        |s: integration_tests::Snapshot| s.without_lines(|l| l.starts_with("netconf/"));
    assert_same!(
        no_netconf(baseline),
        no_netconf(t.snapshot()),
        "after DEL on the jumbo bridge"
    );
}

const MAC_CONF: &str = "c2:00:00:00:83:01";
const MAC_ARGS: &str = "c2:00:00:00:83:02";
const MAC_RUNTIME: &str = "c2:00:00:00:83:03";
const MAC_ARGS_CNI: &str = "c2:00:00:00:83:04";

#[test]
fn mac_precedence_is_config_then_cni_args_then_runtime_config_then_args_cni() {
    let world = World::new();
    let t = TuningNet::new(&world, "tunmac", "10.133.0.0/24");
    t.write("1.0.0", json!({}), json!({}));
    let ctr = world.container();
    let baseline = t.snapshot();
    let id = t.tool().effective_container_id(&ctr);
    let prev = t.add(&ctr);
    let original = link(&ctr, "eth0")["address"].clone();
    assert_eq!(container_iface(&prev, "eth0")["mac"], original);

    let args = format!("IgnoreUnknown=1;MAC={MAC_ARGS}");
    let cases: Vec<(Value, Option<&str>, &str)> = vec![
        (json!({"mac": MAC_CONF}), None, MAC_CONF),
        (json!({"mac": MAC_CONF}), Some(&args), MAC_ARGS),
        (
            json!({"mac": MAC_CONF, "runtimeConfig": {"mac": MAC_RUNTIME}}),
            Some(&args),
            MAC_RUNTIME,
        ),
        (
            json!({"mac": MAC_CONF, "runtimeConfig": {"mac": MAC_RUNTIME},
                   "args": {"cni": {"mac": MAC_ARGS_CNI}}}),
            Some(&args),
            MAC_ARGS_CNI,
        ),
    ];
    for (tuning, cni_args, want) in cases {
        let conf = t.direct_conf("1.0.0", tuning.clone(), Some(&prev));
        let mut add = PluginCall::add(&conf).id(&id).ifname("eth0").netns(&ctr);
        if let Some(a) = cni_args {
            add = add.args(a);
        }
        let result = t.exec(&add).result();
        assert_eq!(
            container_iface(&result, "eth0")["mac"],
            json!(want),
            "{tuning}"
        );
        assert_eq!(link(&ctr, "eth0")["address"], json!(want), "{tuning}");
        // Only the container's entry changes.
        assert_eq!(result["interfaces"][0], prev["interfaces"][0]);
        assert_eq!(result["interfaces"][1], prev["interfaces"][1]);
        let backup = t.backup(&id, "eth0").expect("backup");
        assert_eq!(backup["mac"], original, "{backup}");
        let mut del = PluginCall::del(&conf).id(&id).ifname("eth0").netns(&ctr);
        if let Some(a) = cni_args {
            del = del.args(a);
        }
        t.exec(&del).expect_silent_success();
        assert_eq!(
            link(&ctr, "eth0")["address"],
            original,
            "restored after {tuning}"
        );
        assert_eq!(t.backup_files(), Vec::<String>::new());
    }
    t.del(&ctr);
    assert_same!(baseline, t.snapshot(), "after DEL");
}

#[test]
fn mac_from_the_mac_capability_and_args_cni_reaches_the_libcni_cache() {
    let world = World::new();
    let t = TuningNet::new(&world, "tuncache", "10.134.0.0/24");
    let (c1, c2) = (world.container(), world.container());
    let baseline = t.snapshot();
    let caps = json!({"mac": MAC_RUNTIME});

    t.write("1.0.0", json!({}), json!({"capabilities": {"mac": true}}));
    let id = t.tool().effective_container_id(&c1);
    let result = t.tool().cap_args(&caps).add(t.net(), &c1).result();
    assert_eq!(container_iface(&result, "eth0")["mac"], json!(MAC_RUNTIME));
    assert_eq!(link(&c1, "eth0")["address"], json!(MAC_RUNTIME));
    let cached = world.read_cache(t.net(), &id, "eth0").expect("cache entry");
    assert_eq!(cached["result"], result, "libcni caches tuning's result");
    t.tool()
        .cap_args(&caps)
        .check(t.net(), &c1)
        .expect_silent_success();
    t.tool()
        .cap_args(&caps)
        .del(t.net(), &c1)
        .expect_silent_success();

    // args.cni in the conflist beats the capability.
    t.write(
        "1.0.0",
        json!({}),
        json!({"capabilities": {"mac": true}, "args": {"cni": {"mac": MAC_ARGS_CNI}}}),
    );
    let id = t.tool().effective_container_id(&c2);
    let result = t.tool().cap_args(&caps).add(t.net(), &c2).result();
    assert_eq!(container_iface(&result, "eth0")["mac"], json!(MAC_ARGS_CNI));
    assert_eq!(link(&c2, "eth0")["address"], json!(MAC_ARGS_CNI));
    let cached = world.read_cache(t.net(), &id, "eth0").expect("cache entry");
    assert_eq!(
        container_iface(&cached["result"], "eth0")["mac"],
        json!(MAC_ARGS_CNI)
    );
    t.tool()
        .cap_args(&caps)
        .del(t.net(), &c2)
        .expect_silent_success();

    let no_netconf =
        |s: integration_tests::Snapshot| s.without_lines(|l| l.starts_with("netconf/"));
    assert_same!(no_netconf(baseline), no_netconf(t.snapshot()), "after DEL");
}

#[test]
fn promisc_allmulti_and_txqlen_are_applied_and_restored() {
    let world = World::new();
    let t = TuningNet::new(&world, "tunflags", "10.135.0.0/24");
    let tuning = json!({"promisc": true, "allmulti": true, "txQLen": 2000});
    t.write("1.0.0", json!({}), tuning.clone());
    let ctr = world.container();
    let baseline = t.snapshot();
    let id = t.tool().effective_container_id(&ctr);

    t.add(&ctr);
    let before_del = link_tunables(&ctr, "eth0");
    assert_eq!(before_del["promisc"], json!(true), "{before_del}");
    assert_eq!(before_del["allmulti"], json!(true), "{before_del}");
    assert_eq!(before_del["txqlen"], json!(2000), "{before_del}");
    let backup = t.backup(&id, "eth0").expect("backup");
    assert_eq!(backup["promisc"], json!(false), "{backup}");
    assert_eq!(backup["allmulti"], json!(false), "{backup}");
    assert_eq!(backup["txQLen"], json!(1000), "{backup}");
    assert!(
        backup.get("mtu").is_none() && backup.get("mac").is_none(),
        "{backup}"
    );
    t.check(&ctr).expect_silent_success();

    tuning_del(&t, &tuning, &id, &ctr);
    let after = link_tunables(&ctr, "eth0");
    assert_eq!(
        (
            after["promisc"].clone(),
            after["allmulti"].clone(),
            after["txqlen"].clone()
        ),
        (json!(false), json!(false), json!(1000)),
        "{after}"
    );
    assert_eq!(after["mtu"], before_del["mtu"]);
    assert_eq!(after["mac"], before_del["mac"]);
    assert_eq!(t.backup_files(), Vec::<String>::new());

    t.del(&ctr);
    assert_same!(baseline, t.snapshot(), "after DEL");
}

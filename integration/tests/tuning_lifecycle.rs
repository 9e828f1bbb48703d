//! tuning's backup across the lifecycle: DEL after the netns is gone (backup removed), DEL
//! twice / without a backup / without CNI_NETNS, a corrupt backup, the dataDir created 0700 on
//! first use, a repeated ADD that keeps the original values, and spec 1.1.0 by direct exec
//! (ADD, CHECK, STATUS, GC).

use std::os::unix::fs::PermissionsExt;
use std::thread;
use std::time::{Duration, Instant};

use integration_tests::bridge::iface_name;
use integration_tests::inspect::{has_link, link};
use integration_tests::{PluginCall, TuningNet, World, assert_same, config};
use serde_json::json;

fn wait_for_link_gone(ns: &integration_tests::Netns, name: &str) {
    let start = Instant::now();
    while has_link(ns, name) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{name} outlived its peer"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn del_after_the_netns_is_gone_removes_the_backup() {
    let world = World::new();
    let t = TuningNet::new(&world, "tungone", "10.161.0.0/24");
    t.write(
        "1.0.0",
        json!({}),
        json!({"mtu": 1450, "sysctl": {"net.core.somaxconn": "512"}}),
    );
    let ctr = world.container();
    let baseline = t.bench.host_snapshot();
    let id = t.tool().effective_container_id(&ctr);
    let result = t.add(&ctr);
    assert!(t.backup(&id, "eth0").is_some());

    let path = ctr.path_str();
    world.delete_netns(&ctr);
    wait_for_link_gone(world.host(), &iface_name(&result, 1));
    t.tool().del_path(t.net(), &path).expect_silent_success();
    assert_eq!(t.backup_files(), Vec::<String>::new(), "backup left behind");
    assert_same!(
        baseline,
        t.bench.host_snapshot(),
        "after DEL without the netns"
    );
    t.tool().del_path(t.net(), &path).expect_silent_success();
}

#[test]
fn del_is_idempotent_and_copes_with_missing_netns_arg_and_corrupt_backups() {
    let world = World::new();
    let t = TuningNet::new(&world, "tunidem", "10.162.0.0/24");
    let tuning = json!({"mtu": 1450});
    t.write("1.0.0", json!({}), tuning.clone());
    let ctr = world.container();
    let baseline = t.snapshot();
    let id = t.tool().effective_container_id(&ctr);
    let conf = t.direct_conf("1.0.0", tuning, None);
    let del = PluginCall::del(&conf).id(&id).ifname("eth0").netns(&ctr);

    // No backup at all: nothing to do.
    t.exec(&del).expect_silent_success();

    t.add(&ctr);
    t.del(&ctr);
    t.del(&ctr);
    assert_same!(baseline, t.snapshot(), "after two DELs");

    // Without CNI_NETNS nothing can be restored; the backup goes.
    t.add(&ctr);
    t.exec(&PluginCall::del(&conf).id(&id).ifname("eth0"))
        .expect_silent_success();
    assert_eq!(t.backup_files(), Vec::<String>::new());
    assert_eq!(
        link(&ctr, "eth0")["mtu"],
        json!(1450),
        "nothing restored without a netns"
    );
    t.del(&ctr);
    assert_same!(baseline, t.snapshot(), "after DEL without CNI_NETNS");

    // A backup that does not parse must not make DEL fail forever.
    t.add(&ctr);
    std::fs::write(t.backup_path(&id, "eth0"), b"{not json").expect("corrupt the backup");
    t.exec(&del).expect_silent_success();
    assert_eq!(t.backup_files(), Vec::<String>::new());
    t.del(&ctr);
    assert_same!(baseline, t.snapshot(), "after DEL with a corrupt backup");
}

#[test]
fn the_data_dir_is_created_0700_and_a_second_add_keeps_the_original_values() {
    let world = World::new();
    let t = TuningNet::new(&world, "tunfresh", "10.163.0.0/24");
    let fresh = world.state_dir().join("fresh/tuning");
    let dir = fresh.to_string_lossy().into_owned();
    t.write("1.0.0", json!({}), json!({}));
    let ctr = world.container();
    let baseline = t.snapshot();
    let id = t.tool().effective_container_id(&ctr);
    let prev = t.add(&ctr);

    let run = |verb: &str, mtu: u32| {
        let conf = t.direct_conf("1.0.0", json!({"dataDir": dir, "mtu": mtu}), Some(&prev));
        t.exec(
            &PluginCall::new(verb, &conf)
                .id(&id)
                .ifname("eth0")
                .netns(&ctr),
        )
    };
    run("ADD", 1450).expect_success();
    let mode = std::fs::metadata(&fresh)
        .expect("dataDir created")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "dataDir mode {mode:o}");
    let file = fresh.join(format!("{id}_eth0.json"));
    let backup: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("backup")).expect("JSON");
    assert_eq!(backup["mtu"], json!(1500));

    // ADD again with another value: DEL must still go back to the value before the first ADD.
    run("ADD", 1400).expect_success();
    assert_eq!(link(&ctr, "eth0")["mtu"], json!(1400));
    run("DEL", 1400).expect_silent_success();
    assert_eq!(link(&ctr, "eth0")["mtu"], json!(1500), "the original MTU");
    assert!(!file.exists(), "backup removed");
    t.del(&ctr);
    // Only the (now empty) dataDir and its parent remain.
    let created =
        |l: &str| l.starts_with("state/fresh ") || l.starts_with("state/fresh/tuning dir 0700");
    let after = t.snapshot();
    assert_same!(baseline, after.without_lines(created), "after DEL");
    assert_ne!(after, after.without_lines(created), "the dataDir stays");
}

#[test]
fn spec_1_1_0_add_check_status_and_gc_by_direct_exec() {
    let world = World::new();
    let t = TuningNet::new(&world, "tunv11", "10.164.0.0/24");
    let tuning = json!({"mtu": 1450, "sysctl": {"net.ipv4.conf.IFNAME.arp_filter": "1"}});
    let bridge = config::merge(
        json!({"cniVersion": "1.1.0", "name": t.net()}),
        t.bridge_conf(json!({})),
    );
    let (c1, c2) = (world.container(), world.container());
    let baseline = t.snapshot();

    let mut results = Vec::new();
    for (id, ctr) in [("keep", &c1), ("stale", &c2)] {
        let prev = t
            .bench
            .exec(&PluginCall::add(&bridge).id(id).ifname("eth0").netns(ctr))
            .result();
        let conf = t.direct_conf("1.1.0", tuning.clone(), Some(&prev));
        let result = t
            .exec(&PluginCall::add(&conf).id(id).ifname("eth0").netns(ctr))
            .result();
        assert_eq!(result["cniVersion"], json!("1.1.0"), "{result}");
        assert_eq!(link(ctr, "eth0")["mtu"], json!(1450));
        assert_eq!(
            TuningNet::sysctls(ctr, &["net/ipv4/conf/eth0/arp_filter"])["net/ipv4/conf/eth0/arp_filter"],
            "1"
        );
        t.exec(&PluginCall::check(&conf).id(id).ifname("eth0").netns(ctr))
            .expect_silent_success();
        results.push(result);
    }
    let plain = t.direct_conf("1.1.0", tuning.clone(), None);
    t.exec(&PluginCall::status(&plain)).expect_silent_success();

    let mut gc = plain.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    t.exec(&PluginCall::gc(&gc)).expect_silent_success();
    assert_eq!(
        t.backup_files(),
        vec!["keep_eth0.json".to_owned()],
        "GC removes the stale backup"
    );
    // A backup of another network is not this network's to collect.
    let other = t.data_dir().join("other_eth0.json");
    std::fs::write(&other, br#"{"mtu": 1500, "network": "someone-else"}"#).expect("write");
    t.exec(&PluginCall::gc(&gc)).expect_silent_success();
    assert!(other.exists(), "GC removed another network's backup");
    std::fs::remove_file(&other).expect("remove");

    // STATUS reports a dataDir that cannot be used.
    let blocker = world.write_file("state/not-a-dir", b"");
    let bad = t.direct_conf(
        "1.1.0",
        json!({"dataDir": blocker.join("sub").to_string_lossy()}),
        None,
    );
    t.exec(&PluginCall::status(&bad))
        .expect_error(50, "is not usable");
    std::fs::remove_file(&blocker).expect("remove");

    for (id, ctr) in [("keep", &c1), ("stale", &c2)] {
        t.exec(&PluginCall::del(&plain).id(id).ifname("eth0").netns(ctr))
            .expect_silent_success();
        t.bench
            .exec(&PluginCall::del(&bridge).id(id).ifname("eth0").netns(ctr))
            .expect_silent_success();
    }
    assert_eq!(t.backup_files(), Vec::<String>::new());
    assert_same!(baseline, t.snapshot(), "after DEL of both");
}

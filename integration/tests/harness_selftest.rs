//! Proves the harness itself, using only the Go reference plugins in /usr/lib/cni, so these
//! tests mean something even before our plugins are built.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::panic;
use std::path::PathBuf;
use std::sync::Mutex;

use integration_tests::locate::REFERENCE_PLUGIN_DIR;
use integration_tests::{
    Plugin, PluginCall, Snapshot, World, assert_same, cnitool_container_id, config, read_tree,
    strip_empty,
};
use serde_json::json;

#[test]
fn world_creates_and_removes_its_namespaces_and_directory() {
    let world = World::new();
    let ctr = world.container();
    let (host, root) = (world.host().clone(), world.root().to_path_buf());
    assert!(host.exists() && ctr.exists());
    assert!(host.lo_is_up(), "host netns must have lo up");
    assert!(!ctr.lo_is_up(), "a container netns starts untouched");
    for sub in ["netconf", "cache/results", "ipam", "state"] {
        assert!(root.join(sub).is_dir(), "{sub} missing");
    }
    drop(world);
    assert!(!host.exists() && !ctr.exists(), "namespaces left behind");
    assert!(!root.exists(), "temporary directory left behind");
}

#[test]
fn world_cleans_up_when_the_test_panics() {
    let seen: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let outcome = panic::catch_unwind(|| {
        let world = World::new();
        let ctr = world.container();
        seen.lock()
            .unwrap()
            .extend([world.host().path(), ctr.path(), world.root().into()]);
        panic!("simulated test failure");
    });
    assert!(outcome.is_err());
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), 3);
    for path in seen {
        assert!(
            !path.exists(),
            "{} survived a panicking test",
            path.display()
        );
    }
}

#[test]
fn parallel_worlds_get_distinct_names() {
    let names: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let w = World::new();
                    let c = w.container();
                    vec![w.host().name().to_owned(), c.name().to_owned()]
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "{names:?}");
}

#[test]
fn snapshots_are_stable_and_see_links_rules_and_files() {
    let world = World::new();
    let ctr = world.container();
    let before = world.snapshot();
    assert_same!(before, world.snapshot(), "two snapshots in a row");

    ctr.run_ok(&[
        "ip", "link", "add", "cnitv0", "type", "veth", "peer", "name", "cnitv1",
    ]);
    let diff = before.diff(&world.snapshot()).expect("new link must show");
    assert!(diff.contains("cnitv0") && diff.contains("cnitv1"), "{diff}");
    ctr.run_ok(&["ip", "link", "del", "cnitv0"]);
    // The kernel keeps counting ifindex, but the links are gone again.
    assert_same!(before, world.snapshot(), "after deleting the veth pair");

    world
        .host()
        .run_ok(&["nft", "add", "table", "inet", "cnitprobe"]);
    let diff = before
        .diff(&world.snapshot())
        .expect("new nft table must show");
    assert!(diff.contains("+ table inet cnitprobe"), "{diff}");

    world
        .host()
        .run_ok(&["iptables", "-t", "nat", "-N", "CNIT-PROBE"]);
    let diff = before.diff(&world.snapshot()).expect("new chain must show");
    assert!(diff.contains("+ :CNIT-PROBE -"), "{diff}");
    world.host().run_ok(&["ip6tables", "-N", "CNIT-PROBE6"]);
    let diff = before
        .diff(&world.snapshot())
        .expect("new v6 chain must show");
    assert!(diff.contains("ip6tables-save"), "{diff}");

    fs::write(world.data_dir().join("probe"), b"a\r\nb").unwrap();
    let diff = before.diff(&world.snapshot()).expect("new file must show");
    assert!(
        diff.contains(r#"+ ipam/probe file 0644 "a\r\nb""#),
        "{diff}"
    );
}

#[test]
fn snapshot_sections_cover_every_namespace_and_the_tree() {
    let world = World::new();
    let ctr = world.container();
    let snap = world.snapshot();
    for ns in [world.host().name(), ctr.name()] {
        for what in [
            "link",
            "addr",
            "route4",
            "route6",
            "iptables-save",
            "ip6tables-save",
            "nft",
        ] {
            let name = format!("netns {ns}: {what}");
            assert!(
                snap.section(&name).is_some(),
                "missing {name}: {:?}",
                snap.section_names()
            );
        }
    }
    let tree = snap.section("dir world").unwrap();
    assert!(tree.contains("cache/results dir 0700\n"), "{tree}");
    let host_routes = snap
        .section(&format!("netns {}: route4", world.host().name()))
        .unwrap();
    assert!(
        host_routes.contains("127.0.0.1"),
        "lo up gives local routes: {host_routes}"
    );
    assert!(Snapshot::dir("x", &world.root().join("nope")).section("dir x") == Some(""));
}

#[test]
fn cnitool_container_id_is_derived_like_libcni() {
    // Value verified against upstream cnitool (shared/docs/cni-facts.md §1.16).
    assert_eq!(
        cnitool_container_id(std::path::Path::new("/run/netns/refA")),
        "cnitool-f09c7c96cd7b16d5da00"
    );
}

#[test]
fn plugins_get_only_cni_variables_and_path() {
    let world = World::new();
    let script = world.write_file("state/envdump", b"#!/bin/sh\nenv\ncat\n");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let dump = Plugin {
        name: "envdump".into(),
        path: script.clone(),
        dir: script.parent().unwrap().into(),
    };
    let out = world.exec(
        &dump,
        &PluginCall::raw("ADD", b"{\"stdin\":1}".to_vec())
            .id("c1")
            .args("A=1"),
    );
    let text = out.expect_success().stdout_str();
    let (env, stdin) = text.split_once('{').unwrap();
    assert_eq!(stdin, "\"stdin\":1}");
    let mut keys: Vec<&str> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k)
        .collect();
    keys.sort_unstable();
    // PWD is added by /bin/sh itself.
    assert_eq!(
        keys,
        [
            "CNI_ARGS",
            "CNI_COMMAND",
            "CNI_CONTAINERID",
            "CNI_PATH",
            "PATH",
            "PWD"
        ],
        "{text}"
    );
    assert!(
        env.contains(&format!("CNI_PATH={}\n", dump.dir.display())),
        "{env}"
    );
}

#[test]
fn reference_loopback_round_trip_through_cnitool() {
    let world = World::new();
    let ctr = world.container();
    ctr.cycle_loopback();
    world.write_conflist(
        "10-lo",
        &config::conflist("1.0.0", "lonet", vec![json!({"type": "loopback"})]),
    );
    let baseline = world.snapshot();
    let tool = world.cnitool().plugin_dir(REFERENCE_PLUGIN_DIR);
    let id = tool.effective_container_id(&ctr);

    let result = strip_empty(tool.add("lonet", &ctr).result());
    assert_eq!(
        result,
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": ctr.path_str()}],
            "ips": [
                {"interface": 0, "address": "127.0.0.1/8"},
                {"interface": 0, "address": "::1/128"}
            ]
        })
    );
    assert!(ctr.lo_is_up());
    let cache = world
        .read_cache("lonet", &id, "eth0")
        .expect("cache file written");
    assert_eq!(cache["kind"], "cniCacheV1");
    assert_eq!(cache["containerId"], json!(id));
    assert_eq!(strip_empty(cache["result"].clone()), result);

    tool.check("lonet", &ctr).expect_silent_success();
    tool.del("lonet", &ctr).expect_silent_success();
    assert!(!ctr.lo_is_up());
    assert_same!(baseline, world.snapshot(), "after reference loopback DEL");
}

#[test]
fn reference_host_local_direct_round_trip_and_error_parsing() {
    let world = World::new();
    let ctr = world.container();
    let go = Plugin::reference("host-local");
    let conf = config::host_local(
        "1.0.0",
        "refnet",
        &world.data_dir(),
        config::ranges(&["10.66.0.0/24"]),
    );
    let baseline = world.snapshot();

    let add = PluginCall::add(&conf).id("c1").ifname("eth0").netns(&ctr);
    let result = strip_empty(world.exec(&go, &add).result());
    assert_eq!(
        result,
        json!({"cniVersion": "1.0.0", "ips": [{"address": "10.66.0.2/24", "gateway": "10.66.0.1"}]})
    );
    let tree = read_tree(&world.data_dir().join("refnet"));
    assert_eq!(tree["10.66.0.2"].content(), b"c1\r\neth0");
    assert_eq!(tree["last_reserved_ip.0"].content(), b"10.66.0.2");

    let del = PluginCall::del(&conf).id("c1").ifname("eth0").netns(&ctr);
    world.exec(&go, &del).expect_silent_success();
    let after = world.snapshot();
    let diff = baseline
        .diff(&after)
        .expect("lock and last_reserved_ip.0 stay");
    assert!(diff.contains("+ ipam/refnet/lock"), "{diff}");
    assert!(diff.contains("+ ipam/refnet/last_reserved_ip.0"), "{diff}");
    assert!(!diff.contains("10.66.0.2 file"), "{diff}");

    let mut nameless = conf.clone();
    nameless.as_object_mut().unwrap().remove("name");
    let err = world.exec(
        &go,
        &PluginCall::add(&nameless)
            .id("c1")
            .ifname("eth0")
            .netns(&ctr),
    );
    let err = err.expect_error(7, "missing network name");
    assert_eq!(err.cni_version, None, "Go errors carry no cniVersion");
}

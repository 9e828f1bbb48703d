//! `cni-conflist exec` against the real libcni: an attachment made by one is checked and
//! deleted by the other (through libcni's `cniCacheV1` result cache) and nothing is left
//! behind; GC with valid attachments derived from the cache and live namespaces; STATUS.

use std::fs;

use integration_tests::bridge::{prime_nat, without_kept_state};
use integration_tests::inspect::{global_addrs, has_link};
use integration_tests::{Snapshot, World, assert_same, cnitool_container_id};
use serde_json::json;

fn settled(world: &World) -> Snapshot {
    without_kept_state(&world.snapshot(), world.host(), "cni-podman1")
}

/// A podman-style network `web` (bridge `cni-podman1`) whose bridge and chains exist already,
/// so a later add/del pair returns the world to the same snapshot.
fn web(world: &World) {
    prime_nat(world.host());
    let tool = world.conflist_tool();
    let data = world.data_dir().display().to_string();
    tool.ok(&[
        "create",
        "--ipam-data-dir",
        &data,
        "--opt",
        "isolate=true",
        "web",
    ]);
    let warm = world.container();
    tool.exec("add", "web", &warm).expect_success();
    tool.exec("del", "web", &warm).expect_silent_success();
    world.delete_netns(&warm);
}

#[test]
fn exec_add_then_cnitool_del_and_the_reverse_leave_nothing_behind() {
    let world = World::new();
    web(&world);
    let tool = world.conflist_tool();
    let cnitool = world.cnitool().plugin_dir(tool.cni_path());
    let ctr = world.container();
    let id = cnitool_container_id(&ctr.path());
    let baseline = settled(&world);

    // Ours adds, libcni checks and deletes.
    let out = tool.exec("add", "web", &ctr);
    let result = out.expect_success().json();
    let address = result["ips"][0]["address"].as_str().unwrap().to_owned();
    assert_eq!(global_addrs(&ctr, "eth0"), [address]);
    let cached = world
        .read_cache("web", &id, "eth0")
        .expect("exec add wrote the cache");
    assert_eq!(cached["kind"], "cniCacheV1");
    assert_eq!(cached["containerId"], id.as_str());
    assert_eq!(cached["netns"], ctr.path_str().as_str());
    assert_eq!(cached["result"], result);
    cnitool.check("web", &ctr).expect_silent_success();
    cnitool.del("web", &ctr).expect_silent_success();
    assert!(world.read_cache("web", &id, "eth0").is_none());
    assert!(!has_link(&ctr, "eth0"));
    assert_same!(baseline, settled(&world), "after exec add + cnitool del");

    // libcni adds, ours checks and deletes.
    cnitool.add("web", &ctr).expect_success();
    assert!(world.read_cache("web", &id, "eth0").is_some());
    tool.exec("check", "web", &ctr).expect_silent_success();
    tool.exec("del", "web", &ctr).expect_silent_success();
    assert!(world.read_cache("web", &id, "eth0").is_none());
    assert_same!(baseline, settled(&world), "after cnitool add + exec del");
}

#[test]
fn exec_passes_cni_args_capabilities_and_ifname_like_cnitool() {
    let world = World::new();
    web(&world);
    let ctr = world.container();
    let tool = world
        .conflist_tool()
        .env("CNI_IFNAME", "net1")
        .env("CNI_CONTAINERID", "ctr-explicit")
        .env("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web1")
        .env("CAP_ARGS", &json!({"ips": ["10.89.0.77/24"]}).to_string());
    let result = tool.exec("add", "web", &ctr).expect_success().json();
    assert_eq!(result["ips"][0]["address"], "10.89.0.77/24", "{result:#}");
    assert_eq!(global_addrs(&ctr, "net1"), ["10.89.0.77/24"]);
    let cached = world.read_cache("web", "ctr-explicit", "net1").unwrap();
    assert_eq!(
        cached["cniArgs"],
        json!([["IgnoreUnknown", "1"], ["K8S_POD_NAME", "web1"]])
    );
    assert_eq!(cached["capabilityArgs"], json!({"ips": ["10.89.0.77/24"]}));
    tool.exec("del", "web", &ctr).expect_silent_success();
    assert!(!has_link(&ctr, "net1"));

    let bad = world.conflist_tool().env("CNI_ARGS", "novalue");
    let out = bad.exec("add", "web", &ctr);
    assert_eq!(out.status, Some(1));
    assert!(
        out.stderr_str()
            .contains("invalid CNI_ARGS pair \"novalue\""),
        "{}",
        out.describe()
    );
    let out = world.conflist_tool().exec("add", "nosuch", &ctr);
    assert!(
        out.stderr_str()
            .contains("no net configuration with name \"nosuch\""),
        "{}",
        out.describe()
    );
}

#[test]
fn gc_deletes_attachments_whose_netns_is_gone_and_forwards_gc_on_1_1_0() {
    let world = World::new();
    prime_nat(world.host());
    let data = world.data_dir();
    let list = json!({"cniVersion": "1.1.0", "name": "gcnet", "plugins": [
        {"type": "bridge", "bridge": "cni-gc0", "isGateway": true, "ipMasq": true,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.89.40.0/24"}]], "dataDir": data}},
        {"type": "firewall"}
    ]});
    world.write_conflist("gcnet", &list);
    let tool = world.conflist_tool();
    let keep = world.container();
    let gone = world.container();
    tool.exec("add", "gcnet", &keep).expect_success();
    tool.exec("add", "gcnet", &gone).expect_success();
    tool.run(&["exec", "status", "gcnet", "-"])
        .expect_silent_success();
    // A reservation nobody holds: only the plugins' GC (host-local's) can find it.
    fs::write(data.join("gcnet/10.89.40.200"), "ghost\r\neth0").unwrap();
    let gone_id = cnitool_container_id(&gone.path());
    world.delete_netns(&gone);

    tool.run(&["exec", "gc", "gcnet", "-"])
        .expect_silent_success();
    assert!(
        world.read_cache("gcnet", &gone_id, "eth0").is_none(),
        "stale attachment kept"
    );
    let keep_id = cnitool_container_id(&keep.path());
    assert!(
        world.read_cache("gcnet", &keep_id, "eth0").is_some(),
        "live attachment deleted"
    );
    let mut left: Vec<String> = fs::read_dir(data.join("gcnet"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !integration_tests::hostlocal::is_bookkeeping(n))
        .collect();
    left.sort();
    assert_eq!(left.len(), 1, "only the live reservation stays: {left:?}");
    assert!(global_addrs(&keep, "eth0")[0].starts_with(&left[0]));
    tool.exec("check", "gcnet", &keep).expect_silent_success();
    tool.exec("del", "gcnet", &keep).expect_silent_success();
}

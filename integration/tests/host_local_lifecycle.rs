//! host-local CHECK, DEL idempotence, GC, STATUS and VERSION.

use std::fs;

use integration_tests::{
    HostLocal, Plugin, PluginCall, SUPPORTED_VERSIONS, World, assert_same, config,
};
use serde_json::{Value, json};

const V: &str = "1.1.0";

fn bench<'w>(world: &'w World, version: &str, ipam: Value) -> HostLocal<'w> {
    HostLocal::ours(
        world,
        config::host_local(version, "life", &world.data_dir(), ipam),
    )
}

fn v4(world: &World) -> HostLocal<'_> {
    bench(world, V, config::ranges(&["10.77.0.0/24"]))
}

/// GC request for `valid` (containerID, ifname) pairs under `key`.
fn gc(hl: &HostLocal<'_>, key: &str, valid: &[(&str, &str)]) -> integration_tests::Output {
    let mut conf = hl.conf.clone();
    conf[key] = valid
        .iter()
        .map(|(id, ifname)| json!({"containerID": id, "ifname": ifname}))
        .collect();
    hl.exec(&PluginCall::gc(&conf))
}

fn status(hl: &HostLocal<'_>) -> integration_tests::Output {
    hl.exec(&PluginCall::status(&hl.conf))
}

#[test]
fn check_passes_for_a_reservation_and_fails_after_del() {
    let world = World::new();
    let hl = v4(&world);
    let baseline = hl.snapshot();
    let result = hl.add("c1", "eth0").result();
    hl.check("c1", "eth0", Some(&result))
        .expect_silent_success();
    let before = world.snapshot();
    hl.del("c1", "eth0").expect_silent_success();
    let after_del = world.snapshot();
    assert!(before.diff(&after_del).is_some(), "DEL must release");
    let err = hl
        .check("c1", "eth0", Some(&result))
        .expect_error(114, "c1");
    assert_eq!(err.cni_version.as_deref(), Some(V));
    assert_same!(after_del, world.snapshot(), "a failed CHECK writes nothing");
    hl.assert_at_baseline(&baseline);
}

#[test]
fn check_for_an_unknown_attachment_fails() {
    let world = World::new();
    let hl = v4(&world);
    let baseline = hl.snapshot();
    hl.add("c1", "eth0").expect_success();
    hl.check("c9", "eth0", None).expect_error(114, "c9");
    hl.check("c1", "eth1", None).expect_error(114, "c1");
    hl.del_all(&[("c1", "eth0")]);
    hl.assert_at_baseline(&baseline);
}

#[test]
fn check_needs_config_version_0_4_0() {
    let world = World::new();
    let hl = bench(&world, "0.3.1", config::ranges(&["10.77.0.0/24"]));
    let baseline = hl.snapshot();
    hl.add("c1", "eth0").expect_success();
    let err = hl.check("c1", "eth0", None).expect_error(1, "");
    assert_eq!(err.cni_version.as_deref(), Some("0.3.1"));
    hl.del_all(&[("c1", "eth0")]);
    hl.assert_at_baseline(&baseline);
}

#[test]
fn del_is_idempotent_and_accepts_unknown_attachments() {
    let world = World::new();
    let hl = v4(&world);
    let baseline = hl.snapshot();
    hl.del("never-added", "eth0").expect_silent_success();
    hl.add("c1", "eth0").expect_success();
    hl.del("c1", "eth0").expect_silent_success();
    hl.del("c1", "eth0").expect_silent_success();
    hl.del("c9", "eth0").expect_silent_success();
    hl.assert_at_baseline(&baseline);
}

#[test]
fn del_releases_only_the_matching_attachment() {
    let world = World::new();
    let hl = v4(&world);
    let baseline = hl.snapshot();
    for (id, ifname) in [("c1", "eth0"), ("c1", "eth1"), ("c2", "eth0")] {
        hl.add(id, ifname).expect_success();
    }
    hl.del("c1", "eth0").expect_silent_success();
    let left: Vec<(String, Vec<u8>)> = hl.reservations().into_iter().collect();
    assert_eq!(
        left,
        [
            ("10.77.0.3".to_owned(), b"c1\r\neth1".to_vec()),
            ("10.77.0.4".to_owned(), b"c2\r\neth0".to_vec()),
        ]
    );
    hl.del_all(&[("c1", "eth1"), ("c2", "eth0")]);
    hl.assert_at_baseline(&baseline);
}

#[test]
fn del_without_netns_still_releases() {
    let world = World::new();
    let hl = v4(&world);
    let baseline = hl.snapshot();
    hl.add("c1", "eth0").expect_success();
    let del = PluginCall::del(&hl.conf).id("c1").ifname("eth0");
    hl.exec(&del).expect_silent_success();
    hl.assert_at_baseline(&baseline);
}

#[test]
fn gc_releases_every_reservation_not_listed() {
    let world = World::new();
    let hl = v4(&world);
    let baseline = hl.snapshot();
    for (id, ifname) in [("c1", "eth0"), ("c1", "eth1"), ("c2", "eth0")] {
        hl.add(id, ifname).expect_success();
    }
    gc(&hl, "cni.dev/valid-attachments", &[("c1", "eth0")]).expect_silent_success();
    let left: Vec<(String, Vec<u8>)> = hl.reservations().into_iter().collect();
    assert_eq!(left, [("10.77.0.2".to_owned(), b"c1\r\neth0".to_vec())]);
    hl.check("c1", "eth0", None).expect_silent_success();
    hl.del_all(&[("c1", "eth0")]);
    hl.assert_at_baseline(&baseline);
}

#[test]
fn gc_accepts_the_older_attachments_key() {
    let world = World::new();
    let hl = v4(&world);
    let baseline = hl.snapshot();
    hl.add("c1", "eth0").expect_success();
    hl.add("c2", "eth0").expect_success();
    gc(&hl, "cni.dev/attachments", &[("c2", "eth0")]).expect_silent_success();
    let left: Vec<String> = hl.reservations().into_keys().collect();
    assert_eq!(left, ["10.77.0.3"]);
    hl.del_all(&[("c2", "eth0")]);
    hl.assert_at_baseline(&baseline);
}

#[test]
fn gc_with_an_empty_list_releases_everything() {
    let world = World::new();
    let hl = bench(&world, V, config::ranges(&["10.79.0.0/24", "fd00:79::/64"]));
    let baseline = hl.snapshot();
    hl.add("c1", "eth0").expect_success();
    hl.add("c2", "eth0").expect_success();
    gc(&hl, "cni.dev/valid-attachments", &[]).expect_silent_success();
    hl.assert_at_baseline(&baseline);
}

#[test]
fn gc_and_status_need_config_version_1_1_0() {
    let world = World::new();
    let hl = bench(&world, "1.0.0", config::ranges(&["10.77.0.0/24"]));
    let baseline = hl.snapshot();
    hl.add("c1", "eth0").expect_success();
    let err = gc(&hl, "cni.dev/valid-attachments", &[]).expect_error(1, "");
    assert_eq!(err.cni_version.as_deref(), Some("1.0.0"));
    assert_eq!(hl.reservations().len(), 1, "a refused GC releases nothing");
    status(&hl).expect_error(1, "");
    hl.del_all(&[("c1", "eth0")]);
    hl.assert_at_baseline(&baseline);
}

#[test]
fn status_is_ok_for_a_usable_store() {
    let world = World::new();
    let hl = v4(&world);
    let baseline = hl.snapshot();
    status(&hl).expect_silent_success();
    hl.add("c1", "eth0").expect_success();
    status(&hl).expect_silent_success();
    hl.del_all(&[("c1", "eth0")]);
    hl.assert_at_baseline(&baseline);
}

#[test]
fn status_fails_when_the_data_dir_is_a_regular_file() {
    let world = World::new();
    let file = world.write_file("state/not-a-dir", b"");
    let mut ipam = config::ranges(&["10.77.0.0/24"]);
    ipam["dataDir"] = json!(file.to_string_lossy());
    let hl = bench(&world, V, ipam);
    let before = world.snapshot();
    let err = status(&hl).expect_error(50, "");
    assert_eq!(err.cni_version.as_deref(), Some(V));
    assert_eq!(
        fs::read(&file).unwrap(),
        b"",
        "STATUS must not touch the file"
    );
    assert_same!(before, world.snapshot(), "STATUS changes nothing");
}

#[test]
fn status_fails_when_every_range_is_exhausted() {
    let world = World::new();
    let hl = bench(&world, V, config::ranges(&["10.83.0.0/30"]));
    let baseline = hl.snapshot();
    status(&hl).expect_silent_success();
    hl.add("c1", "eth0").expect_success();
    status(&hl).expect_error(50, "");
    hl.del("c1", "eth0").expect_silent_success();
    status(&hl).expect_silent_success();
    hl.assert_at_baseline(&baseline);
}

#[test]
fn version_lists_every_supported_version() {
    let world = World::new();
    let call = PluginCall::raw("VERSION", br#"{"cniVersion":"1.1.0"}"#.to_vec());
    let out = world.exec(&Plugin::ours("host-local"), &call).result();
    assert_eq!(
        out,
        json!({"cniVersion": "1.1.0", "supportedVersions": SUPPORTED_VERSIONS})
    );
}

#[test]
fn gc_treats_legacy_id_only_reservations_by_container_id() {
    let world = World::new();
    let hl = v4(&world);
    let baseline = hl.snapshot();
    hl.add("c1", "eth0").expect_success();
    // Written by host-local before v0.7: the container ID alone.
    let legacy = hl.store_dir().join("10.77.0.9");
    fs::write(&legacy, b"old1").unwrap();
    gc(&hl, "cni.dev/valid-attachments", &[("old1", "eth0")]).expect_silent_success();
    assert!(legacy.exists(), "a valid legacy reservation must be kept");
    assert!(
        hl.reservations().len() == 1,
        "c1 is not valid and must be released"
    );
    gc(&hl, "cni.dev/valid-attachments", &[]).expect_silent_success();
    hl.assert_at_baseline(&baseline);
}

use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::model::ConfFile;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

#[test]
fn podman_written_files_round_trip_byte_for_byte() {
    let mut seen = 0;
    for entry in fs::read_dir(testdata().join("podman")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "conflist") {
            continue;
        }
        let file = ConfFile::load(&path);
        let list = file
            .list
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let net = network_from_list(list);
        let written = render(&net).unwrap();
        assert_eq!(
            String::from_utf8(written).unwrap(),
            String::from_utf8(file.bytes.clone()).unwrap(),
            "{} does not round-trip",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 6, "only {seen} podman files");
}

#[test]
fn podman_reading_of_the_options() {
    let list = ConfFile::load(&testdata().join("podman/mynet.conflist"))
        .list
        .unwrap();
    let net = network_from_list(&list);
    assert_eq!(net.driver, "bridge");
    assert_eq!(net.network_interface, "cni-podman1");
    assert_eq!(net.isolate, Some(Isolate::SameBridge));
    assert_eq!(net.mtu, Some(1400));
    assert_eq!(net.labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(net.options.get("isolate").map(String::as_str), Some("true"));
    assert!(!net.internal);
    let backend = network_from_list(
        &ConfFile::load(&testdata().join("podman/backend.conflist"))
            .list
            .unwrap(),
    );
    assert!(backend.internal);
    assert_eq!(backend.subnets[0].gateway, None);
    let lan = network_from_list(
        &ConfFile::load(&testdata().join("podman/lan-dhcp.conflist"))
            .list
            .unwrap(),
    );
    assert_eq!(
        (lan.driver.as_str(), lan.network_interface.as_str()),
        ("macvlan", "eth0")
    );
    assert_eq!(lan.ipam_driver, IpamDriver::Dhcp);
    assert_eq!(lan.mode.as_deref(), Some("bridge"));
}

#[test]
fn the_seed_podman_bridge_file() {
    let list = ConfFile::load(&testdata().join("87-podman-bridge.conflist"))
        .list
        .unwrap();
    let net = network_from_list(&list);
    assert_eq!(net.name, "podman");
    assert_eq!(net.network_interface, "cni-podman0");
    assert_eq!(net.subnets[0].subnet.to_string(), "10.88.0.0/16");
    assert_eq!(
        net.subnets[0].gateway.map(|g| g.to_string()).as_deref(),
        Some("10.88.0.1")
    );
    assert_eq!(
        list.plugin_types(),
        ["bridge", "portmap", "firewall", "tuning"]
    );
    assert_eq!(
        network_id("podman"),
        "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9"
    );
}

//! ADD: backup contents, application, rollback.

use std::os::unix::fs::PermissionsExt;

use cni_core::ErrorCode;
use cni_core::error::codes;
use serde_json::{Value, json};

use super::{FlakySysctl, attachment, container, invocation, sysctls};
use crate::add::{AddRequest, add};
use crate::backup::{BackupFile, Stored};
use crate::config::TuningConfig;
use crate::plugin::validate;

pub fn cfg(mut conf: Value) -> TuningConfig {
    conf["name"] = json!("tnet");
    conf["type"] = json!("tuning");
    conf["cniVersion"] = json!("1.0.0");
    validate(&invocation(&conf), &attachment("eth0", ""), None).unwrap()
}

pub fn full() -> TuningConfig {
    cfg(json!({
        "mac": "c2:11:22:33:44:55", "promisc": true, "mtu": 1400, "allmulti": true, "txQLen": 2000,
        "sysctl": {"net.ipv4.conf.IFNAME.arp_filter": "1", "net.core.somaxconn": "500"}
    }))
}

fn req(cfg: &TuningConfig) -> AddRequest<'_> {
    AddRequest {
        cfg,
        ifname: "eth0",
        network: "tnet",
    }
}

#[test]
fn backup_records_previous_values_then_everything_applies() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tuning");
    let file = BackupFile::new(&data, "c1", "eth0").unwrap();
    let (mut nl, mut sys) = (container(), sysctls());
    let cfg = full();
    add(&req(&cfg), &mut nl, &mut sys, &file).unwrap();

    let text = std::fs::read_to_string(file.path()).unwrap();
    assert_eq!(
        text,
        r#"{
 "mac": "02:00:00:00:00:02",
 "promisc": false,
 "mtu": 1500,
 "allmulti": false,
 "txQLen": 1000,
 "sysctl": {
  "net/core/somaxconn": "4096",
  "net/ipv4/conf/eth0/arp_filter": "0"
 },
 "network": "tnet"
}"#
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(file.path()), 0o600);
    assert_eq!(mode(&data), 0o700);

    let eth0 = &nl.links[1].0;
    assert_eq!(eth0.mac, "c2:11:22:33:44:55");
    assert!(eth0.promisc && eth0.allmulti);
    assert_eq!((eth0.mtu, eth0.txqlen), (1400, 2000));
    assert_eq!(
        sys.writes,
        [
            ("net/core/somaxconn".to_string(), "500".to_string()),
            ("net/ipv4/conf/eth0/arp_filter".into(), "1".into()),
        ]
    );
    // Reference order of link changes: MAC, promisc, MTU, allmulti, txqueuelen.
    assert_eq!(
        nl.calls,
        [
            "set_mac 2 c2:11:22:33:44:55",
            "set_promisc 2 true",
            "set_mtu 2 1400",
            "set_allmulti 2 true",
            "set_txqlen 2 2000",
        ]
    );
    // No temporary file left behind.
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 1);
}

#[test]
fn only_touched_attributes_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let file = BackupFile::new(dir.path(), "c1", "eth0").unwrap();
    let (mut nl, mut sys) = (container(), sysctls());
    let cfg = cfg(json!({"mtu": 9000}));
    add(&req(&cfg), &mut nl, &mut sys, &file).unwrap();
    let text = std::fs::read_to_string(file.path()).unwrap();
    assert_eq!(text, "{\n \"mtu\": 1500,\n \"network\": \"tnet\"\n}");
    assert!(sys.writes.is_empty());
}

#[test]
fn nothing_configured_changes_nothing_and_writes_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = BackupFile::new(&dir.path().join("t"), "c1", "eth0").unwrap();
    let (mut nl, mut sys) = (container(), sysctls());
    let cfg = cfg(json!({}));
    add(&req(&cfg), &mut nl, &mut sys, &file).unwrap();
    assert!(nl.calls.is_empty() && sys.writes.is_empty());
    assert!(!dir.path().join("t").exists());
}

#[test]
fn failing_link_step_rolls_back_everything() {
    let dir = tempfile::tempdir().unwrap();
    let file = BackupFile::new(dir.path(), "c1", "eth0").unwrap();
    let (mut nl, mut sys) = (container(), sysctls());
    nl.fail_on = Some("set_mtu".into());
    let cfg = full();
    let e = add(&req(&cfg), &mut nl, &mut sys, &file).unwrap_err();
    assert_eq!(e.code, ErrorCode::Plugin(codes::KERNEL));
    assert!(
        e.msg.starts_with("failed to set MTU of \"eth0\" to 1400"),
        "{}",
        e.msg
    );
    assert_eq!(
        nl.calls,
        [
            "set_mac 2 c2:11:22:33:44:55",
            "set_promisc 2 true",
            "set_mtu 2 1400",
            "set_promisc 2 false",
            "set_mac 2 02:00:00:00:00:02",
        ]
    );
    assert_eq!(nl.links[1].0, container().links[1].0);
    assert_eq!(sys.values, sysctls().values);
    assert!(!file.path().exists());
}

#[test]
fn failing_sysctl_write_rolls_back_earlier_ones() {
    let dir = tempfile::tempdir().unwrap();
    let file = BackupFile::new(dir.path(), "c1", "eth0").unwrap();
    let mut nl = container();
    let mut sys = FlakySysctl {
        inner: sysctls(),
        fail_write: Some("net/ipv4/conf/eth0/arp_filter".into()),
        ..FlakySysctl::default()
    };
    let cfg = full();
    let e = add(&req(&cfg), &mut nl, &mut sys, &file).unwrap_err();
    assert_eq!(e.code, ErrorCode::Plugin(codes::KERNEL));
    assert!(
        e.msg
            .starts_with("failed to set sysctl net/ipv4/conf/eth0/arp_filter to \"1\"")
    );
    assert_eq!(sys.inner.values, sysctls().values);
    assert!(nl.calls.is_empty());
    assert!(!file.path().exists());
}

#[test]
fn rollback_puts_an_older_backup_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = BackupFile::new(dir.path(), "c1", "eth0").unwrap();
    std::fs::write(file.path(), r#"{"mtu": 1450}"#).unwrap();
    let (mut nl, mut sys) = (container(), sysctls());
    nl.fail_on = Some("set_allmulti".into());
    assert!(add(&req(&full()), &mut nl, &mut sys, &file).is_err());
    match file.load().unwrap() {
        Stored::Present(b) => assert_eq!(b.mtu, Some(1450)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_second_add_keeps_the_original_values() {
    let dir = tempfile::tempdir().unwrap();
    let file = BackupFile::new(dir.path(), "c1", "eth0").unwrap();
    let (mut nl, mut sys) = (container(), sysctls());
    add(
        &req(&cfg(
            json!({"mtu": 1400, "sysctl": {"net.core.somaxconn": "500"}}),
        )),
        &mut nl,
        &mut sys,
        &file,
    )
    .unwrap();
    // A second tuning in the chain (or a repeated ADD) must not lose 1500 / 4096.
    let second = cfg(json!({"mtu": 1300, "txQLen": 10, "sysctl": {"net.core.somaxconn": "600"}}));
    add(&req(&second), &mut nl, &mut sys, &file).unwrap();
    let Stored::Present(b) = file.load().unwrap() else {
        panic!("no backup")
    };
    assert_eq!((b.mtu, b.tx_qlen), (Some(1500), Some(1000)));
    assert_eq!(
        b.sysctl.0,
        [("net/core/somaxconn".to_string(), "4096".to_string())]
    );
}

#[test]
fn write_only_sysctls_are_set_but_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let file = BackupFile::new(dir.path(), "c1", "eth0").unwrap();
    let mut nl = container();
    let mut sys = FlakySysctl {
        inner: sysctls(),
        write_only: vec!["net/ipv4/route/flush".into()],
        ..FlakySysctl::default()
    };
    let cfg = cfg(json!({"sysctl": {"net.ipv4.route.flush": "1"}}));
    add(&req(&cfg), &mut nl, &mut sys, &file).unwrap();
    assert_eq!(
        sys.inner.writes,
        [("net/ipv4/route/flush".to_string(), "1".to_string())]
    );
    assert!(!file.path().exists());
}

#[test]
fn unreadable_sysctl_or_missing_link_fail_before_any_change() {
    let dir = tempfile::tempdir().unwrap();
    let file = BackupFile::new(dir.path(), "c1", "eth0").unwrap();
    let (mut nl, mut sys) = (container(), sysctls());
    let bad = cfg(json!({"mtu": 1400, "sysctl": {"net.ipv4.conf.eth9.arp_filter": "1"}}));
    let e = add(&req(&bad), &mut nl, &mut sys, &file).unwrap_err();
    assert_eq!(e.code, ErrorCode::Plugin(codes::KERNEL));
    assert!(
        e.msg
            .starts_with("failed to read sysctl net/ipv4/conf/eth9/arp_filter")
    );
    nl.links.retain(|(l, _)| l.name != "eth0");
    let e = add(&req(&cfg(json!({"mtu": 1400}))), &mut nl, &mut sys, &file).unwrap_err();
    assert_eq!(e.msg, "failed to get \"eth0\": Link not found: eth0");
    assert!(nl.calls.is_empty() && sys.writes.is_empty());
    assert!(!file.path().exists());
}

#[test]
fn backup_names_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    for (id, ifname) in [("../x", "eth0"), ("c1", "a/b"), ("c1", ".."), ("", "eth0")] {
        let e = BackupFile::new(dir.path(), id, ifname).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidEnvironment, "{id} {ifname}");
    }
}

//! DEL (restore from the backup) and CHECK (drift messages).

use cni_core::ErrorCode;
use serde_json::json;

use super::add_tests::{cfg, full};
use super::{FlakySysctl, container, sysctls};
use crate::add::{AddRequest, add};
use crate::backup::BackupFile;
use crate::check::check;
use crate::del::restore;

fn added(dir: &std::path::Path) -> (cni_kernel::netlink::FakeNetlink, FlakySysctl, BackupFile) {
    let file = BackupFile::new(dir, "c1", "eth0").unwrap();
    let mut nl = container();
    let mut sys = FlakySysctl {
        inner: sysctls(),
        ..FlakySysctl::default()
    };
    let cfg = full();
    let req = AddRequest {
        cfg: &cfg,
        ifname: "eth0",
        network: "tnet",
    };
    add(&req, &mut nl, &mut sys, &file).unwrap();
    nl.calls.clear();
    (nl, sys, file)
}

#[test]
fn del_restores_attributes_and_sysctls_then_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nl, mut sys, file) = added(dir.path());
    restore("eth0", &mut nl, &mut sys, &file).unwrap();
    assert_eq!(nl.links[1].0, container().links[1].0);
    assert_eq!(sys.inner.values, sysctls().values);
    // Reference order of link restores: MTU, MAC, promisc, allmulti (then txqueuelen).
    assert_eq!(
        nl.calls,
        [
            "set_mtu 2 1500",
            "set_mac 2 02:00:00:00:00:02",
            "set_promisc 2 false",
            "set_allmulti 2 false",
            "set_txqlen 2 1000",
        ]
    );
    // Sysctls newest first (json! sorts keys: somaxconn was set first).
    let restored: Vec<&str> = sys.inner.writes[2..]
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        restored,
        ["net/ipv4/conf/eth0/arp_filter", "net/core/somaxconn"]
    );
    assert!(!file.path().exists());
    nl.calls.clear();
    restore("eth0", &mut nl, &mut sys, &file).unwrap();
    assert!(nl.calls.is_empty());
}

#[test]
fn del_with_the_interface_gone_still_restores_netns_sysctls() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nl, mut sys, file) = added(dir.path());
    nl.links.retain(|(l, _)| l.name != "eth0");
    sys.missing = vec!["net/ipv4/conf/eth0/arp_filter".into()];
    restore("eth0", &mut nl, &mut sys, &file).unwrap();
    assert_eq!(sys.inner.values["net/core/somaxconn"], "4096");
    assert!(!file.path().exists());
}

#[test]
fn del_reads_the_reference_backup_format() {
    let dir = tempfile::tempdir().unwrap();
    let file = BackupFile::new(dir.path(), "c1", "eth0").unwrap();
    std::fs::write(
        file.path(),
        "{\n \"mac\": \"86:03:42:22:6b:44\",\n \"promisc\": false,\n \"mtu\": 1500\n}",
    )
    .unwrap();
    let mut nl = container();
    nl.links[1].0.mtu = 9000;
    nl.links[1].0.promisc = true;
    let mut sys = sysctls();
    restore("eth0", &mut nl, &mut sys, &file).unwrap();
    let eth0 = &nl.links[1].0;
    assert_eq!(
        (eth0.mac.as_str(), eth0.mtu, eth0.promisc),
        ("86:03:42:22:6b:44", 1500, false)
    );
    assert!(!file.path().exists());
}

#[test]
fn del_drops_a_corrupt_backup() {
    let dir = tempfile::tempdir().unwrap();
    let file = BackupFile::new(dir.path(), "c1", "eth0").unwrap();
    std::fs::write(file.path(), "{not json").unwrap();
    let (mut nl, mut sys) = (container(), sysctls());
    restore("eth0", &mut nl, &mut sys, &file).unwrap();
    assert!(!file.path().exists() && nl.calls.is_empty());
}

/// A restore that partly fails still succeeds (libcni would stop the chain's DEL at tuning,
/// the first plugin, and leak everything below it), restores the rest and drops the backup.
#[test]
fn del_keeps_going_past_failures_and_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nl, mut sys, file) = added(dir.path());
    nl.fail_on = Some("set_mac".into());
    restore("eth0", &mut nl, &mut sys, &file).unwrap();
    assert_eq!(
        nl.links[1].0.mtu, 1500,
        "the MTU is restored although the MAC is not"
    );
    assert_eq!(sys.inner.values["net/core/somaxconn"], "4096");
    assert!(!file.path().exists());
}

#[test]
fn check_passes_after_add_with_ifname_substituted() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nl, mut sys, _file) = added(dir.path());
    check(&full(), "eth0", &mut nl, &mut sys).unwrap();
    // Promiscuous mode is not demanded off when it is not configured.
    let mtu_only = cfg(json!({"mtu": 1400}));
    check(&mtu_only, "eth0", &mut nl, &mut sys).unwrap();
    // Whitespace-separated values read back with tabs.
    let spaced = cfg(json!({"sysctl": {"net.ipv4.ping_group_range": "1 0"}}));
    check(&spaced, "eth0", &mut nl, &mut sys).unwrap();
}

#[test]
fn check_reports_drift_with_the_reference_messages() {
    type Drift = fn(&mut cni_kernel::netlink::FakeNetlink, &mut FlakySysctl);
    let cases: [(Drift, &str); 8] = [
        (
            |n, _| n.links[1].0.mtu = 1300,
            "Error: Tuning configured MTU of eth0 is 1400, current value is 1300",
        ),
        (
            |n, _| n.links[1].0.mac = "02:00:00:00:00:09".into(),
            "Error: Tuning configured Ethernet of eth0 is c2:11:22:33:44:55, current value is 02:00:00:00:00:09",
        ),
        (
            |n, _| n.links[1].0.promisc = false,
            "Error: Tuning link eth0 configured promisc is true, current value is 0",
        ),
        (
            |n, _| n.links[1].0.allmulti = false,
            "Error: Tuning configured all-multicast mode of eth0 is true, current value is false",
        ),
        (
            |n, _| n.links[1].0.txqlen = 1000,
            "Error: Tuning configured Transmit Queue Length of eth0 is 2000, current value is 1000",
        ),
        (
            |_, s| {
                s.inner
                    .values
                    .insert("net/ipv4/conf/eth0/arp_filter".into(), "0".into());
            },
            "Error: Tuning configured value of /proc/sys/net/ipv4/conf/eth0/arp_filter is 1, current value is 0",
        ),
        (
            |_, s| s.missing = vec!["net/core/somaxconn".into()],
            "Error: Tuning configured value of /proc/sys/net/core/somaxconn is 500, but /proc/sys/net/core/somaxconn does not exist",
        ),
        (
            |n, _| n.links.retain(|(l, _)| l.name != "eth0"),
            "Cannot find container link eth0",
        ),
    ];
    for (drift, msg) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (mut nl, mut sys, _file) = added(dir.path());
        drift(&mut nl, &mut sys);
        let e = check(&full(), "eth0", &mut nl, &mut sys).unwrap_err();
        assert_eq!(e.code, ErrorCode::Plugin(132), "{msg}");
        assert_eq!(e.msg, msg);
    }
}

//! The plugin through the CNI dispatcher (everything that needs no namespace), GC, STATUS and
//! the result's MAC.

use std::collections::HashMap;

use cni_core::result::types::Interface;
use cni_core::skel::{Outcome, dispatch};
use cni_core::{CniResult, ErrorCode};
use serde_json::{Value, json};

use crate::Tuning;
use crate::backup::{self, BackupFile};
use crate::plugin::patch_mac;

fn call(cmd: &str, netns: Option<&str>, cni_args: &str, conf: &[u8]) -> Outcome {
    let mut env: HashMap<&str, String> = [
        ("CNI_COMMAND", cmd.to_string()),
        ("CNI_CONTAINERID", "c1".to_string()),
        ("CNI_IFNAME", "eth0".to_string()),
        ("CNI_PATH", "/opt/cni/bin".to_string()),
        ("CNI_ARGS", cni_args.to_string()),
    ]
    .into();
    if let Some(ns) = netns {
        env.insert("CNI_NETNS", ns.to_string());
    }
    dispatch(&Tuning, &|k| env.get(k).cloned(), &mut &conf[..])
}

fn error_of(out: &Outcome) -> (u64, String) {
    assert_eq!(out.exit_code, 1, "{}", out.stdout);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    (
        v["code"].as_u64().unwrap(),
        v["msg"].as_str().unwrap().to_string(),
    )
}

const MISSING_NS: &str = "/run/netns/tuning-unit-test-missing";

fn prev() -> Value {
    json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": MISSING_NS}],
        "ips": [{"address": "10.1.0.5/24", "interface": 0}]})
}

#[test]
fn config_errors_come_before_anything_else() {
    let cases: [(&[u8], &str); 4] = [
        (
            br#"{"cniVersion":"1.0.0","name":"n","type":"tuning","mtu":1400}"#,
            "Required prevResult missing",
        ),
        (
            br#"{"cniVersion":"1.0.0","name":"n","type":"tuning",
                "sysctl":{"net.core.somaxconn":"1","net.core.somaxconn":"2"}}"#,
            "duplicated sysctl keys are not allowed",
        ),
        (
            br#"{"cniVersion":"1.0.0","name":"n","type":"tuning","sysctl":{"net/../../kernel/x":"1"}}"#,
            "invalid net sysctl key: \"net/../../kernel/x\"",
        ),
        (
            br#"{"cniVersion":"0.2.0","name":"n","type":"tuning","sysctl":{"kernel.hostname":"x"}}"#,
            "invalid net sysctl key: \"kernel.hostname\"",
        ),
    ];
    for (conf, msg) in cases {
        for cmd in ["ADD", "CHECK"] {
            let out = call(cmd, Some(MISSING_NS), "", conf);
            if cmd == "CHECK" && msg.contains("kernel.hostname") {
                // 0.2.0 has no CHECK.
                assert_eq!(error_of(&out).0, 1);
                continue;
            }
            assert_eq!(error_of(&out), (7, msg.to_string()), "{cmd}");
        }
    }
}

#[test]
fn netns_errors_are_104_and_cni_args_mac_is_known() {
    let conf = json!({"cniVersion": "1.0.0", "name": "n", "type": "tuning", "mtu": 1400,
        "dataDir": "/tmp/tuning-unit-never-created", "prevResult": prev()});
    let raw = serde_json::to_vec(&conf).unwrap();
    let out = call("ADD", Some(MISSING_NS), "MAC=c2:11:22:33:44:55", &raw);
    let (code, msg) = error_of(&out);
    assert_eq!(code, 104, "{msg}");
    assert!(!std::path::Path::new("/tmp/tuning-unit-never-created").exists());
    assert_eq!(error_of(&call("ADD", Some(MISSING_NS), "FOO=1", &raw)).0, 4);
    assert_eq!(error_of(&call("ADD", None, "", &raw)).0, 4);
}

#[test]
fn del_without_a_namespace_drops_the_backup_and_never_fails_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let conf = json!({"cniVersion": "1.0.0", "name": "n", "type": "tuning",
        "dataDir": dir.path(), "sysctl": {"kernel.bad": "x"}, "mtu": "not validated on DEL"});
    // A wrongly typed field is still a decode error (6), as in the reference.
    let raw = serde_json::to_vec(&conf).unwrap();
    assert_eq!(error_of(&call("DEL", None, "", &raw)).0, 6);
    let conf = json!({"cniVersion": "1.0.0", "name": "n", "type": "tuning",
        "dataDir": dir.path(), "sysctl": {"kernel.bad": "x"}});
    let raw = serde_json::to_vec(&conf).unwrap();
    for netns in [None, Some(MISSING_NS), Some("/proc/self/status")] {
        let file = BackupFile::new(dir.path(), "c1", "eth0").unwrap();
        std::fs::write(file.path(), r#"{"mtu":1500}"#).unwrap();
        let out = call("DEL", netns, "garbage;;", &raw);
        assert_eq!(out.exit_code, 0, "{netns:?}: {}", out.stdout);
        assert!(out.stdout.is_empty());
        assert!(!file.path().exists(), "{netns:?}");
        assert_eq!(call("DEL", netns, "", &raw).exit_code, 0);
    }
}

/// An ADD killed between writing the backup's temporary file and renaming it leaves only the
/// temporary file: DEL (in any namespace situation) removes it.
#[test]
fn del_removes_the_temporary_file_of_a_killed_add() {
    let dir = tempfile::tempdir().unwrap();
    let conf = json!({"cniVersion": "1.0.0", "name": "n", "type": "tuning", "dataDir": dir.path()});
    let raw = serde_json::to_vec(&conf).unwrap();
    for netns in [None, Some(MISSING_NS), Some("/proc/self/ns/net")] {
        let tmp = dir.path().join(".c1_eth0.json.tmp");
        std::fs::write(&tmp, "").unwrap();
        let out = call("DEL", netns, "", &raw);
        assert_eq!(out.exit_code, 0, "{netns:?}: {}", out.stdout);
        assert!(!tmp.exists(), "{netns:?}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn gc_removes_only_this_networks_stale_backups() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &str| std::fs::write(dir.path().join(name), body).unwrap();
    write("live_eth0.json", r#"{"mtu":1500,"network":"n"}"#);
    write("gone_eth0.json", r#"{"mtu":1500,"network":"n"}"#);
    write("id_with_under_net1.json", r#"{"mtu":1500,"network":"n"}"#);
    write("other_eth0.json", r#"{"mtu":1500,"network":"other"}"#);
    write("go_eth0.json", r#"{"mtu":1500}"#);
    write("notes.txt", "x");
    write("bad name.json", r#"{"network":"n"}"#);
    let conf = json!({"cniVersion": "1.1.0", "name": "n", "type": "tuning", "dataDir": dir.path(),
        "cni.dev/valid-attachments": [{"containerID": "live", "ifname": "eth0"}]});
    let out = call("GC", None, "", &serde_json::to_vec(&conf).unwrap());
    assert_eq!(out.exit_code, 0, "{}", out.stdout);
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "bad name.json",
            "go_eth0.json",
            "live_eth0.json",
            "notes.txt",
            "other_eth0.json"
        ]
    );
    // A missing dataDir is nothing to collect.
    backup::gc(&dir.path().join("none"), "n", &[]).unwrap();
}

#[test]
fn status_needs_a_usable_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let status = |data_dir: &std::path::Path| {
        let conf =
            json!({"cniVersion": "1.1.0", "name": "n", "type": "tuning", "dataDir": data_dir});
        call("STATUS", None, "", &serde_json::to_vec(&conf).unwrap())
    };
    assert_eq!(status(dir.path()).exit_code, 0);
    assert_eq!(status(&dir.path().join("not/yet")).exit_code, 0);
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let (code, msg) = error_of(&status(&file.join("sub")));
    assert_eq!(code, ErrorCode::NotAvailable.as_u32() as u64);
    assert!(msg.contains("is not a directory"), "{msg}");
}

#[test]
fn mac_is_patched_on_the_container_interface() {
    let iface = |name: &str, sandbox: &str| Interface {
        name: name.into(),
        mac: "aa:aa:aa:aa:aa:aa".into(),
        sandbox: sandbox.into(),
        ..Interface::default()
    };
    let mut r = CniResult {
        interfaces: vec![
            iface("cni0", ""),
            iface("eth0", ""),
            iface("eth0", "/run/netns/x"),
        ],
        ..CniResult::default()
    };
    patch_mac(&mut r, "eth0", "c2:11:22:33:44:55");
    let macs: Vec<&str> = r.interfaces.iter().map(|i| i.mac.as_str()).collect();
    assert_eq!(
        macs,
        [
            "aa:aa:aa:aa:aa:aa",
            "aa:aa:aa:aa:aa:aa",
            "c2:11:22:33:44:55"
        ]
    );
    let mut r = CniResult {
        interfaces: vec![iface("eth0", "")],
        ..CniResult::default()
    };
    patch_mac(&mut r, "eth0", "c2:11:22:33:44:55");
    assert_eq!(r.interfaces[0].mac, "c2:11:22:33:44:55");
}

#[test]
fn version_lists_every_version() {
    let out = call("VERSION", None, "", br#"{"cniVersion":"1.1.0"}"#);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        v["supportedVersions"],
        json!([
            "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"
        ])
    );
}

//! The plugin through the CNI dispatcher, over a scripted command runner.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use cni_core::skel::{Outcome, dispatch};
use cni_netfilter::exec::FakeRunner;
use cni_netfilter::firewall::HostRoutes;
use serde_json::{Value, json};

use crate::Service;

struct NoRoutes;

impl HostRoutes for NoRoutes {
    fn route_interface(&self, _ip: IpAddr) -> Result<Option<String>, String> {
        Ok(None)
    }
}

struct Env {
    fake: Arc<FakeRunner>,
    service: Service,
    dir: tempfile::TempDir,
}

fn env() -> Env {
    let fake = Arc::new(FakeRunner::new());
    Env {
        service: Service::new(fake.clone(), Arc::new(NoRoutes)),
        fake,
        dir: tempfile::tempdir().unwrap(),
    }
}

fn prev(version: &str) -> Value {
    json!({
        "cniVersion": version,
        "interfaces": [
            {"name": "cnix0", "mac": "aa:bb:cc:dd:ee:01"},
            {"name": "veth1", "mac": "aa:bb:cc:dd:ee:02"},
            {"name": "eth0", "mac": "aa:bb:cc:dd:ee:03", "sandbox": "/run/netns/x"}
        ],
        "ips": [
            {"address": "10.99.0.2/24", "gateway": "10.99.0.1", "interface": 2},
            {"address": "fd00:99::2/64", "gateway": "fd00:99::1", "interface": 2}
        ]
    })
}

impl Env {
    fn conf(&self, version: &str, extra: Value) -> Value {
        let mut conf = json!({
            "cniVersion": version, "name": "cnixnet", "type": "firewall",
            "dataDir": self.dir.path().display().to_string(),
        });
        for (k, v) in extra.as_object().unwrap() {
            conf[k] = v.clone();
        }
        conf
    }

    fn run(&self, command: &str, conf: &Value) -> Outcome {
        let vars: HashMap<&str, String> = [
            ("CNI_COMMAND", command.to_owned()),
            ("CNI_CONTAINERID", "ctr1".to_owned()),
            ("CNI_NETNS", "/run/netns/x".to_owned()),
            ("CNI_IFNAME", "eth0".to_owned()),
            ("CNI_PATH", "/opt/cni/bin".to_owned()),
        ]
        .into_iter()
        .collect();
        let stdin = conf.to_string();
        dispatch(
            &self.service,
            &|k| vars.get(k).cloned(),
            &mut stdin.as_bytes(),
        )
    }
}

fn error_of(out: &Outcome) -> (u64, String) {
    assert_eq!(out.exit_code, 1, "{}", out.stdout);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    (
        v["code"].as_u64().unwrap(),
        v["msg"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn add_prints_prev_result_and_applies_one_batch_per_family() {
    let e = env();
    // An empty table: the first-ADD batch's probes fail, then one read and one write per family.
    let probe_failed = "iptables-restore: line 2 failed: No chain/target/match by that name.";
    e.fake
        .fail("iptables-restore", 1, probe_failed)
        .fail("ip6tables-restore", 1, probe_failed);
    let conf = e.conf(
        "1.0.0",
        json!({"backend": "", "ingressPolicy": "same-bridge", "prevResult": prev("1.0.0")}),
    );
    let out = e.run("ADD", &conf);
    assert_eq!(out.exit_code, 0, "{}", out.stdout);
    let printed: Value = serde_json::from_str(&out.stdout).unwrap();
    let mut want = prev("1.0.0");
    want["ips"][0]["interface"] = json!(2);
    assert_eq!(printed, want);
    let mut lines = e.fake.command_lines();
    lines.sort();
    assert_eq!(
        lines,
        [
            "ip6tables-restore --noflush -w 30",
            "ip6tables-restore --noflush -w 30",
            "ip6tables-save -t filter",
            "iptables-restore --noflush -w 30",
            "iptables-restore --noflush -w 30",
            "iptables-save -t filter",
        ]
    );
    let calls = e.fake.calls();
    let v4 = calls
        .iter()
        .filter(|c| c.program == "iptables-restore")
        .nth(1)
        .unwrap();
    let batch = v4.stdin.clone().unwrap();
    assert!(batch.contains(r#"--comment "name: \"cnixnet\" id: \"ctr1\" if: \"eth0\" same-bridge: \"cnix0\"" -j ACCEPT"#), "{batch}");
    assert!(
        batch.contains("-I CNI-ISOLATION-STAGE-1 1 -i cnix0 ! -o cnix0"),
        "{batch}"
    );
}

#[test]
fn add_output_follows_the_config_version() {
    let e = env();
    let out = e.run(
        "ADD",
        &e.conf("0.4.0", json!({"prevResult": prev("1.0.0")})),
    );
    let printed: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(printed["cniVersion"], "0.4.0");
    assert_eq!(printed["ips"][1]["version"], "6");
}

#[test]
fn config_errors_change_nothing() {
    let e = env();
    let cases = [
        (json!({}), "missing prevResult from earlier plugin"),
        (
            json!({"backend": "ebtables", "prevResult": prev("1.0.0")}),
            "unknown firewall backend \"ebtables\"",
        ),
        (
            json!({"backend": "firewalld", "prevResult": prev("1.0.0")}),
            "the firewalld backend is not supported",
        ),
        (
            json!({"ingressPolicy": "closed", "prevResult": prev("1.0.0")}),
            "unknown ingress policy: \"closed\"",
        ),
        (
            json!({"iptablesAdminChainName": "DROP", "prevResult": prev("1.0.0")}),
            "invalid iptablesAdminChainName",
        ),
        (
            json!({"dataDir": "rel", "prevResult": prev("1.0.0")}),
            "dataDir must be an absolute path",
        ),
        (
            json!({"ingressPolicy": "isolated", "prevResult": {"cniVersion": "1.0.0", "ips": [{"address": "10.99.0.2/24"}]}}),
            "interface needs to be set for ingress policy \"isolated\", make sure to chain \"firewall\" plugin with \"bridge\"",
        ),
        (
            json!({"ingressPolicy": "same-bridge", "prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "br\"0"}], "ips": []}}),
            "invalid bridge name in prevResult",
        ),
    ];
    for (extra, msg) in cases {
        let out = e.run("ADD", &e.conf("1.0.0", extra.clone()));
        let (code, got) = error_of(&out);
        assert_eq!(code, 7, "{extra}");
        assert!(got.starts_with(msg), "{got} vs {msg}");
    }
    assert!(e.fake.calls().is_empty());
    let (code, _) = error_of(&e.run(
        "ADD",
        &e.conf("0.3.1", json!({"prevResult": prev("0.3.1")})),
    ));
    assert_eq!(code, 1);
}

#[test]
fn del_without_prev_result_reads_both_families() {
    let e = env();
    let out = e.run(
        "DEL",
        &e.conf("1.0.0", json!({"ingressPolicy": "same-bridge"})),
    );
    assert_eq!(out.exit_code, 0, "{}", out.stdout);
    assert_eq!(out.stdout, "");
    let mut lines = e.fake.command_lines();
    lines.sort();
    assert_eq!(
        lines,
        ["ip6tables-save -t filter", "iptables-save -t filter"]
    );
}

#[test]
fn del_of_a_config_add_refuses_does_nothing() {
    let e = env();
    for extra in [
        json!({"backend": "firewalld"}),
        json!({"ingressPolicy": "x"}),
        json!({"dataDir": "rel"}),
    ] {
        assert_eq!(e.run("DEL", &e.conf("1.0.0", extra)).exit_code, 0);
    }
    assert!(e.fake.calls().is_empty());
}

#[test]
fn check_reports_drift_as_131() {
    let e = env();
    let out = e.run(
        "CHECK",
        &e.conf("1.0.0", json!({"prevResult": prev("1.0.0")})),
    );
    let (code, msg) = error_of(&out);
    assert_eq!(code, 131);
    assert_eq!(msg, "chain CNI-FORWARD in iptables table filter not found");
    let (code, msg) = error_of(&e.run("CHECK", &e.conf("1.0.0", json!({}))));
    assert_eq!(
        (code, msg.as_str()),
        (7, "missing prevResult from earlier plugin")
    );
}

#[test]
fn status_is_50_when_the_backend_cannot_work() {
    let e = env();
    assert_eq!(e.run("STATUS", &e.conf("1.1.0", json!({}))).exit_code, 0);
    e.fake.set_missing("nft");
    let (code, msg) = error_of(&e.run("STATUS", &e.conf("1.1.0", json!({"backend": "nftables"}))));
    assert_eq!(code, 50);
    assert_eq!(msg, "nftables backend is not usable: nft not found in PATH");
}

fn prev_v4() -> Value {
    let mut p = prev("1.0.0");
    p["ips"].as_array_mut().unwrap().pop();
    p
}

#[test]
fn kernel_refusal_is_105_and_other_failures_130() {
    let e = env();
    // Each ADD is a first one (a failed ADD forgets its ledger entry): its no-read batch fails
    // first, then the read fails.
    let probe_failed = "iptables-restore: line 2 failed: No chain/target/match by that name.";
    e.fake.fail("iptables-restore", 1, probe_failed);
    e.fake.fail("iptables-save", 1, "iptables-save v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied");
    let (code, _) = error_of(&e.run("ADD", &e.conf("1.0.0", json!({"prevResult": prev_v4()}))));
    assert_eq!(code, 105);
    e.fake.fail("iptables-restore", 1, probe_failed);
    e.fake.fail("iptables-save", 2, "garbage");
    let (code, msg) = error_of(&e.run("ADD", &e.conf("1.0.0", json!({"prevResult": prev_v4()}))));
    assert_eq!(code, 130);
    assert!(
        msg.starts_with("failed to add firewall rules: `iptables-save -t filter` failed"),
        "{msg}"
    );
}

#[test]
fn gc_reads_both_families_and_nftables_uses_nft() {
    let e = env();
    let conf = e.conf(
        "1.1.0",
        json!({"cni.dev/valid-attachments": [{"containerID": "ctr2", "ifname": "eth0"}]}),
    );
    assert_eq!(e.run("GC", &conf).exit_code, 0);
    let mut lines = e.fake.command_lines();
    lines.sort();
    assert_eq!(
        lines,
        ["ip6tables-save -t filter", "iptables-save -t filter"]
    );

    let e = env();
    e.fake.fail("nft", 1, "Error: No such file or directory");
    let out = e.run(
        "ADD",
        &e.conf(
            "1.1.0",
            json!({"backend": "nftables", "prevResult": prev("1.1.0")}),
        ),
    );
    assert_eq!(out.exit_code, 0, "{}", out.stdout);
    assert_eq!(
        e.fake.command_lines(),
        ["nft -j list table inet cni_firewall", "nft -f -"]
    );
}

#[test]
fn version_lists_only_versions_with_check() {
    let e = env();
    let out = e.run("VERSION", &json!({"cniVersion": "1.1.0"}));
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["supportedVersions"], json!(["0.4.0", "1.0.0", "1.1.0"]));
}

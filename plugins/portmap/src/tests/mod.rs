//! The plugin through the CNI dispatcher, over a scripted command runner, fixed routes and
//! in-memory sysctls.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use cni_core::skel::{Outcome, dispatch};
use cni_kernel::sysctl::FakeSysctl;
use cni_netfilter::exec::FakeRunner;
use cni_netfilter::firewall::HostRoutes;
use serde_json::{Value, json};

use crate::{Service, container_addresses};

/// Every address lives behind `cnix0`.
struct BridgeRoutes;

impl HostRoutes for BridgeRoutes {
    fn route_interface(&self, _ip: IpAddr) -> Result<Option<String>, String> {
        Ok(Some("cnix0".to_owned()))
    }
}

const LOCALNET: &str = "net/ipv4/conf/cnix0/route_localnet";

struct Env {
    fake: Arc<FakeRunner>,
    sysctl: Arc<Mutex<FakeSysctl>>,
    service: Service,
    dir: tempfile::TempDir,
}

fn env() -> Env {
    let fake = Arc::new(FakeRunner::new());
    let sysctl = Arc::new(Mutex::new(FakeSysctl::default()));
    Env {
        service: Service::new(fake.clone(), Arc::new(BridgeRoutes), sysctl.clone()),
        fake,
        sysctl,
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
        "ips": [{"address": "10.99.0.2/24", "gateway": "10.99.0.1", "interface": 2}]
    })
}

fn maps() -> Value {
    json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}])
}

impl Env {
    fn conf(&self, extra: Value) -> Value {
        let mut conf = json!({
            "cniVersion": "1.0.0", "name": "cnixnet", "type": "portmap",
            "dataDir": self.dir.path().display().to_string(),
            "prevResult": prev("1.0.0"),
            "runtimeConfig": {"portMappings": maps()},
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

    fn programs(&self) -> Vec<String> {
        self.fake.calls().into_iter().map(|c| c.program).collect()
    }
}

fn error(out: &Outcome) -> (u64, String) {
    assert_eq!(out.exit_code, 1, "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    (
        v["code"].as_u64().unwrap(),
        v["msg"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn add_publishes_and_passes_prev_result_through() {
    let e = env();
    let out = e.run("ADD", &e.conf(json!({})));
    assert_eq!(out.exit_code, 0, "{out:?}");
    let result: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(result["ips"], prev("1.0.0")["ips"]);
    assert_eq!(e.programs(), ["iptables-save", "iptables-restore"]);
    let batch = e.fake.calls()[1].stdin.clone().unwrap();
    assert!(
        batch.contains("-j DNAT --to-destination 10.99.0.2:80"),
        "{batch}"
    );
    assert_eq!(
        e.sysctl.lock().unwrap().writes,
        [(LOCALNET.to_owned(), "1".to_owned())]
    );

    // Already set: not written again; snat off: not touched at all.
    let e = env();
    e.sysctl
        .lock()
        .unwrap()
        .values
        .insert(LOCALNET.to_owned(), "1".to_owned());
    assert_eq!(e.run("ADD", &e.conf(json!({}))).exit_code, 0);
    assert!(e.sysctl.lock().unwrap().writes.is_empty());
    let e = env();
    assert_eq!(e.run("ADD", &e.conf(json!({"snat": false}))).exit_code, 0);
    assert!(e.sysctl.lock().unwrap().writes.is_empty());
}

#[test]
fn add_without_mappings_or_prev_result() {
    let e = env();
    let out = e.run("ADD", &e.conf(json!({"runtimeConfig": {}})));
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert!(e.fake.calls().is_empty(), "nothing to publish, nothing run");
    let mut conf = e.conf(json!({}));
    conf.as_object_mut().unwrap().remove("prevResult");
    assert_eq!(
        error(&e.run("ADD", &conf)),
        (7, "must be called as chained plugin".into())
    );
}

#[test]
fn invalid_mappings_and_options_are_code_7_before_any_exec() {
    let cases = [
        (
            json!({"runtimeConfig": {"portMappings": [{"hostPort": 0, "containerPort": 80, "protocol": "tcp"}]}}),
            "Invalid host port number: 0",
        ),
        (
            json!({"runtimeConfig": {"portMappings": [{"hostPort": 1, "containerPort": 70000, "protocol": "tcp"}]}}),
            "Invalid container port number: 70000",
        ),
        (
            json!({"runtimeConfig": {"portMappings": [{"hostPort": 1, "containerPort": 1, "protocol": "icmp"}]}}),
            r#"Invalid protocol "icmp": must be tcp, udp or sctp"#,
        ),
        (
            json!({"runtimeConfig": {"portMappings": [{"hostPort": 1, "containerPort": 1, "hostIP": "x"}]}}),
            r#"Invalid host IP "x""#,
        ),
        (
            json!({"markMasqBit": 32}),
            "MasqMarkBit must be between 0 and 31",
        ),
        (
            json!({"markMasqBit": 3, "externalSetMarkChain": "X"}),
            "Cannot specify externalSetMarkChain and markMasqBit",
        ),
        (
            json!({"backend": "iptables", "conditionsV4": ["aaa", "bbbb"], "conditionsV6": ["ccc"]}),
            "iptables backend was requested but configuration contains nftables-specific options [conditionsV4 conditionsV6]",
        ),
        (
            json!({"backend": "nftables", "externalSetMarkChain": "KUBE-MARK-MASQ", "conditionsV4": ["-a", "b"], "conditionsV6": ["-c", "d"]}),
            "nftables backend was requested but configuration contains iptables-specific options [externalSetMarkChain conditionsV4 conditionsV6]",
        ),
        (
            json!({"backend": "ebtables"}),
            r#"unknown portmap backend "ebtables": use "iptables" or "nftables""#,
        ),
        (
            json!({"dataDir": "relative"}),
            r#"dataDir must be an absolute path, got "relative""#,
        ),
    ];
    for (extra, msg) in cases {
        let e = env();
        let (code, text) = error(&e.run("ADD", &e.conf(extra.clone())));
        assert_eq!((code, text.as_str()), (7, msg), "{extra}");
        assert!(e.fake.calls().is_empty(), "{extra}");
    }
}

#[test]
fn a_conflict_is_code_152() {
    let e = env();
    let theirs = "*nat\n:CNI-DN-x - [0:0]\n:CNI-HOSTPORT-DNAT - [0:0]\n\
        -A CNI-DN-x -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.99.0.3:80\n\
        -A CNI-HOSTPORT-DNAT -p tcp -m comment --comment \"dnat name: \\\"cnixnet\\\" id: \\\"ctr2\\\"\" -m multiport --dports 8080 -j CNI-DN-x\nCOMMIT\n";
    e.fake.ok("iptables-save", theirs);
    let (code, msg) = error(&e.run("ADD", &e.conf(json!({}))));
    assert_eq!(code, 152);
    assert_eq!(
        msg,
        r#"host port tcp *:8080 is already mapped to container "ctr2" of network "cnixnet""#
    );
    assert_eq!(e.programs(), ["iptables-save"]);
    assert!(
        e.sysctl.lock().unwrap().writes.is_empty(),
        "nothing changed"
    );
}

#[test]
fn a_failed_restore_is_code_150() {
    let e = env();
    e.fake.ok("iptables-save", "");
    for _ in 0..3 {
        e.fake
            .fail("iptables-restore", 2, "iptables-restore: line 3 failed")
            .ok("iptables-save", "");
    }
    let (code, msg) = error(&e.run("ADD", &e.conf(json!({}))));
    assert_eq!(code, 150, "{msg}");
    let wait = cni_netfilter::exec::wait_seconds();
    assert!(
        msg.starts_with(&format!(
            "failed to set up port mappings: `iptables-restore --noflush -w {wait}` failed"
        )),
        "{msg}"
    );
}

#[test]
fn a_restore_that_gave_up_on_the_xtables_lock_is_code_11_and_not_retried() {
    let e = env();
    e.fake.ok("iptables-save", "").fail(
        "iptables-restore",
        4,
        "Can't lock /run/xtables.lock: Resource temporarily unavailable\n\
         Another app is currently holding the xtables lock. Stopped waiting after 30s.",
    );
    let (code, msg) = error(&e.run("ADD", &e.conf(json!({}))));
    assert_eq!(code, 11, "{msg}");
    assert!(
        msg.contains("gave up waiting for the xtables lock"),
        "{msg}"
    );
    assert!(msg.contains("/run/xtables.lock"), "{msg}");
    assert_eq!(e.programs(), ["iptables-save", "iptables-restore"]);
    assert!(
        e.sysctl.lock().unwrap().writes.is_empty(),
        "nothing changed"
    );
}

#[test]
fn a_host_lock_held_too_long_is_code_11() {
    let source = std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        cni_core::lock::LockTimeout {
            waited: std::time::Duration::from_secs(30),
        },
    );
    let e = cni_netfilter::portmap::PortmapError::Lock {
        path: "/run/cni/portmap/lock".into(),
        source,
    };
    let err = crate::error::apply("failed to set up port mappings", &e);
    assert_eq!(err.code.as_u32(), 11);
    assert_eq!(
        err.msg,
        "failed to set up port mappings: failed to lock /run/cni/portmap/lock: \
         still held by another process after 30s"
    );
    // Any other lock failure stays a plugin failure.
    let e = cni_netfilter::portmap::PortmapError::Lock {
        path: "/x/lock".into(),
        source: std::io::ErrorKind::PermissionDenied.into(),
    };
    assert_eq!(crate::error::apply("x", &e).code.as_u32(), 150);
}

#[test]
fn del_needs_no_prev_result_and_skips_without_mappings() {
    let e = env();
    let mut conf = e.conf(json!({"runtimeConfig": {}}));
    conf.as_object_mut().unwrap().remove("prevResult");
    let out = e.run("DEL", &conf);
    assert_eq!((out.exit_code, out.stdout.as_str()), (0, ""));
    assert!(e.fake.calls().is_empty());
    conf["runtimeConfig"] = json!({"portMappings": maps()});
    assert_eq!(e.run("DEL", &conf).exit_code, 0);
    let mut programs = e.programs();
    programs.sort();
    assert_eq!(
        programs,
        ["ip6tables-save", "iptables-save"],
        "both families, nothing there"
    );
    // A config ADD refuses made nothing: DEL succeeds without looking.
    let e = env();
    assert_eq!(
        e.run("DEL", &e.conf(json!({"markMasqBit": 99}))).exit_code,
        0
    );
    assert!(e.fake.calls().is_empty());
}

#[test]
fn check_requires_prev_result_and_reports_drift_as_151() {
    let e = env();
    let mut conf = e.conf(json!({}));
    conf.as_object_mut().unwrap().remove("prevResult");
    assert_eq!(
        error(&e.run("CHECK", &conf)),
        (7, "Required prevResult missing".into())
    );
    let (code, msg) = error(&e.run("CHECK", &e.conf(json!({}))));
    assert_eq!(code, 151);
    assert_eq!(
        msg,
        "chain CNI-HOSTPORT-DNAT in iptables table nat not found"
    );
    assert_eq!(
        e.programs(),
        ["iptables-save"],
        "IPv4-only: ip6tables is not consulted"
    );
}

#[test]
fn gc_and_status() {
    let e = env();
    let mut conf =
        e.conf(json!({"cni.dev/valid-attachments": [{"containerID": "ctr1", "ifname": "eth0"}]}));
    conf["cniVersion"] = json!("1.1.0");
    let out = e.run("GC", &conf);
    assert_eq!(out.exit_code, 0, "{out:?}");
    e.fake.fail(
        "iptables",
        4,
        "iptables v1.8.9 (nf_tables): Could not fetch rule set generation id",
    );
    let (code, msg) = error(&e.run("STATUS", &conf));
    assert_eq!(code, 50);
    assert!(msg.starts_with("iptables backend is not usable"), "{msg}");
}

#[test]
fn nft_conditions_select_the_nftables_backend() {
    let e = env();
    e.fake.fail("nft", 1, "Error: No such file or directory");
    let out = e.run(
        "ADD",
        &e.conf(json!({"conditionsV4": ["ip saddr != 192.0.2.0/24"]})),
    );
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert_eq!(
        e.fake.command_lines()[0],
        "nft -j list table ip cni_hostport"
    );
}

#[test]
fn addresses_are_picked_as_the_reference_does() {
    let prev: cni_core::CniResult = serde_json::from_value(json!({
        "interfaces": [{"name": "host"}, {"name": "container", "sandbox": "netns"}],
        "ips": [
            {"address": "10.0.0.1/24", "gateway": "10.0.0.1", "interface": 0},
            {"address": "2001:db8:1::2/64", "gateway": "2001:db8:1::1", "interface": 1},
            {"address": "10.0.0.2/24", "gateway": "10.0.0.1", "interface": 1},
            {"address": "10.0.0.3/24", "interface": 1}
        ]
    }))
    .unwrap();
    let [v4, v6] = container_addresses(&prev, "container");
    assert_eq!(v4, Some("10.0.0.2/24".parse().unwrap()));
    assert_eq!(v6, Some("2001:db8:1::2/64".parse().unwrap()));
    let [v4, _] = container_addresses(&prev, "other");
    assert_eq!(v4, None);
}

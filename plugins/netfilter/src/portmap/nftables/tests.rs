//! Unit tests of the nftables portmap backend: exact transactions over scripted listings.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::portmap::tests::{ByProgram, lab_ports, lab_ports_for, mapping};
use crate::portmap::{ContainerPorts, PortmapOptions};

const NOT_FOUND: &str = "Error: No such file or directory\nlist table ip cni_hostport\n";

fn backend(runner: Arc<ByProgram>) -> (NftablesPortmap, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (
        NftablesPortmap::new(runner, HostLock::in_dir(dir.path())),
        dir,
    )
}

fn chain(family: &str, name: &str) -> Value {
    json!({"chain": {"family": family, "table": TABLE, "name": name}})
}

fn rule(family: &str, chain: &str, handle: u64, comment: Option<&str>, expr: Value) -> Value {
    let mut r =
        json!({"family": family, "table": TABLE, "chain": chain, "handle": handle, "expr": expr});
    if let Some(c) = comment {
        r["comment"] = json!(c);
    }
    json!({ "rule": r })
}

fn dnat(daddr: Option<&str>, proto: &str, port: u16, to: &str, to_port: u16) -> Value {
    let mut expr = Vec::new();
    if let Some(d) = daddr {
        expr.push(json!({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": d}}));
    }
    expr.push(json!({"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "dport"}}, "right": port}}));
    expr.push(json!({"dnat": {"addr": to, "port": to_port}}));
    Value::Array(expr)
}

fn masq(saddr: &str, daddr: &str) -> Value {
    json!([
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": saddr}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": daddr}},
        {"masquerade": null}
    ])
}

fn jump(target: &str) -> Value {
    json!([{"jump": {"target": target}}])
}

fn local_jump() -> Value {
    json!([
        {"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}},
        {"jump": {"target": "hostports_all"}}
    ])
}

/// The skeleton plus `extra` rules, as `nft -j list table ip cni_hostport` prints it.
fn listing(extra: Vec<Value>) -> String {
    let mut items: Vec<Value> = CHAINS.iter().map(|c| chain("ip", c)).collect();
    items.push(rule("ip", ALL_CHAIN, 3, None, jump(HOSTIP_CHAIN)));
    items.push(rule("ip", ALL_CHAIN, 4, None, jump(HOSTPORTS_CHAIN)));
    items.push(rule("ip", PREROUTING_CHAIN, 5, None, local_jump()));
    items.push(rule("ip", OUTPUT_CHAIN, 6, None, local_jump()));
    items.extend(extra);
    json!({ "nftables": items }).to_string()
}

fn ports() -> ContainerPorts {
    ContainerPorts {
        mappings: vec![
            mapping(8080, 80, "tcp", None),
            mapping(5353, 53, "udp", Some("127.0.0.1")),
        ],
        ..lab_ports(true, false, PortmapOptions::default())
    }
}

/// The rules `ports()` owns, handles from 20.
fn owned_rules(comment: &str) -> Vec<Value> {
    vec![
        rule(
            "ip",
            HOSTPORTS_CHAIN,
            20,
            Some(comment),
            dnat(None, "tcp", 8080, "10.99.0.2", 80),
        ),
        rule(
            "ip",
            HOSTPORTS_CHAIN,
            21,
            Some(comment),
            dnat(Some("127.0.0.1"), "udp", 5353, "10.99.0.2", 53),
        ),
        rule(
            "ip",
            MASQ_CHAIN,
            22,
            Some(comment),
            masq("10.99.0.2", "10.99.0.2"),
        ),
        rule(
            "ip",
            MASQ_CHAIN,
            23,
            Some(comment),
            masq("127.0.0.1", "10.99.0.2"),
        ),
    ]
}

#[test]
fn first_add_creates_the_table_in_one_transaction() {
    let kernel = Arc::new(ByProgram::new());
    kernel.fail("nft", 1, NOT_FOUND);
    let (b, _d) = backend(kernel.clone());
    b.add(&ports()).unwrap();
    assert_eq!(
        kernel.lines(),
        ["nft -j list table ip cni_hostport", "nft -f -"]
    );
    let c = format!("\"{}\"", ports().owner.nft_comment());
    assert_eq!(
        kernel.stdin_of("nft"),
        [format!(
            "add table ip cni_hostport {{ comment \"CNI portmap plugin\" ; }}
add chain ip cni_hostport hostports
add chain ip cni_hostport hostip_hostports
add chain ip cni_hostport hostports_all
add chain ip cni_hostport prerouting {{ type nat hook prerouting priority dstnat ; policy accept ; }}
add chain ip cni_hostport output {{ type nat hook output priority -100 ; policy accept ; }}
add chain ip cni_hostport masquerading {{ type nat hook postrouting priority srcnat ; policy accept ; }}
add rule ip cni_hostport hostports_all jump hostip_hostports
add rule ip cni_hostport hostports_all jump hostports
add rule ip cni_hostport prerouting fib daddr type local jump hostports_all
add rule ip cni_hostport output fib daddr type local jump hostports_all
add rule ip cni_hostport hostports tcp dport 8080 dnat to 10.99.0.2:80 comment {c}
add rule ip cni_hostport hostports ip daddr 127.0.0.1 udp dport 5353 dnat to 10.99.0.2:53 comment {c}
add rule ip cni_hostport masquerading ip saddr 10.99.0.2 ip daddr 10.99.0.2 masquerade comment {c}
add rule ip cni_hostport masquerading ip saddr 127.0.0.1 ip daddr 10.99.0.2 masquerade comment {c}
"
        )]
    );
}

#[test]
fn add_over_a_current_table_changes_nothing_and_check_passes() {
    let comment = ports().owner.nft_comment();
    let kernel = Arc::new(ByProgram::new());
    kernel.ok("nft", &listing(owned_rules(&comment)));
    let (b, _d) = backend(kernel.clone());
    b.add(&ports()).unwrap();
    assert_eq!(kernel.lines(), ["nft -j list table ip cni_hostport"]);
    kernel.ok("nft", &listing(owned_rules(&comment)));
    b.check(&ports()).unwrap();
    let mut drifted = owned_rules(&comment);
    drifted.remove(1);
    kernel.ok("nft", &listing(drifted));
    let err = b.check(&ports()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "nftables rule `hostports ip daddr 127.0.0.1 udp dport 5353 dnat to 10.99.0.2:53` in ip \
         cni_hostport not found"
    );
}

#[test]
fn a_port_of_another_container_is_a_conflict() {
    let kernel = Arc::new(ByProgram::new());
    let theirs = lab_ports_for("ctr2", true, false, PortmapOptions::default())
        .owner
        .nft_comment();
    kernel.ok(
        "nft",
        &listing(vec![rule(
            "ip",
            HOSTPORTS_CHAIN,
            30,
            Some(&theirs),
            dnat(None, "tcp", 8080, "10.99.0.3", 80),
        )]),
    );
    let (b, _d) = backend(kernel.clone());
    let err = b.add(&ports()).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"host port tcp *:8080 is already mapped to container "ctr2" of network "cnixnet""#
    );
    assert_eq!(
        kernel.lines(),
        ["nft -j list table ip cni_hostport"],
        "nothing applied"
    );
    // The reference's bare container-ID comment names the holder too.
    kernel.ok(
        "nft",
        &listing(vec![rule(
            "ip",
            HOSTPORTS_CHAIN,
            30,
            Some("abc"),
            dnat(Some("127.0.0.1"), "udp", 5353, "10.99.0.3", 53),
        )]),
    );
    let err = b.add(&ports()).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"host port udp 127.0.0.1:5353 is already mapped to container "abc""#
    );
}

#[test]
fn del_deletes_the_idle_table_or_just_the_rules() {
    let comment = ports().owner.nft_comment();
    let kernel = Arc::new(ByProgram::new());
    kernel
        .ok("nft", &listing(owned_rules(&comment)))
        .fail("nft", 1, NOT_FOUND);
    let (b, _d) = backend(kernel.clone());
    b.del(&ports().owner).unwrap();
    assert_eq!(
        kernel.lines(),
        [
            "nft -j list table ip cni_hostport",
            "nft -j list table ip6 cni_hostport",
            "nft -f -"
        ]
    );
    assert_eq!(kernel.stdin_of("nft"), ["delete table ip cni_hostport\n"]);

    let kernel = Arc::new(ByProgram::new());
    let mut rules = owned_rules(&comment);
    rules.push(rule(
        "ip",
        HOSTPORTS_CHAIN,
        40,
        Some("ctr1"),
        dnat(None, "tcp", 1, "10.99.0.2", 1),
    ));
    rules.push(rule(
        "ip",
        HOSTPORTS_CHAIN,
        41,
        Some("other"),
        dnat(None, "tcp", 2, "10.99.0.9", 2),
    ));
    kernel.ok("nft", &listing(rules)).fail("nft", 1, NOT_FOUND);
    let (b, _d) = backend(kernel.clone());
    b.del(&ports().owner).unwrap();
    let t = "ip cni_hostport";
    assert_eq!(
        kernel.stdin_of("nft"),
        [format!(
            "delete rule {t} hostports handle 20\ndelete rule {t} hostports handle 21\n\
             delete rule {t} masquerading handle 22\ndelete rule {t} masquerading handle 23\n\
             delete rule {t} hostports handle 40\n"
        )]
    );
}

#[test]
fn gc_keeps_valid_containers_and_other_networks() {
    let mine = ports().owner.nft_comment();
    let other_net = crate::portmap::PortmapOwner::new("othernet", "ctr7").nft_comment();
    let kernel = Arc::new(ByProgram::new());
    let mut rules = owned_rules(&mine);
    rules.push(rule(
        "ip",
        HOSTPORTS_CHAIN,
        50,
        Some(&other_net),
        dnat(None, "tcp", 9, "10.1.0.2", 9),
    ));
    kernel
        .ok("nft", &listing(rules.clone()))
        .fail("nft", 1, NOT_FOUND);
    let (b, _d) = backend(kernel.clone());
    b.gc("cnixnet", &["ctr1"]).unwrap();
    assert!(kernel.stdin_of("nft").is_empty(), "ctr1 is valid");
    kernel.ok("nft", &listing(rules)).fail("nft", 1, NOT_FOUND);
    b.gc("cnixnet", &[]).unwrap();
    let batch = kernel.stdin_of("nft").remove(0);
    assert_eq!(batch.lines().count(), 4, "{batch}");
    assert!(!batch.contains("handle 50"), "{batch}");
}

#[test]
fn conditions_and_masq_all_shape_the_rules() {
    let kernel = Arc::new(ByProgram::new());
    kernel.ok("nft", &listing(Vec::new()));
    let (b, _d) = backend(kernel.clone());
    let options = PortmapOptions {
        masq_all: true,
        conditions_v4: vec!["ip saddr != 192.0.2.0/24".to_owned()],
        ..PortmapOptions::default()
    };
    let ports = ContainerPorts {
        mappings: vec![mapping(8080, 80, "tcp", None)],
        ..lab_ports(true, false, options)
    };
    b.add(&ports).unwrap();
    let batch = kernel.stdin_of("nft").remove(0);
    let t = "ip cni_hostport";
    let c = ports.owner.nft_comment();
    assert_eq!(
        batch,
        format!(
            "flush chain {t} prerouting\n\
             add rule {t} prerouting ip saddr != 192.0.2.0/24 fib daddr type local jump hostports_all\n\
             flush chain {t} output\n\
             add rule {t} output ip saddr != 192.0.2.0/24 fib daddr type local jump hostports_all\n\
             add rule {t} hostports tcp dport 8080 dnat to 10.99.0.2:80 comment \"{c}\"\n\
             add rule {t} masquerading ip daddr 10.99.0.2 ct status dnat masquerade comment \"{c}\"\n"
        )
    );
}

#[test]
fn status_probes_nft() {
    let kernel = Arc::new(ByProgram::new());
    let (b, _d) = backend(kernel.clone());
    b.status().unwrap();
    assert_eq!(kernel.lines(), ["nft --check add table ip cni_hostport"]);
    let kernel = Arc::new(ByProgram::new().missing("nft"));
    let (b, _d) = backend(kernel);
    assert_eq!(
        b.status().unwrap_err().to_string(),
        "nftables backend is not usable"
    );
}

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::exec::FakeRunner;
use crate::firewall::{ContainerFirewall, IngressPolicy, OwnerTag};

const NOT_FOUND: &str = "Error: No such file or directory\nlist table inet cni_firewall\n";

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn fw(cid: &str, addrs: &[&str], policy: IngressPolicy, bridge: &str) -> ContainerFirewall {
    ContainerFirewall::new(
        Owner::new("cnixnet", cid, "eth0"),
        &ips(addrs),
        policy,
        Some(bridge),
        "CNI-ADMIN",
    )
    .unwrap()
}

fn backend() -> (Arc<FakeRunner>, NftablesFirewall, tempfile::TempDir) {
    let fake = Arc::new(FakeRunner::new());
    let dir = tempfile::tempdir().unwrap();
    let b = NftablesFirewall::new(fake.clone(), HostLock::in_dir(dir.path()));
    (fake, b, dir)
}

fn chain(name: &str) -> Value {
    json!({"chain": {"family": "inet", "table": "cni_firewall", "name": name}})
}

fn rule(chain: &str, handle: u64, comment: &str, expr: Value) -> Value {
    json!({"rule": {"family": "inet", "table": "cni_firewall", "chain": chain, "handle": handle,
                    "comment": comment, "expr": expr}})
}

fn addr_rule(handle: u64, comment: &str, field: &str, ip: &str) -> Value {
    let proto = if ip.contains(':') { "ip6" } else { "ip" };
    let mut expr = vec![
        json!({"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": field}}, "right": ip}}),
    ];
    if field == "daddr" {
        expr.push(json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}));
    }
    expr.push(json!({"accept": null}));
    rule("forward", handle, comment, Value::Array(expr))
}

/// A listing holding `containers` (id, address, isolation) on their bridges.
fn listing(containers: &[(&str, &str, IngressPolicy, &str)]) -> String {
    let mut items = vec![
        chain("forward"),
        chain("admin"),
        chain("isolation_stage_1"),
        chain("isolation_stage_2"),
    ];
    items.push(rule(
        "forward",
        1,
        "CNI firewall plugin: isolation",
        json!([{"jump": {"target": "isolation_stage_1"}}]),
    ));
    items.push(rule(
        "forward",
        2,
        "CNI firewall plugin: admin overrides",
        json!([{"jump": {"target": "admin"}}]),
    ));
    let mut handle = 10;
    let mut bridges: Vec<(IngressPolicy, &str)> = Vec::new();
    for (cid, ip, policy, bridge) in containers {
        let tag = fw(cid, &[ip], *policy, bridge).tag().nft_comment();
        items.push(addr_rule(handle, &tag, "daddr", ip));
        items.push(addr_rule(handle + 1, &tag, "saddr", ip));
        handle += 2;
        if policy.isolates() {
            if !bridges.iter().any(|(_, b)| b == bridge) {
                bridges.push((IngressPolicy::SameBridge, bridge));
            }
            if *policy == IngressPolicy::Isolated
                && !bridges.contains(&(IngressPolicy::Isolated, bridge))
            {
                bridges.push((IngressPolicy::Isolated, bridge));
            }
        }
    }
    for (i, (policy, bridge)) in bridges.iter().enumerate() {
        let comment = format!("{}: {bridge}", policy.as_str());
        let h = 100 + 2 * i as u64;
        items.push(rule("isolation_stage_1", h, &comment, json!([])));
        if *policy == IngressPolicy::SameBridge {
            items.push(rule("isolation_stage_2", h + 1, &comment, json!([])));
        }
    }
    json!({"nftables": items}).to_string()
}

const HEAD: &str = "add table inet cni_firewall { comment \"CNI firewall plugin rules\" ; }
add chain inet cni_firewall forward { type filter hook forward priority 0 ; policy accept ; }
add chain inet cni_firewall admin
add chain inet cni_firewall isolation_stage_1
add chain inet cni_firewall isolation_stage_2
";

#[test]
fn first_add_creates_the_table_in_one_transaction() {
    let (fake, b, _d) = backend();
    fake.fail("nft", 1, NOT_FOUND);
    let c = fw(
        "ctr1",
        &["10.99.0.2", "fd00:99::2"],
        IngressPolicy::Isolated,
        "cnix0",
    );
    b.add(&c).unwrap();
    assert_eq!(
        fake.command_lines(),
        ["nft -j list table inet cni_firewall", "nft -f -"]
    );
    let tag = c.tag().nft_comment();
    assert_eq!(
        fake.calls()[1].stdin.as_deref().unwrap(),
        format!(
            "{HEAD}insert rule inet cni_firewall forward jump admin comment \"CNI firewall plugin: admin overrides\"
insert rule inet cni_firewall forward jump isolation_stage_1 comment \"CNI firewall plugin: isolation\"
add rule inet cni_firewall forward ip daddr 10.99.0.2 ct state established,related accept comment \"{tag}\"
add rule inet cni_firewall forward ip saddr 10.99.0.2 accept comment \"{tag}\"
add rule inet cni_firewall forward ip6 daddr fd00:99::2 ct state established,related accept comment \"{tag}\"
add rule inet cni_firewall forward ip6 saddr fd00:99::2 accept comment \"{tag}\"
insert rule inet cni_firewall isolation_stage_1 iifname \"cnix0\" oifname != \"cnix0\" jump isolation_stage_2 comment \"same-bridge: cnix0\"
insert rule inet cni_firewall isolation_stage_1 iifname \"cnix0\" oifname \"cnix0\" drop comment \"isolated: cnix0\"
add rule inet cni_firewall isolation_stage_2 oifname \"cnix0\" drop comment \"same-bridge: cnix0\"
"
        )
    );
}

#[test]
fn add_in_place_is_one_listing() {
    let (fake, b, _d) = backend();
    fake.ok(
        "nft",
        &listing(&[("ctr1", "10.99.0.2", IngressPolicy::SameBridge, "cnix0")]),
    );
    b.add(&fw(
        "ctr1",
        &["10.99.0.2"],
        IngressPolicy::SameBridge,
        "cnix0",
    ))
    .unwrap();
    assert_eq!(
        fake.command_lines(),
        ["nft -j list table inet cni_firewall"]
    );
}

#[test]
fn re_add_with_another_address_replaces_the_rules() {
    let (fake, b, _d) = backend();
    fake.ok(
        "nft",
        &listing(&[("ctr1", "10.99.0.2", IngressPolicy::Open, "cnix0")]),
    );
    let c = fw("ctr1", &["10.99.0.7"], IngressPolicy::Open, "cnix0");
    b.add(&c).unwrap();
    let tag = c.tag().nft_comment();
    assert_eq!(
        fake.calls()[1].stdin.as_deref().unwrap(),
        format!(
            "delete rule inet cni_firewall forward handle 10
delete rule inet cni_firewall forward handle 11
add rule inet cni_firewall forward ip daddr 10.99.0.7 ct state established,related accept comment \"{tag}\"
add rule inet cni_firewall forward ip saddr 10.99.0.7 accept comment \"{tag}\"
"
        )
    );
}

#[test]
fn del_of_the_last_container_deletes_the_table() {
    let (fake, b, _d) = backend();
    fake.ok(
        "nft",
        &listing(&[("ctr1", "10.99.0.2", IngressPolicy::Isolated, "cnix0")]),
    );
    b.del(&Teardown::new(Owner::new("cnixnet", "ctr1", "eth0"), &[], None).unwrap())
        .unwrap();
    assert_eq!(
        fake.calls()[1].stdin.as_deref(),
        Some("delete table inet cni_firewall\n")
    );
}

#[test]
fn del_keeps_what_remaining_containers_rely_on() {
    let (fake, b, _d) = backend();
    fake.ok(
        "nft",
        &listing(&[
            ("ctr1", "10.99.0.2", IngressPolicy::Isolated, "cnix0"),
            ("ctr2", "10.99.0.3", IngressPolicy::SameBridge, "cnix0"),
        ]),
    );
    b.del(&Teardown::new(Owner::new("cnixnet", "ctr1", "eth0"), &[], None).unwrap())
        .unwrap();
    // ctr1's two rules and the isolated drop (handle 102); the same-bridge rules stay for ctr2.
    assert_eq!(
        fake.calls()[1].stdin.as_deref(),
        Some(
            "delete rule inet cni_firewall forward handle 10\ndelete rule inet cni_firewall forward handle 11\n\
             delete rule inet cni_firewall isolation_stage_1 handle 102\n"
        )
    );
}

#[test]
fn del_without_table_or_nft_is_success() {
    let (fake, b, _d) = backend();
    fake.fail("nft", 1, NOT_FOUND);
    let t = Teardown::new(Owner::new("cnixnet", "ctr1", "eth0"), &[], Some("cnix0")).unwrap();
    b.del(&t).unwrap();
    fake.set_missing("nft");
    b.del(&t).unwrap();
    assert_eq!(fake.command_lines().len(), 2);
}

#[test]
fn admin_rules_keep_the_table() {
    let (fake, b, _d) = backend();
    let mut v: Value = serde_json::from_str(&listing(&[(
        "ctr1",
        "10.99.0.2",
        IngressPolicy::Open,
        "cnix0",
    )]))
    .unwrap();
    v["nftables"]
        .as_array_mut()
        .unwrap()
        .push(rule("admin", 50, "mine", json!([{"drop": null}])));
    fake.ok("nft", &v.to_string());
    b.del(&Teardown::new(Owner::new("cnixnet", "ctr1", "eth0"), &[], None).unwrap())
        .unwrap();
    assert_eq!(
        fake.calls()[1].stdin.as_deref(),
        Some(
            "delete rule inet cni_firewall forward handle 10\ndelete rule inet cni_firewall forward handle 11\n"
        )
    );
}

#[test]
fn gc_selects_stale_attachments_of_the_network() {
    let (fake, b, _d) = backend();
    let mut v: Value = serde_json::from_str(&listing(&[
        ("ctr1", "10.99.0.2", IngressPolicy::Open, "cnix0"),
        ("ctr2", "10.99.0.3", IngressPolicy::Open, "cnix0"),
    ]))
    .unwrap();
    let other = OwnerTag {
        owner: Owner::new("othernet", "ctr1", "eth0"),
        isolation: None,
    }
    .nft_comment();
    v["nftables"]
        .as_array_mut()
        .unwrap()
        .push(addr_rule(60, &other, "saddr", "10.98.0.2"));
    fake.ok("nft", &v.to_string());
    b.gc("cnixnet", &[("ctr2", "eth0")]).unwrap();
    assert_eq!(
        fake.calls()[1].stdin.as_deref(),
        Some(
            "delete rule inet cni_firewall forward handle 10\ndelete rule inet cni_firewall forward handle 11\n"
        )
    );
}

#[test]
fn check_finds_drift() {
    let (fake, b, _d) = backend();
    let c = fw("ctr1", &["10.99.0.2"], IngressPolicy::Isolated, "cnix0");
    fake.ok(
        "nft",
        &listing(&[("ctr1", "10.99.0.2", IngressPolicy::Isolated, "cnix0")]),
    );
    b.check(&c).unwrap();
    fake.ok(
        "nft",
        &listing(&[("ctr1", "10.99.0.2", IngressPolicy::SameBridge, "cnix0")]),
    );
    let err = b.check(&c).unwrap_err();
    assert!(err.is_rule_missing());
    assert!(
        err.to_string()
            .starts_with("expected nftables rule `forward ip daddr 10.99.0.2"),
        "{err}"
    );
    fake.ok(
        "nft",
        &listing(&[("ctr1", "10.99.0.2", IngressPolicy::SameBridge, "cnix0")]),
    );
    let same = fw("ctr1", &["10.99.0.2"], IngressPolicy::SameBridge, "cnix0");
    b.check(&same).unwrap();
    fake.fail("nft", 1, NOT_FOUND);
    assert_eq!(
        b.check(&same).unwrap_err().to_string(),
        "nftables table inet cni_firewall not found"
    );
}

#[test]
fn status_probes_nft() {
    let (fake, b, _d) = backend();
    b.status().unwrap();
    assert_eq!(
        fake.command_lines(),
        ["nft --check add table inet cni_firewall"]
    );
    fake.set_missing("nft");
    assert_eq!(
        b.status().unwrap_err().to_string(),
        "nftables backend is not usable"
    );
}

#[test]
fn only_missing_objects_are_declared() {
    let (fake, b, _d) = backend();
    let mut v: Value = serde_json::from_str(&listing(&[])).unwrap();
    v["nftables"]
        .as_array_mut()
        .unwrap()
        .retain(|i| i.pointer("/chain/name").and_then(Value::as_str) != Some("admin"));
    fake.ok("nft", &v.to_string());
    let c = fw("ctr1", &["10.99.0.2"], IngressPolicy::Open, "cnix0");
    b.add(&c).unwrap();
    let batch = fake.calls()[1].stdin.clone().unwrap();
    assert!(
        batch.starts_with(
            "add chain inet cni_firewall admin\nadd rule inet cni_firewall forward ip daddr"
        ),
        "{batch}"
    );
    assert!(!batch.contains("add table"), "{batch}");
}

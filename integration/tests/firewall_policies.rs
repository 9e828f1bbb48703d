//! firewall edge cases of ownership: two policies on one bridge (the intra-bridge drop goes
//! with the last `isolated` container, the rest with the last container), an ADD repeated with
//! a new address replacing the old rules, a custom admin chain removed by a DEL without
//! `prevResult`, and long (but valid) names.

use integration_tests::firewall::{self, Firewall, filter_rules, ip_of, nft_table};
use integration_tests::{FirewallNet, World, assert_same};
use serde_json::{Value, json};

/// Every rule line (iptables, ip6tables, our nft table) in the host containing `needle`.
fn rules_with(world: &World, needle: &str) -> Vec<String> {
    let host = world.host();
    let mut lines: Vec<String> = [false, true]
        .into_iter()
        .flat_map(|v6| filter_rules(host, v6))
        .collect();
    lines.extend(
        nft_table(host)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned),
    );
    lines.into_iter().filter(|l| l.contains(needle)).collect()
}

/// Rules of `bridge` that belong to no attachment.
fn isolation_rules(world: &World, bridge: &str) -> Vec<String> {
    rules_with(world, bridge)
        .into_iter()
        .filter(|l| !l.contains("id: "))
        .collect()
}

/// The intra-bridge drop of `bridge` in either backend's spelling.
fn is_intra_drop(line: &str, bridge: &str) -> bool {
    line.contains(&format!("-i {bridge} -o {bridge} "))
        || line.contains(&format!("iifname \"{bridge}\" oifname \"{bridge}\" drop"))
}

/// A host-local `ipam` over `10.103.1.<first>-<last>` (gateway .1, default route).
fn range(world: &World, first: u8, last: u8) -> Value {
    json!({
        "type": "host-local",
        "dataDir": world.data_dir().to_string_lossy(),
        "ranges": [[{
            "subnet": "10.103.1.0/24",
            "rangeStart": format!("10.103.1.{first}"),
            "rangeEnd": format!("10.103.1.{last}"),
            "gateway": "10.103.1.1",
        }]],
        "routes": [{"dst": "0.0.0.0/0"}],
    })
}

/// Networks `iso` (isolated) and `same` (same-bridge) on ONE bridge and subnet (disjoint
/// ranges); `isolated_first` decides which container attaches first.
fn two_policies(backend: &str, isolated_first: bool) {
    let world = World::new();
    let iso = FirewallNet::new(
        &world,
        "pol-iso",
        "a",
        &["10.103.1.0/24"],
        json!({"backend": backend, "ingressPolicy": "isolated"}),
    )
    .with_bridge(json!({"ipam": range(&world, 10, 19)}));
    let same = FirewallNet::new(
        &world,
        "pol-same",
        "a",
        &["10.103.1.0/24"],
        json!({"backend": backend, "ingressPolicy": "same-bridge"}),
    )
    .with_bridge(json!({"ipam": range(&world, 20, 29)}));
    assert_eq!(iso.bridge(), same.bridge());
    iso.write();
    same.write();
    let (ci, cs) = (world.container(), world.container());
    let baseline = firewall::snapshot(&world, &[&iso]);
    if isolated_first {
        iso.add(&ci, "ctr-iso");
        same.add(&cs, "ctr-same");
    } else {
        same.add(&cs, "ctr-same");
        iso.add(&ci, "ctr-iso");
    }
    let br = iso.bridge();
    let rules = isolation_rules(&world, br);
    assert_eq!(
        rules.len(),
        3,
        "drop, stage-1 and stage-2 rule once each: {rules:#?}"
    );
    assert_eq!(rules.iter().filter(|l| is_intra_drop(l, br)).count(), 1);

    iso.del(&ci, "ctr-iso");
    let rules = isolation_rules(&world, br);
    assert_eq!(
        rules.len(),
        2,
        "the same-bridge container keeps stage 1 and 2: {rules:#?}"
    );
    assert!(
        !rules.iter().any(|l| is_intra_drop(l, br)),
        "the intra-bridge drop must go with the last isolated container: {rules:#?}"
    );
    same.del(&cs, "ctr-same");
    assert_same!(
        baseline,
        firewall::snapshot(&world, &[&iso]),
        "after both DELs"
    );
}

#[test]
fn iptables_two_policies_on_one_bridge_isolated_first() {
    two_policies("iptables", true);
}

#[test]
fn iptables_two_policies_on_one_bridge_same_bridge_first() {
    two_policies("iptables", false);
}

#[test]
fn nftables_two_policies_on_one_bridge_isolated_first() {
    two_policies("nftables", true);
}

#[test]
fn nftables_two_policies_on_one_bridge_same_bridge_first() {
    two_policies("nftables", false);
}

/// A bridge-style prevResult for `net` with `addrs` (CIDR).
fn prev(net: &FirewallNet<'_>, ctr: &integration_tests::Netns, addrs: &[&str]) -> Value {
    let ips: Vec<Value> = addrs
        .iter()
        .map(|a| json!({"interface": 2, "address": a}))
        .collect();
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": net.bridge()}, {"name": "vethpol0"},
                       {"name": "eth0", "sandbox": ctr.path_str()}],
        "ips": ips,
    })
}

fn re_add(backend: &str) {
    let world = World::new();
    let fw = json!({"backend": backend, "ingressPolicy": "same-bridge"});
    let net = FirewallNet::new(&world, "readd", "a", &["10.103.3.0/24"], fw);
    let ctr = world.container();
    let baseline = firewall::snapshot(&world, &[&net]);
    let first = prev(&net, &ctr, &["10.103.3.2/24", "fd67::2/64"]);
    let second = prev(&net, &ctr, &["10.103.3.9/24"]);
    for p in [&first, &second] {
        let conf = net.conf("1.0.0", Some(p));
        net.exec(Firewall::Ours, &net.call("ADD", &conf, "ctr-readd", &ctr))
            .result();
    }
    for gone in ["10.103.3.2", "fd67::2"] {
        assert_eq!(
            rules_with(&world, &format!("{gone}/")).len()
                + rules_with(&world, &format!("addr {gone} ")).len(),
            0,
            "rules of the old address {gone} left"
        );
    }
    let owner = if backend == "nftables" {
        "id: ctr-readd\""
    } else {
        "id: \\\"ctr-readd\\\""
    };
    let mine = rules_with(&world, owner);
    assert_eq!(mine.len(), 2, "{mine:#?}");
    assert!(mine.iter().all(|l| l.contains("10.103.3.9")), "{mine:#?}");
    let conf = net.conf("1.0.0", None);
    net.exec(Firewall::Ours, &net.call("DEL", &conf, "ctr-readd", &ctr))
        .expect_silent_success();
    assert_same!(baseline, firewall::snapshot(&world, &[&net]), "after DEL");
}

#[test]
fn iptables_re_add_with_a_new_address_replaces_the_rules() {
    re_add("iptables");
}

#[test]
fn nftables_re_add_with_a_new_address_replaces_the_rules() {
    re_add("nftables");
}

#[test]
fn custom_admin_chain_goes_with_a_del_without_prev_result() {
    let world = World::new();
    let fw = json!({"backend": "iptables", "iptablesAdminChainName": "CNIT-OPS"});
    let net = FirewallNet::new(&world, "admin", "a", &["10.103.4.0/24", "fd68::/64"], fw);
    net.write();
    let ctr = world.container();
    let baseline = firewall::snapshot(&world, &[&net]);
    net.add(&ctr, "ctr-admin");
    for v6 in [false, true] {
        assert!(
            firewall::filter_chains(world.host(), v6).contains(&"CNIT-OPS".to_owned()),
            "v6={v6}"
        );
    }
    let conf = net.conf("1.0.0", None);
    net.exec(Firewall::Ours, &net.call("DEL", &conf, "ctr-admin", &ctr))
        .expect_silent_success();
    assert_eq!(rules_with(&world, "CNI"), Vec::<String>::new());
    net.del(&ctr, "ctr-admin");
    assert_same!(baseline, firewall::snapshot(&world, &[&net]), "after DEL");
}

/// A podman-length container ID (64 hex) and a long network name fit both backends' comments
/// (nftables cuts at 128 bytes, keeping the identifying hashes); DEL without prevResult still
/// finds the rules.
fn long_names(backend: &str) {
    let world = World::new();
    let name = format!("net-{}", "n".repeat(96));
    let id = "0123456789abcdef".repeat(4);
    let fw = json!({"backend": backend, "ingressPolicy": "isolated"});
    let net = FirewallNet::new(&world, &name, "a", &["10.103.5.0/24"], fw);
    net.write();
    let ctr = world.container();
    let baseline = firewall::snapshot(&world, &[&net]);
    let r = net.add(&ctr, &id);
    let ip = ip_of(&r, 4);
    assert_eq!(rules_with(&world, &ip).len(), 2);
    net.check(&ctr, &id).expect_silent_success();
    let conf = net.conf("1.0.0", None);
    net.exec(Firewall::Ours, &net.call("DEL", &conf, &id, &ctr))
        .expect_silent_success();
    assert_eq!(rules_with(&world, &ip), Vec::<String>::new());
    net.del(&ctr, &id);
    assert_same!(baseline, firewall::snapshot(&world, &[&net]), "after DEL");
}

#[test]
fn iptables_long_names() {
    long_names("iptables");
}

#[test]
fn nftables_long_names() {
    long_names("nftables");
}

//! bridge ipMasq: the iptables layout (chain per attachment, same names and comments as the
//! reference), IPv6, several attachments, the nftables backend, and macspoofchk's nft rules.

use integration_tests::bridge::{
    iface_name, masq_chain, masq_rules, nft_masq_comment, without_shared_nft_skeletons,
};
use integration_tests::inspect::{nat_chains, nat_rules};
use integration_tests::traffic::{assert_reachable, udp_bind, udp_source_seen};
use integration_tests::{BridgeBench, Outside, World, assert_same, config};
use serde_json::json;

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn iptables_masquerade_matches_the_reference_layout_for_both_families() {
    let world = World::new();
    let b = BridgeBench::new(&world, "cnixnet");
    b.write(
        "1.0.0",
        json!({"isGateway": true, "ipMasq": true, "ipam": b.ipam(&["10.99.0.0/24", "fd99::/64"])}),
    );
    let ctr = world.container();
    let baseline = b.snapshot();

    b.add_id(&ctr, "ctr1");
    let host = world.host();
    assert_eq!(nat_chains(host, false), ["CNI-89724df900daa5db77d08f33"]);
    assert_eq!(
        sorted(nat_rules(host, false)),
        masq_rules("cnixnet", "ctr1", "10.99.0.2", "10.99.0.0/24")
    );
    assert_eq!(nat_chains(host, true), ["CNI-89724df900daa5db77d08f33"]);
    assert_eq!(
        sorted(nat_rules(host, true)),
        masq_rules("cnixnet", "ctr1", "fd99::2", "fd99::/64")
    );

    b.tool()
        .container_id("ctr1")
        .del("cnixnet", &ctr)
        .expect_silent_success();
    assert_same!(baseline, b.snapshot(), "after DEL");
}

#[test]
fn each_attachment_has_its_own_chain_and_del_removes_only_its_own() {
    let world = World::new();
    let b = BridgeBench::new(&world, "masqtwo");
    b.write(
        "1.0.0",
        json!({"isGateway": true, "ipMasq": true, "ipam": b.ipam(&["10.98.0.0/24"])}),
    );
    let (c1, c2) = (world.container(), world.container());
    let baseline = b.snapshot();

    b.add_id(&c1, "first");
    let after_first = b.snapshot();
    b.add_id(&c2, "second");
    let host = world.host();
    let mut chains = nat_chains(host, false);
    chains.sort();
    let mut expected = vec![
        masq_chain("masqtwo", "first"),
        masq_chain("masqtwo", "second"),
    ];
    expected.sort();
    assert_eq!(chains, expected);
    let mut rules = masq_rules("masqtwo", "first", "10.98.0.2", "10.98.0.0/24");
    rules.extend(masq_rules("masqtwo", "second", "10.98.0.3", "10.98.0.0/24"));
    assert_eq!(sorted(nat_rules(host, false)), sorted(rules));

    b.tool()
        .container_id("second")
        .del("masqtwo", &c2)
        .expect_silent_success();
    assert_same!(
        after_first,
        b.snapshot(),
        "after DEL of the second attachment"
    );
    b.tool()
        .container_id("first")
        .del("masqtwo", &c1)
        .expect_silent_success();
    assert_same!(baseline, b.snapshot(), "after DEL of both");
}

#[test]
fn nftables_backend_masquerades_with_one_commented_rule_per_address() {
    let world = World::new();
    let b = BridgeBench::new(&world, "nftmasq");
    let ipam = config::merge(
        b.ipam(&["10.97.0.0/24"]),
        json!({"routes": [{"dst": "0.0.0.0/0"}]}),
    );
    b.write(
        "1.0.0",
        json!({"isGateway": true, "ipMasq": true, "ipMasqBackend": "nftables", "ipam": ipam}),
    );
    let outside = Outside::connect(&world, &[]);
    let ctr = world.container();
    let baseline = without_shared_nft_skeletons(&b.snapshot());

    b.add_id(&ctr, "nftctr");
    let host = world.host();
    assert!(
        nat_rules(host, false).is_empty(),
        "no iptables rules with nftables"
    );
    let chain = host.run_ok(&[
        "nft",
        "list",
        "chain",
        "inet",
        "cni_plugins_masquerade",
        "masq_checks",
    ]);
    let rule = format!(
        "ip saddr 10.97.0.2 ip daddr != 10.97.0.0/24 masquerade comment \"{}\"",
        nft_masq_comment("nftmasq", "eth0", "nftctr")
    );
    assert!(
        chain.lines().any(|l| l.trim() == rule),
        "want `{rule}` in\n{chain}"
    );
    assert_reachable(&ctr, Outside::ADDR);
    let sock = udp_bind(&outside.ns, format!("{}:0", Outside::ADDR).parse().unwrap());
    let seen = udp_source_seen(&ctr, &sock, b"nft masquerade");
    assert_eq!(seen.to_string(), Outside::HOST_ADDR);

    b.tool()
        .container_id("nftctr")
        .del("nftmasq", &ctr)
        .expect_silent_success();
    assert_same!(
        baseline,
        without_shared_nft_skeletons(&b.snapshot()),
        "after DEL (empty shared nft table ignored)"
    );
}

#[test]
fn macspoofchk_drops_frames_from_other_macs_and_del_removes_its_rules() {
    let world = World::new();
    let b = BridgeBench::new(&world, "spoofnet");
    b.write(
        "1.0.0",
        json!({"macspoofchk": true, "ipam": b.ipam(&["10.96.0.0/24"])}),
    );
    let (c1, c2) = (world.container(), world.container());
    let baseline = without_shared_nft_skeletons(&b.snapshot());

    let r1 = b.add_id(&c1, "spoof1");
    b.add_id(&c2, "spoof2");
    let host = world.host();
    let table = host.run_ok(&["nft", "list", "table", "bridge", "nat"]);
    let veth = iface_name(&r1, 1);
    let mac = r1["interfaces"][2]["mac"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for needle in [
        format!(
            "iifname \"{veth}\" jump cni-br-iface-spoof1-eth0 comment \"macspoofchk-spoof1-eth0\""
        ),
        format!("ether saddr {mac} return comment \"macspoofchk-spoof1-eth0\""),
        "drop comment \"macspoofchk-spoof1-eth0\"".to_owned(),
    ] {
        assert!(table.contains(&needle), "want `{needle}` in\n{table}");
    }
    assert_reachable(&c1, "10.96.0.3");
    // A spoofed source MAC is dropped at the bridge.
    c1.run_ok(&["ip", "link", "set", "eth0", "address", "0a:58:0a:60:00:66"]);
    c1.run_ok(&["ip", "neigh", "flush", "all"]);
    c2.run_ok(&["ip", "neigh", "flush", "all"]);
    integration_tests::traffic::assert_unreachable(&c1, "10.96.0.3");

    b.tool()
        .container_id("spoof1")
        .del("spoofnet", &c1)
        .expect_silent_success();
    b.tool()
        .container_id("spoof2")
        .del("spoofnet", &c2)
        .expect_silent_success();
    let table = host
        .run(&["nft", "list", "table", "bridge", "nat"])
        .stdout_str();
    assert!(!table.contains("macspoofchk"), "rules left:\n{table}");
    assert_same!(
        baseline,
        without_shared_nft_skeletons(&b.snapshot()),
        "after DEL (empty shared nft table ignored)"
    );
}

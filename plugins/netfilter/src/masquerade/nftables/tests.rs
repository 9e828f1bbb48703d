use std::sync::Arc;

use super::*;
use crate::exec::FakeRunner;

/// Real `nft -j list table inet cni_plugins_masquerade` (nft 1.0.6) holding rules for
/// cnixnet/eth0/ctr1 (v4 + v6, handles 6 and 7), cnixnet/eth0/ctr2 (8) and othernet/eth0/ctr2 (9).
const LISTING: &str = include_str!("../../../testdata/nft-masquerade.json");
const MISSING: &str = "Error: No such file or directory\nlist table inet cni_plugins_masquerade\n";
const CTR1: &str = "d6383b24d778277c-7883a6f9ce71eedb, net: cnixnet, if: eth0, id: ctr1";

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

fn backend() -> (Arc<FakeRunner>, NftablesMasquerade) {
    let fake = Arc::new(FakeRunner::new());
    (fake.clone(), NftablesMasquerade::new(fake))
}

#[test]
fn comment_format_matches_reference() {
    assert_eq!(instance_comment("cnixnet", "eth0", "ctr1"), CTR1);
    assert_eq!(network_hash("cnixnet"), "d6383b24d778277c");
    let long = "c".repeat(200);
    let comment = instance_comment("cnixnet", "eth0", &long);
    assert_eq!(comment.len(), 128);
    assert!(comment.starts_with(&instance_hash("cnixnet", "eth0", &long)));
}

#[test]
fn setup_batch_text_dual_stack() {
    let (fake, b) = backend();
    fake.fail("nft", 1, MISSING);
    b.setup(
        "cnixnet",
        "ctr1",
        "eth0",
        &[net("10.99.0.2/24"), net("fd00:99::2/64")],
    )
    .unwrap();
    assert_eq!(
        fake.command_lines(),
        ["nft -j list table inet cni_plugins_masquerade", "nft -f -"]
    );
    let expected = format!(
        "add table inet cni_plugins_masquerade {{ comment \"Masquerading for plugins from github.com/containernetworking/plugins\" ; }}
add chain inet cni_plugins_masquerade masq_checks {{ comment \"Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet\" ; }}
add chain inet cni_plugins_masquerade postrouting {{ type nat hook postrouting priority 100 ; }}
flush chain inet cni_plugins_masquerade postrouting
add rule inet cni_plugins_masquerade postrouting ip daddr == 224.0.0.0/4 return
add rule inet cni_plugins_masquerade postrouting ip6 daddr == ff00::/8 return
add rule inet cni_plugins_masquerade postrouting goto masq_checks
add rule inet cni_plugins_masquerade masq_checks ip saddr == 10.99.0.2 ip daddr != 10.99.0.0/24 masquerade comment \"{CTR1}\"
add rule inet cni_plugins_masquerade masq_checks ip6 saddr == fd00:99::2 ip6 daddr != fd00:99::/64 masquerade comment \"{CTR1}\"
"
    );
    assert_eq!(fake.calls()[1].stdin.as_deref(), Some(expected.as_str()));
}

#[test]
fn setup_replaces_stale_rules_of_the_same_attachment() {
    let (fake, b) = backend();
    fake.ok("nft", LISTING);
    b.setup("cnixnet", "ctr1", "eth0", &[net("10.99.0.5/24")])
        .unwrap();
    let batch = fake.calls()[1].stdin.clone().unwrap_or_default();
    assert!(batch.contains("delete rule inet cni_plugins_masquerade masq_checks handle 6\n"));
    assert!(batch.contains("delete rule inet cni_plugins_masquerade masq_checks handle 7\n"));
    assert!(!batch.contains("handle 8"), "other attachments untouched");
}

#[test]
fn teardown_deletes_by_hash_prefix() {
    let (fake, b) = backend();
    fake.ok("nft", LISTING);
    b.teardown("cnixnet", "ctr1", "eth0").unwrap();
    assert_eq!(
        fake.calls()[1].stdin.as_deref(),
        Some(
            "delete rule inet cni_plugins_masquerade masq_checks handle 6\n\
             delete rule inet cni_plugins_masquerade masq_checks handle 7\n"
        )
    );
}

#[test]
fn teardown_of_nothing_is_one_exec() {
    let (fake, b) = backend();
    fake.fail("nft", 1, MISSING);
    b.teardown("cnixnet", "ctr1", "eth0").unwrap();
    let (fake2, b2) = backend();
    fake2.ok("nft", LISTING);
    b2.teardown("cnixnet", "ctr1", "eth1").unwrap();
    assert_eq!(fake.calls().len() + fake2.calls().len(), 2);
}

#[test]
fn gc_keeps_valid_and_other_networks() {
    let (fake, b) = backend();
    fake.ok("nft", LISTING);
    b.gc("cnixnet", &[("ctr2", "eth0")]).unwrap();
    let batch = fake.calls()[1].stdin.clone().unwrap_or_default();
    assert_eq!(
        batch,
        "delete rule inet cni_plugins_masquerade masq_checks handle 6\n\
         delete rule inet cni_plugins_masquerade masq_checks handle 7\n"
    );
    // ctr1 kept but on another ifname: its eth0 rules are stale.
    let (fake, b) = backend();
    fake.ok("nft", LISTING);
    b.gc("cnixnet", &[("ctr1", "eth1"), ("ctr2", "eth0")])
        .unwrap();
    assert!(
        fake.calls()[1]
            .stdin
            .as_deref()
            .unwrap_or_default()
            .contains("handle 6")
    );
}

#[test]
fn check_verifies_rule_content() {
    let table = NftTable::parse(LISTING).unwrap();
    check_table(&table, CTR1, &[net("10.99.0.2/24"), net("fd00:99::2/64")]).unwrap();
    let other = instance_comment("othernet", "eth0", "ctr2");
    check_table(&table, &other, &[net("10.88.0.3/32")]).unwrap();
    let err = check_table(&table, CTR1, &[net("10.99.0.2/16")]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("nftables rule `masq_checks ip saddr 10.99.0.2 ip daddr != 10.99.0.0/16")
    );

    let (fake, b) = backend();
    fake.fail("nft", 1, MISSING);
    let err = b
        .check("cnixnet", "ctr1", "eth0", &[net("10.99.0.2/24")])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "nftables table inet cni_plugins_masquerade not found"
    );
}

#[test]
fn names_are_validated() {
    let (fake, b) = backend();
    assert!(
        b.setup("cnixnet", "ctr1", "eth0\"", &[net("10.0.0.2/24")])
            .is_err()
    );
    assert!(b.teardown("cnixnet", "ctr 1", "eth0").is_err());
    assert!(fake.calls().is_empty());
}

#[test]
fn status_probes_nft() {
    let (fake, b) = backend();
    b.status().unwrap();
    assert_eq!(
        fake.command_lines(),
        ["nft --check add table inet cni_plugins_masquerade"]
    );
    let (fake, b) = backend();
    fake.set_missing("nft");
    assert_eq!(
        b.status().unwrap_err().to_string(),
        "nftables backend is not usable"
    );
}

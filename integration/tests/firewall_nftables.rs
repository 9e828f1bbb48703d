//! firewall, nftables backend: the exact table ours writes (`inet cni_firewall`, the reference's
//! semantics in our own chains, per-container rules commented with their owner), and shared
//! state that belongs to the operator — a rule in the admin chain — keeping the table (or, for
//! iptables, CNI-FORWARD and CNI-ADMIN) alive after the last container's DEL.

use integration_tests::firewall::{
    self, IFNAME, admin_jump, filter_chains, filter_rules, forward_jump, ip_of, nft_address_rules,
    nft_owner_comment, nft_table,
};
use integration_tests::textdiff::diff_lines;
use integration_tests::{FirewallNet, World, assert_same};
use serde_json::json;

const HEAD: &str = "table inet cni_firewall {
\tcomment \"CNI firewall plugin rules\"
\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\tjump isolation_stage_1 comment \"CNI firewall plugin: isolation\"
\t\tjump admin comment \"CNI firewall plugin: admin overrides\"
";

fn assert_table(world: &World, want: &str) {
    let have = nft_table(world.host());
    assert!(have.is_some(), "our nft table does not exist");
    let have = have.unwrap_or_default();
    let diff = diff_lines(want, &have);
    assert!(
        diff.is_none(),
        "nft table differs from the expected layout (-want +have):\n{}\n{have}",
        diff.unwrap_or_default()
    );
}

#[test]
fn exact_layout_same_bridge_two_bridges() {
    let world = World::new();
    let fw = json!({"backend": "nftables", "ingressPolicy": "same-bridge"});
    let a = FirewallNet::new(
        &world,
        "nft-a",
        "a",
        &["10.101.1.0/24", "fd65:1::/64"],
        fw.clone(),
    );
    let b = FirewallNet::new(&world, "nft-b", "b", &["10.101.2.0/24"], fw);
    a.write();
    b.write();
    let mut want = HEAD.to_owned();
    for (net, id) in [(&a, "ctr-a1"), (&a, "ctr-a2"), (&b, "ctr-b1")] {
        let r = net.add(&world.container(), id);
        let c = nft_owner_comment(net.net(), id, IFNAME, Some(("same-bridge", net.bridge())));
        let mut ips = vec![ip_of(&r, 4)];
        if net.subnets.len() == 2 {
            ips.push(ip_of(&r, 6));
        }
        for ip in ips {
            for rule in nft_address_rules(&ip, &c) {
                want.push_str(&format!("\t\t{rule}\n"));
            }
        }
    }
    let (ba, bb) = (a.bridge(), b.bridge());
    want.push_str(&format!(
        "\t}}\n\n\tchain admin {{\n\t}}\n\n\tchain isolation_stage_1 {{\n\
         \t\tiifname \"{bb}\" oifname != \"{bb}\" jump isolation_stage_2 comment \"same-bridge: {bb}\"\n\
         \t\tiifname \"{ba}\" oifname != \"{ba}\" jump isolation_stage_2 comment \"same-bridge: {ba}\"\n\
         \t}}\n\n\tchain isolation_stage_2 {{\n\
         \t\toifname \"{ba}\" drop comment \"same-bridge: {ba}\"\n\
         \t\toifname \"{bb}\" drop comment \"same-bridge: {bb}\"\n\t}}\n}}\n"
    ));
    assert_table(&world, &want);
    // The nftables backend leaves iptables alone.
    for v6 in [false, true] {
        assert_eq!(filter_rules(world.host(), v6), Vec::<String>::new());
    }
}

#[test]
fn exact_layout_isolated() {
    let world = World::new();
    let fw = json!({"backend": "nftables", "ingressPolicy": "isolated"});
    let net = FirewallNet::new(&world, "nft-iso", "a", &["10.101.3.0/24"], fw);
    net.write();
    let r = net.add(&world.container(), "ctr-iso");
    let br = net.bridge();
    let c = nft_owner_comment("nft-iso", "ctr-iso", IFNAME, Some(("isolated", br)));
    let mut want = HEAD.to_owned();
    for rule in nft_address_rules(&ip_of(&r, 4), &c) {
        want.push_str(&format!("\t\t{rule}\n"));
    }
    want.push_str(&format!(
        "\t}}\n\n\tchain admin {{\n\t}}\n\n\tchain isolation_stage_1 {{\n\
         \t\tiifname \"{br}\" oifname \"{br}\" drop comment \"isolated: {br}\"\n\
         \t\tiifname \"{br}\" oifname != \"{br}\" jump isolation_stage_2 comment \"same-bridge: {br}\"\n\
         \t}}\n\n\tchain isolation_stage_2 {{\n\
         \t\toifname \"{br}\" drop comment \"same-bridge: {br}\"\n\t}}\n}}\n"
    ));
    assert_table(&world, &want);
}

#[test]
fn nftables_admin_rule_keeps_the_table() {
    let world = World::new();
    let fw = json!({"backend": "nftables", "ingressPolicy": "same-bridge"});
    let net = FirewallNet::new(&world, "nft-admin", "a", &["10.101.4.0/24"], fw);
    net.write();
    let ctr = world.container();
    net.add(&ctr, "ctr-admin");
    let mut argv = vec!["nft", "add", "rule"];
    argv.extend(firewall::NFT_TABLE.split(' '));
    argv.extend(["admin", "ip", "saddr", "192.0.2.1", "drop"]);
    world.host().run_ok(&argv);
    net.del(&ctr, "ctr-admin");
    let table = nft_table(world.host()).expect("the operator's admin rule keeps the table");
    assert!(table.contains("ip saddr 192.0.2.1 drop"), "{table}");
    assert!(!table.contains("id: ctr-admin"), "{table}");
    assert!(
        !table.contains(net.bridge()),
        "isolation rules must go: {table}"
    );
}

#[test]
fn iptables_admin_rule_keeps_the_shared_chains() {
    let world = World::new();
    let fw = json!({"backend": "iptables"});
    let net = FirewallNet::new(&world, "ipt-admin", "a", &["10.101.5.0/24"], fw);
    net.write();
    let (ctr, other) = (world.container(), world.container());
    let baseline = firewall::snapshot(&world, &[&net]);
    net.add(&ctr, "ctr-admin");
    let host = world.host();
    host.run_ok(&[
        "iptables",
        "-w",
        "-A",
        "CNI-ADMIN",
        "-s",
        "192.0.2.1/32",
        "-j",
        "DROP",
    ]);
    net.del(&ctr, "ctr-admin");
    assert_eq!(filter_chains(host, false), ["CNI-ADMIN", "CNI-FORWARD"]);
    let mut rules = filter_rules(host, false);
    rules.sort();
    assert_eq!(
        rules,
        [
            "-A CNI-ADMIN -s 192.0.2.1/32 -j DROP".to_owned(),
            admin_jump("CNI-ADMIN"),
            forward_jump(),
        ]
    );
    // Once the operator's rule is gone, the next container's DEL cleans up completely.
    host.run_ok(&[
        "iptables",
        "-w",
        "-D",
        "CNI-ADMIN",
        "-s",
        "192.0.2.1/32",
        "-j",
        "DROP",
    ]);
    net.add(&other, "ctr-next");
    net.del(&other, "ctr-next");
    assert_same!(
        baseline,
        firewall::snapshot(&world, &[&net]),
        "after the last DEL"
    );
}

//! firewall ingressPolicy with real traffic, through cnitool (bridge + host-local + firewall).
//!
//! Two networks on two bridges A and B in one host namespace that routes between them
//! (`isGateway`, default routes): containers A1 and A2 on A, B1 on B.
//!
//! | policy        | A1 ↔ A2 | A1 ↔ B1 |
//! |---------------|---------|---------|
//! | `open`        | yes     | yes     |
//! | `same-bridge` | yes     | no      |
//! | `isolated`    | no      | no      |
//!
//! For the iptables and the nftables backend, IPv4 and IPv6. Bridged traffic reaches the forward
//! hook because `bridge-nf-call-ip(6)tables` is on (the per-namespace default). Every test ends
//! with DEL of every container and a return to the baseline.

use integration_tests::firewall::{self, filter_chains, ip_of, nft_table};
use integration_tests::traffic::{assert_reachable, assert_unreachable};
use integration_tests::{FirewallNet, Netns, World, assert_same, inspect};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    Open,
    SameBridge,
    Isolated,
}

impl Policy {
    fn as_str(self) -> &'static str {
        match self {
            Policy::Open => "open",
            Policy::SameBridge => "same-bridge",
            Policy::Isolated => "isolated",
        }
    }
}

/// Builds the two networks, attaches A1, A2, B1, checks the matrix for `policy`, DELs all.
fn matrix(backend: &str, policy: Policy, subnets: [&str; 2]) {
    let v6 = subnets[0].contains(':');
    let family = if v6 { 6 } else { 4 };
    let world = World::new();
    let fw = json!({"backend": backend, "ingressPolicy": policy.as_str()});
    let a = FirewallNet::new(&world, "fwnet-a", "a", &[subnets[0]], fw.clone());
    let b = FirewallNet::new(&world, "fwnet-b", "b", &[subnets[1]], fw);
    a.write();
    b.write();
    let (a1, a2, b1) = (world.container(), world.container(), world.container());
    let baseline = firewall::snapshot(&world, &[&a, &b]);

    let ra1 = a.add(&a1, "ctr-a1");
    let ra2 = a.add(&a2, "ctr-a2");
    let rb1 = b.add(&b1, "ctr-b1");
    let (ip_a1, ip_a2, ip_b1) = (
        ip_of(&ra1, family),
        ip_of(&ra2, family),
        ip_of(&rb1, family),
    );
    let gw = |r: &serde_json::Value| {
        r["ips"][0]["gateway"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_only_backend(world.host(), backend, v6);
    if v6 {
        for (ctr, gw) in [(&a1, gw(&ra1)), (&a2, gw(&ra2)), (&b1, gw(&rb1))] {
            // The host side's addresses finish DAD on their own; wait until each container can
            // talk to its gateway before judging silence elsewhere.
            assert_reachable(ctr, &gw);
        }
    }

    let reachable = |from: &Netns, to: &str, yes: bool| {
        if yes {
            assert_reachable(from, to);
        } else {
            assert_unreachable(from, to);
        }
    };
    let same = policy != Policy::Isolated;
    let cross = policy == Policy::Open;
    // The host itself (the gateway) is never isolated: proof that each container is attached.
    assert_reachable(&a1, &gw(&ra1));
    assert_reachable(&b1, &gw(&rb1));
    reachable(&a1, &ip_a2, same);
    reachable(&a2, &ip_a1, same);
    reachable(&a1, &ip_b1, cross);
    reachable(&b1, &ip_a1, cross);
    reachable(&b1, &ip_a2, cross);

    a.del(&a1, "ctr-a1");
    a.del(&a2, "ctr-a2");
    b.del(&b1, "ctr-b1");
    assert_same!(
        baseline,
        firewall::snapshot(&world, &[&a, &b]),
        "after DEL of every container ({backend}, {})",
        policy.as_str()
    );
}

/// The rules live in the chosen backend only: iptables chains xor our nft table.
#[track_caller]
fn assert_only_backend(host: &Netns, backend: &str, v6: bool) {
    let chains: Vec<String> = [false, true]
        .into_iter()
        .flat_map(|v6| filter_chains(host, v6))
        .collect();
    let table = nft_table(host);
    match backend {
        "iptables" => {
            assert!(
                chains.iter().any(|c| c == "CNI-FORWARD"),
                "iptables backend made no CNI-FORWARD chain: {chains:?}"
            );
            assert_eq!(table, None, "iptables backend made an nft table");
        }
        _ => {
            assert_eq!(
                chains,
                Vec::<String>::new(),
                "nftables backend used iptables"
            );
            assert!(
                table.is_some(),
                "nftables backend made no `{}`",
                firewall::NFT_TABLE
            );
        }
    }
    // Forwarding is what makes cross-bridge silence meaningful.
    let key = if v6 {
        "net/ipv6/conf/all/forwarding"
    } else {
        "net/ipv4/ip_forward"
    };
    assert_eq!(inspect::sysctl(host, key), "1", "{key}");
}

#[test]
fn iptables_open_lets_everything_through() {
    matrix("iptables", Policy::Open, ["10.81.1.0/24", "10.81.2.0/24"]);
}

#[test]
fn iptables_same_bridge_separates_bridges() {
    matrix(
        "iptables",
        Policy::SameBridge,
        ["10.82.1.0/24", "10.82.2.0/24"],
    );
}

#[test]
fn iptables_isolated_separates_containers_of_one_bridge_too() {
    matrix(
        "iptables",
        Policy::Isolated,
        ["10.83.1.0/24", "10.83.2.0/24"],
    );
}

#[test]
fn nftables_open_lets_everything_through() {
    matrix("nftables", Policy::Open, ["10.84.1.0/24", "10.84.2.0/24"]);
}

#[test]
fn nftables_same_bridge_separates_bridges() {
    matrix(
        "nftables",
        Policy::SameBridge,
        ["10.85.1.0/24", "10.85.2.0/24"],
    );
}

#[test]
fn nftables_isolated_separates_containers_of_one_bridge_too() {
    matrix(
        "nftables",
        Policy::Isolated,
        ["10.86.1.0/24", "10.86.2.0/24"],
    );
}

#[test]
fn iptables_same_bridge_separates_bridges_ipv6() {
    matrix(
        "iptables",
        Policy::SameBridge,
        ["fd87:1::/64", "fd87:2::/64"],
    );
}

#[test]
fn iptables_isolated_separates_containers_ipv6() {
    matrix("iptables", Policy::Isolated, ["fd88:1::/64", "fd88:2::/64"]);
}

#[test]
fn nftables_same_bridge_separates_bridges_ipv6() {
    matrix(
        "nftables",
        Policy::SameBridge,
        ["fd89:1::/64", "fd89:2::/64"],
    );
}

#[test]
fn nftables_isolated_separates_containers_ipv6() {
    matrix("nftables", Policy::Isolated, ["fd8a:1::/64", "fd8a:2::/64"]);
}

#[test]
fn backend_absent_or_empty_means_iptables() {
    // podman writes `"backend": ""`; absent is the reference default on hosts without firewalld.
    for (i, fw) in [json!({"backend": ""}), json!({})].into_iter().enumerate() {
        let world = World::new();
        let net = FirewallNet::new(&world, "fwdefault", "a", &["10.90.1.0/24"], fw);
        net.write();
        let ctr = world.container();
        let baseline = firewall::snapshot(&world, &[&net]);
        let id = format!("ctr-default{i}");
        let r = net.add(&ctr, &id);
        assert_only_backend(world.host(), "iptables", false);
        let ip = ip_of(&r, 4);
        let rules = firewall::filter_rules(world.host(), false);
        let owner = firewall::owner_comment("fwdefault", &id, "eth0", None);
        for rule in firewall::address_rules(&ip, Some(&owner)) {
            assert!(rules.contains(&rule), "missing {rule}\nin {rules:#?}");
        }
        net.del(&ctr, &id);
        assert_same!(baseline, firewall::snapshot(&world, &[&net]), "after DEL");
    }
}

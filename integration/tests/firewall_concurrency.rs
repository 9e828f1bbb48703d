//! firewall under parallel ADD/DEL: 8 dual-stack containers attach at once (through cnitool) to
//! a `same-bridge` network whose chains do not exist yet; no rule may be lost or duplicated —
//! the exact rule set is checked — and parallel DELs return the world to its baseline.

use integration_tests::firewall::{
    self, IFNAME, address_rules, admin_jump, filter_chains, filter_rules, forward_jump, in_chain,
    ip_of, nft_table, owner_comment, stage_return, stage1_jump, stage1_rules, stage2_rule,
};
use integration_tests::{FirewallNet, World, assert_same};
use serde_json::{Value, json};

const N: usize = 8;
const NET: &str = "fwpar";

fn id(i: usize) -> String {
    format!("par{i}")
}

/// ADDs all containers in parallel, checks with `verify`, DELs all in parallel.
fn parallel(backend: &str, verify: impl Fn(&FirewallNet<'_>, &[Value])) {
    let world = World::new();
    let fw = json!({"backend": backend, "ingressPolicy": "same-bridge"});
    let net = FirewallNet::new(&world, NET, "a", &["10.100.0.0/24", "fd64:100::/64"], fw);
    net.write();
    let ctrs: Vec<_> = (0..N).map(|_| world.container()).collect();
    let baseline = firewall::snapshot(&world, &[&net]);

    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = ctrs
            .iter()
            .enumerate()
            .map(|(i, ctr)| {
                let net = &net;
                s.spawn(move || net.add(ctr, &id(i)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    verify(&net, &results);
    for (i, ctr) in ctrs.iter().enumerate() {
        net.check(ctr, &id(i)).expect_silent_success();
    }

    std::thread::scope(|s| {
        for (i, ctr) in ctrs.iter().enumerate() {
            let net = &net;
            s.spawn(move || net.del(ctr, &id(i)));
        }
    });
    assert_same!(
        baseline,
        firewall::snapshot(&world, &[&net]),
        "after parallel DELs"
    );
}

#[test]
fn iptables_parallel_adds_and_dels_lose_and_duplicate_nothing() {
    parallel("iptables", |net, results| {
        let host = net.world().host();
        let br = net.bridge();
        for (v6, family) in [(false, 4), (true, 6)] {
            let rules = filter_rules(host, v6);
            assert_eq!(
                filter_chains(host, v6),
                [
                    "CNI-ADMIN",
                    "CNI-FORWARD",
                    "CNI-ISOLATION-STAGE-1",
                    "CNI-ISOLATION-STAGE-2"
                ]
            );
            assert_eq!(in_chain(&rules, "FORWARD"), [stage1_jump(), forward_jump()]);
            let fwd = in_chain(&rules, "CNI-FORWARD");
            assert_eq!(fwd.len(), 1 + 2 * N, "{fwd:#?}");
            assert_eq!(fwd[0], admin_jump("CNI-ADMIN"));
            let mut want: Vec<String> = results
                .iter()
                .enumerate()
                .flat_map(|(i, r)| {
                    let c = owner_comment(NET, &id(i), IFNAME, Some(("same-bridge", br)));
                    address_rules(&ip_of(r, family), Some(&c))
                })
                .collect();
            want.sort();
            let mut have = fwd[1..].to_vec();
            have.sort();
            assert_eq!(have, want, "IPv{family} per-container rules");
            let mut s1 = stage1_rules(br, "same-bridge");
            s1.push(stage_return("CNI-ISOLATION-STAGE-1"));
            assert_eq!(in_chain(&rules, "CNI-ISOLATION-STAGE-1"), s1);
            assert_eq!(
                in_chain(&rules, "CNI-ISOLATION-STAGE-2"),
                [stage2_rule(br), stage_return("CNI-ISOLATION-STAGE-2")]
            );
            assert_eq!(rules.len(), 2 + 1 + 2 * N + 2 + 2, "{rules:#?}");
        }
    });
}

#[test]
fn nftables_parallel_adds_and_dels_lose_and_duplicate_nothing() {
    parallel("nftables", |net, results| {
        let table = nft_table(net.world().host()).expect("our nft table exists");
        let br = net.bridge();
        let rules: Vec<&str> = table
            .lines()
            .map(str::trim)
            .filter(|l| l.contains(" comment \""))
            .collect();
        // 2 structural jumps, 4 rules per dual-stack container, stage-1 and stage-2 rule.
        assert_eq!(rules.len(), 2 + 4 * N + 2, "{table}");
        for (i, r) in results.iter().enumerate() {
            let marker = format!("id: {}\"", id(i));
            let mine: Vec<&&str> = rules.iter().filter(|l| l.contains(&marker)).collect();
            assert_eq!(mine.len(), 4, "rules of {}: {mine:#?}", id(i));
            for needle in [
                format!(
                    "ip daddr {} ct state established,related accept",
                    ip_of(r, 4)
                ),
                format!("ip saddr {} accept", ip_of(r, 4)),
                format!(
                    "ip6 daddr {} ct state established,related accept",
                    ip_of(r, 6)
                ),
                format!("ip6 saddr {} accept", ip_of(r, 6)),
            ] {
                assert_eq!(
                    mine.iter().filter(|l| l.contains(&needle)).count(),
                    1,
                    "{needle} in {mine:#?}"
                );
            }
        }
        let isolation = rules
            .iter()
            .filter(|l| l.contains(&format!("comment \"same-bridge: {br}\"")))
            .count();
        assert_eq!(isolation, 2, "{table}");
    });
}

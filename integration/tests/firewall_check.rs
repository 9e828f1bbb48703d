//! firewall CHECK: passes right after ADD (through cnitool, i.e. libcni with the cached result),
//! and fails with code 131 and a message naming the missing rule after a per-container rule or
//! an isolation rule (which the reference does not check) was deleted behind the plugin's back,
//! for both backends. DEL afterwards still returns the world to its baseline.

use integration_tests::firewall::{
    self, Firewall, IFNAME, address_rules, delete_rule, forward_jump, ip_of, nft_delete_rule,
    owner_comment, stage2_rule,
};
use integration_tests::{FirewallNet, Netns, World, assert_same};
use serde_json::{Value, json};

const NET: &str = "fwcheck";
const ID: &str = "ctr-check";

/// What a drift case gets: the network, the container and its ADD result.
struct Attached<'a> {
    net: &'a FirewallNet<'a>,
    result: Value,
}

impl Attached<'_> {
    fn host(&self) -> &Netns {
        self.net.world().host()
    }

    fn our_rules(&self, family: u8) -> Vec<String> {
        let c = owner_comment(NET, ID, IFNAME, Some(("same-bridge", self.net.bridge())));
        address_rules(&ip_of(&self.result, family), Some(&c))
    }
}

/// ADD, CHECK ok (cnitool and direct), `drift`, CHECK fails with 131 and a message containing
/// every one of `tokens`, cnitool CHECK fails too; then DEL back to the baseline.
fn drift_case(backend: &str, drift: impl Fn(&Attached<'_>) -> Vec<String>) {
    let world = World::new();
    let fw = json!({"backend": backend, "ingressPolicy": "same-bridge"});
    let net = FirewallNet::new(&world, NET, "a", &["10.97.1.0/24", "fd97:1::/64"], fw);
    net.write();
    let ctr = world.container();
    let baseline = firewall::snapshot(&world, &[&net]);
    let result = net.add(&ctr, ID);
    net.check(&ctr, ID).expect_silent_success();
    let cached = world.read_cache(NET, ID, IFNAME);
    assert!(cached.is_some(), "libcni cached no ADD result");
    let cached = cached.map(|c| c["result"].clone()).unwrap_or_default();
    let conf = net.conf("1.0.0", Some(&cached));
    let check = net.call("CHECK", &conf, ID, &ctr);
    net.exec(Firewall::Ours, &check).expect_silent_success();

    let att = Attached { net: &net, result };
    let tokens = drift(&att);
    let err = net
        .exec(Firewall::Ours, &check)
        .expect_error(131, "not found");
    for token in &tokens {
        assert!(
            err.text().contains(token.as_str()),
            "CHECK error {:?} does not name {token:?}",
            err.text()
        );
    }
    let via_libcni = net.check(&ctr, ID);
    assert_eq!(via_libcni.status, Some(1), "{}", via_libcni.describe());
    assert!(
        via_libcni.stderr_str().contains(&tokens[0]),
        "{}",
        via_libcni.describe()
    );

    net.del(&ctr, ID);
    assert_same!(baseline, firewall::snapshot(&world, &[&net]), "after DEL");
}

#[test]
fn check_passes_after_add_for_the_reference_too() {
    for which in [Firewall::Ours, Firewall::Go] {
        let world = World::new();
        let fw = json!({"backend": "iptables", "ingressPolicy": "same-bridge"});
        let net = FirewallNet::new(&world, NET, "a", &["10.97.2.0/24"], fw);
        net.write();
        let ctr = world.container();
        net.add_with(which, &ctr, ID);
        net.tool(which)
            .container_id(ID)
            .check(NET, &ctr)
            .expect_silent_success();
    }
}

#[test]
fn iptables_missing_accept_rule_fails_check() {
    drift_case("iptables", |a| {
        let rule = a.our_rules(4)[1].clone();
        delete_rule(a.host(), false, &rule);
        let ip = ip_of(&a.result, 4);
        vec![format!("expected rule [-s {ip}/32 -j ACCEPT] not found")]
    });
}

#[test]
fn iptables_missing_ipv6_established_rule_fails_check() {
    drift_case("iptables", |a| {
        let rule = a.our_rules(6)[0].clone();
        delete_rule(a.host(), true, &rule);
        let ip = ip_of(&a.result, 6);
        vec![format!(
            "expected rule [-d {ip}/128 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT] not found"
        )]
    });
}

#[test]
fn iptables_missing_forward_jump_fails_check() {
    drift_case("iptables", |a| {
        delete_rule(a.host(), false, &forward_jump());
        vec!["FORWARD".to_owned(), "CNI-FORWARD".to_owned()]
    });
}

#[test]
fn iptables_missing_isolation_rule_fails_check() {
    drift_case("iptables", |a| {
        delete_rule(a.host(), false, &stage2_rule(a.net.bridge()));
        vec![
            "CNI-ISOLATION-STAGE-2".to_owned(),
            format!("-o {}", a.net.bridge()),
        ]
    });
}

#[test]
fn nftables_missing_accept_rule_fails_check() {
    drift_case("nftables", |a| {
        let ip = ip_of(&a.result, 4);
        let rule = nft_delete_rule(a.host(), &format!("ip saddr {ip} accept"));
        assert!(rule.contains(&format!("id: {ID}")), "{rule}");
        vec![format!("ip saddr {ip} accept")]
    });
}

#[test]
fn nftables_missing_isolation_rule_fails_check() {
    drift_case("nftables", |a| {
        let br = a.net.bridge();
        nft_delete_rule(a.host(), &format!("oifname \"{br}\" drop"));
        vec!["isolation_stage_2".to_owned(), br.to_owned()]
    });
}

#[test]
fn nftables_missing_table_fails_check() {
    drift_case("nftables", |a| {
        let mut argv = vec!["nft", "delete", "table"];
        argv.extend(firewall::NFT_TABLE.split(' '));
        a.host().run_ok(&argv);
        vec![firewall::NFT_TABLE.to_owned()]
    });
}

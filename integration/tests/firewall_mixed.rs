//! firewall on a mixed host: on one bridge (our bridge plugin), container G is attached with the
//! Go reference firewall and container R with ours, both `same-bridge`; container X sits on a
//! second bridge (ours). G and R reach each other, X reaches neither; the isolation rules exist
//! once (ours recognises the reference's v1.1.1 comments); each plugin's DEL removes only its
//! own container's rules and the other container keeps working.

use integration_tests::firewall::{
    self, Firewall, address_rules, filter_rules, ip_of, owner_comment,
};
use integration_tests::traffic::{assert_reachable, assert_unreachable};
use integration_tests::{FirewallNet, Netns, World, assert_same};
use serde_json::{Value, json};

struct Mixed<'w> {
    world: &'w World,
    m: FirewallNet<'w>,
    n: FirewallNet<'w>,
    g: Netns,
    r: Netns,
    x: Netns,
    rg: Value,
    rr: Value,
    rx: Value,
}

const G: &str = "ctr-go";
const R: &str = "ctr-rust";
const X: &str = "ctr-other";

/// G (Go firewall) then R (ours) on network M, X (ours) on network N.
fn mixed(world: &World) -> (Mixed<'_>, integration_tests::Snapshot) {
    let fw = json!({"backend": "iptables", "ingressPolicy": "same-bridge"});
    let m = FirewallNet::new(world, "mixed-m", "m", &["10.96.1.0/24"], fw.clone());
    let n = FirewallNet::new(world, "mixed-n", "n", &["10.96.2.0/24"], fw);
    m.write();
    n.write();
    let (g, r, x) = (world.container(), world.container(), world.container());
    let baseline = firewall::snapshot(world, &[&m, &n]);
    let rg = m.add_with(Firewall::Go, &g, G);
    let rr = m.add_with(Firewall::Ours, &r, R);
    let rx = n.add(&x, X);
    let mixed = Mixed {
        world,
        m,
        n,
        g,
        r,
        x,
        rg,
        rr,
        rx,
    };
    (mixed, baseline)
}

impl Mixed<'_> {
    fn rules(&self) -> Vec<String> {
        filter_rules(self.world.host(), false)
    }

    fn go_rules(&self) -> Vec<String> {
        address_rules(&ip_of(&self.rg, 4), None)
    }

    fn our_rules(&self) -> Vec<String> {
        let c = owner_comment(
            self.m.net(),
            R,
            "eth0",
            Some(("same-bridge", self.m.bridge())),
        );
        address_rules(&ip_of(&self.rr, 4), Some(&c))
    }

    #[track_caller]
    fn assert_has(&self, rules: &[String], present: bool) {
        let have = self.rules();
        for rule in rules {
            assert_eq!(have.contains(rule), present, "{rule}\nin {have:#?}");
        }
    }

    /// Isolation rules of M's bridge (iptables, IPv4): each exactly once.
    #[track_caller]
    fn assert_isolation_of_m_once(&self) {
        let br = self.m.bridge();
        let mine: Vec<String> = self
            .rules()
            .into_iter()
            .filter(|l| l.contains(br) && !l.contains("id: "))
            .collect();
        assert_eq!(mine.len(), 2, "stage-1 and stage-2 rule of {br}: {mine:#?}");
        let returns = self
            .rules()
            .iter()
            .filter(|l| l.ends_with("-j RETURN"))
            .count();
        assert_eq!(
            returns,
            2,
            "one RETURN per stage chain: {:#?}",
            self.rules()
        );
        let jumps = self
            .rules()
            .iter()
            .filter(|l| l.starts_with("-A FORWARD") && l.ends_with("-j CNI-ISOLATION-STAGE-1"))
            .count();
        assert_eq!(jumps, 1, "one FORWARD jump to stage 1: {:#?}", self.rules());
    }

    #[track_caller]
    fn assert_isolated_from_x(&self, ctr: &Netns, result: &Value) {
        let (ip, ip_x) = (ip_of(result, 4), ip_of(&self.rx, 4));
        assert_unreachable(ctr, &ip_x);
        assert_unreachable(&self.x, &ip);
    }
}

#[test]
fn go_and_ours_share_a_bridge_and_each_del_removes_only_its_own() {
    let world = World::new();
    let (s, _) = mixed(&world);
    s.assert_has(&s.go_rules(), true);
    s.assert_has(&s.our_rules(), true);
    s.assert_isolation_of_m_once();
    assert_reachable(&s.g, &ip_of(&s.rr, 4));
    assert_reachable(&s.r, &ip_of(&s.rg, 4));
    assert_reachable(&s.x, "10.96.2.1");
    s.assert_isolated_from_x(&s.g, &s.rg);
    s.assert_isolated_from_x(&s.r, &s.rr);

    // Our DEL of R: R's rules go, G's rules and M's isolation (G is still on M) stay.
    s.m.del_with(Firewall::Ours, &s.r, R);
    s.assert_has(&s.our_rules(), false);
    s.assert_has(&s.go_rules(), true);
    s.assert_isolation_of_m_once();
    assert_reachable(&s.g, "10.96.1.1");
    s.assert_isolated_from_x(&s.g, &s.rg);

    // Go's DEL of G: G's rules go (the reference keeps its isolation rules and chains).
    s.m.del_with(Firewall::Go, &s.g, G);
    s.assert_has(&s.go_rules(), false);
    s.n.del(&s.x, X);
    let left: Vec<String> = s
        .rules()
        .into_iter()
        .filter(|l| l.contains("/32"))
        .collect();
    assert_eq!(left, Vec::<String>::new(), "per-container rules left");
}

#[test]
fn go_del_first_leaves_ours_working_and_ours_cleans_up_last() {
    let world = World::new();
    let (s, baseline) = mixed(&world);
    assert_reachable(&s.r, &ip_of(&s.rg, 4));

    // Go's DEL of G (with its cached result) removes G's two rules only.
    s.m.del_with(Firewall::Go, &s.g, G);
    s.assert_has(&s.go_rules(), false);
    s.assert_has(&s.our_rules(), true);
    s.assert_isolation_of_m_once();
    assert_reachable(&s.r, "10.96.1.1");
    s.assert_isolated_from_x(&s.r, &s.rr);
    firewall_check_ok(&s.m, &s.r, R);

    // Ours removes R and, R being M's last container, M's isolation rules the reference wrote;
    // with X the shared chains go: back to the baseline.
    s.m.del(&s.r, R);
    assert_eq!(
        s.rules()
            .iter()
            .filter(|l| l.contains(s.m.bridge()))
            .count(),
        0,
        "M's isolation rules must go with its last container: {:#?}",
        s.rules()
    );
    s.n.del(&s.x, X);
    assert_same!(
        baseline,
        firewall::snapshot(&world, &[&s.m, &s.n]),
        "after every DEL"
    );
}

#[track_caller]
fn firewall_check_ok(net: &FirewallNet<'_>, ctr: &Netns, id: &str) {
    net.check(ctr, id).expect_silent_success();
}

#[test]
fn ours_first_then_go_and_ours_removes_the_reference_copies_too() {
    // R (ours) before G (Go): the reference adds its own copies of the shared isolation rules
    // (its comments differ); once both are gone, ours still removes every copy.
    let world = World::new();
    let fw = json!({"backend": "iptables", "ingressPolicy": "same-bridge"});
    let m = FirewallNet::new(&world, "mixed-m", "m", &["10.96.3.0/24"], fw);
    m.write();
    let (r, g) = (world.container(), world.container());
    let baseline = firewall::snapshot(&world, &[&m]);
    let rr = m.add_with(Firewall::Ours, &r, R);
    let rg = m.add_with(Firewall::Go, &g, G);
    assert_reachable(&g, &ip_of(&rr, 4));
    assert_reachable(&r, &ip_of(&rg, 4));
    m.del_with(Firewall::Go, &g, G);
    assert_eq!(
        filter_rules(world.host(), false)
            .iter()
            .filter(|l| l.contains(&format!("{}/32", ip_of(&rg, 4))))
            .count(),
        0,
        "Go's DEL removes G's rules"
    );
    m.check(&r, R).expect_silent_success();
    m.del(&r, R);
    assert_same!(
        baseline,
        firewall::snapshot(&world, &[&m]),
        "after both DELs"
    );
}

#[test]
fn ours_del_cleans_up_after_a_go_add() {
    // The runtime's plugins were upgraded between ADD (Go) and DEL (ours): DEL with the cached
    // result removes the reference's uncommented rules for the container's addresses, and the
    // bridge's isolation rules with them.
    let world = World::new();
    let fw = json!({"backend": "iptables", "ingressPolicy": "same-bridge"});
    let m = FirewallNet::new(&world, "mixed-m", "m", &["10.96.4.0/24"], fw);
    m.write();
    let g = world.container();
    let baseline = firewall::snapshot(&world, &[&m]);
    let rg = m.add_with(Firewall::Go, &g, G);
    let rules = filter_rules(world.host(), false);
    for rule in address_rules(&ip_of(&rg, 4), None) {
        assert!(rules.contains(&rule), "Go made {rule}: {rules:#?}");
    }
    m.del_with(Firewall::Ours, &g, G);
    assert_same!(baseline, firewall::snapshot(&world, &[&m]), "after our DEL");
}

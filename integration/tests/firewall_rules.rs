//! firewall rule sets (iptables backend) after ADD: the exact layout ours writes (the reference
//! layout with HEAD's isolation comments plus an owner comment on per-container rules), and the
//! same input run through the Go reference `/usr/lib/cni/firewall` in a twin world giving the
//! same chains and rules, modulo that owner comment and the wording of `(ingressPolicy: …)`
//! comments (v1.1.1 says `same-bridge` on every isolation rule).
//!
//! Both worlds use our bridge and host-local; only the firewall differs.

use integration_tests::firewall::{
    self, Firewall, IFNAME, address_rules, admin_jump, any_policy_comment, filter_chains,
    filter_rules, forward_jump, in_chain, ip_of, owner_comment, stage_return, stage1_jump,
    stage1_rules, stage2_rule, without_owner_comment,
};
use integration_tests::textdiff::diff_lines;
use integration_tests::{FirewallNet, World, strip_empty};
use serde_json::{Value, json};

const S1: &str = "CNI-ISOLATION-STAGE-1";
const S2: &str = "CNI-ISOLATION-STAGE-2";

/// One filter table as text: sorted user chains, then every chain's rules in order (FORWARD
/// first), with each bridge name replaced by its placeholder and `normalise` applied per rule.
fn table_view(
    world: &World,
    v6: bool,
    bridges: &[(&str, &str)],
    normalise: &dyn Fn(&str) -> String,
) -> String {
    let host = world.host();
    let rules = filter_rules(host, v6);
    let chains = filter_chains(host, v6);
    let mut out = format!("chains: {}\n", chains.join(" "));
    for chain in std::iter::once("FORWARD").chain(chains.iter().map(String::as_str)) {
        for rule in in_chain(&rules, chain) {
            let mut line = normalise(&rule);
            for (bridge, placeholder) in bridges {
                line = line.replace(bridge, placeholder);
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// The scenario every comparison runs: networks A (dual-stack) and B (IPv4) with `fw` keys,
/// containers a1 and a2 on A, b1 on B, added in that order through cnitool with `which`.
struct Scene<'w> {
    world: &'w World,
    a: FirewallNet<'w>,
    b: FirewallNet<'w>,
    results: Vec<Value>,
}

fn scene<'w>(world: &'w World, which: Firewall, fw: &Value) -> Scene<'w> {
    let a = FirewallNet::new(
        world,
        "rules-a",
        "a",
        &["10.91.1.0/24", "fd91:1::/64"],
        fw.clone(),
    );
    let b = FirewallNet::new(world, "rules-b", "b", &["10.91.2.0/24"], fw.clone());
    a.write();
    b.write();
    let mut results = Vec::new();
    for (net, id) in [(&a, "ctr-a1"), (&a, "ctr-a2"), (&b, "ctr-b1")] {
        let ctr = world.container();
        results.push(net.add_with(which, &ctr, id));
    }
    Scene {
        world,
        a,
        b,
        results,
    }
}

impl Scene<'_> {
    fn bridges(&self) -> [(&str, &str); 2] {
        [(self.a.bridge(), "<brA>"), (self.b.bridge(), "<brB>")]
    }

    /// Both families' tables, compared across implementations.
    fn comparable(&self) -> String {
        let normalise = |rule: &str| any_policy_comment(&without_owner_comment(rule));
        let mut out = String::from("*** iptables\n");
        out.push_str(&table_view(self.world, false, &self.bridges(), &normalise));
        out.push_str("*** ip6tables\n");
        out.push_str(&table_view(self.world, true, &self.bridges(), &normalise));
        out
    }

    fn ctr(&self, i: usize) -> integration_tests::Netns {
        self.world.containers()[i].clone()
    }
}

/// Runs the scene with ours and with Go in twin worlds; their tables must match. Then DELs a2
/// (with its cached result, as a runtime does) in both and compares again.
fn same_as_reference(fw: Value) {
    let (w_ours, w_go) = (World::new(), World::new());
    let ours = scene(&w_ours, Firewall::Ours, &fw);
    let go = scene(&w_go, Firewall::Go, &fw);
    for s in [&ours, &go] {
        assert_eq!(ip_of(&s.results[0], 4), "10.91.1.2");
        assert_eq!(ip_of(&s.results[1], 6), "fd91:1::3");
        assert_eq!(ip_of(&s.results[2], 4), "10.91.2.2");
    }
    let compare = |when: &str| {
        let (o, g) = (ours.comparable(), go.comparable());
        let diff = diff_lines(&g, &o);
        assert!(
            diff.is_none(),
            "{when}: ours (+) and the reference (-) differ:\n{}\n--- ours:\n{o}",
            diff.unwrap_or_default()
        );
    };
    compare("after ADD");
    ours.a.del_with(Firewall::Ours, &ours.ctr(1), "ctr-a2");
    go.a.del_with(Firewall::Go, &go.ctr(1), "ctr-a2");
    compare("after DEL of a2");
}

#[test]
fn same_rules_as_reference_open() {
    same_as_reference(json!({"backend": "iptables"}));
}

#[test]
fn same_rules_as_reference_same_bridge() {
    same_as_reference(json!({"backend": "iptables", "ingressPolicy": "same-bridge"}));
}

#[test]
fn same_rules_as_reference_with_admin_chain_name() {
    same_as_reference(json!({
        "backend": "iptables",
        "ingressPolicy": "same-bridge",
        "iptablesAdminChainName": "CNIT-MY-ADMIN",
    }));
}

/// The complete IPv4 and IPv6 filter tables ours writes for the scene with `policy`.
fn exact_layout(policy: &str) {
    let world = World::new();
    let fw = json!({"backend": "iptables", "ingressPolicy": policy});
    let s = scene(&world, Firewall::Ours, &fw);
    let (a, b) = (s.a.bridge(), s.b.bridge());
    let owner = |net: &FirewallNet<'_>, id: &str| {
        let iso = (policy != "open").then_some((policy, net.bridge()));
        owner_comment(net.net(), id, IFNAME, iso)
    };
    let per_ip =
        |ip: String, net: &FirewallNet<'_>, id: &str| address_rules(&ip, Some(&owner(net, id)));

    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    let isolating = policy != "open";
    for (rules, family) in [(&mut v4, 4), (&mut v6, 6)] {
        if isolating {
            rules.push(stage1_jump());
        }
        rules.push(forward_jump());
        rules.push(admin_jump("CNI-ADMIN"));
        for (i, (net, id)) in [(&s.a, "ctr-a1"), (&s.a, "ctr-a2"), (&s.b, "ctr-b1")]
            .into_iter()
            .enumerate()
        {
            if family == 6 && i == 2 {
                continue; // network B has no IPv6
            }
            rules.extend(per_ip(ip_of(&s.results[i], family), net, id));
        }
        if isolating {
            // Newer bridges' rules go above older ones; B has no IPv6 address, so no B rules
            // in ip6tables.
            if family == 4 {
                rules.extend(stage1_rules(b, policy));
            }
            rules.extend(stage1_rules(a, policy));
            rules.push(stage_return(S1));
            if family == 4 {
                rules.push(stage2_rule(b));
            }
            rules.push(stage2_rule(a));
            rules.push(stage_return(S2));
        }
    }
    let chains: Vec<String> = if isolating {
        vec!["CNI-ADMIN", "CNI-FORWARD", S1, S2]
    } else {
        vec!["CNI-ADMIN", "CNI-FORWARD"]
    }
    .into_iter()
    .map(str::to_owned)
    .collect();
    for (v6_family, want) in [(false, v4), (true, v6)] {
        let host = world.host();
        assert_eq!(filter_chains(host, v6_family), chains, "v6={v6_family}");
        let have = filter_rules(host, v6_family);
        let ordered: Vec<String> = ["FORWARD", "CNI-FORWARD", S1, S2]
            .iter()
            .flat_map(|c| in_chain(&have, c))
            .collect();
        assert_eq!(
            ordered.len(),
            have.len(),
            "rules in other chains: {have:#?}"
        );
        let diff = diff_lines(&want.join("\n"), &ordered.join("\n"));
        assert!(
            diff.is_none(),
            "filter table (v6={v6_family}) differs from the expected layout (-want +have):\n{}",
            diff.unwrap_or_default()
        );
    }
}

#[test]
fn exact_layout_open() {
    exact_layout("open");
}

#[test]
fn exact_layout_same_bridge() {
    exact_layout("same-bridge");
}

#[test]
fn exact_layout_isolated() {
    exact_layout("isolated");
}

#[test]
fn add_returns_prev_result_unchanged_for_every_version() {
    let world = World::new();
    let net = FirewallNet::new(
        &world,
        "prevres",
        "a",
        &["10.92.1.0/24", "fd92:1::/64"],
        json!({"backend": "iptables", "ingressPolicy": "same-bridge"}),
    );
    net.write();
    let ctr = world.container();
    let result = net.add(&ctr, "ctr-prev");
    net.settle(&result);
    let baseline = firewall::snapshot(&world, &[&net]);
    for version in ["0.4.0", "1.0.0", "1.1.0"] {
        let mut prev = result.clone();
        prev["cniVersion"] = json!(version);
        if version == "0.4.0" {
            // 0.4.0 results name each address's family.
            for ip in prev["ips"].as_array_mut().into_iter().flatten() {
                let family = if ip["address"].as_str().unwrap_or_default().contains(':') {
                    "6"
                } else {
                    "4"
                };
                ip["version"] = json!(family);
            }
        }
        let conf = net.conf(version, Some(&prev));
        let out = net.exec(Firewall::Ours, &net.call("ADD", &conf, "ctr-prev", &ctr));
        // Empty members (`"dns": {}`) may be omitted, see strip_empty.
        assert_eq!(
            strip_empty(out.result()),
            strip_empty(prev.clone()),
            "ADD {version} must print prevResult unchanged"
        );
        // The same attachment again: the rules are already there, nothing changes.
        assert_eq!(
            firewall::snapshot(&world, &[&net]).diff(&baseline),
            None,
            "repeated ADD ({version}) changed state"
        );
    }
}

//! portmap vs the Go reference in twin worlds: the same conflist, container IDs and mappings
//! through cnitool, once with Go's `/usr/lib/cni/portmap` and once with ours (our bridge and
//! host-local on both sides). The `nat` tables of both families must be identical line for line
//! (chain names, comments, rule order), as must the results and `route_localnet`. After DEL the
//! reference leaves its shared chains behind, ours removes them (documented difference).

use integration_tests::inspect::sysctl;
use integration_tests::portmap::{Portmap, dn_chain, mappings, nat_state, snapshot};
use integration_tests::{PortmapNet, World, assert_same};
use serde_json::{Value, json};

/// One side: a world with one network and each `(id, mappings)` attached.
struct Side {
    world: World,
    results: Vec<Value>,
}

fn side(which: Portmap, subnets: &[&str], keys: &Value, containers: &[(&str, Value)]) -> Side {
    let world = World::new();
    let results = {
        let net = PortmapNet::new(&world, "pm-diff", "d", subnets, keys.clone());
        net.write();
        containers
            .iter()
            .map(|(id, maps)| {
                let ctr = world.container();
                let mut result = net.add(which, &ctr, id, maps);
                for iface in result["interfaces"].as_array_mut().into_iter().flatten() {
                    iface["mac"] = json!("<mac>");
                    iface["name"] = json!(iface["name"].as_str().map(|n| n.len()));
                    iface["sandbox"] = json!(iface.get("sandbox").is_some());
                }
                result
            })
            .collect()
    };
    Side { world, results }
}

fn bridge_localnet(world: &World, bridge: &str) -> String {
    sysctl(
        world.host(),
        &format!("net/ipv4/conf/{bridge}/route_localnet"),
    )
}

/// ADD `maps` for `ctr1` on both sides and compare.
fn compare(subnets: &[&str], keys: Value, maps: Value) {
    compare_many(subnets, keys, &[("ctr1", maps)]);
}

/// [`compare`] with several containers, each with its own mappings.
fn compare_many(subnets: &[&str], keys: Value, containers: &[(&str, Value)]) {
    let go = side(Portmap::Go, subnets, &keys, containers);
    let ours = side(Portmap::Ours, subnets, &keys, containers);
    let (go_nat, our_nat) = (nat_state(go.world.host()), nat_state(ours.world.host()));
    assert!(
        our_nat
            .iter()
            .any(|l| l.contains(&dn_chain("pm-diff", containers[0].0))),
        "{our_nat:#?}"
    );
    assert_eq!(our_nat, go_nat, "nat tables differ from the reference");
    assert_eq!(ours.results, go.results, "results differ");
    let bridge = |w: &World| {
        let net = PortmapNet::new(w, "pm-diff", "d", subnets, keys.clone());
        net.bridge().to_owned()
    };
    assert_eq!(
        bridge_localnet(&ours.world, &bridge(&ours.world)),
        bridge_localnet(&go.world, &bridge(&go.world)),
        "route_localnet"
    );
}

fn lab() -> Value {
    mappings(&[
        (8080, 80, "tcp", None),
        (8443, 443, "tcp", None),
        (5353, 53, "udp", Some("127.0.0.1")),
        (7000, 70, "sctp", None),
        (9000, 90, "tcp", Some("0.0.0.0")),
    ])
}

#[test]
fn default_options_ipv4() {
    compare(&["10.95.1.0/24"], json!({}), lab());
}

#[test]
fn dual_stack_with_ipv6_host_ip() {
    let mut maps = lab();
    maps.as_array_mut()
        .expect("array")
        .push(json!({"hostPort": 7001, "containerPort": 71, "protocol": "tcp", "hostIP": "::1"}));
    compare(&["10.95.2.0/24", "fd95:2::/64"], json!({}), maps);
}

/// `masqAll` is not compared: v1.1.1 predates it and ignores the key (our rules follow HEAD:
/// no source match, no localhost rule; see the unit tests).
#[test]
fn options_snat_off_mark_bit_and_conditions() {
    let maps = mappings(&[(8080, 80, "tcp", None), (53, 53, "udp", None)]);
    compare(&["10.95.3.0/24"], json!({"snat": false}), maps.clone());
    compare(&["10.95.3.0/24"], json!({"markMasqBit": 5}), maps.clone());
    let conditions = json!({"conditionsV4": ["!", "-d", "192.0.2.0/24"]});
    compare(&["10.95.3.0/24"], conditions, maps);
}

#[test]
fn many_ports_and_two_containers() {
    let ports = |base: u16| -> Value {
        let many: Vec<(u16, u16, &str, Option<&str>)> =
            (0..20).map(|i| (base + i, 80 + i, "tcp", None)).collect();
        mappings(&many)
    };
    compare_many(
        &["10.95.4.0/24"],
        json!({}),
        &[("ctr1", ports(10000)), ("ctr2", ports(20000))],
    );
}

#[test]
fn del_leaves_the_reference_skeleton_but_returns_ours_to_the_baseline() {
    let maps = mappings(&[(8080, 80, "tcp", None)]);
    for which in [Portmap::Go, Portmap::Ours] {
        let world = World::new();
        let net = PortmapNet::new(
            &world,
            "pm-down",
            "d",
            &["10.95.5.0/24", "fd95:5::/64"],
            json!({}),
        );
        net.write();
        let ctr = world.container();
        let baseline = snapshot(&world, &[&net]);
        net.add(which, &ctr, "ctr1", &maps);
        net.del(which, &ctr, "ctr1", &maps);
        if which == Portmap::Ours {
            assert_same!(baseline, snapshot(&world, &[&net]), "ours after DEL");
            continue;
        }
        let mut left = nat_state(world.host());
        left.sort();
        let mut skeleton = Vec::new();
        for f in ["4", "6"] {
            skeleton.extend([
                format!("{f} :CNI-HOSTPORT-DNAT"),
                format!("{f} :CNI-HOSTPORT-MASQ"),
                format!("{f} :CNI-HOSTPORT-SETMARK"),
                format!("{f} -A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE"),
                format!("{f} -A CNI-HOSTPORT-SETMARK -m comment --comment \"CNI portfwd masquerade mark\" -j MARK --set-xmark 0x2000/0x2000"),
                format!("{f} -A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT"),
                format!("{f} -A POSTROUTING -m comment --comment \"CNI portfwd requiring masquerade\" -j CNI-HOSTPORT-MASQ"),
                format!("{f} -A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT"),
            ]);
        }
        skeleton.sort();
        assert_eq!(
            left, skeleton,
            "the reference keeps exactly its shared chains"
        );
    }
}

#[test]
fn check_passes_for_ipv4_only_and_dual_stack_unlike_the_reference() {
    let maps = mappings(&[(8080, 80, "tcp", None)]);
    for subnets in [&["10.95.6.0/24"][..], &["10.95.7.0/24", "fd95:7::/64"][..]] {
        for which in [Portmap::Ours, Portmap::Go] {
            let world = World::new();
            let net = PortmapNet::new(&world, "pm-check", "c", subnets, json!({}));
            net.write();
            let ctr = world.container();
            net.add(which, &ctr, "ctr1", &maps);
            let out = net.check(which, &ctr, "ctr1", &maps);
            match which {
                Portmap::Ours => {
                    out.expect_silent_success();
                }
                // plugins#819 in v1.1.1: CHECK looks for the container's IPv4 rules in
                // ip6tables (a missing chain for IPv4-only, missing rules for dual-stack).
                Portmap::Go => {
                    assert!(!out.success(), "{}", out.describe());
                    assert!(
                        out.stderr_str().contains("could not check ipv6 dnat"),
                        "{}",
                        out.describe()
                    );
                }
            }
            net.del(which, &ctr, "ctr1", &maps);
        }
    }
}

//! bridge, ours vs the Go reference (`/usr/lib/cni/bridge`): the same conflist and container
//! ID in twin worlds must give the same result shape, the same link attributes, addresses,
//! routes, sysctls, iptables rules and IPAM files — modulo veth names, MACs and netns paths.

use integration_tests::bridge::{iface_name, result_shape};
use integration_tests::inspect::{
    global_addrs, has_flag, kind, link, nat_rules, port, routes, sysctl,
};
use integration_tests::textdiff::diff_lines;
use integration_tests::{BridgeBench, Netns, PluginCall, World, assert_same, config};
use serde_json::{Value, json};

const NET: &str = "diffnet";
const BRIDGE: &str = "cnidiff0";
const ID: &str = "ctr1";

/// Everything an operator can see of one attachment, with the random parts masked.
fn observe(b: &BridgeBench<'_>, ctr: &Netns, result: &Value) -> Value {
    let host = b.world.host();
    b.assert_result_matches_kernel(result, ctr, "eth0");
    let mut shape = result_shape(result);
    shape["interfaces"][2]["sandbox"] = json!("<sandbox>");
    let veth = iface_name(result, 1);
    let link_view = |ns: &Netns, name: &str| {
        let l = link(ns, name);
        let mut flags: Vec<String> = l["flags"]
            .as_array()
            .map(|f| {
                f.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        flags.sort();
        json!({
            "kind": kind(&l),
            "mtu": l["mtu"],
            "operstate": l["operstate"],
            "flags": flags,
            "promisc": has_flag(&l, "PROMISC"),
            "master": l["master"],
            "vlan_filtering": l["linkinfo"]["info_data"]["vlan_filtering"],
        })
    };
    let p = port(host, &veth);
    let mut route_view = Vec::new();
    for family in ["-4", "-6"] {
        route_view.extend(routes(ctr, family));
    }
    let mut rules = nat_rules(host, false);
    rules.extend(nat_rules(host, true));
    rules.sort();
    json!({
        "result": shape,
        "bridge": link_view(host, &b.bridge),
        "host_veth": link_view(host, &veth),
        "port": {"hairpin": p["hairpin"], "isolated": p["isolated"], "state": p["state"],
                 "learning": p["learning"], "flood": p["flood"]},
        "container": link_view(ctr, "eth0"),
        "bridge_addrs": global_addrs(host, &b.bridge),
        "container_addrs": global_addrs(ctr, "eth0"),
        "container_routes": route_view,
        "nat": rules,
        "sysctl": {
            "ip_forward": sysctl(host, "net/ipv4/ip_forward"),
            "bridge_accept_ra": sysctl(host, &format!("net/ipv6/conf/{}/accept_ra", b.bridge)),
            "veth_accept_ra": sysctl(host, &format!("net/ipv6/conf/{veth}/accept_ra")),
            "accept_dad": sysctl(ctr, "net/ipv6/conf/eth0/accept_dad"),
            "arp_notify": sysctl(ctr, "net/ipv4/conf/eth0/arp_notify"),
        },
        "reservations": b.reservations().into_iter()
            .map(|(ip, content)| (ip, String::from_utf8_lossy(&content).into_owned()))
            .collect::<std::collections::BTreeMap<_, _>>(),
    })
}

/// Runs ADD (+ CHECK when `check`) and DEL of `extra` in two fresh worlds, ours and Go's,
/// and compares what each one left in its world.
fn differential(extra: impl Fn(&BridgeBench<'_>) -> Value, check: bool) {
    let (w_ours, w_go) = (World::new(), World::new());
    let ours = BridgeBench::new(&w_ours, NET).on_bridge(BRIDGE);
    let go = BridgeBench::reference(&w_go, NET).on_bridge(BRIDGE);
    let mut seen = Vec::new();
    for b in [&ours, &go] {
        b.write("1.0.0", extra(b));
        let ctr = b.world.container();
        let baseline = b.snapshot();
        let result = b.add_id(&ctr, ID);
        seen.push(observe(b, &ctr, &result));
        if check {
            b.tool()
                .container_id(ID)
                .check(NET, &ctr)
                .expect_silent_success();
        }
        b.tool()
            .container_id(ID)
            .del(NET, &ctr)
            .expect_silent_success();
        assert_same!(
            baseline,
            b.snapshot(),
            "after DEL ({})",
            b.plugin_dir().display()
        );
    }
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let diff = diff_lines(&pretty(&seen[1]), &pretty(&seen[0]));
    assert!(
        diff.is_none(),
        "ours (+) and the reference (-) differ for {}:\n{}",
        extra(&ours),
        diff.unwrap_or_default()
    );
}

#[test]
fn same_as_reference_with_gateway_masquerade_hairpin_mtu_dual_stack() {
    differential(
        |b| {
            json!({"isGateway": true, "ipMasq": true, "hairpinMode": true, "mtu": 1400,
                   "ipam": config::merge(b.ipam(&["10.54.0.0/24", "fd54::/64"]),
                                         json!({"routes": [{"dst": "0.0.0.0/0", "gw": "10.54.0.1"}]}))})
        },
        true,
    );
}

#[test]
fn same_as_reference_with_default_gateway_and_promisc() {
    differential(
        |b| json!({"isDefaultGateway": true, "promiscMode": true, "ipam": b.ipam(&["10.53.0.0/24"])}),
        true,
    );
}

#[test]
fn same_as_reference_for_an_l2_only_bridge() {
    // No CHECK: the reference fails CHECK on L2 bridges (it delegates to an empty IPAM type).
    differential(|_| json!({"ipam": {}}), false);
}

#[test]
fn same_as_reference_with_ipam_routes_and_dns() {
    differential(
        |b| {
            json!({"isGateway": true,
                   "dns": {"nameservers": ["10.52.0.53"], "search": ["diff.example"]},
                   "ipam": config::merge(b.ipam(&["10.52.0.0/24"]),
                                         json!({"routes": [{"dst": "10.200.0.0/16", "gw": "10.52.0.1"},
                                                           {"dst": "10.201.0.0/16", "gw": "10.52.0.254"}]}))})
        },
        true,
    );
}

#[test]
fn same_legacy_results_as_reference_in_0_1_0_0_2_0_and_0_3_0() {
    // Direct exec: cnitool would convert. 0.1.0/0.2.0 results have no interfaces, so the
    // results must be byte-for-byte equal in meaning.
    for version in ["0.1.0", "0.2.0", "0.3.0"] {
        let (w_ours, w_go) = (World::new(), World::new());
        let ours = BridgeBench::new(&w_ours, NET).on_bridge(BRIDGE);
        let go = BridgeBench::reference(&w_go, NET).on_bridge(BRIDGE);
        let mut results = Vec::new();
        for b in [&ours, &go] {
            let extra = json!({"isDefaultGateway": true,
                               "ipam": b.ipam(&["10.50.0.0/24", "fd50::/64"])});
            let conf = b.conf(version, extra);
            let ctr = b.world.container();
            let baseline = b.snapshot();
            let add = PluginCall::add(&conf).id(ID).ifname("eth0").netns(&ctr);
            let mut result = integration_tests::strip_empty(b.exec(&add).result());
            if let Some(ifaces) = result["interfaces"].as_array_mut() {
                for iface in ifaces {
                    iface["mac"] = json!("<mac>");
                    if iface.get("sandbox").is_some() {
                        iface["sandbox"] = json!("<sandbox>");
                    }
                }
                result["interfaces"][1]["name"] = json!("<veth>");
            }
            results.push(result);
            let del = PluginCall::del(&conf).id(ID).ifname("eth0").netns(&ctr);
            b.exec(&del).expect_silent_success();
            assert_same!(baseline, b.snapshot(), "after DEL ({version})");
        }
        assert_eq!(
            results[0], results[1],
            "cniVersion {version}: ours (left) vs reference"
        );
    }
}

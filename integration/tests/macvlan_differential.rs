//! macvlan, ours vs the Go reference (`/usr/lib/cni/macvlan`): the same conflist and
//! container ID in twin worlds must give the same result shape, the same link attributes,
//! addresses, routes, sysctls, master state and IPAM files — modulo random MACs and netns
//! paths. ADD, CHECK and DEL run through cnitool; DEL must return each world to its baseline.
//!
//! Left out of the big comparison: `ndisc_notify` (HEAD sets it on L3 attachments, v1.1.1 does
//! not) and `txqlen`, which has a test of its own: the reference fills `netlink.LinkAttrs` by
//! hand, so it sends `IFLA_TXQLEN 0` and its macvlans have `txqlen 0` where a plain
//! `ip link add` gets the kernel default of 1000. IPAM-returned DNS is covered by
//! `macvlan_config.rs`.

use integration_tests::bridge::is_mac;
use integration_tests::inspect::{global_addrs, has_flag, kind, link, routes, sysctl};
use integration_tests::macvlan::macvlan_mode;
use integration_tests::textdiff::diff_lines;
use integration_tests::{MacvlanBench, Netns, World, assert_same, strip_empty};
use serde_json::{Value, json};

const NET: &str = "mvdiff";
const ID: &str = "ctr1";
const SUBNET: &str = "10.121.0.0/24";

fn flags(l: &Value) -> Vec<String> {
    let mut f: Vec<String> = l["flags"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    f.sort();
    f
}

/// Everything an operator can see of one attachment, random parts masked.
fn observe(b: &MacvlanBench<'_>, ctr: &Netns, result: &Value, mask_mac: bool) -> Value {
    let host = b.world.host();
    let mut shape = strip_empty(result.clone());
    let mac = shape["interfaces"][0]["mac"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(is_mac(&mac), "interfaces[0].mac {mac:?}");
    if mask_mac {
        shape["interfaces"][0]["mac"] = json!("<mac>");
    }
    shape["interfaces"][0]["sandbox"] = json!("<sandbox>");
    let l = link(ctr, "eth0");
    assert_eq!(l["address"], json!(mac), "result MAC is the link's");
    let master = link(host, MacvlanBench::MASTER);
    let mut route_view = routes(ctr, "-4");
    route_view.extend(routes(ctr, "-6"));
    eprintln!(
        "{}: txqlen {} ndisc_notify {}",
        b.plugin_dir().display(),
        l["txqlen"],
        sysctl(ctr, "net/ipv6/conf/eth0/ndisc_notify")
    );
    json!({
        "result": shape,
        "link": {
            "kind": kind(&l),
            "mode": macvlan_mode(&l),
            "bcqueuelen": l["linkinfo"]["info_data"]["bcqueuelen"],
            "mtu": l["mtu"],
            "flags": flags(&l),
            "operstate": l["operstate"],
            "promisc": has_flag(&l, "PROMISC"),
            "parent_is_master": l["link_index"] == master["ifindex"],
            "mac": if mask_mac { json!("<mac>") } else { l["address"].clone() },
        },
        "master": {"promiscuity": master["promiscuity"], "flags": flags(&master),
                   "mtu": master["mtu"]},
        "addrs": global_addrs(ctr, "eth0"),
        "routes": route_view,
        "arp_notify": sysctl(ctr, "net/ipv4/conf/eth0/arp_notify"),
        "reservations": b.reservations(),
    })
}

/// ADD, CHECK and DEL of `extra` in two fresh worlds, ours and Go's; compares what each saw.
fn differential(extra: impl Fn(&MacvlanBench<'_>) -> Value, mask_mac: bool) {
    let (w_ours, w_go) = (World::new(), World::new());
    let ours = MacvlanBench::new(&w_ours, NET, SUBNET);
    let go = MacvlanBench::reference(&w_go, NET, SUBNET);
    let mut seen = Vec::new();
    for b in [&ours, &go] {
        b.write("1.0.0", extra(b));
        let ctr = b.world.container();
        let baseline = b.snapshot();
        let tool = b.tool().container_id(ID);
        let result = tool.add(NET, &ctr).result();
        seen.push(observe(b, &ctr, &result, mask_mac));
        tool.check(NET, &ctr).expect_silent_success();
        tool.del(NET, &ctr).expect_silent_success();
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
fn same_as_reference_bridge_mode_with_mtu_routes_gateway_and_dns() {
    differential(
        |b| {
            json!({
                "mode": "bridge",
                "mtu": 1400,
                "ipam": {
                    "type": "host-local",
                    "dataDir": b.world.data_dir().to_string_lossy(),
                    "ranges": [[{"subnet": SUBNET, "gateway": "10.121.0.254"}]],
                    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.220.0.0/16", "gw": "10.121.0.250"}],
                },
                "dns": {"nameservers": ["10.121.0.53"], "search": ["diff.test"]},
            })
        },
        true,
    );
}

#[test]
fn same_as_reference_with_a_configured_mac_and_vepa() {
    differential(
        |b| json!({"mode": "vepa", "mac": "c2:00:00:79:00:01", "ipam": b.ipam()}),
        false,
    );
}

#[test]
fn same_as_reference_private_l2_only() {
    differential(|_| json!({"mode": "private"}), true);
}

#[test]
fn same_as_reference_passthru() {
    differential(|b| json!({"mode": "passthru", "ipam": b.ipam()}), true);
}

#[test]
fn transmit_queue_length_is_the_references() {
    let (w_ours, w_go) = (World::new(), World::new());
    let ours = MacvlanBench::new(&w_ours, NET, SUBNET);
    let go = MacvlanBench::reference(&w_go, NET, SUBNET);
    let mut seen = Vec::new();
    for b in [&ours, &go] {
        b.write("1.0.0", json!({}));
        let ctr = b.world.container();
        b.add(&ctr);
        // `ip -j` leaves `txqlen` out when it is 0.
        seen.push(link(&ctr, "eth0")["txqlen"].as_u64().unwrap_or(0));
        b.del(&ctr);
    }
    assert_eq!(
        seen[0], seen[1],
        "txqlen of the container macvlan: ours {} vs reference {}",
        seen[0], seen[1]
    );
}

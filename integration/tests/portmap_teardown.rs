//! portmap DEL: removes exactly one container's mappings (another container's stay in place and
//! keep working), and with the last container the shared chains (or the nft tables), so the
//! host returns to its baseline — on both backends. DEL works without `prevResult`, after the
//! netns is gone, and twice.

use integration_tests::portmap::{
    EchoServer, Portmap, connect_outside, dn_chain, host_snapshot, mappings, nat_state,
    nft_hostport, snapshot, sockaddr, tcp_echo,
};
use integration_tests::{Outside, PortmapNet, World, assert_same};
use serde_json::{Value, json};

const ECHO: &str = env!("CARGO_BIN_EXE_cni-echo");

fn state_mentions(world: &World, needle: &str) -> bool {
    nat_state(world.host()).iter().any(|l| l.contains(needle))
        || nft_hostport(world.host()).contains(needle)
}

/// The marker of a container's rules in the state of `backend`.
fn marker(backend: &str, net: &str, id: &str) -> String {
    match backend {
        "nftables" => format!("net: {net}, id: {id}\""),
        _ => dn_chain(net, id),
    }
}

fn one_by_one(backend: &str) {
    let world = World::new();
    let net = PortmapNet::new(
        &world,
        "pm-down",
        "d",
        &["10.96.1.0/24", "fd96:1::/64"],
        json!({ "backend": backend }),
    );
    net.write();
    let outside = connect_outside(&world, &[]);
    let (c1, c2) = (world.container(), world.container());
    let (m1, m2) = (
        mappings(&[(8081, 80, "tcp", None), (8081, 80, "udp", None)]),
        mappings(&[(8082, 80, "tcp", None)]),
    );
    let baseline = snapshot(&world, &[&net]);
    net.add(Portmap::Ours, &c1, "ctr-1", &m1);
    net.add(Portmap::Ours, &c2, "ctr-2", &m2);
    let _echo = EchoServer::start(ECHO, &c2, 80, "two");
    let (k1, k2) = (
        marker(backend, "pm-down", "ctr-1"),
        marker(backend, "pm-down", "ctr-2"),
    );
    assert!(state_mentions(&world, &k1) && state_mentions(&world, &k2));

    net.del(Portmap::Ours, &c1, "ctr-1", &m1);
    assert!(!state_mentions(&world, &k1), "ctr-1's mappings are gone");
    assert!(state_mentions(&world, &k2), "ctr-2's mappings stay");
    let echo = tcp_echo(&outside.ns, sockaddr(Outside::HOST_ADDR, 8082), "still");
    assert_eq!(
        echo.map(|e| e.tag).as_deref(),
        Some("two"),
        "ctr-2 still published"
    );

    net.del(Portmap::Ours, &c2, "ctr-2", &m2);
    assert_same!(
        baseline,
        snapshot(&world, &[&net]),
        "{backend}: after DEL of both"
    );
}

#[test]
fn iptables_del_one_by_one_returns_to_the_baseline() {
    one_by_one("iptables");
}

#[test]
fn nftables_del_one_by_one_returns_to_the_baseline() {
    one_by_one("nftables");
}

/// ADD through cnitool, then `teardown` (which must remove the portmap rules), then the
/// bridge's DEL through cnitool; the whole world must be at its baseline.
fn torn_down_by(backend: &str, teardown: impl Fn(&PortmapNet<'_>, &Value)) {
    let world = World::new();
    let net = PortmapNet::new(
        &world,
        "pm-gone",
        "g",
        &["10.96.2.0/24"],
        json!({ "backend": backend }),
    );
    net.write();
    let ctr = world.container();
    let maps = mappings(&[
        (8090, 80, "tcp", None),
        (8090, 80, "udp", Some("127.0.0.1")),
    ]);
    let baseline = snapshot(&world, &[&net]);
    let result = net.add(Portmap::Ours, &ctr, "ctr-gone", &maps);
    assert!(state_mentions(
        &world,
        &marker(backend, "pm-gone", "ctr-gone")
    ));
    teardown(&net, &result);
    assert!(
        !state_mentions(&world, &marker(backend, "pm-gone", "ctr-gone")),
        "{backend}: rules left after the teardown"
    );
    net.del(Portmap::Ours, &ctr, "ctr-gone", &maps);
    assert_same!(baseline, snapshot(&world, &[&net]), "{backend}");
}

#[test]
fn del_without_prev_result_and_without_netns_removes_the_rules() {
    for backend in ["iptables", "nftables"] {
        torn_down_by(backend, |net, _| {
            let ctr = &net.world().containers()[0];
            let maps = mappings(&[(8090, 80, "tcp", None)]);
            let conf = net.conf("1.0.0", None, Some(&maps));
            let call = net.call("DEL", &conf, "ctr-gone", ctr).unset("CNI_NETNS");
            net.exec(Portmap::Ours, &call).expect_silent_success();
        });
    }
}

#[test]
fn del_twice_and_with_an_older_config_version() {
    for backend in ["iptables", "nftables"] {
        torn_down_by(backend, |net, result| {
            let ctr = &net.world().containers()[0];
            let maps = mappings(&[(8090, 80, "tcp", None)]);
            for version in ["1.0.0", "0.4.0", "0.3.1"] {
                let conf = net.conf(version, Some(result), Some(&maps));
                let call = net.call("DEL", &conf, "ctr-gone", ctr);
                net.exec(Portmap::Ours, &call).expect_silent_success();
            }
        });
    }
}

#[test]
fn del_after_the_netns_is_gone() {
    for backend in ["iptables", "nftables"] {
        let world = World::new();
        let net = PortmapNet::new(
            &world,
            "pm-nons",
            "n",
            &["10.96.3.0/24", "fd96:3::/64"],
            json!({ "backend": backend }),
        );
        net.write();
        let ctr = world.container();
        let maps = mappings(&[(8091, 80, "tcp", None)]);
        let baseline = host_snapshot(&world, &[&net]);
        net.add(Portmap::Ours, &ctr, "ctr-nons", &maps);
        let path = ctr.path_str();
        world.delete_netns(&ctr);
        for _ in 0..2 {
            net.tool(Portmap::Ours, "ctr-nons", &maps)
                .del_path("pm-nons", &path)
                .expect_silent_success();
        }
        assert_same!(baseline, host_snapshot(&world, &[&net]), "{backend}");
    }
}

//! portmap under concurrency: containers added and deleted in parallel all get (and lose)
//! exactly their mappings, and when several containers race for the same host port exactly one
//! wins — the others get code 152 and leave nothing behind (the host lock serialises the
//! read-plan-write of every invocation).

use std::thread;

use integration_tests::portmap::{Portmap, dn_chain, mappings, nat_state, nft_hostport, snapshot};
use integration_tests::{PortmapNet, World, assert_same};
use serde_json::json;

const N: usize = 8;

fn parallel(backend: &str) {
    let world = World::new();
    let net = PortmapNet::new(
        &world,
        "pm-par",
        "p",
        &["10.99.8.0/24", "fd99:8::/64"],
        json!({ "backend": backend }),
    );
    net.write();
    let ctrs: Vec<_> = (0..N).map(|_| world.container()).collect();
    let baseline = snapshot(&world, &[&net]);
    let ports = |i: usize| {
        let p = (9000..).nth(i).unwrap_or(9000u16);
        mappings(&[(p, 80, "tcp", None), (p, 80, "udp", None)])
    };
    thread::scope(|s| {
        for (i, ctr) in ctrs.iter().enumerate() {
            let net = &net;
            s.spawn(move || net.add(Portmap::Ours, ctr, &format!("par-{i}"), &ports(i)));
        }
    });
    for (i, ctr) in ctrs.iter().enumerate() {
        net.check(Portmap::Ours, ctr, &format!("par-{i}"), &ports(i))
            .expect_silent_success();
    }
    if backend == "iptables" {
        let nat = nat_state(world.host());
        for i in 0..N {
            let chain = dn_chain("pm-par", &format!("par-{i}"));
            assert_eq!(
                nat.iter()
                    .filter(|l| l.contains(&format!(":{chain}")))
                    .count(),
                2,
                "one chain per family for par-{i}"
            );
        }
    } else {
        let tables = nft_hostport(world.host());
        assert_eq!(tables.matches("dnat to").count(), N * 2 * 2, "{tables}");
    }
    thread::scope(|s| {
        for (i, ctr) in ctrs.iter().enumerate() {
            let net = &net;
            s.spawn(move || net.del(Portmap::Ours, ctr, &format!("par-{i}"), &ports(i)));
        }
    });
    assert_same!(
        baseline,
        snapshot(&world, &[&net]),
        "{backend}: after parallel DEL"
    );
}

#[test]
fn iptables_parallel_add_check_del() {
    parallel("iptables");
}

#[test]
fn nftables_parallel_add_check_del() {
    parallel("nftables");
}

#[test]
fn a_race_for_one_host_port_has_exactly_one_winner() {
    for backend in ["iptables", "nftables"] {
        let world = World::new();
        let net = PortmapNet::new(
            &world,
            "pm-race",
            "r",
            &["10.99.9.0/24"],
            json!({"backend": backend}),
        );
        net.write();
        let ctrs: Vec<_> = (0..N).map(|_| world.container()).collect();
        let maps = mappings(&[(7777, 80, "tcp", None)]);
        let outcomes: Vec<bool> = thread::scope(|s| {
            let handles: Vec<_> = ctrs
                .iter()
                .enumerate()
                .map(|(i, ctr)| {
                    let (net, maps) = (&net, &maps);
                    s.spawn(move || {
                        let out = net.try_add(Portmap::Ours, ctr, &format!("race-{i}"), maps);
                        if !out.success() {
                            assert!(
                                out.stderr_str()
                                    .contains("host port tcp *:7777 is already mapped"),
                                "{}",
                                out.describe()
                            );
                        }
                        out.success()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no panic"))
                .collect()
        });
        assert_eq!(
            outcomes.iter().filter(|w| **w).count(),
            1,
            "{backend}: {outcomes:?}"
        );
        let winner = outcomes.iter().position(|w| *w).expect("a winner");
        let state = format!(
            "{:?}{}",
            nat_state(world.host()),
            nft_hostport(world.host())
        );
        for i in (0..N).filter(|i| *i != winner) {
            let id = format!("race-{i}");
            assert!(
                !state.contains(&dn_chain("pm-race", &id))
                    && !state.contains(&format!("id: {id}\""))
            );
        }
        for (i, ctr) in ctrs.iter().enumerate() {
            net.del(Portmap::Ours, ctr, &format!("race-{i}"), &maps);
        }
    }
}

//! A storm through the real client: `CNI_STORM_OPS` (default 500) random ADD / DEL / CHECK
//! operations through cnitool, 8 at a time, on three networks of podman's chain sharing one
//! host and a pool of containers, each container attached to any subset of the networks:
//!
//! | network | chain | backend | ifname |
//! |---|---|---|---|
//! | storm-a | bridge + host-local, firewall, tuning | iptables | eth0 |
//! | storm-b | bridge + host-local, firewall, tuning | nftables | eth1 |
//! | storm-c | bridge + host-local, portmap, firewall, tuning | iptables | eth2 |
//!
//! Like a runtime, operations on one container are serialised and different containers run in
//! parallel. Every operation must succeed, no address may be live twice, every CHECK of a live
//! attachment passes, and after DEL of whatever is left the world is at its baseline.
//! `CNI_FAULT_SEED` repeats a run's choices.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use integration_tests::faults::{ChainNet, Rng, snapshot};
use integration_tests::macvlan::settle;
use integration_tests::{Netns, World, assert_same};

const WORKERS: usize = 8;
const CONTAINERS: usize = 12;

/// One container: its netns and, per network, the addresses of its live attachment.
struct Slot {
    ns: Netns,
    live: Mutex<[Option<String>; 3]>,
}

#[derive(Default)]
struct Tally {
    ops: BTreeMap<&'static str, usize>,
    failures: Vec<String>,
}

fn id(k: usize) -> String {
    format!("storm-{k}")
}

fn port(k: usize) -> u16 {
    20_000 + k as u16
}

#[test]
fn storm_of_mixed_operations_on_three_networks() {
    let total: usize = std::env::var("CNI_STORM_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let world = World::new();
    let nets = [
        ChainNet::new(&world, "storm-a", "a", "10.155.1.0/24", "iptables", false),
        ChainNet::new(&world, "storm-b", "b", "10.155.2.0/24", "nftables", false)
            .with_ifname("eth1"),
        ChainNet::new(&world, "storm-c", "c", "10.155.3.0/24", "iptables", true)
            .with_ifname("eth2"),
    ];
    for net in &nets {
        net.write("1.0.0");
    }
    let bridges: Vec<&str> = nets.iter().map(ChainNet::bridge).collect();
    let slots: Vec<Slot> = (0..CONTAINERS)
        .map(|_| Slot {
            ns: world.container(),
            live: Mutex::new([None, None, None]),
        })
        .collect();
    let base = snapshot(&world, &bridges);

    // (network index, address) → container, for every live attachment.
    let addresses: Mutex<BTreeMap<(usize, String), usize>> = Mutex::new(BTreeMap::new());
    let tally = Mutex::new(Tally::default());
    let next = AtomicUsize::new(0);
    let mut seeder = Rng::from_env();
    let seeds: Vec<u64> = (0..WORKERS).map(|_| seeder.next_u64()).collect();
    let start = Instant::now();

    std::thread::scope(|s| {
        for seed in &seeds {
            let (nets, slots, addresses, tally, next) = (&nets, &slots, &addresses, &tally, &next);
            let mut rng = Rng::from_seed(*seed);
            s.spawn(move || {
                while next.fetch_add(1, Ordering::SeqCst) < total {
                    let k = rng.below(CONTAINERS);
                    let n = rng.below(nets.len());
                    let roll = rng.below(100);
                    let slot = &slots[k];
                    // A runtime never runs two operations on one container at once.
                    let mut live = slot.live.lock().unwrap_or_else(|e| e.into_inner());
                    let net = &nets[n];
                    let rt = net.runtime(&id(k), port(k));
                    let (kind, out) = match (&live[n], roll) {
                        (None, 0..10) => ("DEL (not attached)", rt.del(net.net(), &slot.ns)),
                        (None, _) => ("ADD", rt.add(net.net(), &slot.ns)),
                        (Some(_), 0..45) => ("CHECK", rt.check(net.net(), &slot.ns)),
                        (Some(_), _) => ("DEL", rt.del(net.net(), &slot.ns)),
                    };
                    let mut failure = None;
                    if !out.success() {
                        failure = Some(format!(
                            "{kind} {} on {}: {}",
                            id(k),
                            net.net(),
                            out.describe()
                        ));
                    } else if kind == "ADD" {
                        let result = out.json();
                        let ip = result["ips"][0]["address"]
                            .as_str()
                            .and_then(|a| a.split('/').next())
                            .unwrap_or_default()
                            .to_owned();
                        let mut addrs = addresses.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(other) = addrs.insert((n, ip.clone()), k) {
                            failure = Some(format!(
                                "{ip} on {} given to {} and {}",
                                net.net(),
                                id(other),
                                id(k)
                            ));
                        }
                        live[n] = Some(ip);
                    } else if kind == "DEL"
                        && let Some(ip) = live[n].take()
                    {
                        addresses
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&(n, ip));
                    }
                    let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                    *t.ops.entry(kind).or_default() += 1;
                    t.failures.extend(failure);
                }
            });
        }
    });
    let storm_time = start.elapsed();

    // Tear down whatever is still attached, then DEL every pair once more (idempotence).
    for (k, slot) in slots.iter().enumerate() {
        let live = slot.live.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (n, net) in nets.iter().enumerate() {
            let rt = net.runtime(&id(k), port(k));
            if live[n].is_some() {
                rt.check(net.net(), &slot.ns).expect_silent_success();
            }
            rt.del(net.net(), &slot.ns).expect_silent_success();
        }
    }
    let tally = tally.into_inner().unwrap_or_else(|e| e.into_inner());
    eprintln!(
        "storm: {total} operations in {storm_time:?} with {WORKERS} workers: {:?}",
        tally.ops
    );
    assert!(
        tally.failures.is_empty(),
        "{} of {total} operations failed:\n{}",
        tally.failures.len(),
        tally.failures.join("\n---\n")
    );
    assert_eq!(tally.ops.values().sum::<usize>(), total);
    for net in &nets {
        assert!(
            net.reservations().is_empty(),
            "{}: {:?}",
            net.net(),
            net.reservations()
        );
    }
    settle(world.host());
    assert_same!(base, snapshot(&world, &bridges), "after the storm");
}

//! bridge under parallel ADD/DEL: several containers attach at once to a bridge that does not
//! exist yet (one ADD creates it, the others must use it), each gets its own address, port and
//! masquerade chain; parallel DELs return the world to its baseline.

use integration_tests::bridge::{iface_name, masq_chain};
use integration_tests::inspect::{nat_chains, ports_of};
use integration_tests::traffic::assert_reachable;
use integration_tests::{BridgeBench, World, assert_same};
use serde_json::{Value, json};

const N: usize = 8;

#[test]
fn parallel_adds_and_dels_on_a_new_bridge() {
    let world = World::new();
    let b = BridgeBench::new(&world, "parallel");
    b.write(
        "1.0.0",
        json!({"isGateway": true, "ipMasq": true, "ipam": b.ipam(&["10.67.0.0/24"])}),
    );
    let ctrs: Vec<_> = (0..N).map(|_| world.container()).collect();
    let baseline = b.snapshot();

    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = ctrs
            .iter()
            .enumerate()
            .map(|(i, ctr)| {
                let b = &b;
                s.spawn(move || b.add_id(ctr, &format!("par{i}")))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let mut addrs: Vec<&str> = results
        .iter()
        .map(|r| r["ips"][0]["address"].as_str().unwrap())
        .collect();
    addrs.sort_unstable();
    addrs.dedup();
    assert_eq!(addrs.len(), N, "distinct addresses: {addrs:?}");
    let mut veths: Vec<String> = results.iter().map(|r| iface_name(r, 1)).collect();
    veths.sort();
    assert_eq!(ports_of(world.host(), &b.bridge), veths);
    let mut chains = nat_chains(world.host(), false);
    chains.sort();
    let mut want: Vec<String> = (0..N)
        .map(|i| masq_chain("parallel", &format!("par{i}")))
        .collect();
    want.sort();
    assert_eq!(chains, want);
    // Every attachment's CHECK (prevResult = its cached ADD result) passes once all ADDs are
    // done: no ADD may report a bridge MAC that a parallel ADD changes afterwards.
    for (i, ctr) in ctrs.iter().enumerate() {
        let check = b
            .tool()
            .container_id(&format!("par{i}"))
            .check("parallel", ctr);
        check.expect_silent_success();
    }
    for (r, ctr) in results.iter().zip(&ctrs) {
        b.assert_result_matches_kernel(r, ctr, "eth0");
        assert_reachable(ctr, "10.67.0.1");
    }

    std::thread::scope(|s| {
        for (i, ctr) in ctrs.iter().enumerate() {
            let b = &b;
            s.spawn(move || {
                b.tool()
                    .container_id(&format!("par{i}"))
                    .del("parallel", ctr)
                    .expect_silent_success();
            });
        }
    });
    assert_same!(baseline, b.snapshot(), "after parallel DELs");
}

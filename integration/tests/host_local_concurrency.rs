//! 200 plugin processes allocating from one network at once must not hand out an address twice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Barrier;
use std::thread;

use integration_tests::hostlocal::addresses;
use integration_tests::{HostLocal, Output, World, config};

const N: usize = 200;

/// Runs `op(id)` for every id on its own thread, all released at once by a barrier.
fn all_at_once(ids: &[String], op: impl Fn(&str) -> Output + Sync) -> Vec<(&str, Output)> {
    let barrier = Barrier::new(ids.len());
    thread::scope(|s| {
        let handles: Vec<_> = ids
            .iter()
            .map(|id| {
                let (barrier, op) = (&barrier, &op);
                s.spawn(move || {
                    barrier.wait();
                    (id.as_str(), op(id))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

#[test]
fn two_hundred_concurrent_adds_get_distinct_addresses_and_dels_release_all() {
    let world = World::new();
    let conf = config::host_local(
        "1.1.0",
        "crowd",
        &world.data_dir(),
        config::ranges(&["10.90.0.0/24"]),
    );
    let hl = HostLocal::ours(&world, conf);
    let baseline = hl.snapshot();
    let ids: Vec<String> = (0..N).map(|i| format!("ctr-{i:03}")).collect();

    let added = all_at_once(&ids, |id| hl.add(id, "eth0"));
    let mut owner: BTreeMap<String, &str> = BTreeMap::new();
    for (id, out) in &added {
        let ips = addresses(&out.result());
        assert_eq!(ips.len(), 1, "{id}: {ips:?}");
        let ip = ips[0]
            .strip_suffix("/24")
            .expect("a /24 address")
            .to_owned();
        if let Some(other) = owner.insert(ip.clone(), id) {
            panic!("{ip} handed to both {other} and {id}");
        }
    }
    assert_eq!(owner.len(), N);
    for ip in owner.keys() {
        let last: u8 = ip.rsplit('.').next().unwrap().parse().unwrap();
        assert!((2..=254).contains(&last), "{ip} is outside .2-.254");
    }

    let reservations = hl.reservations();
    assert_eq!(reservations.len(), N, "one file per ADD");
    for (ip, content) in &reservations {
        let id = owner
            .get(ip)
            .unwrap_or_else(|| panic!("file {ip} belongs to no ADD result"));
        assert_eq!(content, format!("{id}\r\neth0").as_bytes(), "file {ip}");
    }

    for (id, out) in all_at_once(&ids, |id| hl.del(id, "eth0")) {
        assert!(out.success(), "DEL {id}\n{}", out.describe());
    }
    let names: BTreeSet<String> = hl.store().into_keys().collect();
    assert_eq!(
        names,
        BTreeSet::from(["last_reserved_ip.0".to_owned(), "lock".to_owned()])
    );
    hl.assert_at_baseline(&baseline);
}

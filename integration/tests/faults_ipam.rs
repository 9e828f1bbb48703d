//! host-local's store under faults: `dataDir` on a full file system, corrupt and empty
//! reservation files, `last_reserved_ip` pointing anywhere, a store path that is not what it
//! should be, and leftovers of a "reboot" (reservations nobody will DEL) reclaimed by GC.
//! Always a clear error or a recovery; never a panic, never an address handed out twice.

use std::collections::BTreeSet;
use std::fs;

use integration_tests::faults::{ChainNet, Tmpfs, seed_dir, snapshot};
use integration_tests::hostlocal::addresses;
use integration_tests::macvlan::settle;
use integration_tests::{HostLocal, Output, PluginCall, World, assert_same, config};
use serde_json::{Value, json};

/// No panic, and either a result or a CNI error object.
#[track_caller]
fn sane(out: &Output) {
    assert!(
        !out.stderr_str().contains("panicked") && matches!(out.status, Some(0 | 1)),
        "{}",
        out.describe()
    );
}

/// A direct host-local bench over `subnet` (1.1.0), its store created with `seed` files.
fn seeded<'w>(world: &'w World, net: &str, subnet: &str, seed: &[(&str, &[u8])]) -> HostLocal<'w> {
    let ipam = config::ranges(&[subnet]);
    let conf = config::host_local("1.1.0", net, &world.data_dir(), ipam);
    let h = HostLocal::ours(world, conf);
    seed_dir(&h.store_dir(), seed);
    h
}

/// ADD for `id`; must succeed; returns its one address (no prefix).
#[track_caller]
fn add_one(h: &HostLocal<'_>, id: &str) -> String {
    let out = h.add(id, "eth0");
    sane(&out);
    let ips = addresses(&out.result());
    assert_eq!(ips.len(), 1, "{ips:?}");
    ips[0].split('/').next().unwrap_or_default().to_owned()
}

fn gc(h: &HostLocal<'_>, valid: Value) {
    let mut conf = h.conf.clone();
    conf["cni.dev/valid-attachments"] = valid;
    let out = h.exec(&PluginCall::gc(&conf));
    sane(&out);
    out.expect_silent_success();
}

#[test]
fn corrupt_and_empty_reservations_are_never_handed_out_again() {
    let world = World::new();
    let huge = vec![b'x'; 70 * 1024];
    let seed: Vec<(&str, &[u8])> = vec![
        ("10.153.1.2", b""),
        ("10.153.1.3", &[0xff, 0xfe, 0x00, 0x80]),
        ("10.153.1.4", &huge),
        ("10.153.1.5", b"other\r\neth0"),
        ("10.153.1.6", b"\r\n"),
        ("last_reserved_ip.0", b"not an address"),
    ];
    // A /29 whose every usable address is seeded: ADD must fail, not reuse one.
    let full = seeded(&world, "corrupt-full", "10.153.1.0/29", &seed);
    let out = full.add("newcomer", "eth0");
    sane(&out);
    let err = out.cni_error();
    assert_eq!(err.code, 111, "{err:?}");
    assert!(err.msg.contains("no IP addresses available"), "{err:?}");

    // A /28 around the same files: new attachments get fresh addresses only.
    let h = seeded(&world, "corrupt", "10.153.1.0/28", &seed);
    let seeded_ips: BTreeSet<String> = (2..=6).map(|n| format!("10.153.1.{n}")).collect();
    let mut got = BTreeSet::new();
    for id in ["a", "b", "c"] {
        let ip = add_one(&h, id);
        assert!(!seeded_ips.contains(&ip), "{id} got the seeded {ip}");
        assert!(got.insert(ip.clone()), "{ip} handed out twice");
        h.check(id, "eth0", None).expect_silent_success();
    }
    for id in ["a", "b", "c"] {
        h.del(id, "eth0").expect_silent_success();
    }
    // GC with no valid attachment: every seeded file goes, bookkeeping stays.
    gc(&h, json!([]));
    assert!(h.reservations().is_empty(), "{:?}", h.reservations().keys());
    assert!(h.store_dir().join("last_reserved_ip.0").is_file());
    assert!(h.store_dir().join("lock").is_file());
}

#[test]
fn last_reserved_ip_outside_the_range_restarts_at_the_range() {
    let world = World::new();
    let h = seeded(&world, "lastip", "10.153.2.0/29", &[]);
    let cursor = h.store_dir().join("last_reserved_ip.0");
    let mut live = BTreeSet::new();
    for (i, bad) in [
        "192.168.7.7",
        "fd00::1",
        "10.153.2.7",
        "10.153.2.255",
        "",
        "10.153.2.1",
    ]
    .iter()
    .enumerate()
    {
        fs::write(&cursor, bad).expect("write last_reserved_ip");
        let ip = add_one(&h, &format!("c{i}"));
        assert!(ip.starts_with("10.153.2."), "{bad:?} → {ip}");
        assert!(
            live.insert(ip.clone()),
            "{ip} handed out twice (cursor {bad:?})"
        );
        if live.len() == 5 {
            break;
        }
    }
    // Range full (.2–.6): the next one fails cleanly whatever the cursor says.
    fs::write(&cursor, "10.153.2.3").expect("write last_reserved_ip");
    let err = h.add("one-too-many", "eth0").cni_error();
    assert_eq!(err.code, 111, "{err:?}");
    gc(&h, json!([]));
    assert!(h.reservations().is_empty());
}

#[test]
fn a_broken_store_path_gives_a_clear_error() {
    let world = World::new();
    // The network's store is a file.
    let h = seeded(&world, "storefile", "10.153.3.0/29", &[]);
    fs::remove_dir_all(h.store_dir()).expect("remove store");
    fs::write(h.store_dir(), b"x").expect("store as a file");
    let out = h.add("a", "eth0");
    sane(&out);
    let err = out.cni_error();
    assert_eq!(err.code, 113, "{err:?}");
    assert!(err.msg.contains("storefile"), "{err:?}");
    // The lock is a directory.
    let h = seeded(&world, "lockdir", "10.153.3.0/29", &[]);
    fs::create_dir(h.store_dir().join("lock")).expect("lock as a directory");
    let err = h.add("a", "eth0").cni_error();
    assert_eq!(err.code, 113, "{err:?}");
    assert!(err.msg.contains("lock"), "{err:?}");
    // A reservation that is a directory still counts as taken.
    let h = seeded(&world, "resdir", "10.153.3.0/29", &[]);
    fs::create_dir(h.store_dir().join("10.153.3.2")).expect("reservation as a directory");
    assert_eq!(add_one(&h, "a"), "10.153.3.3");
    h.del("a", "eth0").expect_silent_success();
}

#[test]
fn reboot_leftovers_are_reclaimed_by_gc() {
    let world = World::new();
    let h = seeded(&world, "reboot", "10.153.4.0/28", &[]);
    let mut before = BTreeSet::new();
    for id in ["r1", "r2", "r3", "r4"] {
        before.insert(add_one(&h, id));
    }
    // A legacy (ID-only) reservation and one of a valid container's other interface.
    fs::write(h.store_dir().join("10.153.4.13"), "r2").expect("legacy reservation");
    fs::write(h.store_dir().join("10.153.4.14"), "r2\r\neth1").expect("second interface");
    // "Reboot": every namespace is gone; only the files remain. The runtime brings back r2.
    world.delete_netns(&h.ctr);
    gc(&h, json!([{"containerID": "r2", "ifname": "eth0"}]));
    let left: Vec<String> = h.reservations().into_keys().collect();
    let r2 = h.reservations();
    assert_eq!(
        left.len(),
        2,
        "r2's eth0 and its legacy file stay: {left:?}"
    );
    assert!(r2.values().any(|c| c.as_slice() == b"r2\r\neth0"), "{r2:?}");
    assert!(r2.values().any(|c| c.as_slice() == b"r2"), "{r2:?}");
    // Then nothing is valid any more.
    gc(&h, json!([]));
    assert!(h.reservations().is_empty(), "{:?}", h.reservations());
    gc(&h, json!([]));
}

#[test]
fn data_dir_on_a_full_file_system() {
    let world = World::new();
    let fs64k = Tmpfs::mount(&world, "ipamfs", "64k");
    let data_dir = fs64k.path().to_string_lossy().into_owned();
    let net = ChainNet::new(&world, "fullfs", "", "10.153.5.0/24", "iptables", false)
        .with_ipam(json!({"dataDir": data_dir}));
    net.write("1.0.0");
    let (c1, c2) = (world.container(), world.container());
    let snap = || {
        snapshot(&world, &[net.bridge()]).without_lines(|l| {
            [
                "ipamfs/fullfs ",
                "ipamfs/fullfs/lock ",
                "ipamfs/fullfs/last_reserved_ip.",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
    };
    let base = snap();
    let (r1, r2) = (net.runtime("full-1", 0), net.runtime("full-2", 0));

    r1.add(net.net(), &c1).expect_success();
    settle(world.host());
    fs64k.fill();
    let filled = snap();
    let out = r2.add(net.net(), &c2);
    eprintln!("ADD on a full dataDir:\n{}", out.describe());
    assert!(
        !out.success(),
        "ADD on a full dataDir succeeded\n{}",
        out.describe()
    );
    assert!(
        out.stderr_str().contains("No space left on device"),
        "{}",
        out.describe()
    );
    assert_same!(filled, snap(), "after the failed ADD");
    // Room for the reservation file but not for the new last_reserved_ip: still all or nothing.
    fs64k.free_pages(1);
    let partly = snap();
    let out = r2.add(net.net(), &c2);
    eprintln!("ADD with one free page:\n{}", out.describe());
    assert!(!out.success(), "{}", out.describe());
    assert!(
        out.stderr_str().contains("No space left on device"),
        "{}",
        out.describe()
    );
    assert_same!(partly, snap(), "after the failed ADD with one free page");
    // DEL needs no space: the failed attachment and the live one.
    r2.del(net.net(), &c2).expect_silent_success();
    r1.del(net.net(), &c1).expect_silent_success();
    assert!(net.reservations().is_empty(), "{:?}", net.reservations());

    fs64k.drain();
    let a = r1.add(net.net(), &c1).result();
    let b = r2.add(net.net(), &c2).result();
    assert_ne!(a["ips"][0]["address"], b["ips"][0]["address"]);
    r1.del(net.net(), &c1).expect_silent_success();
    r2.del(net.net(), &c2).expect_silent_success();
    assert_same!(base, snap(), "after DEL of both");
}

//! DEL, CHECK, GC, STATUS and concurrent ADDs.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Barrier};

use serde_json::json;

use super::{add1, config, config_ranges, files, net_dir};
use crate::{ErrorKind, allocate, check, gc, release, status};

#[test]
fn release_is_idempotent_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_ranges(dir.path(), json!([{"subnet": "10.0.0.0/24"}]));
    assert!(release(&cfg, "net", "a", "eth0").unwrap().is_empty());
    assert!(
        !net_dir(dir.path()).exists(),
        "DEL on a fresh host creates no state"
    );
    assert_eq!(add1(&cfg, "a"), "10.0.0.2");
    assert_eq!(
        release(&cfg, "net", "a", "eth0").unwrap(),
        ["10.0.0.2".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(release(&cfg, "net", "a", "eth0").unwrap().is_empty());
    assert_eq!(files(dir.path()), ["last_reserved_ip.0", "lock"]);
}

#[test]
fn release_with_two_range_sets_also_drops_legacy_files() {
    let dir = tempfile::tempdir().unwrap();
    let one = config_ranges(dir.path(), json!([{"subnet": "10.0.0.0/24"}]));
    let two = config(
        dir.path(),
        json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]}),
    );
    let net = net_dir(dir.path());
    fs::create_dir_all(&net).unwrap();
    fs::write(net.join("10.0.0.5"), "ctr\r\neth0").unwrap();
    fs::write(net.join("10.0.0.6"), "ctr").unwrap();
    release(&one, "net", "ctr", "eth0").unwrap();
    assert_eq!(
        files(dir.path()),
        ["10.0.0.6", "lock"],
        "one set: legacy only as a fallback"
    );
    fs::write(net.join("10.0.0.5"), "ctr\r\neth0").unwrap();
    release(&two, "net", "ctr", "eth0").unwrap();
    assert_eq!(
        files(dir.path()),
        ["lock"],
        "two sets: the reference's second pass drops legacy"
    );
}

#[test]
fn check_finds_any_address_of_the_attachment() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_ranges(dir.path(), json!([{"subnet": "10.0.0.0/24"}]));
    let e = check(&cfg, "net", "c10", "eth0").unwrap_err();
    assert_eq!(
        e.message(),
        "host-local: Failed to find address added by container c10"
    );
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(!net_dir(dir.path()).exists());
    add1(&cfg, "c10");
    check(&cfg, "net", "c10", "eth0").unwrap();
    assert_eq!(
        check(&cfg, "net", "c10", "eth9").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        check(&cfg, "net", "zz", "eth0").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    fs::write(net_dir(dir.path()).join("10.0.0.77"), "legacy").unwrap();
    check(&cfg, "net", "legacy", "eth3").unwrap();
}

#[test]
fn gc_releases_everything_not_valid() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_ranges(dir.path(), json!([{"subnet": "10.0.0.0/24"}]));
    assert!(
        gc(&cfg, "net", &[]).unwrap().is_empty(),
        "no state directory"
    );
    assert!(!net_dir(dir.path()).exists());
    let net = net_dir(dir.path());
    fs::create_dir_all(&net).unwrap();
    for (ip, owner) in [
        ("10.0.0.2", "keep\r\neth0"),
        ("10.0.0.3", "keep\r\neth1"), // same container, interface not valid
        ("10.0.0.4", "gone\r\neth0"),
        ("10.0.0.5", "keep"), // legacy of a valid container
        ("10.0.0.6", "gone"), // legacy of a gone container
        ("10.0.0.7", ""),     // crash leftover
        ("fd00::7", "keep\r\neth0"),
    ] {
        fs::write(net.join(ip), owner).unwrap();
    }
    fs::write(net.join("10.0.0.8"), b"\xff").unwrap();
    fs::write(net.join("last_reserved_ip.0"), "10.0.0.4").unwrap();
    fs::write(net.join("unrelated"), "gone").unwrap();
    let valid = [("keep".to_owned(), "eth0".to_owned())];
    let mut released: Vec<String> = gc(&cfg, "net", &valid)
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    released.sort();
    assert_eq!(
        released,
        ["10.0.0.3", "10.0.0.4", "10.0.0.6", "10.0.0.7", "10.0.0.8"]
    );
    assert_eq!(
        files(dir.path()),
        [
            "10.0.0.2",
            "10.0.0.5",
            "fd00::7",
            "last_reserved_ip.0",
            "lock",
            "unrelated"
        ]
    );
    // empty valid list: everything goes, bookkeeping stays
    assert_eq!(gc(&cfg, "net", &[]).unwrap().len(), 3);
    assert_eq!(
        files(dir.path()),
        ["last_reserved_ip.0", "lock", "unrelated"]
    );
}

#[test]
fn status_reports_exhaustion_and_unwritable_stores() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.1.0.0/30"}]]}),
    );
    status(&cfg, "net").unwrap();
    assert_eq!(
        files(dir.path()),
        ["lock"],
        "the probe leaves nothing behind"
    );
    add1_pair(&cfg, "a");
    let e = status(&cfg, "net").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RangeExhausted);
    assert_eq!(
        e.message(),
        "range set 1 is exhausted: no IP addresses available in range set: 10.1.0.1-10.1.0.2"
    );
    release(&cfg, "net", "a", "eth0").unwrap();
    status(&cfg, "net").unwrap();
    // a gateway file or a non-canonical name does not count as used
    let net = net_dir(dir.path());
    fs::write(net.join("10.1.0.1"), "x").unwrap();
    fs::write(net.join("::ffff:10.1.0.2"), "x").unwrap();
    status(&cfg, "net").unwrap();

    // huge IPv6 sets are counted, not iterated
    let v6 = config_ranges(dir.path(), json!([{"subnet": "fd00::/8"}]));
    status(&v6, "net6").unwrap();

    // an unwritable directory (skipped when running as root, which bypasses permissions)
    let ro = tempfile::tempdir().unwrap();
    let cfg_ro = config_ranges(ro.path(), json!([{"subnet": "10.0.0.0/24"}]));
    status(&cfg_ro, "net").unwrap();
    fs::set_permissions(ro.path().join("net"), fs::Permissions::from_mode(0o555)).unwrap();
    let writable_anyway = fs::write(ro.path().join("net/probe"), "").is_ok();
    if !writable_anyway {
        assert_eq!(status(&cfg_ro, "net").unwrap_err().kind(), ErrorKind::Store);
    }
    fs::set_permissions(ro.path().join("net"), fs::Permissions::from_mode(0o755)).unwrap();
    // a data dir that cannot be created
    let blocker = dir.path().join("file");
    fs::write(&blocker, "").unwrap();
    let cfg_bad = config_ranges(&blocker, json!([{"subnet": "10.0.0.0/24"}]));
    assert_eq!(
        status(&cfg_bad, "net").unwrap_err().kind(),
        ErrorKind::Store
    );
}

fn add1_pair(cfg: &crate::NormalizedConfig, id: &str) {
    let got = allocate(cfg, "net", id, "eth0", &[]).unwrap();
    assert_eq!(got.len(), 2);
}

#[test]
fn concurrent_adds_never_share_an_address() {
    const THREADS: usize = 32;
    let dir = tempfile::tempdir().unwrap();
    let cfg = Arc::new(config(
        dir.path(),
        json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/120"}]]}),
    ));
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let cfg = Arc::clone(&cfg);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                // each call opens its own store, i.e. its own open file description for flock
                allocate(&cfg, "net", &format!("ctr{i}"), "eth0", &[]).unwrap()
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for h in handles {
        for a in h.join().unwrap() {
            assert!(
                seen.insert(a.address.ip()),
                "{} handed out twice",
                a.address
            );
        }
    }
    assert_eq!(seen.len(), 2 * THREADS);
    // the store agrees: one file per address, each owned by exactly one container
    let names = files(dir.path());
    assert_eq!(names.len(), 2 * THREADS + 3);
    for i in 2..2 + THREADS {
        assert!(
            names.contains(&format!("10.0.0.{i}")),
            "10.0.0.{i} not reserved"
        );
    }
}

#[test]
fn concurrent_adds_and_dels_keep_the_store_consistent() {
    const THREADS: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let cfg = Arc::new(config_ranges(
        dir.path(),
        json!([{"subnet": "10.0.0.0/28"}]),
    ));
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let cfg = Arc::clone(&cfg);
            std::thread::spawn(move || {
                let id = format!("c{i}");
                for _ in 0..10 {
                    if let Ok(a) = allocate(&cfg, "net", &id, "eth0", &[]) {
                        assert_eq!(a.len(), 1);
                        crate::check(&cfg, "net", &id, "eth0").unwrap();
                        release(&cfg, "net", &id, "eth0").unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(files(dir.path()), ["last_reserved_ip.0", "lock"]);
}

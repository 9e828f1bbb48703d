//! Reservations appear atomically (staging file + no-replace rename), crash leftovers are
//! removed under the lock, and the lock wait is bounded.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{add1, config_ranges, files, net_dir};
use crate::store::{STAGING_PREFIX, Store};
use crate::{ErrorKind, check, gc, release};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// What a crash at `host-local:staged` leaves: the owner written to the staging file, no
/// reservation.
const LEFTOVER: &str = ".staging.reservation";

#[test]
fn a_reservation_leaves_no_staging_file_and_keeps_the_reference_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_ranges(dir.path(), json!([{"subnet": "10.0.0.0/24"}]));
    assert_eq!(add1(&cfg, "a"), "10.0.0.2");
    assert_eq!(
        files(dir.path()),
        ["10.0.0.2", "last_reserved_ip.0", "lock"]
    );
    let net = net_dir(dir.path());
    assert_eq!(fs::read(net.join("10.0.0.2")).unwrap(), b"a\r\neth0");
    assert_eq!(
        fs::read(net.join("last_reserved_ip.0")).unwrap(),
        b"10.0.0.2"
    );
    for name in ["10.0.0.2", "last_reserved_ip.0"] {
        let mode = fs::metadata(net.join(name)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
}

#[test]
fn a_taken_address_is_refused_without_leaving_a_staging_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), "net").unwrap();
    let net = dir.path().join("net");
    fs::write(net.join("10.0.0.2"), "other\r\neth0").unwrap();
    fs::create_dir(net.join("10.0.0.3")).unwrap();
    std::os::unix::fs::symlink("/nonexistent", net.join("10.0.0.4")).unwrap();
    let lock = store.lock().unwrap();
    for taken in ["10.0.0.2", "10.0.0.3", "10.0.0.4"] {
        assert!(!lock.reserve("a", "eth0", ip(taken), 0).unwrap(), "{taken}");
    }
    assert_eq!(
        fs::read(net.join("10.0.0.2")).unwrap(),
        b"other\r\neth0",
        "an existing reservation is never replaced"
    );
    assert!(!net.join(LEFTOVER).exists());
    assert!(!net.join("last_reserved_ip.0").exists());
}

#[test]
fn staging_names_never_parse_as_addresses() {
    for name in [
        LEFTOVER,
        ".staging.last_reserved_ip.0",
        ".staging.status_probe",
    ] {
        assert!(name.starts_with(STAGING_PREFIX));
        assert!(name.parse::<IpAddr>().is_err(), "{name}");
    }
}

#[test]
fn a_leftover_staging_file_is_replaced_by_the_next_reservation() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), "net").unwrap();
    let net = dir.path().join("net");
    fs::write(net.join(LEFTOVER), "crashed\r\neth0").unwrap();
    // A planted symlink under the other staging name: removed, its target left alone.
    let outside = dir.path().join("outside");
    fs::write(&outside, "keep").unwrap();
    std::os::unix::fs::symlink(&outside, net.join(".staging.last_reserved_ip.0")).unwrap();
    let lock = store.lock().unwrap();
    assert!(lock.reserve("a", "eth0", ip("10.0.0.5"), 0).unwrap());
    assert_eq!(fs::read(net.join("10.0.0.5")).unwrap(), b"a\r\neth0");
    assert_eq!(lock.last_reserved_ip(0), Some(ip("10.0.0.5")));
    assert_eq!(fs::read(&outside).unwrap(), b"keep");
    drop(lock);
    assert_eq!(
        files(dir.path()),
        ["10.0.0.5", "last_reserved_ip.0", "lock"]
    );
}

#[test]
fn del_removes_a_crashed_reservations_leftover_and_check_ignores_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_ranges(dir.path(), json!([{"subnet": "10.0.0.0/24"}]));
    let net = net_dir(dir.path());
    fs::create_dir_all(&net).unwrap();
    fs::write(net.join(LEFTOVER), "a\r\neth0").unwrap();
    assert_eq!(
        check(&cfg, "net", "a", "eth0").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(release(&cfg, "net", "a", "eth0").unwrap().is_empty());
    assert!(!net.join(LEFTOVER).exists(), "DEL removed the leftover");
    // A staging directory is no leftover of ours: left alone.
    fs::create_dir(net.join(".staging.dir")).unwrap();
    assert!(release(&cfg, "net", "a", "eth0").unwrap().is_empty());
    assert!(net.join(".staging.dir").is_dir());
}

#[test]
fn gc_and_add_listings_remove_leftovers_too() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_ranges(dir.path(), json!([{"subnet": "10.0.0.0/24"}]));
    let net = net_dir(dir.path());
    fs::create_dir_all(&net).unwrap();
    fs::write(net.join(".staging.last_reserved_ip.0"), "10.0.0.9").unwrap();
    assert!(gc(&cfg, "net", &[]).unwrap().is_empty());
    assert_eq!(files(dir.path()), ["lock"]);
    fs::write(net.join(LEFTOVER), "b\r\neth0").unwrap();
    assert_eq!(add1(&cfg, "a"), "10.0.0.2", "the leftover reserves nothing");
    assert_eq!(
        files(dir.path()),
        ["10.0.0.2", "last_reserved_ip.0", "lock"]
    );
}

#[test]
fn a_lock_held_elsewhere_times_out_with_its_own_kind_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), "net").unwrap();
    let holder = fs::File::open(dir.path().join("net/lock")).unwrap();
    holder.lock().unwrap();
    let before = files(dir.path());
    let start = Instant::now();
    let e = store.lock_within(Duration::from_millis(60)).unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(60));
    assert_eq!(e.kind(), ErrorKind::LockTimeout);
    let lock_path = dir.path().join("net/lock");
    assert_eq!(
        e.message(),
        format!(
            "failed to lock {}: still held by another process after 60ms",
            lock_path.display()
        )
    );
    let cni = crate::plugin::cni_error(&e);
    assert_eq!(cni.code.as_u32(), 11, "{cni:?}");
    assert_eq!(files(dir.path()), before);
    holder.unlock().unwrap();
    drop(store.lock_within(Duration::from_millis(60)).unwrap());
}

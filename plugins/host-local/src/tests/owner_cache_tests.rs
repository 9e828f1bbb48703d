//! The owner cache: used for owners the files have not changed, blind to nothing another writer
//! creates or removes, never trusted for what is removed or reported, and gone with the last
//! reservation.

use std::fs;

use serde_json::json;

use super::{add1, config_ranges, net_dir};
use crate::store::owner_cache::CACHE_FILE;
use crate::store::{Owner, Store};
use crate::{ErrorKind, check, gc, release};

fn owners(lock: &crate::store::StoreLock<'_>, from_files: bool) -> Vec<(String, Owner)> {
    let listing = if from_files {
        lock.reservations_from_files()
    } else {
        lock.reservations()
    };
    listing
        .unwrap()
        .into_iter()
        .map(|r| (r.file_name.clone(), r.owner()))
        .collect()
}

fn attachment(id: &str) -> Owner {
    Owner::Attachment {
        id: id.to_owned(),
        ifname: "eth0".to_owned(),
    }
}

#[test]
fn a_listing_takes_unchanged_files_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_ranges(dir.path(), json!([{"subnet": "10.0.0.0/24"}]));
    for id in ["a", "b", "c"] {
        add1(&cfg, id);
    }
    let net = net_dir(dir.path());
    assert!(net.join(CACHE_FILE).is_file(), "ADD leaves a cache");
    // Rewriting a file in place keeps its inode, which the cache takes as "unchanged": the
    // cached owner shows, proving the file was not read. (Neither plugin ever does this.)
    fs::write(net.join("10.0.0.3"), "z\r\neth0").unwrap();
    let store = Store::open(dir.path(), "net").unwrap();
    let lock = store.lock().unwrap();
    let cached = owners(&lock, false);
    assert_eq!(cached[1], ("10.0.0.3".to_owned(), attachment("b")));
    let read = owners(&lock, true);
    assert_eq!(read[1], ("10.0.0.3".to_owned(), attachment("z")));
    // Reading the files rewrote the cache.
    assert_eq!(owners(&lock, false), read);
}

#[test]
fn files_another_writer_creates_or_removes_are_seen() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_ranges(dir.path(), json!([{"subnet": "10.0.0.0/24"}]));
    add1(&cfg, "a");
    add1(&cfg, "b");
    let net = net_dir(dir.path());
    // What the Go plugin does: create a file, remove one; it never touches the cache.
    fs::write(net.join("10.0.0.9"), "go\r\neth0").unwrap();
    fs::remove_file(net.join("10.0.0.2")).unwrap();
    // Removed and created again under the same name: a new inode (tmpfs and ext4 alike give
    // the new file another number while the old one is still held open here).
    let held = fs::File::open(net.join("10.0.0.3")).unwrap();
    fs::remove_file(net.join("10.0.0.3")).unwrap();
    fs::write(net.join("10.0.0.3"), "other\r\neth1").unwrap();
    drop(held);
    let store = Store::open(dir.path(), "net").unwrap();
    let lock = store.lock().unwrap();
    let expected = vec![
        (
            "10.0.0.3".to_owned(),
            Owner::Attachment {
                id: "other".to_owned(),
                ifname: "eth1".to_owned(),
            },
        ),
        ("10.0.0.9".to_owned(), attachment("go")),
    ];
    assert_eq!(owners(&lock, false), expected);
    assert_eq!(owners(&lock, true), expected);
    drop(lock);
    // And the verbs act on it: the Go-made reservation is found and released.
    check(&cfg, "net", "go", "eth0").unwrap();
    assert_eq!(
        release(&cfg, "net", "go", "eth0").unwrap(),
        ["10.0.0.9".parse::<std::net::IpAddr>().unwrap()]
    );
}

#[test]
fn removal_reports_and_duplicates_reread_the_files_the_cache_names() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_ranges(dir.path(), json!([{"subnet": "10.0.0.0/24"}]));
    let net = net_dir(dir.path());
    assert_eq!(add1(&cfg, "a"), "10.0.0.2");
    add1(&cfg, "keep");
    // The one change the cache cannot see: a file taking another owner under the same inode.
    // Each step below starts with the cache naming `a` while the file names someone else.
    fs::write(net.join("10.0.0.2"), "b\r\neth0").unwrap();
    // ADD of `a` is no duplicate: the cached owner is re-read.
    assert_eq!(add1(&cfg, "a"), "10.0.0.4");

    fs::write(net.join("10.0.0.4"), "c\r\neth0").unwrap();
    assert_eq!(
        check(&cfg, "net", "a", "eth0").unwrap_err().kind(),
        ErrorKind::NotFound,
        "CHECK re-reads what the cache names"
    );

    assert_eq!(add1(&cfg, "a"), "10.0.0.5");
    fs::write(net.join("10.0.0.5"), "d\r\neth0").unwrap();
    assert!(
        release(&cfg, "net", "a", "eth0").unwrap().is_empty(),
        "DEL re-reads before removing"
    );
    assert_eq!(fs::read(net.join("10.0.0.5")).unwrap(), b"d\r\neth0");
    for (id, ip) in [("b", "10.0.0.2"), ("c", "10.0.0.4"), ("d", "10.0.0.5")] {
        check(&cfg, "net", id, "eth0").unwrap();
        assert_eq!(
            release(&cfg, "net", id, "eth0").unwrap(),
            [ip.parse::<std::net::IpAddr>().unwrap()]
        );
    }
}

#[test]
fn a_duplicate_add_is_refused_from_the_cache_after_a_reread() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_ranges(dir.path(), json!([{"subnet": "10.0.0.0/24"}]));
    add1(&cfg, "a");
    add1(&cfg, "b");
    let err = crate::allocate(&cfg, "net", "a", "eth0", &[]).unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::DuplicateAllocation,
        "{}",
        err.message()
    );
}

#[test]
fn the_cache_goes_with_the_last_reservation() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_ranges(dir.path(), json!([{"subnet": "10.0.0.0/24"}]));
    let cache = net_dir(dir.path()).join(CACHE_FILE);
    add1(&cfg, "a");
    add1(&cfg, "b");
    release(&cfg, "net", "a", "eth0").unwrap();
    assert!(cache.exists(), "b is still reserved");
    release(&cfg, "net", "b", "eth0").unwrap();
    assert!(
        !cache.exists(),
        "DEL of the last reservation removes the cache"
    );

    add1(&cfg, "c");
    add1(&cfg, "d");
    assert!(cache.exists());
    gc(&cfg, "net", &[]).unwrap();
    assert!(!cache.exists(), "GC of everything removes the cache");
}

#[test]
fn a_damaged_cache_is_ignored_and_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_ranges(dir.path(), json!([{"subnet": "10.0.0.0/24"}]));
    add1(&cfg, "a");
    add1(&cfg, "b");
    let cache = net_dir(dir.path()).join(CACHE_FILE);
    for damage in [
        b"garbage".to_vec(),
        b"\xff\xfe".to_vec(),
        b"host-local reservation owners v1\na\t10.0.0.2\t1\n".to_vec(),
        Vec::new(),
    ] {
        fs::write(&cache, &damage).unwrap();
        let store = Store::open(dir.path(), "net").unwrap();
        let lock = store.lock().unwrap();
        assert_eq!(
            owners(&lock, false),
            [
                ("10.0.0.2".to_owned(), attachment("a")),
                ("10.0.0.3".to_owned(), attachment("b")),
            ]
        );
        let text = fs::read_to_string(&cache).unwrap();
        assert!(
            text.contains("\ta\teth0\n") && text.contains("\tb\teth0\n"),
            "{text}"
        );
    }
    // A symlink in its place is not followed (and is replaced, not written through).
    let elsewhere = dir.path().join("elsewhere");
    fs::write(&elsewhere, "keep").unwrap();
    fs::remove_file(&cache).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &cache).unwrap();
    add1(&cfg, "c");
    assert_eq!(fs::read(&elsewhere).unwrap(), b"keep");
    assert!(fs::symlink_metadata(&cache).unwrap().is_file());
}

/// The cache file's entries, decoded, as (name, content) sorted by name.
fn cache_entries(dir: &std::path::Path) -> Vec<(String, Owner)> {
    let store = Store::open(dir, "net").unwrap();
    let lock = store.lock().unwrap();
    // A listing of the files compared with what the cache gives unread.
    let read = owners(&lock, true);
    let cached = owners(&lock, false);
    assert_eq!(cached, read, "the cache is exact");
    read
}

#[test]
fn the_cache_stays_exact_and_bounded_through_many_changes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_ranges(dir.path(), json!([{"subnet": "10.0.0.0/24"}]));
    let cache = net_dir(dir.path()).join(CACHE_FILE);
    // Each round appends three lines and leaves one more reservation: past 64 rounds the
    // appended lines outnumber twice the entries plus the slack, and the file is compacted.
    let rounds = 100;
    for round in 0..rounds {
        add1(&cfg, &format!("keep{round}"));
        add1(&cfg, &format!("tmp{round}"));
        release(&cfg, "net", &format!("tmp{round}"), "eth0").unwrap();
        // Exact after every step without a listing having to repair it: reading it back
        // unchanged would not rewrite it.
        let before = fs::read(&cache).unwrap();
        let entries = cache_entries(dir.path());
        assert_eq!(entries.len(), round + 1);
        assert_eq!(fs::read(&cache).unwrap(), before, "a listing rewrote it");
    }
    let lines = fs::read_to_string(&cache).unwrap().lines().count();
    assert!(lines < 3 * rounds, "never compacted: {lines} lines");
    assert!(
        lines <= 2 * rounds + 64 + 4,
        "grew past the bound: {lines} lines"
    );
}

#[test]
fn calls_that_change_nothing_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let two = super::config(
        dir.path(),
        json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.9.0.0/30"}]]}),
    );
    crate::allocate(&two, "net", "a", "eth0", &[]).unwrap();
    crate::allocate(&two, "net", "b", "eth0", &[]).unwrap_err(); // 10.9.0.0/30 is full
    let cache = net_dir(dir.path()).join(CACHE_FILE);
    let snapshot = || {
        let meta = fs::metadata(&cache).unwrap();
        (
            fs::read(&cache).unwrap(),
            meta.modified().unwrap(),
            meta.ino(),
        )
    };
    use std::os::unix::fs::MetadataExt;
    let before = snapshot();
    check(&two, "net", "a", "eth0").unwrap();
    check(&two, "net", "nobody", "eth0").unwrap_err();
    // Refused: a duplicate; and one that reserved in the first set before the second failed.
    crate::allocate(&two, "net", "a", "eth0", &[]).unwrap_err();
    crate::allocate(&two, "net", "c", "eth0", &[]).unwrap_err();
    release(&two, "net", "nobody", "eth0").unwrap();
    gc(&two, "net", &[("a".to_owned(), "eth0".to_owned())]).unwrap();
    assert_eq!(snapshot(), before);
}

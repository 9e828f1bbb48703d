//! The on-disk store: exact bytes, modes, names, locking and path safety.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::store::{Owner, Store};
use crate::{ErrorKind, validate_container_id, validate_interface_name, validate_network_name};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Everything below `root`, as relative paths.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn reserve_writes_the_reference_bytes_and_modes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), "net").unwrap();
    let lock = store.lock().unwrap();
    assert!(lock.reserve("ctr1", "eth0", ip("10.0.0.2"), 0).unwrap());
    assert!(
        lock.reserve("ctr1", "eth1", ip("fd00:95:0:0:1::a"), 1)
            .unwrap()
    );
    assert!(
        lock.reserve("ctr2", "eth0", ip("::ffff:10.0.0.3"), 0)
            .unwrap()
    );
    assert!(
        !lock.reserve("ctr3", "eth0", ip("10.0.0.2"), 0).unwrap(),
        "taken"
    );
    drop(lock);

    let net = dir.path().join("net");
    assert_eq!(mode(&net), 0o755);
    assert_eq!(fs::read(net.join("10.0.0.2")).unwrap(), b"ctr1\r\neth0");
    assert_eq!(
        fs::read(net.join("fd00:95::1:0:0:a")).unwrap(),
        b"ctr1\r\neth1"
    );
    assert_eq!(
        fs::read(net.join("10.0.0.3")).unwrap(),
        b"ctr2\r\neth0",
        "mapped -> IPv4 name"
    );
    assert_eq!(
        fs::read(net.join("last_reserved_ip.0")).unwrap(),
        b"10.0.0.3"
    );
    assert_eq!(
        fs::read(net.join("last_reserved_ip.1")).unwrap(),
        b"fd00:95::1:0:0:a"
    );
    for name in [
        "10.0.0.2",
        "fd00:95::1:0:0:a",
        "last_reserved_ip.0",
        "last_reserved_ip.1",
        "lock",
    ] {
        assert_eq!(mode(&net.join(name)), 0o600, "{name}");
    }
    assert_eq!(fs::read(net.join("lock")).unwrap(), b"");
    assert_eq!(
        tree(dir.path()),
        [
            "net",
            "net/10.0.0.2",
            "net/10.0.0.3",
            "net/fd00:95::1:0:0:a",
            "net/last_reserved_ip.0",
            "net/last_reserved_ip.1",
            "net/lock"
        ],
        "no temporary files left behind"
    );
}

#[test]
fn last_reserved_ip_is_read_strictly() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), "net").unwrap();
    let lock = store.lock().unwrap();
    let file = dir.path().join("net/last_reserved_ip.0");
    assert_eq!(lock.last_reserved_ip(0), None);
    for (content, want) in [
        (&b"10.0.0.7"[..], Some("10.0.0.7")),
        (b"::ffff:10.0.0.7", Some("10.0.0.7")),
        (b"fd00::7", Some("fd00::7")),
        (b"10.0.0.7\n", None),
        (b"", None),
        (b"\xff", None),
    ] {
        fs::write(&file, content).unwrap();
        assert_eq!(lock.last_reserved_ip(0), want.map(ip), "{content:?}");
    }
}

#[test]
fn reservations_ignore_bookkeeping_symlinks_and_directories() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), "net").unwrap();
    let net = dir.path().join("net");
    fs::write(net.join("10.0.0.2"), "a\r\neth0\n").unwrap();
    fs::write(net.join("10.0.0.3"), "  legacy-id \n").unwrap();
    fs::write(net.join("10.0.0.4"), b"\xff\xfe").unwrap();
    fs::write(net.join("last_reserved_ip.0"), "a").unwrap();
    fs::write(net.join("last_reserved_ip.0.tmp"), "a").unwrap();
    fs::write(net.join("notes.txt"), "a").unwrap();
    fs::create_dir(net.join("10.0.0.9")).unwrap();
    std::os::unix::fs::symlink(net.join("10.0.0.2"), net.join("10.0.0.8")).unwrap();
    let lock = store.lock().unwrap();
    let res = lock.reservations().unwrap();
    let owners: Vec<(String, Owner)> = res
        .iter()
        .map(|r| (r.file_name.clone(), r.owner()))
        .collect();
    assert_eq!(
        owners,
        [
            (
                "10.0.0.2".into(),
                Owner::Attachment {
                    id: "a".into(),
                    ifname: "eth0".into()
                }
            ),
            (
                "10.0.0.3".into(),
                Owner::Legacy {
                    id: "legacy-id".into()
                }
            ),
            ("10.0.0.4".into(), Owner::Unreadable),
        ]
    );
}

/// A FIFO named like an address is skipped without blocking the listing, an oversized file is
/// listed as unreadable, and many reservations read back each with its own content.
#[test]
fn reservations_skip_fifos_flag_oversized_files_and_read_many() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), "net").unwrap();
    let net = dir.path().join("net");
    nix::unistd::mkfifo(&net.join("10.0.0.7"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    fs::write(net.join("10.0.0.6"), vec![b'x'; 64 * 1024 + 1]).unwrap();
    for i in 10..250 {
        fs::write(net.join(format!("10.0.1.{i}")), format!("ctr{i}\r\neth0")).unwrap();
    }
    let lock = store.lock().unwrap();
    let res = lock.reservations().unwrap();
    assert_eq!(res.len(), 1 + 240, "the FIFO is not a reservation");
    assert_eq!(res[0].file_name, "10.0.0.6");
    assert_eq!(res[0].owner(), Owner::Unreadable);
    for r in &res[1..] {
        let i = r.file_name.rsplit('.').next().unwrap();
        let want = Owner::Attachment {
            id: format!("ctr{i}"),
            ifname: "eth0".into(),
        };
        assert_eq!(r.owner(), want, "{}", r.file_name);
    }
}

#[test]
fn release_by_attachment_then_legacy_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), "net").unwrap();
    let net = dir.path().join("net");
    fs::write(net.join("10.0.0.2"), "ctr\r\neth0").unwrap();
    fs::write(net.join("fd00::2"), "ctr\r\neth0\r\n").unwrap();
    fs::write(net.join("10.0.0.3"), "ctr\r\neth1").unwrap();
    fs::write(net.join("10.0.0.4"), "ctr").unwrap();
    fs::write(net.join("10.0.0.5"), "other\r\neth0").unwrap();
    fs::write(net.join("last_reserved_ip.0"), "ctr").unwrap();
    let lock = store.lock().unwrap();

    let mut released = lock.release("ctr", "eth0", false).unwrap();
    released.sort();
    assert_eq!(released, [ip("10.0.0.2"), ip("fd00::2")]);
    assert_eq!(
        lock.release("ctr", "eth0", false).unwrap(),
        [ip("10.0.0.4")],
        "legacy fallback"
    );
    assert!(
        lock.release("ctr", "eth0", false).unwrap().is_empty(),
        "idempotent"
    );
    assert!(net.join("10.0.0.3").exists() && net.join("10.0.0.5").exists());
    assert!(
        net.join("last_reserved_ip.0").exists(),
        "bookkeeping is never released"
    );

    fs::write(net.join("10.0.0.6"), "ctr").unwrap();
    assert_eq!(
        lock.release("ctr", "eth1", true).unwrap(),
        [ip("10.0.0.3"), ip("10.0.0.6")]
    );
}

#[test]
fn find_matches_attachment_or_legacy_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), "net").unwrap();
    let net = dir.path().join("net");
    fs::write(net.join("10.0.0.2"), "a\r\neth0").unwrap();
    fs::write(net.join("10.0.0.3"), "b").unwrap();
    let lock = store.lock().unwrap();
    assert_eq!(lock.find("a", "eth0").unwrap(), [ip("10.0.0.2")]);
    assert!(lock.find("a", "eth1").unwrap().is_empty());
    assert_eq!(lock.find("b", "eth7").unwrap(), [ip("10.0.0.3")]);
    assert!(lock.find("c", "eth0").unwrap().is_empty());
}

#[test]
fn invalid_names_are_rejected_before_touching_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bad_networks = [
        "", ".", "..", "../x", "a/b", "/abs", "-x", "_x", ".hidden", "a b", "a\0b", "é", "a\nb",
    ];
    for name in bad_networks {
        let e = Store::open(&data, name).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{name:?}");
        assert!(validate_network_name(name).is_err());
        assert!(Store::open_existing(&data, name).is_err());
    }
    assert!(!data.exists(), "nothing created for invalid names");
    for good in ["a", "net-1.2_x", "0"] {
        assert!(validate_network_name(good).is_ok(), "{good}");
        assert!(validate_container_id(good).is_ok(), "{good}");
    }
    for id in ["", "../../etc", "a/b", "-a", "a\r\nb", " a", "a b"] {
        assert!(validate_container_id(id).is_err(), "{id:?}");
    }
    for ifname in [
        "",
        ".",
        "..",
        "a/b",
        "a:b",
        "a b",
        "a\tb",
        "abcdefghijklmnop",
    ] {
        assert!(validate_interface_name(ifname).is_err(), "{ifname:?}");
    }
    for ifname in ["eth0", "abcdefghijklmno", "net1.100", "é"] {
        assert!(validate_interface_name(ifname).is_ok(), "{ifname:?}");
    }
}

#[test]
fn open_existing_does_not_create() {
    let dir = tempfile::tempdir().unwrap();
    assert!(Store::open_existing(dir.path(), "net").unwrap().is_none());
    assert!(!dir.path().join("net").exists());
    fs::write(dir.path().join("file"), "").unwrap();
    assert_eq!(
        Store::open_existing(dir.path(), "file").unwrap_err().kind(),
        ErrorKind::Store
    );
    assert_eq!(
        Store::open(dir.path(), "file").unwrap_err().kind(),
        ErrorKind::Store
    );
}

#[test]
fn the_lock_excludes_other_open_file_descriptions() {
    let dir = tempfile::tempdir().unwrap();
    let a = Store::open(dir.path(), "net").unwrap();
    let b = Store::open(dir.path(), "net").unwrap();
    let guard = a.lock().unwrap();
    let probe = fs::File::open(dir.path().join("net/lock")).unwrap();
    assert!(probe.try_lock().is_err(), "held while the guard lives");
    drop(guard);
    assert!(probe.try_lock().is_ok());
    probe.unlock().unwrap();
    drop(b.lock().unwrap());
}

#[test]
fn failed_reservation_leaves_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), "net").unwrap();
    let net = dir.path().join("net");
    // make the cursor impossible to write: a directory in place of its staging file
    fs::create_dir(net.join(".staging.last_reserved_ip.0")).unwrap();
    let lock = store.lock().unwrap();
    let e = lock.reserve("ctr", "eth0", ip("10.0.0.2"), 0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Store);
    assert!(!net.join("10.0.0.2").exists(), "reservation rolled back");
    assert!(!net.join("last_reserved_ip.0").exists());
}

//! Which attachments the iptables backend has set up, one small file each next to the host lock:
//! `<dataDir>/attachments/<16hex(network)>-<16hex(ifname:containerID)>`, holding the network,
//! container ID and interface name on three lines (mode 0600).
//!
//! It exists for speed. Whether an ADD repeats an earlier one (out of spec, but runtimes do it)
//! could otherwise only be learnt by reading the whole `filter` table, whose size grows with
//! every container on the host. With the ledger, a first ADD writes its rules in one batch
//! without reading anything, and only a repeated ADD (file already there) pays for the read.
//!
//! The ledger is a hint, never the truth: a missing entry for rules that exist (state from the Go
//! plugin or an older version) only costs a duplicate pair of rules on an out-of-spec repeated
//! ADD, which DEL removes with the rest; an entry without rules only sends the next ADD down the
//! reading path. Every access happens under the [`HostLock`](super::HostLock).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{OFlag, open, openat};
use nix::sys::stat::Mode;
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::Owner;

/// The ledger directory beside a lock file.
///
/// Every access goes through a descriptor of the directory opened with `O_NOFOLLOW`, and entries
/// are opened and removed relative to it (`openat`/`unlinkat`, `O_NOFOLLOW`): a symlink planted
/// for the directory or an entry is never followed, so nothing outside the dataDir is read,
/// written or removed. A directory that is a symlink counts as no ledger at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ledger {
    dir: PathBuf,
}

impl Ledger {
    /// The ledger in `<dir of lock_path>/attachments`.
    pub(crate) fn beside(lock_path: &Path) -> Ledger {
        let parent = lock_path.parent().unwrap_or(Path::new("/"));
        Ledger {
            dir: parent.join("attachments"),
        }
    }

    /// The directory, opened without following a symlink; `None` when it is missing or is not
    /// a real directory (and `create` is off).
    fn open_dir(&self, create: bool) -> io::Result<Option<OwnedFd>> {
        if create {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)?;
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        match open(&self.dir, flags, Mode::empty()) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::ENOENT | Errno::ELOOP | Errno::ENOTDIR) if !create => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Record `owner`. `Ok(true)`: it was not recorded before (a first ADD); `Ok(false)`: it was.
    pub(crate) fn record(&self, owner: &Owner) -> io::Result<bool> {
        let Some(dir) = self.open_dir(true)? else {
            return Ok(false);
        };
        let name = owner.instance_hash();
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match openat(&dir, name.as_str(), flags, Mode::from_bits_truncate(0o600)) {
            Ok(fd) => fd,
            Err(Errno::EEXIST) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let text = format!(
            "{}\n{}\n{}\n",
            owner.network, owner.container_id, owner.ifname
        );
        if let Err(e) = File::from(fd).write_all(text.as_bytes()) {
            let _ = unlinkat(&dir, name.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(e);
        }
        Ok(true)
    }

    /// Forget `owner` (nothing recorded is success); the directory goes with its last entry.
    pub(crate) fn forget(&self, owner: &Owner) -> io::Result<()> {
        let Some(dir) = self.open_dir(false)? else {
            return Ok(());
        };
        match unlinkat(
            &dir,
            owner.instance_hash().as_str(),
            UnlinkatFlags::NoRemoveDir,
        ) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(e.into()),
        }
        self.remove_dir_if_empty();
        Ok(())
    }

    /// Forget every entry of `network` whose (container ID, ifname) is not in `valid`, and
    /// entries of ours that cannot be read. Only regular files named like an entry are looked
    /// at. Returns the first error after trying all.
    pub(crate) fn forget_stale(&self, network: &str, valid: &[(&str, &str)]) -> io::Result<()> {
        let Some(dir) = self.open_dir(false)? else {
            return Ok(());
        };
        let mut listing = Dir::from_fd(dir.try_clone()?)?;
        let names: Vec<String> = listing
            .iter()
            .flatten()
            .filter(|e| e.file_type() == Some(Type::File))
            .filter_map(|e| e.file_name().to_str().ok().map(str::to_owned))
            .filter(|name| is_entry_name(name))
            .collect();
        let mut first_error = None;
        for name in names {
            let keep = match read_entry(&dir, &name) {
                Some(text) => {
                    let mut lines = text.lines();
                    let (net, cid, ifname) = (lines.next(), lines.next(), lines.next());
                    net != Some(network)
                        || valid
                            .iter()
                            .any(|(c, i)| cid == Some(*c) && ifname == Some(*i))
                }
                None => false,
            };
            if !keep
                && let Err(e) = unlinkat(&dir, name.as_str(), UnlinkatFlags::NoRemoveDir)
                && e != Errno::ENOENT
            {
                first_error.get_or_insert(io::Error::from(e));
            }
        }
        self.remove_dir_if_empty();
        first_error.map_or(Ok(()), Err)
    }

    fn remove_dir_if_empty(&self) {
        // Fails while other entries exist, which is the point.
        let _ = fs::remove_dir(&self.dir);
    }
}

/// `<16 hex>-<16 hex>`: the shape of [`Owner::instance_hash`].
fn is_entry_name(name: &str) -> bool {
    let hex16 = |s: &str| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit());
    name.split_once('-')
        .is_some_and(|(a, b)| hex16(a) && hex16(b))
}

/// An entry's text (at most 1 KiB), or `None` when it cannot be opened or read as UTF-8.
fn read_entry(dir: &OwnedFd, name: &str) -> Option<String> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(dir, name, flags, Mode::empty()).ok()?;
    let mut text = String::new();
    File::from(fd).take(1024).read_to_string(&mut text).ok()?;
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn record_once_then_forget_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let ledger = Ledger::beside(&tmp.path().join("lock"));
        let a = Owner::new("net1", "ctr1", "eth0");
        assert!(ledger.record(&a).unwrap());
        assert!(
            !ledger.record(&a).unwrap(),
            "second record must see the first"
        );
        let file = tmp.path().join("attachments").join(a.instance_hash());
        assert_eq!(fs::read_to_string(&file).unwrap(), "net1\nctr1\neth0\n");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        ledger.forget(&a).unwrap();
        ledger.forget(&a).unwrap();
        assert_eq!(listing(tmp.path()), Vec::<String>::new());
    }

    #[test]
    fn forget_stale_keeps_valid_and_other_networks() {
        let tmp = tempfile::tempdir().unwrap();
        let ledger = Ledger::beside(&tmp.path().join("lock"));
        let keep = Owner::new("net1", "ctr1", "eth0");
        let stale = Owner::new("net1", "ctr2", "eth0");
        let other = Owner::new("net2", "ctr2", "eth0");
        for o in [&keep, &stale, &other] {
            ledger.record(o).unwrap();
        }
        // An unreadable entry of ours goes; a file that is not an entry is not ours to remove.
        let damaged = tmp
            .path()
            .join("attachments/0123456789abcdef-0123456789abcdef");
        fs::write(&damaged, [0xff, 0xfe]).unwrap();
        fs::write(tmp.path().join("attachments/notes"), [0xff, 0xfe]).unwrap();
        ledger.forget_stale("net1", &[("ctr1", "eth0")]).unwrap();
        let mut want = vec![
            keep.instance_hash(),
            other.instance_hash(),
            "notes".to_owned(),
        ];
        want.sort();
        assert_eq!(listing(&tmp.path().join("attachments")), want);
        fs::remove_file(tmp.path().join("attachments/notes")).unwrap();
        ledger.forget_stale("net1", &[]).unwrap();
        ledger.forget_stale("net2", &[]).unwrap();
        assert_eq!(listing(tmp.path()), Vec::<String>::new());
    }

    #[test]
    fn record_does_not_follow_a_planted_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let ledger = Ledger::beside(&tmp.path().join("lock"));
        let a = Owner::new("net1", "ctr1", "eth0");
        fs::create_dir(tmp.path().join("attachments")).unwrap();
        let target = tmp.path().join("outside");
        std::os::unix::fs::symlink(
            &target,
            tmp.path().join("attachments").join(a.instance_hash()),
        )
        .unwrap();
        assert!(!ledger.record(&a).unwrap());
        assert!(!target.exists());
    }

    #[test]
    fn a_planted_directory_symlink_is_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("binary"), [0xff, 0xfe]).unwrap();
        let a = Owner::new("net1", "ctr1", "eth0");
        let planted = Owner::new("net1", "ctr2", "eth0");
        fs::write(outside.join(planted.instance_hash()), [0xff]).unwrap();
        let state = tmp.path().join("state");
        fs::create_dir(&state).unwrap();
        std::os::unix::fs::symlink(&outside, state.join("attachments")).unwrap();
        let ledger = Ledger::beside(&state.join("lock"));
        assert!(
            ledger.record(&a).is_err(),
            "record must refuse the symlinked directory"
        );
        ledger.forget(&planted).unwrap();
        ledger.forget_stale("net1", &[]).unwrap();
        let mut want = vec!["binary".to_owned(), planted.instance_hash()];
        want.sort();
        assert_eq!(
            listing(&outside),
            want,
            "nothing outside the dataDir changed"
        );
    }

    #[test]
    fn entry_names_have_the_hash_shape() {
        assert!(is_entry_name(&Owner::new("n", "c", "eth0").instance_hash()));
        for bad in ["lock", "0123456789abcdef", "0123456789abcdef-xyz", "../x-y"] {
            assert!(!is_entry_name(bad), "{bad}");
        }
    }
}

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

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::Owner;

/// The ledger directory beside a lock file.
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

    fn entry(&self, owner: &Owner) -> PathBuf {
        self.dir.join(owner.instance_hash())
    }

    /// Record `owner`. `Ok(true)`: it was not recorded before (a first ADD); `Ok(false)`: it was.
    pub(crate) fn record(&self, owner: &Owner) -> io::Result<bool> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let path = self.entry(owner);
        let opened = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(&path);
        let mut file = match opened {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e),
        };
        let text = format!(
            "{}\n{}\n{}\n",
            owner.network, owner.container_id, owner.ifname
        );
        if let Err(e) = file.write_all(text.as_bytes()) {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        Ok(true)
    }

    /// Forget `owner` (nothing recorded is success); the directory goes with its last entry.
    pub(crate) fn forget(&self, owner: &Owner) -> io::Result<()> {
        match fs::remove_file(self.entry(owner)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        self.remove_dir_if_empty();
        Ok(())
    }

    /// Forget every entry of `network` whose (container ID, ifname) is not in `valid`, and
    /// entries that cannot be read. Returns the first error after trying all.
    pub(crate) fn forget_stale(&self, network: &str, valid: &[(&str, &str)]) -> io::Result<()> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut first_error = None;
        for entry in entries.flatten() {
            let path = entry.path();
            let keep = match fs::read_to_string(&path) {
                Ok(text) => {
                    let mut lines = text.lines();
                    let (net, cid, ifname) = (lines.next(), lines.next(), lines.next());
                    net != Some(network)
                        || valid
                            .iter()
                            .any(|(c, i)| cid == Some(*c) && ifname == Some(*i))
                }
                Err(_) => false,
            };
            if !keep && let Err(e) = fs::remove_file(&path) {
                first_error.get_or_insert(e);
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
        fs::write(tmp.path().join("attachments/garbage"), [0xff, 0xfe]).unwrap();
        ledger.forget_stale("net1", &[("ctr1", "eth0")]).unwrap();
        let mut want = vec![keep.instance_hash(), other.instance_hash()];
        want.sort();
        assert_eq!(listing(&tmp.path().join("attachments")), want);
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
}

//! The host-wide lock around every firewall read-modify-write.
//!
//! `iptables-restore --noflush -w <seconds>` applies one batch atomically, but a batch is planned
//! from an earlier `iptables-save`: two plugins adding the first container of a new bridge at once
//! would both see its isolation rules missing and both insert them. Our processes therefore plan
//! and apply under an exclusive `flock` on one file; batches are still built to fail (and be
//! re-planned) when a tool outside the lock changed the table in between.
//!
//! The wait is bounded ([`cni_core::lock`]): a lock another process keeps holding ends in
//! [`FirewallError::Lock`] whose source [`cni_core::lock::is_timeout`] recognises (CNI code 11
//! in the plugins), and nothing is changed.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::FirewallError;

/// Where the lock lives unless the config's `dataDir` says otherwise (tmpfs: nothing to keep
/// across reboots).
pub const DEFAULT_DIR: &str = "/run/cni/firewall";

/// The lock file (`<dir>/lock`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLock {
    path: PathBuf,
    timeout: Duration,
}

/// Holds the lock until dropped.
#[derive(Debug)]
pub struct HostLockGuard {
    _file: File,
}

impl HostLock {
    /// The lock file in `dir` (created with mode 0700 when missing), waited for at most the
    /// lock timeout ([`cni_core::lock::timeout`]).
    pub fn in_dir(dir: &Path) -> HostLock {
        HostLock {
            path: dir.join("lock"),
            timeout: cni_core::lock::timeout(),
        }
    }

    /// The same lock, waited for at most `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> HostLock {
        self.timeout = timeout;
        self
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Wait for the exclusive lock, at most the timeout; then [`FirewallError::Lock`] with a
    /// source [`cni_core::lock::is_timeout`] recognises.
    pub fn acquire(&self) -> Result<HostLockGuard, FirewallError> {
        let fail = |source| FirewallError::Lock {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(fail)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(&self.path)
            .map_err(fail)?;
        cni_core::lock::lock_exclusive_within(&file, self.timeout).map_err(fail)?;
        Ok(HostLockGuard { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn lock_excludes_other_holders_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let lock = HostLock::in_dir(&dir.path().join("sub"));
        let guard = lock.acquire().unwrap();
        let released = AtomicBool::new(false);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let _g = lock.acquire().unwrap();
                released.load(Ordering::SeqCst)
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            released.store(true, Ordering::SeqCst);
            drop(guard);
            assert!(waiter.join().unwrap(), "second holder got the lock early");
        });
        assert!(lock.path().exists());
    }

    #[test]
    fn a_lock_held_elsewhere_times_out_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let lock = HostLock::in_dir(dir.path()).with_timeout(Duration::from_millis(50));
        let holder = std::fs::File::create(lock.path()).unwrap();
        holder.lock().unwrap();
        let start = std::time::Instant::now();
        let err = lock.acquire().unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(50));
        let FirewallError::Lock { source, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(cni_core::lock::is_timeout(source), "{source:?}");
        assert_eq!(
            err.to_string(),
            format!("failed to lock {}", lock.path().display())
        );
        drop(holder);
        drop(lock.acquire().unwrap());
    }

    #[test]
    fn unusable_directory_is_an_error() {
        let lock = HostLock::in_dir(Path::new("/proc/no-such-dir"));
        let err = lock.acquire().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("failed to lock /proc/no-such-dir/lock"),
            "{err}"
        );
    }
}

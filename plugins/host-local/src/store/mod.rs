//! The on-disk reservation store, byte-compatible with the reference `disk` backend so that the
//! Go and the Rust plugin can take turns on one host.
//!
//! Layout of `<dataDir>/<network>/` (directory mode 0755):
//! - `<ip>`: one file per reserved address, named by the address in Go's canonical text form
//!   (`10.1.0.5`, `fd00:95::2`), content `<containerID>\r\n<ifname>` without a trailing newline,
//!   mode 0600. Legacy files hold the container ID only.
//! - `last_reserved_ip.<N>`: the address last reserved from range set `N` (no newline, 0600).
//! - `lock`: an empty file; every operation holds an exclusive `flock` on it (the Go plugin's
//!   `go-filemutex` takes the same kind of lock, so the two interoperate). The wait for it is
//!   bounded ([`cni_core::lock`]); a lock another process keeps holding is
//!   [`ErrorKind::LockTimeout`](crate::ErrorKind::LockTimeout).
//!
//! A reservation appears atomically with its content: the owner is written to a staging file
//! ([`STAGING_PREFIX`]) that is then moved to the address's name without replacing anything
//! (`renameat2(RENAME_NOREPLACE)`, or `link(2)` where the file system lacks it; an existing name
//! means the address is taken, as `O_CREAT|O_EXCL` did). A crash leaves either no reservation or
//! a complete one, never an empty file no DEL can attribute. `last_reserved_ip.<N>` is replaced
//! the same way (staging file + rename). What a crash can leave is a staging file. Staging files
//! are only ever written with the lock held, so one seen with the lock held is a leftover: every
//! directory listing ([`StoreLock::reservations`], which ADD without requested addresses, DEL,
//! CHECK, GC and STATUS already do) removes them; ADD of a requested address lists nothing.
//!
//! Owners are read through the [`owner_cache`] (`.reservation-owners`), so a listing reads the
//! directory and only the files created since the last call; anything removed or reported is
//! re-read first.
//!
//! All reading and writing goes through a [`StoreLock`], so the lock is provably held.

mod listing;
pub mod owner_cache;

pub(crate) use listing::Owners;

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::HostLocalError;

/// Name of the lock file inside a network directory.
pub const LOCK_FILE: &str = "lock";
/// Prefix of the per-range-set round-robin cursor files.
pub const LAST_RESERVED_IP_PREFIX: &str = "last_reserved_ip.";
/// Separator between container ID and interface name in a reservation file.
pub const LINE_BREAK: &str = "\r\n";
/// Prefix of the staging files a reservation, `last_reserved_ip.<N>` and the STATUS probe are
/// written to before they take their real name. A name with it never parses as an address
/// (ours or Go's `net.ParseIP`), so neither plugin takes one for a reservation.
pub const STAGING_PREFIX: &str = ".staging.";

/// Reservation files larger than this cannot belong to a valid attachment and are not read.
const MAX_RESERVATION_BYTES: u64 = 64 * 1024;
const STATUS_PROBE: &str = ".staging.status_probe";
/// The staging file of a reservation.
const RESERVATION_STAGING: &str = ".staging.reservation";

/// Rejects network names that are not CNI-valid (`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`), which also
/// rules out `.`, `..`, `/` and anything else that could escape `dataDir`.
pub fn validate_network_name(name: &str) -> Result<(), HostLocalError> {
    cni_core::validate::network_name(name).map_err(|_| HostLocalError::InvalidNetworkName {
        name: name.to_owned(),
    })
}

/// Rejects container IDs that are not CNI-valid (`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`).
pub fn validate_container_id(id: &str) -> Result<(), HostLocalError> {
    cni_core::validate::container_id(id)
        .map_err(|_| HostLocalError::InvalidContainerId { id: id.to_owned() })
}

/// Rejects interface names that CNI rejects: empty, longer than 15 bytes, `.`/`..`, or
/// containing `/`, `:` or whitespace (the latter would corrupt the reservation format).
pub fn validate_interface_name(name: &str) -> Result<(), HostLocalError> {
    cni_core::validate::interface_name(name).map_err(|e| HostLocalError::InvalidInterfaceName {
        name: name.to_owned(),
        reason: e.msg,
    })
}

/// Who owns a reservation, as recorded in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Current format: `<id>\r\n<ifname>`.
    Attachment {
        /// Container ID.
        id: String,
        /// Interface name.
        ifname: String,
    },
    /// Legacy format: the container ID only.
    Legacy {
        /// Container ID.
        id: String,
    },
    /// The file is too large or not UTF-8.
    Unreadable,
}

/// One reservation file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The reserved address (canonical).
    pub ip: IpAddr,
    /// File name inside the network directory.
    pub file_name: String,
    /// File content with surrounding whitespace trimmed; `None` when unreadable.
    content: Option<String>,
    /// The file's inode number, as the directory listing gave it.
    ino: u64,
    /// True when `content` came from the owner cache rather than from the file just now.
    from_cache: bool,
    /// True when `file_name` is `ip` in canonical text form.
    canonical_name: bool,
}

impl Reservation {
    /// Parses the owner from the content.
    pub fn owner(&self) -> Owner {
        match &self.content {
            None => Owner::Unreadable,
            Some(text) => match text.split_once(LINE_BREAK) {
                Some((id, ifname)) => Owner::Attachment {
                    id: id.to_owned(),
                    ifname: ifname.to_owned(),
                },
                None => Owner::Legacy { id: text.clone() },
            },
        }
    }

    /// True when the file is in the canonical name form the allocator would create.
    pub fn has_canonical_name(&self) -> bool {
        self.canonical_name
    }

    fn matches_key(&self, key: &str) -> bool {
        self.content.as_deref() == Some(key)
    }
}

/// A network's state directory with its (unlocked) lock file open.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    lock: File,
}

impl Store {
    /// Opens `<data_dir>/<network>`, creating it (mode 0755) and its lock file as needed.
    /// The network name is validated first; nothing is created for an invalid one.
    pub fn open(data_dir: &Path, network: &str) -> Result<Store, HostLocalError> {
        validate_network_name(network)?;
        let dir = data_dir.join(network);
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)
            .map_err(|e| HostLocalError::store("create directory", &dir, e))?;
        Self::open_lock(dir)
    }

    /// Like [`Store::open`] but creates nothing when the directory does not exist yet
    /// (returns `None`): for operations that only read or remove state.
    pub fn open_existing(data_dir: &Path, network: &str) -> Result<Option<Store>, HostLocalError> {
        validate_network_name(network)?;
        let dir = data_dir.join(network);
        match fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => Self::open_lock(dir).map(Some),
            Ok(_) => Err(HostLocalError::store(
                "open directory",
                &dir,
                io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(HostLocalError::store("open directory", &dir, e)),
        }
    }

    fn open_lock(dir: PathBuf) -> Result<Store, HostLocalError> {
        let path = dir.join(LOCK_FILE);
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            // A planted `lock` symlink must not make us create a file outside dataDir.
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(&path);
        let lock = match opened {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => File::open(&path),
            other => other,
        }
        .map_err(|e| HostLocalError::store("open lock file", &path, e))?;
        Ok(Store { dir, lock })
    }

    /// The network directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Waits for the exclusive lock, at most the lock timeout ([`cni_core::lock::timeout`]);
    /// it is released when the guard drops.
    pub fn lock(&self) -> Result<StoreLock<'_>, HostLocalError> {
        self.lock_within(cni_core::lock::timeout())
    }

    /// [`Store::lock`], waiting at most `timeout`. When another process holds the lock longer,
    /// the error's kind is [`ErrorKind::LockTimeout`](crate::ErrorKind::LockTimeout).
    pub fn lock_within(&self, timeout: Duration) -> Result<StoreLock<'_>, HostLocalError> {
        cni_core::lock::lock_exclusive_within(&self.lock, timeout)
            .map_err(|e| HostLocalError::store("lock", self.dir.join(LOCK_FILE), e))?;
        Ok(StoreLock {
            store: self,
            cache: Default::default(),
        })
    }
}

/// Proof that the store's lock is held; every state access goes through it.
#[derive(Debug)]
pub struct StoreLock<'a> {
    store: &'a Store,
    /// The owner cache as this holder knows it, and its changes not yet written.
    cache: std::cell::RefCell<listing::CacheState>,
}

impl Drop for StoreLock<'_> {
    /// Writes this holder's changes to the owner cache, then releases the lock.
    fn drop(&mut self) {
        self.flush_cache();
        // Closing the file would release the lock as well; an unlock error leaves nothing to do.
        let _ = self.store.lock.unlock();
    }
}

impl StoreLock<'_> {
    /// The network directory.
    pub fn dir(&self) -> &Path {
        &self.store.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.store.dir.join(name)
    }

    /// Reserves `ip` for `(id, ifname)` and records it as range set `range_index`'s last
    /// reservation. `Ok(false)` when the address is already reserved. The reservation file
    /// appears complete or not at all (see the module docs); on error nothing is left behind.
    pub fn reserve(
        &self,
        id: &str,
        ifname: &str,
        ip: IpAddr,
        range_index: usize,
    ) -> Result<bool, HostLocalError> {
        let ip = ip.to_canonical();
        let path = self.path(&ip.to_string());
        let staging = self.path(RESERVATION_STAGING);
        let content = format!("{}{LINE_BREAK}{ifname}", id.trim());
        let ino = self.stage(&staging, content.as_bytes(), false)?;
        // Test hooks (inert unless CNI_TEST_ABORT_AT names them): crash points of the fault
        // suite. `staged`: the owner is written, the reservation does not exist yet.
        cni_core::fault::point("host-local:staged");
        // tempfile's no-clobber persist: renameat2(RENAME_NOREPLACE), or link(2) + unlink(2)
        // where the file system lacks the flag; an existing name fails with AlreadyExists. On
        // failure the staging file is removed when the returned path drops.
        let staged = tempfile::TempPath::try_from_path(&staging)
            .map_err(|e| HostLocalError::store("create", &path, e))?;
        if let Err(e) = staged.persist_noclobber(&path) {
            return match e.error.kind() {
                io::ErrorKind::AlreadyExists => Ok(false),
                _ => Err(HostLocalError::store("create", &path, e.error)),
            };
        }
        cni_core::fault::point("host-local:reserved");
        if let Err(e) = self.write_last_reserved_ip(range_index, ip) {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        self.note_reserved(ip.to_string(), ino, content);
        Ok(true)
    }

    /// Writes `content` to the staging file `path` (mode 0600), replacing a crashed writer's
    /// leftover of that name, and returns its inode number. With `sync`, the data reaches the
    /// disk before this returns. On error the staging file is removed again.
    fn stage(&self, path: &Path, content: &[u8], sync: bool) -> Result<u64, HostLocalError> {
        let create = || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
        };
        let mut file = match create() {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // A leftover (the lock is held, so nobody else is staging): `create_new` never
                // follows a symlink, and removing one removes only the link.
                fs::remove_file(path).and_then(|()| create())
            }
            other => other,
        }
        .map_err(|e| HostLocalError::store("create", path, e))?;
        let written = file
            .write_all(content)
            .and_then(|()| if sync { file.sync_data() } else { Ok(()) })
            .and_then(|()| file.metadata());
        match written {
            Ok(meta) => Ok(std::os::unix::fs::MetadataExt::ino(&meta)),
            Err(e) => {
                drop(file);
                let _ = fs::remove_file(path);
                Err(HostLocalError::store("write", path, e))
            }
        }
    }

    /// Atomically replaces `last_reserved_ip.<range_index>`.
    fn write_last_reserved_ip(&self, range_index: usize, ip: IpAddr) -> Result<(), HostLocalError> {
        let name = format!("{LAST_RESERVED_IP_PREFIX}{range_index}");
        let target = self.path(&name);
        let staging = self.path(&format!("{STAGING_PREFIX}{name}"));
        self.stage(&staging, ip.to_string().as_bytes(), true)?;
        fs::rename(&staging, &target).map_err(|e| {
            let _ = fs::remove_file(&staging);
            HostLocalError::store("replace", &target, e)
        })
    }

    /// The address last reserved from range set `range_index`, if recorded and parsable
    /// (the content must be exactly an address, as for Go's `net.ParseIP`).
    pub fn last_reserved_ip(&self, range_index: usize) -> Option<IpAddr> {
        let data = fs::read(self.path(&format!("{LAST_RESERVED_IP_PREFIX}{range_index}"))).ok()?;
        let text = std::str::from_utf8(&data).ok()?;
        text.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
    }

    /// Every reservation file (regular files named by an address; `lock`,
    /// `last_reserved_ip.*`, the owner cache, symlinks and subdirectories are ignored), sorted
    /// by file name. Owners come from the [`owner_cache`] where it knows the file: use
    /// [`StoreLock::confirm`] before acting on one, or [`StoreLock::reservations_from_files`].
    /// Staging files found on the way are a crashed writer's leftovers and are removed.
    pub fn reservations(&self) -> Result<Vec<Reservation>, HostLocalError> {
        self.list(Owners::Cached)
    }

    /// [`StoreLock::reservations`] with every owner read from its file now.
    pub fn reservations_from_files(&self) -> Result<Vec<Reservation>, HostLocalError> {
        self.list(Owners::FromFiles)
    }

    /// Addresses reserved by `(id, ifname)`, or by `id` in the legacy format, as the files say:
    /// cached owners that match are re-read, and when the cache shows none the files are read.
    pub fn find(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, HostLocalError> {
        let key = attachment_key(id, ifname);
        let legacy = id.trim();
        let owned = |r: &Reservation| r.matches_key(&key) || r.matches_key(legacy);
        let found = self.confirmed(&self.reservations()?, owned)?;
        let found = match found {
            Some(found) if !found.is_empty() => found,
            _ => self
                .reservations_from_files()?
                .into_iter()
                .filter(owned)
                .collect(),
        };
        Ok(found.into_iter().map(|r| r.ip).collect())
    }

    /// The reservations of `listing` that `pick` selects, each re-read from its file if its
    /// owner was cached; `None` when a re-read one is no longer selected (or gone), i.e. when
    /// the cache was wrong about it and the caller should read the files.
    pub(crate) fn confirmed(
        &self,
        listing: &[Reservation],
        pick: impl Fn(&Reservation) -> bool,
    ) -> Result<Option<Vec<Reservation>>, HostLocalError> {
        let mut out = Vec::new();
        for r in listing.iter().filter(|r| pick(r)) {
            match self.confirm(r)? {
                Some(now) if pick(&now) => out.push(now),
                _ => return Ok(None),
            }
        }
        Ok(Some(out))
    }

    /// Removes every reservation of `(id, ifname)`. Legacy (ID-only) reservations of `id` are
    /// removed too when none of the current format was found, or when `always_legacy` is set.
    /// Every matching file is attempted; failures are reported together at the end.
    ///
    /// Files are re-read before they are removed; when the cache shows no reservation of the
    /// attachment, the files are read (so a repeated DEL costs a full read, a first one not).
    pub fn release(
        &self,
        id: &str,
        ifname: &str,
        always_legacy: bool,
    ) -> Result<Vec<IpAddr>, HostLocalError> {
        let key = attachment_key(id, ifname);
        let current = |r: &Reservation| r.matches_key(&key);
        let legacy = |r: &Reservation| r.matches_key(id.trim());
        let listing = self.reservations()?;
        let mut mine = match self.confirmed(&listing, current)? {
            Some(found) if !found.is_empty() => found,
            _ => self
                .reservations_from_files()?
                .into_iter()
                .filter(|r| current(r))
                .collect(),
        };
        if mine.is_empty() || always_legacy {
            // Only plugin versions from before the attachment format wrote legacy files; a
            // cached "none" is trusted here, a cached match is re-read like any other.
            match self.confirmed(&listing, legacy)? {
                Some(found) => mine.extend(found),
                None => mine.extend(
                    self.reservations_from_files()?
                        .into_iter()
                        .filter(|r| legacy(r)),
                ),
            }
        }
        let mut released = Vec::new();
        let mut failures = Vec::new();
        self.remove_all(mine.iter(), &mut released, &mut failures);
        teardown_result(released, failures)
    }

    /// Removes the given reservations, collecting what was removed and what failed.
    pub(crate) fn remove_all<'r>(
        &self,
        reservations: impl Iterator<Item = &'r Reservation>,
        released: &mut Vec<IpAddr>,
        failures: &mut Vec<HostLocalError>,
    ) {
        for r in reservations {
            let path = self.path(&r.file_name);
            match fs::remove_file(&path) {
                Ok(()) => {
                    self.note_removed(&r.file_name);
                    released.push(r.ip);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => failures.push(HostLocalError::store("remove", path, e)),
            }
        }
    }

    /// Removes the reservation file of `ip` (canonical name); a missing file is fine.
    pub fn remove(&self, ip: IpAddr) -> Result<(), HostLocalError> {
        let name = ip.to_canonical().to_string();
        let path = self.path(&name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(HostLocalError::store("remove", path, e))
            }
            Err(_) => Ok(()),
            Ok(()) => {
                self.note_removed(&name);
                Ok(())
            }
        }
    }

    /// Proves the directory is writable by creating and removing a scratch file.
    pub fn probe_writable(&self) -> Result<(), HostLocalError> {
        let path = self.path(STATUS_PROBE);
        self.stage(&path, b"", false)?;
        fs::remove_file(&path).map_err(|e| HostLocalError::store("remove", &path, e))
    }
}

/// `Ok(released)` when nothing failed, otherwise the failure(s).
pub(crate) fn teardown_result(
    released: Vec<IpAddr>,
    mut failures: Vec<HostLocalError>,
) -> Result<Vec<IpAddr>, HostLocalError> {
    match failures.len() {
        0 => Ok(released),
        1 => Err(failures.remove(0)),
        _ => Err(HostLocalError::Teardown { failures }),
    }
}

fn attachment_key(id: &str, ifname: &str) -> String {
    format!("{}{LINE_BREAK}{ifname}", id.trim())
}

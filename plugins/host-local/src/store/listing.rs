//! Listing the reservations of a network directory, with owners from the [`owner_cache`]
//! where it knows the file, re-reading a cached reservation before acting on it, and keeping
//! the cache exact as reservations come and go.
//!
//! [`owner_cache`]: super::owner_cache

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirEntryExt, OpenOptionsExt};

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

use super::owner_cache::{self, CACHE_FILE, CachedOwner, MAX_CACHE_BYTES, OwnerCache};
use super::{
    LAST_RESERVED_IP_PREFIX, LOCK_FILE, MAX_RESERVATION_BYTES, Reservation, STAGING_PREFIX,
    StoreLock,
};
use crate::error::HostLocalError;

/// Where a listing takes the owners from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owners {
    /// The cache where it knows the file; the others are read.
    Cached,
    /// Every file, read now.
    FromFiles,
}

/// The staging name the cache is written under before it replaces [`CACHE_FILE`].
const CACHE_STAGING: &str = ".staging.reservation-owners";
/// Appended lines beyond twice the entries (plus this) make the cache be rewritten compacted.
const COMPACT_SLACK: usize = 64;

/// What one lock holder knows of the cache and has changed since; written out when the
/// [`StoreLock`] drops ([`StoreLock::flush_cache`]). Either way of listing rewrites the cache
/// when it does not match what was listed.
#[derive(Debug, Default)]
pub(crate) struct CacheState {
    /// After a listing: the number of reservations, which the cache file then says exactly,
    /// and the file's line count (`None`: there is no file, as when there was nothing to cache).
    listed: Option<(usize, Option<usize>)>,
    /// Reservations made since, in order.
    added: Vec<(String, CachedOwner)>,
    /// Reservations removed since that were not made since.
    removed: Vec<String>,
}

impl StoreLock<'_> {
    /// Every reservation file (regular files named by an address; `lock`,
    /// `last_reserved_ip.*`, the owner cache, symlinks and subdirectories are ignored), sorted
    /// by file name, owners per `owners`.
    ///
    /// Staging files ([`STAGING_PREFIX`]) found on the way are a crashed writer's leftovers
    /// (writers stage only with the lock held, as it is now) and are removed, best effort.
    pub(crate) fn list(&self, owners: Owners) -> Result<Vec<Reservation>, HostLocalError> {
        let dir = self.dir();
        let list_error = |e| HostLocalError::store("list", dir, e);
        let entries = fs::read_dir(dir).map_err(list_error)?;
        // Every file is opened relative to the directory: with a thousand reservations, looking
        // up the whole path each time was most of an uncached listing's cost.
        let base = File::open(dir).map_err(list_error)?;
        let cache = load_cache(&base);
        let mut out = Vec::new();
        let mut differs = false;
        let mut buf = Vec::with_capacity(256);
        for entry in entries {
            let entry = entry.map_err(list_error)?;
            let Ok(file_name) = entry.file_name().into_string() else {
                continue;
            };
            if file_name.starts_with(STAGING_PREFIX) {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = fs::remove_file(entry.path());
                }
                continue;
            }
            if file_name == LOCK_FILE
                || file_name == CACHE_FILE
                || file_name.starts_with(LAST_RESERVED_IP_PREFIX)
            {
                continue;
            }
            let Ok(ip) = file_name.parse::<IpAddr>() else {
                continue;
            };
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let ino = entry.ino();
            let cached = cache.as_ref().and_then(|c| c.content(&file_name, ino));
            let (content, from_cache) = match (owners, cached) {
                (Owners::Cached, Some(content)) => (content.clone(), true),
                _ => match read_reservation(&base, &file_name, &mut buf) {
                    Ok(content) => {
                        differs |= cached != Some(&content);
                        (content, false)
                    }
                    Err(_) => continue, // vanished or unreadable: the reference skips it too
                },
            };
            out.push(Reservation {
                canonical_name: is_canonical_name(ip, &file_name),
                ip: ip.to_canonical(),
                file_name,
                content,
                ino,
                from_cache,
            });
        }
        // File names are unique.
        out.sort_unstable_by(|a, b| a.file_name.cmp(&b.file_name));
        let lines = match &cache {
            Some(c) if !differs && c.len() == out.len() => Some(c.lines()),
            _ => {
                self.write_cache(
                    out.iter()
                        .map(|r| (r.file_name.as_str(), r.ino, r.content.as_deref())),
                );
                (!out.is_empty()).then_some(out.len())
            }
        };
        // The file now says exactly what was listed; changes are recorded from here on.
        *self.cache.borrow_mut() = CacheState {
            listed: Some((out.len(), lines)),
            ..CacheState::default()
        };
        Ok(out)
    }

    /// `r` as its file says now: re-read when its owner came from the cache. `None` when the
    /// file is gone.
    pub(crate) fn confirm(&self, r: &Reservation) -> Result<Option<Reservation>, HostLocalError> {
        if !r.from_cache {
            return Ok(Some(r.clone()));
        }
        let dir = self.dir();
        let base = File::open(dir).map_err(|e| HostLocalError::store("list", dir, e))?;
        let mut buf = Vec::with_capacity(256);
        Ok(read_reservation(&base, &r.file_name, &mut buf)
            .ok()
            .map(|content| Reservation {
                content,
                from_cache: false,
                ..r.clone()
            }))
    }

    /// Records a reservation this holder made (for the cache, written when the lock goes).
    pub(crate) fn note_reserved(&self, file_name: String, ino: u64, content: String) {
        let owner = CachedOwner {
            ino,
            content: Some(content),
        };
        self.cache.borrow_mut().added.push((file_name, owner));
    }

    /// Records a reservation this holder removed.
    pub(crate) fn note_removed(&self, file_name: &str) {
        let mut state = self.cache.borrow_mut();
        match state.added.iter().position(|(name, _)| name == file_name) {
            Some(i) => {
                state.added.remove(i);
            }
            None => state.removed.push(file_name.to_owned()),
        }
    }

    /// Brings the cache up to date with what this holder changed: appends a line per change,
    /// or rewrites it compacted, or removes it with the last reservation. Nothing when nothing
    /// changed. Best effort: a cache left behind only makes the next listing read more files.
    pub(crate) fn flush_cache(&self) {
        let state = std::mem::take(&mut *self.cache.borrow_mut());
        if state.added.is_empty() && state.removed.is_empty() {
            return;
        }
        let mut appended = String::new();
        for name in &state.removed {
            appended.push_str(&owner_cache::removal(name));
        }
        for (name, owner) in &state.added {
            appended.push_str(&owner_cache::line(
                name,
                owner.ino,
                owner.content.as_deref(),
            ));
        }
        let Some((listed, lines)) = state.listed else {
            // Nothing listed (an ADD of requested addresses): append to the cache if there is
            // one; whether it was exact, the next listing finds out.
            self.append_cache(&appended);
            return;
        };
        let remaining = listed + state.added.len() - state.removed.len().min(listed);
        let changes = state.added.len() + state.removed.len();
        match lines {
            _ if remaining == 0 => self.write_cache(std::iter::empty()),
            Some(lines) if lines + changes <= 2 * remaining + COMPACT_SLACK => {
                self.append_cache(&appended);
            }
            Some(_) => self.compact_cache(&appended),
            // No file: this holder's additions are all there is.
            None => self.write_cache(
                state
                    .added
                    .iter()
                    .map(|(name, o)| (name.as_str(), o.ino, o.content.as_deref())),
            ),
        }
    }

    /// Rewrites the cache as the file plus `appended` say, one line per reservation.
    fn compact_cache(&self, appended: &str) {
        let dir = self.dir();
        let Some(mut text) = File::open(dir).ok().and_then(|base| read_cache_text(&base)) else {
            return;
        };
        text.push_str(appended);
        match OwnerCache::decode(&text) {
            Some(cache) => {
                let mut entries: Vec<_> = cache.entries().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                self.write_cache(
                    entries
                        .into_iter()
                        .map(|(name, o)| (name.as_str(), o.ino, o.content.as_deref())),
                );
            }
            None => self.write_cache(std::iter::empty()),
        }
    }

    fn append_cache(&self, text: &str) {
        let opened = OpenOptions::new()
            .append(true)
            .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
            .open(self.dir().join(CACHE_FILE));
        if let Ok(mut file) = opened
            && file.write_all(text.as_bytes()).is_err()
        {
            // A partial line makes the file undecodable, which only costs a rebuild.
            let _ = fs::remove_file(self.dir().join(CACHE_FILE));
        }
    }

    /// Replaces the cache with `entries` (`(name, ino, content)`), or removes it when there
    /// are none.
    fn write_cache<'e>(&self, entries: impl Iterator<Item = (&'e str, u64, Option<&'e str>)>) {
        let target = self.dir().join(CACHE_FILE);
        let mut entries = entries.peekable();
        if entries.peek().is_none() {
            let _ = fs::remove_file(&target);
            return;
        }
        let text = OwnerCache::encode(entries);
        let staging = self.dir().join(CACHE_STAGING);
        if self.stage(&staging, text.as_bytes(), false).is_ok()
            && fs::rename(&staging, &target).is_err()
        {
            let _ = fs::remove_file(&staging);
        }
    }
}

/// The cache of the directory `base`, if present and well-formed.
fn load_cache(base: &File) -> Option<OwnerCache> {
    OwnerCache::decode(&read_cache_text(base)?)
}

/// The cache file's text, if present, UTF-8 and not oversized.
fn read_cache_text(base: &File) -> Option<String> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let file = File::from(openat(base, CACHE_FILE, flags, Mode::empty()).ok()?);
    let mut text = String::new();
    (&file)
        .take(MAX_CACHE_BYTES + 1)
        .read_to_string(&mut text)
        .ok()?;
    (text.len() as u64 <= MAX_CACHE_BYTES).then_some(text)
}

/// True when `name` is how the allocator writes `ip` (`ip` as parsed from `name`). Rust's
/// IPv4 parser accepts only the canonical dotted quad, so only IPv6 names need formatting.
fn is_canonical_name(ip: IpAddr, name: &str) -> bool {
    match ip {
        IpAddr::V4(_) => true,
        IpAddr::V6(_) => ip.to_canonical().to_string() == name,
    }
}

/// The trimmed content of reservation `name` in the directory `dir`, read through `buf`;
/// `None` when it is too large or not UTF-8. Opened without following a symlink and without
/// blocking on a FIFO swapped in since the listing.
pub(crate) fn read_reservation(
    dir: &File,
    name: &str,
    buf: &mut Vec<u8>,
) -> io::Result<Option<String>> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let file = File::from(openat(dir, name, flags, Mode::empty()).map_err(io::Error::from)?);
    buf.clear();
    (&file).take(MAX_RESERVATION_BYTES + 1).read_to_end(buf)?;
    if buf.len() as u64 > MAX_RESERVATION_BYTES {
        return Ok(None);
    }
    Ok(std::str::from_utf8(buf).ok().map(|s| s.trim().to_owned()))
}

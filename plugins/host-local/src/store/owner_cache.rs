//! A cache of who owns each reservation file, so that a listing reads the directory only.
//!
//! Every verb needs the owner of every reservation (ADD refuses a duplicate, DEL and GC pick
//! their files by owner), and the reference learns them by reading every file: with a thousand
//! containers that is three thousand system calls, the one cost of host-local that grew with
//! the container count (ADD 1.0 → 4.5 ms in-process). The cache keeps, per reservation file,
//! its inode number and content as last read; a listing reads only the files whose
//! `(name, inode)` the cache does not know — the ones created since, by us or by any other
//! writer of the store (the Go plugin included) — and drops entries whose file is gone.
//!
//! What the cache relies on: a reservation file never changes content under the same inode.
//! Both plugins create each file once (exclusively) and only ever remove it. A file removed and
//! re-created under the same name by another writer between two of our calls, reusing the inode
//! number, would keep its old cached owner; so every decision that removes a file or reports a
//! result re-reads the files it acts on first ([`crate::store::StoreLock`]), and only ADD's
//! duplicate check trusts a cached "not owned".
//!
//! The file is [`CACHE_FILE`] in the network directory: a name neither plugin takes for a
//! reservation, with content that never equals an owner key (the Go plugin's walk reads it and
//! finds no match). It is replaced atomically like every other file of the store, removed when
//! the last reservation goes, and rebuilt from the files whenever it is missing or unreadable.
//!
//! Kept exact by every change we make: a reservation made or removed appends one line when the
//! lock is released (an ADD that fails appends nothing), and the file is rewritten compacted
//! when the appended lines outnumber the entries, or when a listing found it differing from the
//! directory. A call that changes nothing writes nothing.
//!
//! Format, one line each: the header [`HEADER`], then per reservation
//! `a\t<name>\t<ino>\t<id>\t<ifname>` (current format), `l\t<name>\t<ino>\t<id>` (legacy),
//! `x\t<name>\t<ino>\t<hex content>` (anything else) or `u\t<name>\t<ino>` (unreadable), and
//! `d\t<name>` for a removed one. A later line about a name replaces an earlier one.

use std::collections::HashMap;
use std::fmt::Write as _;

/// The cache's file name inside the network directory.
pub const CACHE_FILE: &str = ".reservation-owners";
/// First line of the file; another version is ignored (and rewritten).
const HEADER: &str = "host-local reservation owners v1";
/// Caches larger than this are not read (a thousand reservations take about 60 KiB).
pub(crate) const MAX_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// One cached reservation: its inode number and trimmed content (`None`: unreadable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CachedOwner {
    pub(crate) ino: u64,
    pub(crate) content: Option<String>,
}

/// The cache as loaded: file name → what was read from it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct OwnerCache {
    entries: HashMap<String, CachedOwner>,
    /// Lines after the header, removals included (to know when to compact).
    lines: usize,
}

impl OwnerCache {
    /// The content cached for `name` if its inode is still `ino`.
    pub(crate) fn content(&self, name: &str, ino: u64) -> Option<&Option<String>> {
        self.entries
            .get(name)
            .filter(|e| e.ino == ino)
            .map(|e| &e.content)
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every entry, unordered.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&String, &CachedOwner)> {
        self.entries.iter()
    }

    /// Number of lines after the header.
    pub(crate) fn lines(&self) -> usize {
        self.lines
    }

    /// Parses a cache file; `None` when it is not one (wrong header, malformed line).
    pub(crate) fn decode(text: &str) -> Option<OwnerCache> {
        let mut lines = text.lines();
        if lines.next()? != HEADER {
            return None;
        }
        let mut entries = HashMap::with_capacity(text.len() / 48);
        let mut count = 0;
        for line in lines {
            count += 1;
            let mut fields = line.split('\t');
            let kind = fields.next()?;
            let name = fields.next()?;
            if kind == "d" {
                if fields.next().is_some() || entries.remove(name).is_none() {
                    return None;
                }
                continue;
            }
            let ino: u64 = fields.next()?.parse().ok()?;
            let content = match (kind, fields.next(), fields.next()) {
                ("a", Some(id), Some(ifname)) => Some(format!("{id}\r\n{ifname}")),
                ("l", Some(id), None) => Some(id.to_owned()),
                ("x", Some(hex), None) => Some(unhex(hex)?),
                ("u", None, None) => None,
                _ => return None,
            };
            if fields.next().is_some() || name.is_empty() {
                return None;
            }
            entries.insert(name.to_owned(), CachedOwner { ino, content });
        }
        Some(OwnerCache {
            entries,
            lines: count,
        })
    }

    /// The file content for `entries` (`(name, ino, content)`), in the given order.
    pub(crate) fn encode<'e>(
        entries: impl Iterator<Item = (&'e str, u64, Option<&'e str>)>,
    ) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str(HEADER);
        out.push('\n');
        for (name, ino, content) in entries {
            out.push_str(&line(name, ino, content));
        }
        out
    }
}

/// The line recording reservation `name` (inode `ino`) with `content`.
pub(crate) fn line(name: &str, ino: u64, content: Option<&str>) -> String {
    let plain = |s: &str| !s.contains(['\t', '\r', '\n']);
    match content {
        None => format!("u\t{name}\t{ino}\n"),
        Some(text) => match text.split_once("\r\n") {
            Some((id, ifname)) if plain(id) && plain(ifname) && !id.is_empty() => {
                format!("a\t{name}\t{ino}\t{id}\t{ifname}\n")
            }
            None if plain(text) && !text.is_empty() => format!("l\t{name}\t{ino}\t{text}\n"),
            _ => format!("x\t{name}\t{ino}\t{}\n", hex(text)),
        },
    }
}

/// The line recording that reservation `name` is gone.
pub(crate) fn removal(name: &str) -> String {
    format!("d\t{name}\n")
}

fn hex(text: &str) -> String {
    text.bytes()
        .fold(String::with_capacity(text.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn unhex(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_content_round_trips() {
        let contents: Vec<(&str, u64, Option<&str>)> = vec![
            ("10.0.0.2", 11, Some("ctr1\r\neth0")),
            ("10.0.0.3", 12, Some("legacy-id")),
            ("fd00::5", 13, None),
            ("10.0.0.4", 14, Some("a\tb\r\nc")),
            ("10.0.0.5", 15, Some("x\r\ny\r\nz")),
            ("10.0.0.6", 16, Some("")),
            ("10.0.0.7", 17, Some("\r\neth0")),
            ("10.0.0.8", 18, Some("ünïcode\r\nеth0")),
        ];
        let text = OwnerCache::encode(contents.iter().copied());
        let cache = OwnerCache::decode(&text).expect("decodes");
        assert_eq!(cache.len(), contents.len());
        for (name, ino, content) in &contents {
            assert_eq!(
                cache.content(name, *ino),
                Some(&content.map(str::to_owned)),
                "{name}"
            );
            assert_eq!(
                cache.content(name, ino + 1),
                None,
                "another inode is a miss"
            );
        }
        assert!(text.contains("a\t10.0.0.2\t11\tctr1\teth0\n"), "{text}");
        assert!(text.contains("l\t10.0.0.3\t12\tlegacy-id\n"), "{text}");
    }

    #[test]
    fn later_lines_replace_earlier_ones_and_removals_drop_entries() {
        let mut text = OwnerCache::encode(
            [("10.0.0.2", 1, Some("a\r\ne")), ("10.0.0.3", 2, None)].into_iter(),
        );
        text.push_str(&removal("10.0.0.2"));
        text.push_str(&line("10.0.0.3", 5, Some("b\r\ne")));
        text.push_str(&line("10.0.0.4", 6, Some("c\r\ne")));
        let cache = OwnerCache::decode(&text).unwrap();
        assert_eq!((cache.len(), cache.lines()), (2, 5));
        assert_eq!(cache.content("10.0.0.2", 1), None);
        assert_eq!(cache.content("10.0.0.3", 2), None, "replaced with inode 5");
        assert_eq!(
            cache.content("10.0.0.3", 5),
            Some(&Some("b\r\ne".to_owned()))
        );
        assert_eq!(
            cache.content("10.0.0.4", 6),
            Some(&Some("c\r\ne".to_owned()))
        );
        // Removing what is not there means the file is not ours to trust.
        let bad = format!("{HEADER}\n{}", removal("10.0.0.9"));
        assert_eq!(OwnerCache::decode(&bad), None);
    }

    #[test]
    fn anything_malformed_is_no_cache() {
        let good = OwnerCache::encode([("10.0.0.2", 1, Some("c\r\ne"))].into_iter());
        assert!(OwnerCache::decode(&good).is_some());
        assert_eq!(OwnerCache::decode(HEADER).map(|c| c.len()), Some(0));
        for bad in [
            "",
            "host-local reservation owners v0\n",
            &format!("{HEADER}\na\t10.0.0.2\tnot-a-number\tc\te\n"),
            &format!("{HEADER}\na\t10.0.0.2\t1\tc\n"),
            &format!("{HEADER}\nl\t10.0.0.2\t1\tc\textra\n"),
            &format!("{HEADER}\nx\t10.0.0.2\t1\tabc\n"),
            &format!("{HEADER}\nx\t10.0.0.2\t1\tzz\n"),
            &format!("{HEADER}\nx\t10.0.0.2\t1\tff\n"),
            &format!("{HEADER}\nu\t10.0.0.2\t1\tmore\n"),
            &format!("{HEADER}\nq\t10.0.0.2\t1\n"),
            &format!("{HEADER}\na\t\t1\tc\te\n"),
            &format!("{HEADER}\n\n"),
            &format!("{HEADER}\na\t10.0.0.2\t1\tc\te\nd\t10.0.0.2\textra\n"),
        ] {
            assert_eq!(OwnerCache::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_file_never_equals_an_owner_key() {
        // The Go plugin compares every file's trimmed content with `<id>\r\n<ifname>` and with
        // `<id>`; the header line alone already rules out both (an ID has no spaces).
        let text = OwnerCache::encode([("10.0.0.2", 1, Some("c\r\ne"))].into_iter());
        assert!(text.trim().contains(' ') && text.trim().contains('\n'));
        assert!(crate::validate_container_id(text.trim()).is_err());
    }
}

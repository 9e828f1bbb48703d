//! Recursive, byte-exact listing of a directory tree (used by snapshots and store assertions).

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

/// What one path in the tree is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeEntry {
    /// A directory and its permission bits.
    Dir {
        /// Permission bits (`mode & 0o7777`).
        mode: u32,
    },
    /// A regular file, its permission bits and its exact bytes.
    File {
        /// Permission bits (`mode & 0o7777`).
        mode: u32,
        /// File content.
        content: Vec<u8>,
    },
    /// A symbolic link and its target.
    Symlink {
        /// Link target as stored.
        target: String,
    },
    /// A socket, fifo or device.
    Other {
        /// Permission bits (`mode & 0o7777`).
        mode: u32,
    },
}

impl TreeEntry {
    /// Content of a regular file; panics for anything else.
    #[track_caller]
    pub fn content(&self) -> &[u8] {
        match self {
            TreeEntry::File { content, .. } => content,
            other => panic!("not a regular file: {other}"),
        }
    }

    /// Permission bits of a file, directory or special file; panics for symlinks.
    #[track_caller]
    pub fn mode(&self) -> u32 {
        match self {
            TreeEntry::Dir { mode } | TreeEntry::File { mode, .. } | TreeEntry::Other { mode } => {
                *mode
            }
            TreeEntry::Symlink { .. } => panic!("symlinks have no mode here"),
        }
    }
}

impl fmt::Display for TreeEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TreeEntry::Dir { mode } => write!(f, "dir {mode:04o}"),
            TreeEntry::File { mode, content } => {
                write!(f, "file {mode:04o} \"{}\"", escape_bytes(content))
            }
            TreeEntry::Symlink { target } => write!(f, "symlink -> {target}"),
            TreeEntry::Other { mode } => write!(f, "special {mode:04o}"),
        }
    }
}

/// Every path below `root` (relative, `/`-separated) with its entry; `root` itself excluded.
/// A missing `root` gives an empty map.
pub fn read_tree(root: &Path) -> BTreeMap<String, TreeEntry> {
    let mut out = BTreeMap::new();
    if root.exists() {
        walk(root, "", &mut out);
    }
    out
}

fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, TreeEntry>) {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|e| panic!("read directory {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.expect("directory entry");
        let path = entry.path();
        let rel = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let meta =
            fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
        let mode = meta.permissions().mode() & 0o7777;
        let ft = meta.file_type();
        let item = if ft.is_dir() {
            walk(&path, &format!("{rel}/"), out);
            TreeEntry::Dir { mode }
        } else if ft.is_file() {
            let content =
                fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            TreeEntry::File { mode, content }
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).expect("read symlink");
            TreeEntry::Symlink {
                target: target.to_string_lossy().into_owned(),
            }
        } else {
            debug_assert!(
                ft.is_socket() || ft.is_fifo() || ft.is_block_device() || ft.is_char_device()
            );
            TreeEntry::Other { mode }
        };
        out.insert(rel, item);
    }
}

/// Printable ASCII as is; `\r`, `\n`, `\t`, `\\`, `"` escaped; other bytes as `\xNN`.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            0x20..=0x7e => s.push(char::from(b)),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

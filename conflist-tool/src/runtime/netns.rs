//! Network namespaces as the runtime sees them: cnitool's container-ID derivation and whether an
//! attachment's namespace still exists.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha512};

use super::cache::CachedAttachment;

/// Where named namespaces live (`ip netns`).
pub const NETNS_DIRS: [&str; 2] = ["/run/netns", "/var/run/netns"];

/// cnitool's container ID for a namespace path: `cnitool-` + hex of the first 10 bytes of
/// SHA-512 of the absolute path.
pub fn cnitool_container_id(netns: &Path) -> String {
    let digest = Sha512::digest(netns.as_os_str().as_encoded_bytes());
    digest[..10]
        .iter()
        .fold(String::from("cnitool-"), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The absolute form of a namespace path as cnitool computes it (`filepath.Abs`: no symlinks
/// resolved).
pub fn absolute(netns: &Path) -> PathBuf {
    std::path::absolute(netns).unwrap_or_else(|_| netns.to_owned())
}

/// Is `path` a live network namespace? (`nsfs` mount or `/proc/<pid>/ns/net`.)
pub fn is_alive(path: &Path) -> bool {
    use nix::sys::statfs::{NSFS_MAGIC, PROC_SUPER_MAGIC, statfs};
    match statfs(path) {
        Ok(fs) => {
            let t = fs.filesystem_type();
            t == NSFS_MAGIC || t == PROC_SUPER_MAGIC
        }
        Err(_) => false,
    }
}

/// Whether an attachment's namespace is alive: known when the cache recorded the path, or when
/// the container ID is cnitool's hash of a path under [`NETNS_DIRS`]; `None` when unknowable.
pub fn attachment_alive(a: &CachedAttachment) -> Option<bool> {
    if !a.netns.is_empty() {
        return Some(is_alive(Path::new(&a.netns)));
    }
    if !a.container_id.starts_with("cnitool-") {
        return None;
    }
    let found = NETNS_DIRS
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(Result::ok)
        .any(|e| cnitool_container_id(&e.path()) == a.container_id && is_alive(&e.path()));
    found.then_some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cnitool_ids_match_the_verified_value() {
        assert_eq!(
            cnitool_container_id(Path::new("/run/netns/refA")),
            "cnitool-f09c7c96cd7b16d5da00"
        );
    }

    #[test]
    fn liveness() {
        assert!(!is_alive(Path::new("/nonexistent/netns")));
        assert!(is_alive(Path::new("/proc/self/ns/net")));
    }
}

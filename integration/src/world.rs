//! The per-test fixture: a host netns, container netns and a private directory tree.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

use tempfile::TempDir;

use crate::locate;
use crate::netns::{self, Netns};
use crate::snapshot::Snapshot;

/// One test's private universe. Dropping it deletes every namespace it created and its
/// temporary directory, on success and on panic alike.
///
/// Layout of [`World::root`]: `netconf/` (NETCONFPATH), `cache/` (CNI_CACHEDIR, with
/// `results/` pre-created 0700 as libcni would, so a cnitool round trip returns the tree to its
/// baseline), `ipam/` (host-local `dataDir`), `state/` (other plugin state).
#[derive(Debug)]
pub struct World {
    host: Netns,
    containers: Mutex<Vec<Netns>>,
    dir: TempDir,
}

impl World {
    /// Creates the host namespace (with `lo` up) and the directory tree.
    pub fn new() -> World {
        locate::preflight();
        static REAP: Once = Once::new();
        REAP.call_once(netns::reap_stale);

        let dir = tempfile::Builder::new()
            .prefix("cnit-world-")
            .tempdir()
            .expect("create the world's temporary directory");
        for sub in ["netconf", "cache/results", "ipam", "state"] {
            fs::create_dir_all(dir.path().join(sub)).expect("create world subdirectory");
        }
        fs::set_permissions(
            dir.path().join("cache/results"),
            fs::Permissions::from_mode(0o700),
        )
        .expect("chmod cache/results");
        // Constructed before anything else can fail, so Drop cleans up the host netns.
        let world = World {
            host: Netns::create("h"),
            containers: Mutex::new(Vec::new()),
            dir,
        };
        world.host.run_ok(&["ip", "link", "set", "lo", "up"]);
        world
    }

    /// The namespace every plugin and cnitool runs in ("the host").
    pub fn host(&self) -> &Netns {
        &self.host
    }

    /// Creates a new, untouched container namespace.
    pub fn container(&self) -> Netns {
        let ns = Netns::create("c");
        self.lock_containers().push(ns.clone());
        ns
    }

    /// Deletes a container namespace now (to test DEL after the runtime removed the netns).
    pub fn delete_netns(&self, ns: &Netns) {
        let mut containers = self.lock_containers();
        let before = containers.len();
        containers.retain(|c| c != ns);
        assert!(
            containers.len() < before,
            "{} is not a container of this world",
            ns.name()
        );
        ns.delete()
            .unwrap_or_else(|e| panic!("deleting {}: {e}", ns.name()));
    }

    /// Live container namespaces, in creation order.
    pub fn containers(&self) -> Vec<Netns> {
        self.lock_containers().clone()
    }

    /// The private temporary directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// NETCONFPATH for cnitool.
    pub fn netconf_dir(&self) -> PathBuf {
        self.root().join("netconf")
    }

    /// CNI_CACHEDIR for cnitool.
    pub fn cache_dir(&self) -> PathBuf {
        self.root().join("cache")
    }

    /// host-local `dataDir`.
    pub fn data_dir(&self) -> PathBuf {
        self.root().join("ipam")
    }

    /// A directory for other plugin state.
    pub fn state_dir(&self) -> PathBuf {
        self.root().join("state")
    }

    /// Writes `<netconf>/<file_stem>.conflist`.
    pub fn write_conflist(&self, file_stem: &str, conflist: &serde_json::Value) -> PathBuf {
        let path = self.netconf_dir().join(format!("{file_stem}.conflist"));
        let text = serde_json::to_vec_pretty(conflist).expect("serialise conflist");
        fs::write(&path, text).expect("write conflist");
        path
    }

    /// Writes `bytes` to `<root>/<relative>` (creating parents) and returns the path.
    pub fn write_file(&self, relative: &str, bytes: &[u8]) -> PathBuf {
        let path = self.root().join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent directory");
        }
        fs::write(&path, bytes).expect("write file");
        path
    }

    /// Kernel state of every live namespace of this world plus the whole directory tree.
    pub fn snapshot(&self) -> Snapshot {
        let mut snap = Snapshot::netns(&self.host);
        for ns in self.containers() {
            snap = snap.merge(Snapshot::netns(&ns));
        }
        snap.merge(Snapshot::dir("world", self.root()))
    }

    fn lock_containers(&self) -> std::sync::MutexGuard<'_, Vec<Netns>> {
        self.containers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let mut failures = Vec::new();
        let containers = std::mem::take(&mut *self.lock_containers());
        for ns in containers.iter().chain(std::iter::once(&self.host)) {
            if let Err(e) = ns.delete() {
                failures.push(format!("{}: {e}", ns.name()));
            }
        }
        if !failures.is_empty() {
            let msg = format!("World cleanup failed:\n{}", failures.join("\n"));
            if std::thread::panicking() {
                eprintln!("{msg}");
            } else {
                panic!("{msg}");
            }
        }
    }
}

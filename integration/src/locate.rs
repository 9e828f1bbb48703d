//! Finding the binaries and tools the tests need, and refusing to run without them.
//!
//! Every lookup panics with an instruction when something is missing: a test that passes
//! because it did not really run is worse than a failing one.

use std::env;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where Debian's containernetworking-plugins (the Go reference, spec ≤ 1.0.0) live.
pub const REFERENCE_PLUGIN_DIR: &str = "/usr/lib/cni";

/// External programs the harness itself runs.
const TOOLS: &[&str] = &["ip", "iptables-save", "ip6tables-save", "nft"];

/// `PATH` handed to plugins and cnitool (their environment is otherwise cleared).
pub const CHILD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Checks once per process that we are root and that the kernel tools exist; panics otherwise.
pub fn preflight() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        require_root();
        for tool in TOOLS {
            find_in_path(tool).unwrap_or_else(|| {
                panic!("`{tool}` not found in PATH; install iproute2, iptables and nftables")
            });
        }
    });
}

/// Panics unless the effective uid is 0.
pub fn require_root() {
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .expect("Uid line in /proc/self/status");
    assert!(
        euid == "0",
        "integration tests need root (network namespaces, iptables): \
         run `sudo -E cargo test -p integration-tests` (effective uid is {euid})"
    );
}

/// The Cargo workspace root (parent of this crate's manifest directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration crate lives inside the workspace")
        .to_path_buf()
}

/// Directory holding our plugin binaries: `$CNI_PLUGIN_DIR`, else `<workspace>/target/release`.
pub fn our_plugin_dir() -> PathBuf {
    match env::var_os("CNI_PLUGIN_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("target/release"),
    }
}

/// The cnitool binary: `$CNITOOL`, else `cnitool` from `PATH`.
pub fn cnitool() -> PathBuf {
    if let Some(path) = env::var_os("CNITOOL").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            is_executable(&path),
            "CNITOOL={} is not an executable file",
            path.display()
        );
        return path;
    }
    find_in_path("cnitool").unwrap_or_else(|| {
        panic!(
            "cnitool not found in PATH: build it with /work/shared/tools/build-cnitool.sh \
             or set CNITOOL to its path"
        )
    })
}

/// A plugin binary, with the directory it came from (used as `CNI_PATH`).
#[derive(Debug, Clone)]
pub struct Plugin {
    /// Plugin type name, e.g. `host-local`.
    pub name: String,
    /// Full path of the executable.
    pub path: PathBuf,
    /// Directory holding it.
    pub dir: PathBuf,
}

impl Plugin {
    /// Our build of plugin `name` (see [`our_plugin_dir`]); panics if it is missing.
    pub fn ours(name: &str) -> Plugin {
        let dir = our_plugin_dir();
        let path = dir.join(name);
        assert!(
            is_executable(&path),
            "our plugin `{name}` not found at {}: run `cargo build --release` in {} \
             (or set CNI_PLUGIN_DIR to a directory that holds it)",
            path.display(),
            workspace_root().display()
        );
        Plugin {
            name: name.to_owned(),
            path,
            dir,
        }
    }

    /// The Go reference plugin `name` from [`REFERENCE_PLUGIN_DIR`]; panics if it is missing.
    pub fn reference(name: &str) -> Plugin {
        let dir = PathBuf::from(REFERENCE_PLUGIN_DIR);
        let path = dir.join(name);
        assert!(
            is_executable(&path),
            "reference plugin {} missing: `apt-get install containernetworking-plugins`",
            path.display()
        );
        Plugin {
            name: name.to_owned(),
            path,
            dir,
        }
    }
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_else(|| CHILD_PATH.into());
    env::split_paths(&path)
        .chain(env::split_paths(CHILD_PATH))
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

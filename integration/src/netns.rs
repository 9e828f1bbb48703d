//! Named network namespaces (`ip netns add`), with names unique across threads and processes.
//!
//! A [`Netns`] is only a handle; its lifetime is owned by the [`crate::World`] that created it.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::process::{self, Output};

/// Prefix of every namespace the harness creates.
pub const PREFIX: &str = "cnit-";

/// A handle on a named network namespace (`/run/netns/<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// The namespace name as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its bind-mount path, the value for `CNI_NETNS`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Its bind-mount path as a string.
    pub fn path_str(&self) -> String {
        self.path().to_string_lossy().into_owned()
    }

    /// True while the namespace is mounted.
    pub fn exists(&self) -> bool {
        self.path().exists()
    }

    /// Runs `argv` inside this namespace (`ip netns exec`), inheriting the test's environment.
    pub fn run(&self, argv: &[&str]) -> Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(argv);
        process::run(&mut cmd, b"")
    }

    /// Like [`Netns::run`] but panics unless the command succeeds; returns stdout.
    #[track_caller]
    pub fn run_ok(&self, argv: &[&str]) -> String {
        self.run(argv).expect_success().stdout_str()
    }

    /// True when `lo` in this namespace has the `UP` flag.
    pub fn lo_is_up(&self) -> bool {
        let links: serde_json::Value =
            serde_json::from_str(&self.run_ok(&["ip", "-j", "link", "show", "lo"]))
                .expect("`ip -j link show lo` prints JSON");
        links[0]["flags"]
            .as_array()
            .expect("link flags")
            .iter()
            .any(|f| f == "UP")
    }

    /// Brings `lo` up and down once. The first time `lo` comes up the kernel gives it
    /// 127.0.0.1/8 (plus local routes) and keeps them when it goes down again, so a fresh
    /// namespace can never return to "never been up". After this call, the namespace is in the
    /// state a loopback ADD followed by DEL must return to exactly.
    pub fn cycle_loopback(&self) {
        self.run_ok(&["ip", "link", "set", "lo", "up"]);
        self.run_ok(&["ip", "link", "set", "lo", "down"]);
    }

    /// Creates a fresh namespace with a unique name ending in `tag`.
    pub(crate) fn create(tag: &str) -> Netns {
        let ns = Netns {
            name: unique_name(tag),
        };
        process::run(Command::new("ip").args(["netns", "add", &ns.name]), b"").expect_success();
        ns
    }

    /// Deletes the namespace; `Err` carries the failure text.
    pub(crate) fn delete(&self) -> Result<(), String> {
        let out = process::run(Command::new("ip").args(["netns", "del", &self.name]), b"");
        if out.success() {
            Ok(())
        } else {
            Err(out.describe())
        }
    }
}

/// `cnit-<pid>-<counter><tag>`: unique across threads (counter) and processes (pid).
fn unique_name(tag: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}{}-{n}{tag}", std::process::id())
}

/// Deletes `cnit-<pid>-*` namespaces whose creating process no longer exists (left behind by a
/// test binary that was killed before its `Drop`s ran). Namespaces of live processes — other
/// test binaries running in parallel — are never touched.
pub(crate) fn reap_stale() {
    let Ok(entries) = fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !PathBuf::from(format!("/proc/{pid}")).exists() {
            let _ = (Netns { name }).delete();
        }
    }
}

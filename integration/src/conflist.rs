//! Driving `cni-conflist` inside a [`World`]: it runs in the world's host namespace with
//! `--dir`, `--cache-dir` and `--cni-path` pointing into the world, so `create` sees the world's
//! links and addresses, `exec` and `doctor` touch only the world's state — never
//! `/etc/cni/net.d` or `/var/lib/cni`.

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::locate::{self, CHILD_PATH, REFERENCE_PLUGIN_DIR};
use crate::netns::Netns;
use crate::process::{self, Output};
use crate::world::World;

/// Plugins a podman-style conflist chains (plus loopback and macvlan).
pub const CHAIN_PLUGINS: [&str; 7] = [
    "bridge",
    "host-local",
    "firewall",
    "tuning",
    "portmap",
    "loopback",
    "macvlan",
];

/// The `cni-conflist` binary: `$CNI_CONFLIST`, else `<workspace>/target/release/cni-conflist`.
pub fn binary() -> PathBuf {
    let path = std::env::var_os("CNI_CONFLIST")
        .filter(|p| !p.is_empty())
        .map_or_else(
            || locate::workspace_root().join("target/release/cni-conflist"),
            PathBuf::from,
        );
    assert!(
        path.is_file(),
        "{} missing: run `cargo build --release -p cni-conflist` (or set CNI_CONFLIST)",
        path.display()
    );
    path
}

/// A `cni-conflist` invocation in a world.
#[derive(Debug, Clone)]
pub struct ConflistTool<'w> {
    world: &'w World,
    cni_path: PathBuf,
    env: BTreeMap<String, String>,
}

impl World {
    /// `cni-conflist` with `--dir` = [`World::netconf_dir`], `--cache-dir` =
    /// [`World::cache_dir`] and a CNI path of our plugins (see [`plugin_dir`]).
    pub fn conflist_tool(&self) -> ConflistTool<'_> {
        ConflistTool {
            world: self,
            cni_path: plugin_dir(self),
            env: BTreeMap::new(),
        }
    }
}

/// `<world>/cni-bin`: links to our build of every [`CHAIN_PLUGINS`] entry, falling back to the
/// Go reference for plugins not built (yet), so podman's chain (bridge, portmap, firewall,
/// tuning) runs with our binaries wherever they exist.
pub fn plugin_dir(world: &World) -> PathBuf {
    let dir = world.root().join("cni-bin");
    if dir.is_dir() {
        return dir;
    }
    std::fs::create_dir_all(&dir).expect("create cni-bin");
    let ours = locate::our_plugin_dir();
    for name in CHAIN_PLUGINS {
        let mine = ours.join(name);
        let target = if mine.is_file() {
            mine
        } else {
            Path::new(REFERENCE_PLUGIN_DIR).join(name)
        };
        assert!(
            target.is_file(),
            "no {name} plugin: {} missing",
            target.display()
        );
        symlink(&target, dir.join(name)).expect("link plugin");
    }
    dir
}

impl ConflistTool<'_> {
    /// Sets an environment variable for the tool (`CNI_ARGS`, `CAP_ARGS`, `CNI_IFNAME`, …).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_owned(), value.to_owned());
        self
    }

    /// The CNI path the tool is given (also right for cnitool).
    pub fn cni_path(&self) -> &Path {
        &self.cni_path
    }

    /// Runs `cni-conflist <args>` in the world's host namespace.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.world.host().name()])
            .arg(binary())
            .arg("--dir")
            .arg(self.world.netconf_dir())
            .arg("--cache-dir")
            .arg(self.world.cache_dir())
            .arg("--cni-path")
            .arg(&self.cni_path)
            .args(args)
            .env_clear()
            .env("PATH", CHILD_PATH)
            .envs(&self.env);
        process::run(&mut cmd, b"")
    }

    /// Runs and panics unless it succeeds; returns stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        self.run(args).expect_success().stdout_str()
    }

    /// Runs with `--json` and parses stdout (whatever the exit status).
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "cni-conflist {args:?} printed no JSON ({e}):\n{}",
                out.describe()
            )
        })
    }

    /// `exec <verb> <net> <netns>`.
    pub fn exec(&self, verb: &str, net: &str, ns: &Netns) -> Output {
        self.run(&["exec", verb, net, &ns.path_str()])
    }
}

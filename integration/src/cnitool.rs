//! Driving plugins through the real libcni with `cnitool`, and reading libcni's result cache.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha512};

use crate::locate::{self, CHILD_PATH};
use crate::netns::Netns;
use crate::process::{self, Output};
use crate::world::World;

/// The container ID cnitool derives when `CNI_CONTAINERID` is unset:
/// `cnitool-` + hex of the first 10 bytes of SHA-512 of the absolute netns path.
pub fn cnitool_container_id(netns_path: &Path) -> String {
    let digest = Sha512::digest(netns_path.as_os_str().as_encoded_bytes());
    digest[..10]
        .iter()
        .fold(String::from("cnitool-"), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A cnitool invocation in a [`World`]: runs in the host netns with NETCONFPATH, CNI_CACHEDIR
/// and CNI_PATH pointing into the world. Defaults to our plugin directory.
#[derive(Debug, Clone)]
pub struct CnitoolCall<'w> {
    world: &'w World,
    plugin_dir: PathBuf,
    env: BTreeMap<String, String>,
}

impl World {
    /// A cnitool driver using our plugins.
    pub fn cnitool(&self) -> CnitoolCall<'_> {
        CnitoolCall {
            world: self,
            plugin_dir: locate::our_plugin_dir(),
            env: BTreeMap::new(),
        }
    }

    /// `<cachedir>/results/<net>-<containerID>-<ifname>`.
    pub fn cache_file(&self, net: &str, container_id: &str, ifname: &str) -> PathBuf {
        self.cache_dir()
            .join("results")
            .join(format!("{net}-{container_id}-{ifname}"))
    }

    /// The parsed libcni cache entry for an attachment, or `None` if there is none.
    pub fn read_cache(
        &self,
        net: &str,
        container_id: &str,
        ifname: &str,
    ) -> Option<serde_json::Value> {
        let bytes = fs::read(self.cache_file(net, container_id, ifname)).ok()?;
        Some(serde_json::from_slice(&bytes).expect("libcni cache file is JSON"))
    }
}

impl CnitoolCall<'_> {
    /// Use plugins from `dir` (CNI_PATH) instead of ours.
    pub fn plugin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.plugin_dir = dir.into();
        self
    }

    /// `CNI_IFNAME` (cnitool's default is `eth0`).
    pub fn ifname(self, ifname: &str) -> Self {
        self.env("CNI_IFNAME", ifname)
    }

    /// `CNI_ARGS`.
    pub fn args(self, args: &str) -> Self {
        self.env("CNI_ARGS", args)
    }

    /// `CAP_ARGS` (capability arguments, a JSON object).
    pub fn cap_args(self, caps: &serde_json::Value) -> Self {
        self.env("CAP_ARGS", &caps.to_string())
    }

    /// `CNI_CONTAINERID` (otherwise derived, see [`cnitool_container_id`]).
    pub fn container_id(self, id: &str) -> Self {
        self.env("CNI_CONTAINERID", id)
    }

    /// Set an environment variable for cnitool (and so for the plugins it runs).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_owned(), value.to_owned());
        self
    }

    /// The container ID this call will use for `ns`.
    pub fn effective_container_id(&self, ns: &Netns) -> String {
        self.env
            .get("CNI_CONTAINERID")
            .cloned()
            .unwrap_or_else(|| cnitool_container_id(&ns.path()))
    }

    /// `cnitool add <net> <netns>`.
    pub fn add(&self, net: &str, ns: &Netns) -> Output {
        self.run(&["add", net, &ns.path_str()])
    }

    /// `cnitool check <net> <netns>`.
    pub fn check(&self, net: &str, ns: &Netns) -> Output {
        self.run(&["check", net, &ns.path_str()])
    }

    /// `cnitool del <net> <netns>`.
    pub fn del(&self, net: &str, ns: &Netns) -> Output {
        self.run(&["del", net, &ns.path_str()])
    }

    /// `cnitool del <net> <path>` for a netns path that may no longer exist.
    pub fn del_path(&self, net: &str, netns_path: &str) -> Output {
        self.run(&["del", net, netns_path])
    }

    /// `cnitool validate <net>` (VERSION on every plugin of the list).
    pub fn validate(&self, net: &str) -> Output {
        self.run(&["validate", net])
    }

    fn run(&self, argv: &[&str]) -> Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.world.host().name()])
            .arg(locate::cnitool())
            .args(argv)
            .env_clear()
            .env("PATH", CHILD_PATH)
            .env("NETCONFPATH", self.world.netconf_dir())
            .env("CNI_CACHEDIR", self.world.cache_dir())
            .env("CNI_PATH", &self.plugin_dir)
            .envs(&self.env);
        process::run(&mut cmd, b"")
    }
}

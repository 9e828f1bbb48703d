//! Fault injection for the `faults_*` and `storm` suites: a full podman-style chain network, a
//! libcni driver that passes any environment (the plugins' crash hook), SIGKILL of a plugin
//! process at a random moment, a holder for foreign locks, a tiny tmpfs, and snapshots that
//! leave out exactly what a DEL keeps.
//!
//! The crash hook is `cni_core::fault::point`: a plugin aborts at the step whose label equals
//! [`ABORT_AT`] (bridge: `bridge:veth`, `bridge:ipam`, `bridge:addresses`, `bridge:masquerade`,
//! `bridge:done`; host-local: `host-local:staged`, `host-local:reserved`; see [`BRIDGE_POINTS`]
//! and [`HOST_LOCAL_POINTS`]).

mod os;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::bridge::{BridgeBench, bridge_name, without_kept_state};
use crate::config;
use crate::locate::{self, CHILD_PATH};
use crate::netns::Netns;
use crate::process::{self, Output};
use crate::snapshot::Snapshot;
use crate::world::World;

pub use self::os::{
    LockHolder, Rng, Tmpfs, kill_plugin, legacy_iptables_path, processes_of, seed_dir,
    wait_for_orphans,
};

/// The environment variable of the plugins' crash hook (`cni_core::fault::ABORT_AT`).
pub const ABORT_AT: &str = "CNI_TEST_ABORT_AT";
/// Crash points of bridge ADD, in the order ADD passes them.
pub const BRIDGE_POINTS: [&str; 5] = [
    "bridge:veth",
    "bridge:ipam",
    "bridge:addresses",
    "bridge:masquerade",
    "bridge:done",
];
/// Crash points of host-local's reservation: the owner is written to the staging file but the
/// reservation does not exist yet; the reservation exists but `last_reserved_ip.<n>` is not
/// written.
pub const HOST_LOCAL_POINTS: [&str; 2] = ["host-local:staged", "host-local:reserved"];

/// One network of podman's chain: bridge (gateway, `ipMasq`, hairpin, default route) +
/// host-local, optionally portmap, then firewall (`backend`) and tuning (MTU, promiscuous mode
/// and a sysctl of the container interface, backups in `<world>/state/tuning`).
#[derive(Debug, Clone)]
pub struct ChainNet<'w> {
    /// The bridge part (network name, bridge device, IPAM helpers).
    pub bench: BridgeBench<'w>,
    /// The IPv4 subnet.
    pub subnet: String,
    /// Interface name of every attachment.
    pub ifname: String,
    /// `backend` of the firewall (and portmap) objects.
    pub backend: String,
    /// Whether portmap is in the chain.
    pub portmap: bool,
    /// Members merged over the host-local `ipam` object (e.g. another `dataDir`).
    pub ipam_extra: Value,
}

impl<'w> ChainNet<'w> {
    /// Network `net` on bridge `br<world><suffix>` over `subnet`. Primes everything the first
    /// ADD would otherwise create for good (nat and filter base chains, forwarding, tuning's
    /// data directory), so that DEL of every attachment returns to a baseline taken now.
    pub fn new(
        world: &'w World,
        net: &str,
        suffix: &str,
        subnet: &str,
        backend: &str,
        portmap: bool,
    ) -> ChainNet<'w> {
        let bridge = format!("{}{suffix}", bridge_name(world));
        let bench = BridgeBench::new(world, net).on_bridge(&bridge);
        let host = world.host();
        crate::firewall::prime_filter(host);
        crate::portmap::prime_nat_hooks(host);
        host.run_ok(&[
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
        ]);
        let tuning = world.state_dir().join("tuning");
        if !tuning.is_dir() {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&tuning)
                .expect("create tuning's dataDir");
        }
        ChainNet {
            bench,
            subnet: subnet.to_owned(),
            ifname: "eth0".to_owned(),
            backend: backend.to_owned(),
            portmap,
            ipam_extra: json!({}),
        }
    }

    /// Uses `ifname` for every attachment (several networks in one container).
    pub fn with_ifname(mut self, ifname: &str) -> Self {
        self.ifname = ifname.to_owned();
        self
    }

    /// Merges `extra` over the `ipam` object.
    pub fn with_ipam(mut self, extra: Value) -> Self {
        self.ipam_extra = extra;
        self
    }

    /// The world.
    pub fn world(&self) -> &'w World {
        self.bench.world
    }

    /// Network name.
    pub fn net(&self) -> &str {
        &self.bench.net
    }

    /// Bridge device.
    pub fn bridge(&self) -> &str {
        &self.bench.bridge
    }

    /// The `ipam` object of the bridge.
    pub fn ipam(&self) -> Value {
        let base = config::merge(
            self.bench.ipam(&[&self.subnet]),
            json!({"routes": [{"dst": "0.0.0.0/0"}]}),
        );
        config::merge(base, self.ipam_extra.clone())
    }

    /// The plugin objects in chain order.
    pub fn plugins(&self) -> Vec<Value> {
        let state = self.world().state_dir();
        let dir = |d: &str| state.join(d).to_string_lossy().into_owned();
        let mut list = vec![self.bench.plugin_conf(json!({
            "isGateway": true, "ipMasq": true, "hairpinMode": true, "ipam": self.ipam(),
        }))];
        if self.portmap {
            list.push(
                json!({"type": "portmap", "capabilities": {"portMappings": true},
                             "backend": self.backend, "dataDir": dir("portmap")}),
            );
        }
        list.push(config::firewall(
            json!({"backend": self.backend, "dataDir": dir("firewall")}),
        ));
        let sysctl = format!("net.ipv4.conf.{}.arp_notify", self.ifname);
        list.push(config::tuning(json!({
            "dataDir": dir("tuning"), "mtu": 1400, "promisc": true, "sysctl": {sysctl: "1"},
        })));
        list
    }

    /// Writes `<netconf>/10-<net>.conflist` with `version`; returns it.
    pub fn write(&self, version: &str) -> Value {
        let list = config::conflist(version, self.net(), self.plugins());
        self.world()
            .write_conflist(&format!("10-{}", self.net()), &list);
        list
    }

    /// The stdin of a direct exec of chain member `plugin_type` (no `prevResult`); portmap gets
    /// `runtimeConfig.portMappings` (`host_port` → 80/tcp), as libcni passes it on every verb.
    pub fn direct_conf(&self, version: &str, plugin_type: &str, host_port: u16) -> Value {
        let object = self
            .plugins()
            .into_iter()
            .find(|p| p["type"] == plugin_type)
            .unwrap_or_else(|| panic!("{plugin_type} is not in the chain of {}", self.net()));
        let mut conf = config::merge(json!({"cniVersion": version, "name": self.net()}), object);
        if plugin_type == "portmap" {
            conf["runtimeConfig"] = json!({"portMappings": [
                {"hostPort": host_port, "containerPort": 80, "protocol": "tcp"}]});
        }
        conf
    }

    /// DEL of every chain member by direct exec, in reverse order, without `prevResult` (a
    /// runtime that lost its cache): each must succeed silently. `netns` may be `None`.
    #[track_caller]
    pub fn del_directly(&self, id: &str, netns: Option<&Netns>, host_port: u16) {
        let mut plugins: Vec<String> = self
            .plugins()
            .iter()
            .filter_map(|p| p["type"].as_str().map(str::to_owned))
            .collect();
        plugins.reverse();
        for plugin in plugins {
            let conf = self.direct_conf("1.0.0", &plugin, host_port);
            let mut del = crate::PluginCall::del(&conf).id(id).ifname(&self.ifname);
            if let Some(ns) = netns {
                del = del.netns(ns);
            }
            self.world()
                .exec(&crate::Plugin::ours(&plugin), &del)
                .expect_silent_success();
        }
    }

    /// A libcni driver over our plugins, for container `id`, with `hostPort` → 80/tcp
    /// published when portmap is in the chain.
    pub fn runtime(&self, id: &str, host_port: u16) -> Runtime<'w> {
        Runtime::new(self.world())
            .env("CNI_CONTAINERID", id)
            .env("CNI_IFNAME", &self.ifname)
            .env(
                "CAP_ARGS",
                &json!({"portMappings": [
                    {"hostPort": host_port, "containerPort": 80, "protocol": "tcp"}]})
                .to_string(),
            )
    }

    /// host-local's reservation files of this network (name → content), bookkeeping left out.
    pub fn reservations(&self) -> BTreeMap<String, String> {
        let dir = PathBuf::from(
            self.ipam()["dataDir"]
                .as_str()
                .expect("ipam.dataDir is a string"),
        )
        .join(self.net());
        crate::tree::read_tree(&dir)
            .into_iter()
            .filter(|(name, _)| !crate::hostlocal::is_bookkeeping(name))
            .map(|(name, e)| (name, String::from_utf8_lossy(e.content()).into_owned()))
            .collect()
    }
}

/// cnitool in a world's host namespace with our plugins and any extra environment (which
/// libcni hands on to every plugin): the crash hook, `PATH`, `CAP_ARGS`, …
#[derive(Debug, Clone)]
pub struct Runtime<'w> {
    world: &'w World,
    env: BTreeMap<String, String>,
}

impl<'w> Runtime<'w> {
    /// A driver with NETCONFPATH, CNI_CACHEDIR and CNI_PATH pointing into `world`.
    pub fn new(world: &'w World) -> Runtime<'w> {
        let mut env = BTreeMap::new();
        env.insert("PATH".to_owned(), CHILD_PATH.to_owned());
        env.insert(
            "NETCONFPATH".to_owned(),
            world.netconf_dir().to_string_lossy().into_owned(),
        );
        env.insert(
            "CNI_CACHEDIR".to_owned(),
            world.cache_dir().to_string_lossy().into_owned(),
        );
        env.insert(
            "CNI_PATH".to_owned(),
            locate::our_plugin_dir().to_string_lossy().into_owned(),
        );
        Runtime { world, env }
    }

    /// Sets (or replaces) an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Crash at `label` (see [`ABORT_AT`]).
    pub fn abort_at(self, label: &str) -> Self {
        self.env(ABORT_AT, label)
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

    /// `cnitool del <net> <path>` (a netns that may be gone).
    pub fn del_path(&self, net: &str, path: &str) -> Output {
        self.run(&["del", net, path])
    }

    /// Runs cnitool with `argv` and this driver's environment only.
    pub fn run(&self, argv: &[&str]) -> Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.world.host().name()])
            .arg(locate::cnitool())
            .args(argv)
            .env_clear()
            .envs(&self.env);
        process::run(&mut cmd, b"")
    }
}

/// The world's state without what DEL keeps: each bridge's own link, addresses and routes,
/// host-local's bookkeeping, the firewall's and portmap's lock directories, bridge timers and
/// nft counters (see [`without_kept_state`]).
pub fn snapshot(world: &World, bridges: &[&str]) -> Snapshot {
    trim(world.snapshot(), world, bridges)
}

/// [`snapshot`] of the host namespace and the directory tree only.
pub fn host_snapshot(world: &World, bridges: &[&str]) -> Snapshot {
    let snap = Snapshot::netns(world.host()).merge(Snapshot::dir("world", world.root()));
    trim(snap, world, bridges)
}

fn trim(mut snap: Snapshot, world: &World, bridges: &[&str]) -> Snapshot {
    for bridge in bridges {
        snap = without_kept_state(&snap, world.host(), bridge);
    }
    snap.without_lines(|l| {
        [
            "state/firewall",
            "state/portmap",
            "plugins/",
            "bin/",
            "cni-bin",
        ]
        .iter()
        .any(|p| l.starts_with(p))
    })
}

/// Calls `current` until it equals `baseline` (the kernel removes a deleted namespace's veth
/// peer asynchronously), failing with the diff after ten seconds.
#[track_caller]
pub fn eventually_same(baseline: &Snapshot, current: impl Fn() -> Snapshot, context: &str) {
    let start = Instant::now();
    loop {
        let now = current();
        match baseline.diff(&now) {
            None => return,
            Some(diff) if start.elapsed() > Duration::from_secs(10) => {
                panic!("state differs from the baseline ({context}):\n{diff}")
            }
            Some(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

//! A bench for the chained `firewall` plugin: networks of bridge + host-local + firewall in a
//! [`World`], our firewall or Go's behind the same bridge, and the rule layouts to expect.
//!
//! A [`FirewallNet`] is one conflist (`name` = network, one bridge device, gateway addresses
//! and default routes so containers on different bridges reach each other through the host).
//! Its firewall object always carries `dataDir` = `<world>/state/firewall` (our plugin's lock
//! file; Go ignores the key), so no test touches the machine's `/run`.
//!
//! [`Firewall`] picks the firewall binary: ours ([`crate::locate::our_plugin_dir`]) or Go's. For
//! Go's, cnitool gets a `CNI_PATH` of symlinks in the world (`plugins/go-firewall/`: our bridge
//! and host-local, Go's firewall), so only the firewall differs between the two.
//!
//! The layouts to expect (iptables lines, our nft table, owner comments) live in
//! [`crate::firewall_layout`] and are re-exported here.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::bridge::{BridgeBench, bridge_name, without_kept_state};
use crate::cnitool::CnitoolCall;
use crate::config;
use crate::exec::PluginCall;
use crate::locate::{self, Plugin, REFERENCE_PLUGIN_DIR};
use crate::netns::Netns;
use crate::process::Output;
use crate::snapshot::Snapshot;
use crate::world::World;

pub use crate::firewall_layout::*;

/// Interface name every attachment uses.
pub const IFNAME: &str = "eth0";

/// Which firewall binary runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firewall {
    /// Ours (`CNI_PLUGIN_DIR` / `target/release`).
    Ours,
    /// The Go reference, `/usr/lib/cni/firewall`.
    Go,
}

impl Firewall {
    /// The firewall binary for a direct exec.
    pub fn plugin(self) -> Plugin {
        match self {
            Firewall::Ours => Plugin::ours("firewall"),
            Firewall::Go => Plugin::reference("firewall"),
        }
    }
}

/// The firewall's lock directory inside `world` (the `dataDir` of every firewall object here).
pub fn lock_dir(world: &World) -> PathBuf {
    world.state_dir().join("firewall")
}

/// `<world>/plugins/go-firewall`: our bridge and host-local, Go's firewall (symlinks).
pub fn go_firewall_dir(world: &World) -> PathBuf {
    let dir = world.root().join("plugins/go-firewall");
    fs::create_dir_all(&dir).expect("create the mixed plugin directory");
    let ours = locate::our_plugin_dir();
    let links = [
        ("bridge", ours.join("bridge")),
        ("host-local", ours.join("host-local")),
        (
            "firewall",
            PathBuf::from(REFERENCE_PLUGIN_DIR).join("firewall"),
        ),
    ];
    for (name, target) in links {
        let link = dir.join(name);
        if fs::symlink_metadata(&link).is_err() {
            symlink(&target, &link).expect("symlink a plugin");
        }
    }
    dir
}

/// The netfilter tools the firewall plugin runs.
pub const TOOLS: [&str; 7] = [
    "iptables",
    "ip6tables",
    "iptables-save",
    "ip6tables-save",
    "iptables-restore",
    "ip6tables-restore",
    "nft",
];

/// `<world>/<name>/` with one executable shell script per [`TOOLS`] entry, its text
/// `script(tool, real_path)` (`real_path`: the installed tool). Returns the directory, to put
/// first on a plugin's `PATH` (stand-ins that fail, or wrappers that log and `exec` the real one).
pub fn tool_stand_ins(world: &World, name: &str, script: impl Fn(&str, &str) -> String) -> String {
    use std::os::unix::fs::PermissionsExt;
    for tool in TOOLS {
        let real = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .iter()
            .map(|d| format!("{d}/{tool}"))
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or_else(|| panic!("{tool} is not installed"));
        let path = world.write_file(&format!("{name}/{tool}"), script(tool, &real).as_bytes());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod stand-in");
    }
    world.root().join(name).to_string_lossy().into_owned()
}

/// Makes sure the `filter` tables (IPv4 and IPv6) with their FORWARD base chain exist in `ns`:
/// iptables-nft creates them on first use and keeps them, as a real host has them already.
pub fn prime_filter(ns: &Netns) {
    for tool in ["iptables", "ip6tables"] {
        ns.run_ok(&[tool, "-t", "filter", "-N", "CNIT-PRIME"]);
        ns.run_ok(&[tool, "-t", "filter", "-A", "FORWARD", "-j", "CNIT-PRIME"]);
        ns.run_ok(&[tool, "-t", "filter", "-D", "FORWARD", "-j", "CNIT-PRIME"]);
        ns.run_ok(&[tool, "-t", "filter", "-X", "CNIT-PRIME"]);
    }
}

/// One network: bridge (gateway, default routes) + host-local + firewall.
#[derive(Debug, Clone)]
pub struct FirewallNet<'w> {
    /// The bridge side (network name, bridge device, our plugin directory).
    pub bench: BridgeBench<'w>,
    /// Subnets of the network (one range set each).
    pub subnets: Vec<String>,
    /// The firewall's own keys (`backend`, `ingressPolicy`, …).
    pub firewall: Value,
    /// Members merged over the bridge plugin object (see [`FirewallNet::with_bridge`]).
    pub bridge_extra: Value,
}

impl<'w> FirewallNet<'w> {
    /// Network `net` on bridge `br<world>` + `suffix` over `subnets`, with firewall keys
    /// `firewall` (a JSON object). Primes the host's nat and filter tables.
    pub fn new(
        world: &'w World,
        net: &str,
        suffix: &str,
        subnets: &[&str],
        firewall: Value,
    ) -> FirewallNet<'w> {
        let bridge = format!("{}{suffix}", bridge_name(world));
        let bench = BridgeBench::new(world, net).on_bridge(&bridge);
        prime_filter(world.host());
        go_firewall_dir(world);
        FirewallNet {
            bench,
            subnets: subnets.iter().map(|s| (*s).to_owned()).collect(),
            firewall,
            bridge_extra: json!({}),
        }
    }

    /// Merges `extra` (a JSON object) over the bridge plugin object, e.g. a custom `ipam`.
    pub fn with_bridge(mut self, extra: Value) -> Self {
        self.bridge_extra = extra;
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

    /// The bridge plugin object: gateway, host-local over the subnets, default route per family.
    pub fn bridge_object(&self) -> Value {
        let subnets: Vec<&str> = self.subnets.iter().map(String::as_str).collect();
        let ipam = self.bench.ipam_with_default_routes(&subnets);
        let base = json!({"isGateway": true, "ipam": ipam});
        self.bench
            .plugin_conf(config::merge(base, self.bridge_extra.clone()))
    }

    /// The firewall plugin object: `type`, `dataDir` and [`FirewallNet::firewall`].
    pub fn firewall_object(&self) -> Value {
        let lock = json!({ "dataDir": lock_dir(self.world()).to_string_lossy() });
        config::merge(config::firewall(lock), self.firewall.clone())
    }

    /// Writes `<netconf>/10-<net>.conflist` (version 1.0.0, the newest cnitool speaks).
    pub fn write(&self) -> Value {
        let list = config::conflist(
            "1.0.0",
            self.net(),
            vec![self.bridge_object(), self.firewall_object()],
        );
        self.world()
            .write_conflist(&format!("10-{}", self.net()), &list);
        list
    }

    /// cnitool with `fw`'s firewall binary (our bridge and host-local either way).
    pub fn tool(&self, fw: Firewall) -> CnitoolCall<'w> {
        let dir = match fw {
            Firewall::Ours => locate::our_plugin_dir(),
            Firewall::Go => go_firewall_dir(self.world()),
        };
        self.world().cnitool().plugin_dir(dir)
    }

    /// `cnitool add` with container ID `id` through our firewall; returns the result.
    #[track_caller]
    pub fn add(&self, ctr: &Netns, id: &str) -> Value {
        self.add_with(Firewall::Ours, ctr, id)
    }

    /// `cnitool add` with `fw`'s firewall; must succeed; returns the result.
    #[track_caller]
    pub fn add_with(&self, fw: Firewall, ctr: &Netns, id: &str) -> Value {
        self.tool(fw).container_id(id).add(self.net(), ctr).result()
    }

    /// Waits (up to ten seconds) until the host veth of an ADD `result` (`interfaces[1]`) has
    /// finished DAD on its IPv6 link-local address: the kernel adds that address and its local
    /// routes on its own shortly after ADD, which a test comparing snapshots must not see.
    #[track_caller]
    pub fn settle(&self, result: &Value) {
        let veth = crate::bridge::iface_name(result, 1);
        let host = self.world().host();
        let start = std::time::Instant::now();
        loop {
            let text = host.run_ok(&["ip", "-j", "addr", "show", "dev", &veth]);
            let links: Value = serde_json::from_str(text.trim()).unwrap_or(Value::Null);
            let ready = links[0]["addr_info"].as_array().is_some_and(|addrs| {
                addrs
                    .iter()
                    .any(|a| a["scope"] == "link" && a.get("tentative").is_none())
            });
            if ready {
                return;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "{veth} got no usable link-local address: {text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// `cnitool del` through our firewall; must succeed silently.
    #[track_caller]
    pub fn del(&self, ctr: &Netns, id: &str) {
        self.del_with(Firewall::Ours, ctr, id);
    }

    /// `cnitool del` with `fw`'s firewall; must succeed silently.
    #[track_caller]
    pub fn del_with(&self, fw: Firewall, ctr: &Netns, id: &str) {
        self.tool(fw)
            .container_id(id)
            .del(self.net(), ctr)
            .expect_silent_success();
    }

    /// `cnitool check` through our firewall.
    pub fn check(&self, ctr: &Netns, id: &str) -> Output {
        self.tool(Firewall::Ours)
            .container_id(id)
            .check(self.net(), ctr)
    }

    /// The stdin of a direct firewall exec: `cniVersion`, `name`, the firewall object, and
    /// `prevResult` when given.
    pub fn conf(&self, version: &str, prev: Option<&Value>) -> Value {
        let mut conf = config::merge(
            json!({"cniVersion": version, "name": self.net()}),
            self.firewall_object(),
        );
        if let Some(prev) = prev {
            conf["prevResult"] = prev.clone();
        }
        conf
    }

    /// A direct call `command` with `conf`, container `id`, [`IFNAME`] and `ctr`'s path.
    pub fn call(&self, command: &str, conf: &Value, id: &str, ctr: &Netns) -> PluginCall {
        PluginCall::new(command, conf)
            .id(id)
            .ifname(IFNAME)
            .netns(ctr)
    }

    /// Runs `call` with `fw`'s firewall binary in the host namespace.
    pub fn exec(&self, fw: Firewall, call: &PluginCall) -> Output {
        self.world().exec(&fw.plugin(), call)
    }
}

/// The world's state minus what bridge DEL keeps for each of `nets`' bridges, minus the
/// firewall's lock directory, with nft counters normalised (see [`without_kept_state`]).
pub fn snapshot(world: &World, nets: &[&FirewallNet<'_>]) -> Snapshot {
    trim(world.snapshot(), world, nets)
}

/// [`snapshot`] of the host namespace and the directory tree only.
pub fn host_snapshot(world: &World, nets: &[&FirewallNet<'_>]) -> Snapshot {
    let snap = Snapshot::netns(world.host()).merge(Snapshot::dir("world", world.root()));
    trim(snap, world, nets)
}

fn trim(mut snap: Snapshot, world: &World, nets: &[&FirewallNet<'_>]) -> Snapshot {
    for net in nets {
        snap = without_kept_state(&snap, world.host(), net.bridge());
    }
    snap.map_sections(|name, text| {
        if name == "dir world" {
            text.lines()
                .filter(|l| !l.starts_with("state/firewall"))
                .map(|l| format!("{l}\n"))
                .collect()
        } else {
            text.to_owned()
        }
    })
}

/// The first address of `result` in `family` (`4`/`6`), without prefix length.
#[track_caller]
pub fn ip_of(result: &Value, family: u8) -> String {
    result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["address"].as_str())
        .map(|a| a.split('/').next().unwrap_or_default().to_owned())
        .find(|a| a.contains(':') == (family == 6))
        .unwrap_or_else(|| panic!("no IPv{family} address in {result}"))
}

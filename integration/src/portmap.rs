//! A bench for the chained `portmap` plugin: networks of bridge + host-local + portmap in a
//! [`World`], our portmap or Go's behind the same bridge, an echo server in container
//! namespaces and clients that reach it through published host ports.
//!
//! A [`PortmapNet`] is one conflist (`name` = network, one bridge device with gateway addresses,
//! `hairpinMode` and default routes). Its portmap object carries `capabilities.portMappings`
//! and `dataDir` = `<world>/state/portmap` (our plugin's lock; Go ignores the key); mappings
//! reach the plugin as cnitool's `CAP_ARGS`, exactly as a runtime passes them.
//!
//! [`EchoServer`] runs the `cni-echo` test binary inside a namespace (`ip netns exec`) and kills
//! it when dropped; [`tcp_echo`] / [`udp_echo`] talk to it from any namespace and return the
//! server's tag and the source address it saw.

mod echo;

use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha512};

use crate::bridge::{BridgeBench, bridge_name, without_kept_state};
use crate::cnitool::CnitoolCall;
use crate::config;
use crate::exec::PluginCall;
use crate::locate::{self, Plugin, REFERENCE_PLUGIN_DIR};
use crate::netns::Netns;
use crate::outside::Outside;
use crate::process::Output;
use crate::snapshot::Snapshot;
use crate::world::World;

pub use self::echo::{
    Echo, EchoServer, expect_tcp, expect_udp, sockaddr, tcp_echo, tcp_once, udp_echo, udp_once,
};

/// Interface name every attachment uses.
pub const IFNAME: &str = "eth0";
/// The outside link's IPv6 addresses (host side, outside side), added by [`outside_v6`].
pub const OUTSIDE_V6: (&str, &str) = ("fd50::1", "fd50::2");

/// Which portmap binary runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Portmap {
    /// Ours (`CNI_PLUGIN_DIR` / `target/release`).
    Ours,
    /// The Go reference, `/usr/lib/cni/portmap`.
    Go,
}

impl Portmap {
    /// The portmap binary for a direct exec.
    pub fn plugin(self) -> Plugin {
        match self {
            Portmap::Ours => Plugin::ours("portmap"),
            Portmap::Go => Plugin::reference("portmap"),
        }
    }
}

/// The lock directory of our portmap inside `world`.
pub fn lock_dir(world: &World) -> PathBuf {
    world.state_dir().join("portmap")
}

/// `<world>/plugins/go-portmap`: our bridge and host-local, Go's portmap (symlinks).
pub fn go_portmap_dir(world: &World) -> PathBuf {
    let dir = world.root().join("plugins/go-portmap");
    std::fs::create_dir_all(&dir).expect("create the mixed plugin directory");
    let ours = locate::our_plugin_dir();
    let links = [
        ("bridge", ours.join("bridge")),
        ("host-local", ours.join("host-local")),
        (
            "portmap",
            PathBuf::from(REFERENCE_PLUGIN_DIR).join("portmap"),
        ),
    ];
    for (name, target) in links {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(&target, &link).expect("symlink a plugin");
        }
    }
    dir
}

/// One network: bridge (gateway, hairpin, default routes) + host-local + portmap.
#[derive(Debug, Clone)]
pub struct PortmapNet<'w> {
    /// The bridge side (network name, bridge device).
    pub bench: BridgeBench<'w>,
    /// Subnets of the network (one range set each).
    pub subnets: Vec<String>,
    /// The portmap's own keys (`backend`, `snat`, …).
    pub keys: Value,
}

impl<'w> PortmapNet<'w> {
    /// Network `net` on bridge `br<world>` + `suffix` over `subnets`, portmap keys `keys`.
    pub fn new(world: &'w World, net: &str, suffix: &str, subnets: &[&str], keys: Value) -> Self {
        let bridge = format!("{}{suffix}", bridge_name(world));
        let bench = BridgeBench::new(world, net).on_bridge(&bridge);
        prime_nat_hooks(world.host());
        // A router already: the bridge enables forwarding on ADD (never reverting it), and IPv6
        // forwarding adds anycast routes on every link, which a baseline must already show.
        world.host().run_ok(&[
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
        ]);
        go_portmap_dir(world);
        PortmapNet {
            bench,
            subnets: subnets.iter().map(|s| (*s).to_owned()).collect(),
            keys,
        }
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

    /// The bridge plugin object.
    pub fn bridge_object(&self) -> Value {
        let subnets: Vec<&str> = self.subnets.iter().map(String::as_str).collect();
        let ipam = self.bench.ipam_with_default_routes(&subnets);
        self.bench
            .plugin_conf(json!({"isGateway": true, "hairpinMode": true, "ipam": ipam}))
    }

    /// The portmap plugin object: `type`, capability, `dataDir` and [`PortmapNet::keys`].
    pub fn portmap_object(&self) -> Value {
        let base = json!({
            "type": "portmap",
            "capabilities": {"portMappings": true},
            "dataDir": lock_dir(self.world()).to_string_lossy(),
        });
        config::merge(base, self.keys.clone())
    }

    /// Writes `<netconf>/10-<net>.conflist` (version 1.0.0, the newest cnitool and Go speak).
    pub fn write(&self) -> Value {
        let list = config::conflist(
            "1.0.0",
            self.net(),
            vec![self.bridge_object(), self.portmap_object()],
        );
        self.world()
            .write_conflist(&format!("10-{}", self.net()), &list);
        list
    }

    /// cnitool with `which` portmap (our bridge and host-local either way) and `mappings`.
    pub fn tool(&self, which: Portmap, id: &str, mappings: &Value) -> CnitoolCall<'w> {
        let dir = match which {
            Portmap::Ours => locate::our_plugin_dir(),
            Portmap::Go => go_portmap_dir(self.world()),
        };
        self.world()
            .cnitool()
            .plugin_dir(dir)
            .container_id(id)
            .cap_args(&json!({ "portMappings": mappings }))
    }

    /// `cnitool add`; must succeed; returns the result (after the host veth settled).
    #[track_caller]
    pub fn add(&self, which: Portmap, ctr: &Netns, id: &str, mappings: &Value) -> Value {
        let result = self.tool(which, id, mappings).add(self.net(), ctr).result();
        settle(self.world().host(), &result);
        result
    }

    /// `cnitool add` that may fail.
    pub fn try_add(&self, which: Portmap, ctr: &Netns, id: &str, mappings: &Value) -> Output {
        self.tool(which, id, mappings).add(self.net(), ctr)
    }

    /// `cnitool del`; must succeed silently.
    #[track_caller]
    pub fn del(&self, which: Portmap, ctr: &Netns, id: &str, mappings: &Value) {
        self.tool(which, id, mappings)
            .del(self.net(), ctr)
            .expect_silent_success();
    }

    /// `cnitool check`.
    pub fn check(&self, which: Portmap, ctr: &Netns, id: &str, mappings: &Value) -> Output {
        self.tool(which, id, mappings).check(self.net(), ctr)
    }

    /// The stdin of a direct portmap exec: `cniVersion`, `name`, the portmap object, and
    /// `prevResult` / `runtimeConfig.portMappings` when given.
    pub fn conf(&self, version: &str, prev: Option<&Value>, mappings: Option<&Value>) -> Value {
        let mut conf = config::merge(
            json!({"cniVersion": version, "name": self.net()}),
            self.portmap_object(),
        );
        if let Some(prev) = prev {
            conf["prevResult"] = prev.clone();
        }
        if let Some(mappings) = mappings {
            conf["runtimeConfig"] = json!({ "portMappings": mappings });
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

    /// Runs `call` with `which` portmap binary in the host namespace.
    pub fn exec(&self, which: Portmap, call: &PluginCall) -> Output {
        self.world().exec(&which.plugin(), call)
    }
}

/// Makes sure the `nat` base chains `PREROUTING` and `OUTPUT` exist in `ns` for both families
/// (iptables-nft creates a base chain with its first rule and keeps it after the last one, as a
/// real host has them already), so a plugin that adds and removes its jumps returns to the
/// baseline exactly. Idempotent.
pub fn prime_nat_hooks(ns: &Netns) {
    for tool in ["iptables", "ip6tables"] {
        for chain in ["PREROUTING", "OUTPUT"] {
            ns.run_ok(&[tool, "-w", "-t", "nat", "-A", chain, "-j", "ACCEPT"]);
            ns.run_ok(&[tool, "-w", "-t", "nat", "-D", chain, "-j", "ACCEPT"]);
        }
    }
}

/// `[{"hostPort", "containerPort", "protocol"[, "hostIP"]}]` from `(host, container, proto, ip)`.
pub fn mappings(list: &[(u16, u16, &str, Option<&str>)]) -> Value {
    Value::Array(
        list.iter()
            .map(|(host, ctr, proto, ip)| {
                let mut m = json!({"hostPort": host, "containerPort": ctr, "protocol": proto});
                if let Some(ip) = ip {
                    m["hostIP"] = json!(ip);
                }
                m
            })
            .collect(),
    )
}

/// Waits (up to ten seconds) until the host veth of an ADD `result` (`interfaces[1]`) has a
/// usable IPv6 link-local address, so a later snapshot does not see it appear.
#[track_caller]
pub fn settle(host: &Netns, result: &Value) {
    wait_link_local(host, &crate::bridge::iface_name(result, 1));
}

/// Waits (up to ten seconds) until `dev` in `ns` has a link-local IPv6 address that finished
/// DAD (its local routes appear only then).
#[track_caller]
pub fn wait_link_local(ns: &Netns, dev: &str) {
    let start = Instant::now();
    loop {
        let text = ns.run_ok(&["ip", "-j", "addr", "show", "dev", dev]);
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
            start.elapsed() < Duration::from_secs(10),
            "{dev} got no usable link-local address: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`Outside::connect`], waiting until both ends of its link finished DAD (so
/// a baseline taken afterwards is stable).
pub fn connect_outside(world: &World, subnets: &[&str]) -> Outside {
    let outside = Outside::connect(world, subnets);
    wait_link_local(world.host(), Outside::HOST_LINK);
    wait_link_local(&outside.ns, "eth0");
    outside
}

/// The world's state minus what bridge DEL keeps for `nets`' bridges and minus the portmap lock
/// directory (nft counters normalised).
pub fn snapshot(world: &World, nets: &[&PortmapNet<'_>]) -> Snapshot {
    trim(world.snapshot(), world, nets)
}

/// [`snapshot`] of the host namespace and the directory tree only.
pub fn host_snapshot(world: &World, nets: &[&PortmapNet<'_>]) -> Snapshot {
    let snap = Snapshot::netns(world.host()).merge(Snapshot::dir("world", world.root()));
    trim(snap, world, nets)
}

fn trim(mut snap: Snapshot, world: &World, nets: &[&PortmapNet<'_>]) -> Snapshot {
    for net in nets {
        snap = without_kept_state(&snap, world.host(), net.bridge());
    }
    snap.without_lines(|l| l.starts_with("state/portmap") || l.starts_with("plugins/"))
}

/// Adds [`OUTSIDE_V6`] to the outside link (no DAD), so IPv6 host ports can be reached.
pub fn outside_v6(world: &World, outside: &Outside) {
    let (host, out) = OUTSIDE_V6;
    world.host().run_ok(&[
        "ip",
        "-6",
        "addr",
        "add",
        &format!("{host}/64"),
        "dev",
        Outside::HOST_LINK,
        "nodad",
    ]);
    outside.ns.run_ok(&[
        "ip",
        "-6",
        "addr",
        "add",
        &format!("{out}/64"),
        "dev",
        "eth0",
        "nodad",
    ]);
}

// ---------------------------------------------------------------------------------------------
// Names and layouts

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `CNI-DN-` + 21 hex of SHA-512(net + id): the reference's per-container chain.
pub fn dn_chain(net: &str, id: &str) -> String {
    let digest = hex(&Sha512::digest(format!("{net}{id}").as_bytes()));
    format!("CNI-DN-{}", &digest[..21])
}

/// Every `nat` rule line and user chain of both families in `ns`, prefixed `4 ` / `6 `.
pub fn nat_state(ns: &Netns) -> Vec<String> {
    let mut lines = Vec::new();
    for (v6, prefix) in [(false, "4 "), (true, "6 ")] {
        for chain in crate::inspect::nat_chains(ns, v6) {
            lines.push(format!("{prefix}:{chain}"));
        }
        for rule in crate::inspect::nat_rules(ns, v6) {
            lines.push(format!("{prefix}{rule}"));
        }
    }
    lines
}

/// The handle of the one rule of `<family> cni_hostport` chain `chain` whose listing contains
/// `needle`; panics unless there is exactly one.
#[track_caller]
pub fn nft_rule_handle(ns: &Netns, family: &str, chain: &str, needle: &str) -> String {
    let listing = ns.run_ok(&["nft", "-a", "list", "chain", family, "cni_hostport", chain]);
    let found: Vec<&str> = listing
        .lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| l.rsplit_once("# handle ").map(|(_, h)| h.trim()))
        .collect();
    assert_eq!(found.len(), 1, "rules matching {needle:?}:\n{listing}");
    found[0].to_owned()
}

/// `nft list table <family> cni_hostport` for both families (handles and counters stripped);
/// empty when neither table exists.
pub fn nft_hostport(ns: &Netns) -> String {
    let mut out = String::new();
    for family in ["ip", "ip6"] {
        let listing = ns.run(&["nft", "list", "table", family, "cni_hostport"]);
        if listing.success() {
            out.push_str(&listing.stdout_str());
        }
    }
    out
}

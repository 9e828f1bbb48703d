//! A bench for the `macvlan` plugin: a veth pair in the world's host namespace plays the
//! physical NIC ([`MacvlanBench::MASTER`]) and the LAN behind it.
//!
//! ```text
//! container c1 ─macvlan─┐
//!                       ├─ mvmaster0 (veth, host netns) ══ lan0 ─ lanbr0 (LAN netns, .250)
//! container c2 ─macvlan─┘
//! ```
//!
//! The LAN end is a port of a bridge (`lanbr0`) inside a namespace of its own, holding the
//! subnet's `.250` address: a peer every container can ping (the positive control for
//! isolation tests). [`MacvlanBench::set_lan_hairpin`] makes the LAN reflect frames back out of
//! the port they came in on, as a VEPA-capable switch does.
//!
//! Snapshots leave out only host-local's bookkeeping (`lock`, `last_reserved_ip.*`, the store
//! directory); everything a macvlan ADD creates must be gone after DEL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::cnitool::CnitoolCall;
use crate::config;
use crate::exec::PluginCall;
use crate::hostlocal::is_bookkeeping;
use crate::inspect;
use crate::locate::{self, Plugin, REFERENCE_PLUGIN_DIR};
use crate::netns::Netns;
use crate::outside::wait_settled;
use crate::process::Output;
use crate::snapshot::Snapshot;
use crate::tree::read_tree;
use crate::world::World;

/// One macvlan network over a veth master in a world.
#[derive(Debug, Clone)]
pub struct MacvlanBench<'w> {
    /// The world the network lives in.
    pub world: &'w World,
    /// Network name (conflist `name`, host-local store directory).
    pub net: String,
    /// The IPv4 /24 the network allocates from (`a.b.c.0/24`).
    pub subnet: String,
    /// The namespace at the far end of the master (the LAN).
    pub lan: Netns,
    plugin_dir: PathBuf,
}

impl<'w> MacvlanBench<'w> {
    /// The master's name in the host namespace.
    pub const MASTER: &'static str = "mvmaster0";
    /// The master's MTU.
    pub const MASTER_MTU: u32 = 1500;
    /// The veth end in the LAN namespace.
    pub const LAN_PORT: &'static str = "lan0";
    /// The bridge in the LAN namespace that holds the LAN address.
    pub const LAN_BRIDGE: &'static str = "lanbr0";

    /// A network `net` over `subnet` (an IPv4 /24) using our plugins; builds master and LAN.
    pub fn new(world: &'w World, net: &str, subnet: &str) -> MacvlanBench<'w> {
        MacvlanBench::with_dir(world, net, subnet, locate::our_plugin_dir())
    }

    /// The same with the Go reference plugins from `/usr/lib/cni`.
    pub fn reference(world: &'w World, net: &str, subnet: &str) -> MacvlanBench<'w> {
        MacvlanBench::with_dir(world, net, subnet, PathBuf::from(REFERENCE_PLUGIN_DIR))
    }

    fn with_dir(world: &'w World, net: &str, subnet: &str, plugin_dir: PathBuf) -> Self {
        assert!(
            subnet.ends_with(".0/24"),
            "MacvlanBench needs an a.b.c.0/24 subnet, got {subnet}"
        );
        let lan = world.container();
        let host = world.host();
        host.run_ok(&[
            "ip",
            "link",
            "add",
            Self::MASTER,
            "type",
            "veth",
            "peer",
            "name",
            Self::LAN_PORT,
            "netns",
            lan.name(),
        ]);
        no_dad(host, Self::MASTER);
        no_dad(&lan, Self::LAN_PORT);
        host.run_ok(&["ip", "link", "set", Self::MASTER, "up"]);
        lan.run_ok(&["ip", "link", "set", "lo", "up"]);
        lan.run_ok(&[
            "ip",
            "link",
            "add",
            Self::LAN_BRIDGE,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ]);
        no_dad(&lan, Self::LAN_BRIDGE);
        lan.run_ok(&[
            "ip",
            "link",
            "set",
            Self::LAN_PORT,
            "master",
            Self::LAN_BRIDGE,
        ]);
        lan.run_ok(&["ip", "link", "set", Self::LAN_PORT, "up"]);
        lan.run_ok(&["ip", "link", "set", Self::LAN_BRIDGE, "up"]);
        let bench = MacvlanBench {
            world,
            net: net.to_owned(),
            subnet: subnet.to_owned(),
            lan,
            plugin_dir,
        };
        lan_addr_add(&bench.lan, &format!("{}/24", bench.host_ip(250)));
        wait_settled(host, Self::MASTER);
        wait_settled(&bench.lan, Self::LAN_BRIDGE);
        bench
    }

    /// `a.b.c.<n>` of the subnet.
    pub fn host_ip(&self, n: u8) -> String {
        let prefix = self.subnet.trim_end_matches("0/24");
        format!("{prefix}{n}")
    }

    /// The LAN peer's address (`.250`).
    pub fn lan_addr(&self) -> String {
        self.host_ip(250)
    }

    /// Turns hairpin mode of the LAN bridge port on or off (a switch that reflects frames).
    pub fn set_lan_hairpin(&self, on: bool) {
        self.lan.run_ok(&[
            "ip",
            "link",
            "set",
            "dev",
            Self::LAN_PORT,
            "type",
            "bridge_slave",
            "hairpin",
            if on { "on" } else { "off" },
        ]);
    }

    /// Gives the host an address on the master (`.253`) and a default route via the LAN peer.
    pub fn add_default_route(&self) {
        let host = self.world.host();
        let addr = format!("{}/24", self.host_ip(253));
        host.run_ok(&["ip", "addr", "add", &addr, "dev", Self::MASTER]);
        host.run_ok(&["ip", "route", "add", "default", "via", &self.lan_addr()]);
    }

    /// The directory plugins come from (CNI_PATH).
    pub fn plugin_dir(&self) -> &Path {
        &self.plugin_dir
    }

    /// The macvlan binary of this bench.
    pub fn plugin(&self) -> Plugin {
        if self.plugin_dir == Path::new(REFERENCE_PLUGIN_DIR) {
            Plugin::reference("macvlan")
        } else {
            Plugin::ours("macvlan")
        }
    }

    /// A host-local `ipam` object over the bench's subnet in the world's `dataDir`.
    pub fn ipam(&self) -> Value {
        config::host_local_ipam(&self.world.data_dir(), &[&self.subnet])
    }

    /// `{"type": "macvlan", "master": MASTER}` + `extra` (its members win; `"master": null`
    /// removes the master).
    pub fn plugin_conf(&self, extra: Value) -> Value {
        let mut conf = config::merge(config::macvlan(Self::MASTER, json!({})), extra);
        if let Some(map) = conf.as_object_mut() {
            map.retain(|_, v| !v.is_null());
        }
        conf
    }

    /// A complete single-plugin config (stdin of a direct exec).
    pub fn conf(&self, version: &str, extra: Value) -> Value {
        config::merge(
            json!({"cniVersion": version, "name": self.net}),
            self.plugin_conf(extra),
        )
    }

    /// Writes `<netconf>/10-<net>.conflist` with macvlan alone; returns the conflist.
    pub fn write(&self, version: &str, extra: Value) -> Value {
        let list = config::conflist(version, &self.net, vec![self.plugin_conf(extra)]);
        self.world
            .write_conflist(&format!("10-{}", self.net), &list);
        list
    }

    /// A cnitool driver with this bench's plugins.
    pub fn tool(&self) -> CnitoolCall<'w> {
        self.world.cnitool().plugin_dir(&self.plugin_dir)
    }

    /// `cnitool add` that must succeed; returns the result.
    #[track_caller]
    pub fn add(&self, ctr: &Netns) -> Value {
        self.tool().add(&self.net, ctr).result()
    }

    /// `cnitool check`.
    pub fn check(&self, ctr: &Netns) -> Output {
        self.tool().check(&self.net, ctr)
    }

    /// `cnitool del` that must succeed silently.
    #[track_caller]
    pub fn del(&self, ctr: &Netns) {
        self.tool().del(&self.net, ctr).expect_silent_success();
    }

    /// Runs `call` with this bench's macvlan binary in the host namespace.
    pub fn exec(&self, call: &PluginCall) -> Output {
        self.world.exec(&self.plugin(), call)
    }

    /// The host-local store of this network.
    pub fn store_dir(&self) -> PathBuf {
        self.world.data_dir().join(&self.net)
    }

    /// Reservation files (IP → content), without host-local's bookkeeping.
    pub fn reservations(&self) -> BTreeMap<String, String> {
        read_tree(&self.store_dir())
            .into_iter()
            .filter(|(name, _)| !is_bookkeeping(name))
            .map(|(name, e)| (name, String::from_utf8_lossy(e.content()).into_owned()))
            .collect()
    }

    /// The world's state without host-local's bookkeeping files and store directories, taken
    /// once IPv6 DAD has finished everywhere (see [`settle`]).
    pub fn snapshot(&self) -> Snapshot {
        settle(self.world.host());
        for ns in self.world.containers() {
            settle(&ns);
        }
        without_ipam_bookkeeping(&self.world.snapshot())
    }

    /// Like [`MacvlanBench::snapshot`] for the host and LAN namespaces and the directory tree
    /// only (for tests that delete a container namespace on purpose).
    pub fn host_snapshot(&self) -> Snapshot {
        settle(self.world.host());
        settle(&self.lan);
        let snap = Snapshot::netns(self.world.host())
            .merge(Snapshot::netns(&self.lan))
            .merge(Snapshot::dir("world", self.world.root()));
        without_ipam_bookkeeping(&snap)
    }

    /// The master's ifindex in the host namespace.
    pub fn master_index(&self) -> u64 {
        inspect::link(self.world.host(), Self::MASTER)["ifindex"]
            .as_u64()
            .expect("master has an ifindex")
    }

    /// Panics unless `result` is a single-interface macvlan result for `ctr`/`ifname` that
    /// matches the kernel: the link exists in `ctr` as a macvlan in `mode` on the master (its
    /// `link_index`), with the reported MAC, up.
    #[track_caller]
    pub fn assert_result_matches_kernel(
        &self,
        result: &Value,
        ctr: &Netns,
        ifname: &str,
        mode: &str,
    ) {
        let ifaces = result["interfaces"].as_array().cloned().unwrap_or_default();
        assert_eq!(ifaces.len(), 1, "one interface in {result}");
        assert_eq!(ifaces[0]["name"], json!(ifname), "{result}");
        assert_eq!(ifaces[0]["sandbox"], json!(ctr.path_str()), "{result}");
        let link = inspect::link(ctr, ifname);
        assert_eq!(inspect::kind(&link), "macvlan", "{link}");
        assert_eq!(macvlan_mode(&link), mode, "{link}");
        assert_eq!(link["address"], ifaces[0]["mac"], "container MAC vs result");
        assert_eq!(
            link["link_index"].as_u64(),
            Some(self.master_index()),
            "parent of {ifname} must be {}: {link}",
            Self::MASTER
        );
        assert!(
            inspect::has_flag(&link, "UP"),
            "{ifname} must be up: {link}"
        );
        for ip in result["ips"].as_array().into_iter().flatten() {
            assert_eq!(ip["interface"], json!(0), "{result}");
            let addr = ip["address"].as_str().unwrap_or_default().to_owned();
            assert!(
                inspect::global_addrs(ctr, ifname).contains(&addr),
                "{addr} not on {ifname}"
            );
        }
    }
}

/// Waits up to five seconds until no address in `ns` is tentative (IPv6 DAD running; an
/// address gets its `local` route only when DAD completes). Addresses whose DAD failed are
/// not waited for; after five seconds the caller goes on (its diff will show what moved).
pub fn settle(ns: &Netns) {
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(5)
        && !ns
            .run_ok(&["ip", "-6", "addr", "show", "tentative", "-dadfailed"])
            .trim()
            .is_empty()
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Switches IPv6 DAD off on a rig link before it comes up, so its link-local address and the
/// routes that come with it are final before a test takes its baseline.
fn no_dad(ns: &Netns, dev: &str) {
    ns.run_ok(&[
        "sysctl",
        "-q",
        "-w",
        &format!("net.ipv6.conf.{dev}.accept_dad=0"),
    ]);
}

fn lan_addr_add(lan: &Netns, cidr: &str) {
    lan.run_ok(&["ip", "addr", "add", cidr, "dev", MacvlanBench::LAN_BRIDGE]);
}

/// `linkinfo.info_data.mode` of a macvlan link from [`inspect::link`].
pub fn macvlan_mode(link: &Value) -> &str {
    link["linkinfo"]["info_data"]["mode"].as_str().unwrap_or("")
}

/// The address (without prefix) of `ips[i]` of a result.
#[track_caller]
pub fn ip_of(result: &Value, i: usize) -> String {
    result["ips"][i]["address"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| panic!("result has no ips[{i}].address: {result}"))
        .to_owned()
}

/// `snap` without host-local's `lock`, `last_reserved_ip.*` and `ipam/<net>` directory lines,
/// and without bridge timers (`"…_timer": …` lines of the LAN bridge, which tick on their own).
pub fn without_ipam_bookkeeping(snap: &Snapshot) -> Snapshot {
    snap.without_lines(|line| {
        if line.trim_start().starts_with('"')
            && line.trim_start()[1..]
                .split('"')
                .next()
                .is_some_and(|k| k.ends_with("_timer"))
        {
            return true;
        }
        let Some(path) = line.split(' ').next() else {
            return false;
        };
        match path.split('/').collect::<Vec<_>>().as_slice() {
            ["ipam", _] => line.contains(" dir "),
            ["ipam", _, file] => is_bookkeeping(file),
            _ => false,
        }
    })
}

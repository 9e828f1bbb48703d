//! A bench for the chained `tuning` plugin: one network `bridge` (+ host-local) → `tuning` in a
//! [`World`], with our tuning or the Go reference's behind the same (our) bridge, so that a
//! difference is always tuning's.
//!
//! Backups go to `<world>/state/tuning` (created 0700 before any baseline is taken), the
//! allow-list to `<world>/state/allowlist.conf`, which our tuning reads when the environment
//! variable [`ALLOWLIST_ENV`] names it (the reference only reads `/etc/cni/tuning/allowlist.conf`,
//! which the tests never touch). Snapshots are [`BridgeBench::snapshot`]s: they leave out the
//! bridge and host-local's bookkeeping; sysctls are not in them, read them with
//! [`TuningNet::sysctls`].

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, symlink};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::bridge::BridgeBench;
use crate::cnitool::CnitoolCall;
use crate::config;
use crate::exec::PluginCall;
use crate::inspect;
use crate::locate::{self, Plugin};
use crate::macvlan::settle;
use crate::netns::Netns;
use crate::process::Output;
use crate::snapshot::Snapshot;
use crate::world::World;

/// The environment variable that moves our tuning's allow-list (the plugin's test hook).
pub const ALLOWLIST_ENV: &str = "CNI_TUNING_ALLOWLIST";

/// One bridge → tuning network in a world.
#[derive(Debug)]
pub struct TuningNet<'w> {
    /// The bridge part (naming, IPAM, snapshots).
    pub bench: BridgeBench<'w>,
    /// The IPv4 subnet of the network.
    pub subnet: String,
    tuning: Plugin,
    plugin_dir: PathBuf,
    _mixed: Option<TempDir>,
}

impl<'w> TuningNet<'w> {
    /// Network `net` over `subnet` with our bridge, host-local and tuning.
    pub fn new(world: &'w World, net: &str, subnet: &str) -> TuningNet<'w> {
        let dir = locate::our_plugin_dir();
        TuningNet::build(world, net, subnet, Plugin::ours("tuning"), dir, None)
    }

    /// The same with the Go reference tuning (`/usr/lib/cni/tuning`) behind our bridge and
    /// host-local: CNI_PATH is a private directory of symlinks.
    pub fn reference(world: &'w World, net: &str, subnet: &str) -> TuningNet<'w> {
        let mixed = tempfile::Builder::new()
            .prefix("cnit-plugins-")
            .tempdir()
            .expect("create the mixed plugin directory");
        for name in ["bridge", "host-local", "loopback"] {
            symlink(Plugin::ours(name).path, mixed.path().join(name)).expect("symlink plugin");
        }
        let go = Plugin::reference("tuning");
        symlink(&go.path, mixed.path().join("tuning")).expect("symlink reference tuning");
        let dir = mixed.path().to_path_buf();
        TuningNet::build(world, net, subnet, go, dir, Some(mixed))
    }

    fn build(
        world: &'w World,
        net: &str,
        subnet: &str,
        tuning: Plugin,
        plugin_dir: PathBuf,
        mixed: Option<TempDir>,
    ) -> TuningNet<'w> {
        let data_dir = world.state_dir().join("tuning");
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&data_dir)
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Ok(()),
                _ => Err(e),
            })
            .expect("create the tuning dataDir");
        TuningNet {
            bench: BridgeBench::new(world, net),
            subnet: subnet.to_owned(),
            tuning,
            plugin_dir,
            _mixed: mixed,
        }
    }

    /// The world.
    pub fn world(&self) -> &'w World {
        self.bench.world
    }

    /// The network name.
    pub fn net(&self) -> &str {
        &self.bench.net
    }

    /// True when this bench runs the Go reference tuning.
    pub fn is_reference(&self) -> bool {
        self.tuning.dir == Path::new(locate::REFERENCE_PLUGIN_DIR)
    }

    /// Tuning's `dataDir` (inside the world).
    pub fn data_dir(&self) -> PathBuf {
        self.world().state_dir().join("tuning")
    }

    /// Where the allow-list for [`ALLOWLIST_ENV`] lives (not created until written).
    pub fn allowlist_path(&self) -> PathBuf {
        self.world().state_dir().join("allowlist.conf")
    }

    /// `<dataDir>/<id>_<ifname>.json`.
    pub fn backup_path(&self, id: &str, ifname: &str) -> PathBuf {
        self.data_dir().join(format!("{id}_{ifname}.json"))
    }

    /// The parsed backup of an attachment, if there is one.
    pub fn backup(&self, id: &str, ifname: &str) -> Option<Value> {
        let bytes = fs::read(self.backup_path(id, ifname)).ok()?;
        Some(serde_json::from_slice(&bytes).expect("backup file is JSON"))
    }

    /// Names of the files in the dataDir, sorted.
    pub fn backup_files(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.data_dir())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The bridge plugin object: gateway + host-local over the subnet, plus `extra`.
    pub fn bridge_conf(&self, extra: Value) -> Value {
        let base = json!({"isGateway": true, "ipam": self.bench.ipam(&[&self.subnet])});
        self.bench.plugin_conf(config::merge(base, extra))
    }

    /// The tuning plugin object: `{"type": "tuning", "dataDir": …}` plus `extra`.
    pub fn tuning_conf(&self, extra: Value) -> Value {
        config::tuning(config::merge(
            json!({"dataDir": self.data_dir().to_string_lossy()}),
            extra,
        ))
    }

    /// Writes `<netconf>/10-<net>.conflist` = [bridge + `bridge_extra`, tuning + `tuning_extra`].
    pub fn write(&self, version: &str, bridge_extra: Value, tuning_extra: Value) -> Value {
        let list = config::conflist(
            version,
            self.net(),
            vec![
                self.bridge_conf(bridge_extra),
                self.tuning_conf(tuning_extra),
            ],
        );
        self.world()
            .write_conflist(&format!("10-{}", self.net()), &list);
        list
    }

    /// The stdin of a direct tuning call: the tuning object as a network config, with
    /// `prevResult` when given.
    pub fn direct_conf(&self, version: &str, tuning_extra: Value, prev: Option<&Value>) -> Value {
        let mut conf = config::merge(
            json!({"cniVersion": version, "name": self.net()}),
            self.tuning_conf(tuning_extra),
        );
        if let Some(prev) = prev {
            conf["prevResult"] = prev.clone();
        }
        conf
    }

    /// A cnitool driver over this bench's plugin directory.
    pub fn tool(&self) -> CnitoolCall<'w> {
        self.world().cnitool().plugin_dir(&self.plugin_dir)
    }

    /// `cnitool add` that must succeed; returns the result.
    #[track_caller]
    pub fn add(&self, ctr: &Netns) -> Value {
        self.tool().add(self.net(), ctr).result()
    }

    /// `cnitool check`.
    pub fn check(&self, ctr: &Netns) -> Output {
        self.tool().check(self.net(), ctr)
    }

    /// `cnitool del` that must succeed silently.
    #[track_caller]
    pub fn del(&self, ctr: &Netns) {
        self.tool().del(self.net(), ctr).expect_silent_success();
    }

    /// The tuning binary of this bench.
    pub fn plugin(&self) -> &Plugin {
        &self.tuning
    }

    /// Runs `call` with this bench's tuning binary (CNI_PATH = the bench's plugin directory).
    pub fn exec(&self, call: &PluginCall) -> Output {
        let call = call.clone().cni_path(&self.plugin_dir.to_string_lossy());
        self.world().exec(&self.tuning, &call)
    }

    /// The world minus what bridge DEL keeps (see [`BridgeBench::snapshot`]), once IPv6 DAD
    /// is over everywhere.
    pub fn snapshot(&self) -> Snapshot {
        settle(self.world().host());
        for ns in self.world().containers() {
            settle(&ns);
        }
        self.bench.snapshot()
    }

    /// Waits (up to five seconds) until IPv6 DAD is over in the host namespace and in `ctr`
    /// (see [`crate::macvlan::settle`]), so that a snapshot taken right after an ADD stays
    /// valid: the host veth's link-local address gains its local route only when DAD completes.
    pub fn settle(&self, ctr: &Netns) {
        settle(self.world().host());
        settle(ctr);
    }

    /// The values of `keys` (`/` form under `/proc/sys`) seen from `ns`.
    pub fn sysctls(ns: &Netns, keys: &[&str]) -> BTreeMap<String, String> {
        keys.iter()
            .map(|k| ((*k).to_owned(), inspect::sysctl(ns, k)))
            .collect()
    }
}

/// What an operator sees of a link's tunables: MTU, MAC, promiscuity, all-multicast, txqlen.
pub fn link_tunables(ns: &Netns, dev: &str) -> Value {
    let l = inspect::link(ns, dev);
    json!({
        "mtu": l["mtu"],
        "mac": l["address"],
        "promisc": inspect::has_flag(&l, "PROMISC"),
        "allmulti": inspect::has_flag(&l, "ALLMULTI"),
        "txqlen": l["txqlen"].as_u64().unwrap_or(0),
    })
}

/// The container entry (`interfaces[i]` with a `sandbox`) of a result, by name.
#[track_caller]
pub fn container_iface(result: &Value, ifname: &str) -> Value {
    result["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["name"] == ifname && i.get("sandbox").is_some())
        .cloned()
        .unwrap_or_else(|| panic!("no container interface {ifname} in {result}"))
}

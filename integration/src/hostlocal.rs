//! A test bench for host-local: one network config, one container, shortcuts for the verbs and
//! for reading the on-disk store.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::exec::PluginCall;
use crate::locate::Plugin;
use crate::netns::Netns;
use crate::process::Output;
use crate::snapshot::Snapshot;
use crate::tree::{TreeEntry, read_tree};
use crate::world::World;

/// host-local driven directly for one network `conf` (as built by
/// [`crate::config::host_local`]) from a container namespace of `world`.
#[derive(Debug)]
pub struct HostLocal<'w> {
    /// The world the bench lives in.
    pub world: &'w World,
    /// The plugin binary under test.
    pub plugin: Plugin,
    /// The network config sent on stdin.
    pub conf: Value,
    /// The container namespace passed as `CNI_NETNS`.
    pub ctr: Netns,
}

impl<'w> HostLocal<'w> {
    /// A bench for `plugin` with `conf`, with a fresh container namespace.
    pub fn new(world: &'w World, plugin: Plugin, conf: Value) -> HostLocal<'w> {
        let ctr = world.container();
        HostLocal {
            world,
            plugin,
            conf,
            ctr,
        }
    }

    /// A bench that uses an existing container namespace (several benches can share one).
    pub fn in_netns(world: &'w World, plugin: Plugin, conf: Value, ctr: Netns) -> HostLocal<'w> {
        HostLocal {
            world,
            plugin,
            conf,
            ctr,
        }
    }

    /// Releases every listed attachment with DEL, each of which must succeed silently.
    #[track_caller]
    pub fn del_all(&self, attachments: &[(&str, &str)]) {
        for (id, ifname) in attachments {
            self.del(id, ifname).expect_silent_success();
        }
    }

    /// A bench for our host-local.
    pub fn ours(world: &'w World, conf: Value) -> HostLocal<'w> {
        HostLocal::new(world, Plugin::ours("host-local"), conf)
    }

    /// The network name from the config.
    pub fn net(&self) -> &str {
        self.conf["name"]
            .as_str()
            .expect("config has a string name")
    }

    /// `verb` for attachment (`id`, `ifname`) with the bench's config and netns.
    pub fn call(&self, verb: &str, id: &str, ifname: &str) -> PluginCall {
        PluginCall::new(verb, &self.conf)
            .id(id)
            .ifname(ifname)
            .netns(&self.ctr)
    }

    /// Runs any call with the bench's plugin.
    pub fn exec(&self, call: &PluginCall) -> Output {
        self.world.exec(&self.plugin, call)
    }

    /// ADD for (`id`, `ifname`).
    pub fn add(&self, id: &str, ifname: &str) -> Output {
        self.exec(&self.call("ADD", id, ifname))
    }

    /// DEL for (`id`, `ifname`).
    pub fn del(&self, id: &str, ifname: &str) -> Output {
        self.exec(&self.call("DEL", id, ifname))
    }

    /// CHECK for (`id`, `ifname`) with `prev_result` inserted as `prevResult`, as runtimes do.
    pub fn check(&self, id: &str, ifname: &str, prev_result: Option<&Value>) -> Output {
        let mut conf = self.conf.clone();
        if let Some(prev) = prev_result {
            conf["prevResult"] = prev.clone();
        }
        self.exec(
            &PluginCall::check(&conf)
                .id(id)
                .ifname(ifname)
                .netns(&self.ctr),
        )
    }

    /// ADD that must succeed; returns the address strings of the result's `ips`.
    #[track_caller]
    pub fn add_ok(&self, id: &str, ifname: &str) -> Vec<String> {
        addresses(&self.add(id, ifname).result())
    }

    /// The store directory `<dataDir>/<network name>`.
    pub fn store_dir(&self) -> PathBuf {
        let data_dir = self.conf["ipam"]["dataDir"]
            .as_str()
            .expect("config has ipam.dataDir");
        PathBuf::from(data_dir).join(self.net())
    }

    /// Everything in the store directory.
    pub fn store(&self) -> BTreeMap<String, TreeEntry> {
        read_tree(&self.store_dir())
    }

    /// Reservation files only (not `lock`, not `last_reserved_ip.*`): IP → content.
    pub fn reservations(&self) -> BTreeMap<String, Vec<u8>> {
        self.store()
            .into_iter()
            .filter(|(name, _)| !is_bookkeeping(name))
            .map(|(name, entry)| (name, entry.content().to_vec()))
            .collect()
    }

    /// The world snapshot without the store's bookkeeping files (`lock`, `last_reserved_ip.*`
    /// and the store directory itself), which legitimately outlive every reservation.
    pub fn snapshot(&self) -> Snapshot {
        let rel = self
            .store_dir()
            .strip_prefix(self.world.root())
            .map(|p| p.to_string_lossy().into_owned())
            .ok();
        self.world.snapshot().without_lines(|line| {
            rel.as_ref().is_some_and(|rel| {
                line.strip_prefix(rel.as_str()).is_some_and(|rest| {
                    rest.starts_with(" dir ")
                        || rest.strip_prefix('/').is_some_and(|f| {
                            f.split_once(' ')
                                .is_some_and(|(name, _)| is_bookkeeping(name))
                        })
                })
            })
        })
    }

    /// Panics unless the store holds no reservation and the world matches `baseline`
    /// (taken with [`HostLocal::snapshot`]) apart from the store's bookkeeping files.
    #[track_caller]
    pub fn assert_at_baseline(&self, baseline: &Snapshot) {
        let left = self.reservations();
        assert!(left.is_empty(), "reservations left behind: {left:?}");
        if let Some(diff) = baseline.diff(&self.snapshot()) {
            panic!("state differs from the baseline:\n{diff}");
        }
    }
}

/// `lock`, `last_reserved_ip.<n>` and our owner cache `.reservation-owners` (which goes with
/// the last reservation, but a DEL killed between the two leaves it).
pub fn is_bookkeeping(file_name: &str) -> bool {
    file_name == "lock"
        || file_name.starts_with("last_reserved_ip.")
        || file_name == ".reservation-owners"
}

/// The `address` of every entry of a 1.x/0.3.x result's `ips`.
pub fn addresses(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .unwrap_or_else(|| panic!("result has no ips: {result}"))
        .iter()
        .map(|ip| {
            ip["address"]
                .as_str()
                .expect("ips[].address is a string")
                .to_owned()
        })
        .collect()
}

//! A bench for the `bridge` plugin: one network (conflist) on one bridge in a [`World`], the
//! masquerade naming formulas, and snapshots that leave out exactly what bridge DEL keeps.
//!
//! DEL never removes the bridge, its address or `ip_forward`; everything else an ADD created
//! must be gone again. [`BridgeBench::snapshot`] therefore drops the bridge's own link, address
//! and route entries from the host namespace's sections (ip_forward is not captured at all) and
//! host-local's bookkeeping files (`lock`, `last_reserved_ip.*`), and normalises values that
//! change with time alone (bridge-port timers, nft counters).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha512};

use crate::cnitool::CnitoolCall;
use crate::config;
use crate::exec::PluginCall;
use crate::hostlocal::is_bookkeeping;
use crate::locate::{self, Plugin, REFERENCE_PLUGIN_DIR};
use crate::netns::Netns;
use crate::process::Output;
use crate::snapshot::Snapshot;
use crate::tree::read_tree;
use crate::world::World;

/// One bridge network in a world: its name, its bridge device and the plugin directory.
#[derive(Debug, Clone)]
pub struct BridgeBench<'w> {
    /// The world the network lives in.
    pub world: &'w World,
    /// Network name (`name` of the conflist; also the host-local store directory).
    pub net: String,
    /// Bridge device name (unique per world, ≤ 15 characters).
    pub bridge: String,
    plugin_dir: PathBuf,
}

impl<'w> BridgeBench<'w> {
    /// A network `net` on a bridge named after the world, using our plugins (or whatever
    /// `CNI_PLUGIN_DIR` points at). Primes the host's `nat` tables, see [`prime_nat`].
    pub fn new(world: &'w World, net: &str) -> BridgeBench<'w> {
        BridgeBench::with_dir(world, net, locate::our_plugin_dir())
    }

    /// The same, with the Go reference plugins from `/usr/lib/cni`.
    pub fn reference(world: &'w World, net: &str) -> BridgeBench<'w> {
        BridgeBench::with_dir(world, net, PathBuf::from(REFERENCE_PLUGIN_DIR))
    }

    fn with_dir(world: &'w World, net: &str, plugin_dir: PathBuf) -> BridgeBench<'w> {
        prime_nat(world.host());
        BridgeBench {
            world,
            net: net.to_owned(),
            bridge: bridge_name(world),
            plugin_dir,
        }
    }

    /// Another network on the same bridge and plugins (e.g. a second VLAN).
    pub fn sibling(&self, net: &str) -> BridgeBench<'w> {
        BridgeBench {
            net: net.to_owned(),
            ..self.clone()
        }
    }

    /// Uses bridge device `name` instead of the derived one.
    pub fn on_bridge(mut self, name: &str) -> BridgeBench<'w> {
        assert!(name.len() <= 15, "bridge name {name} is too long");
        self.bridge = name.to_owned();
        self
    }

    /// The directory the plugins come from (CNI_PATH).
    pub fn plugin_dir(&self) -> &Path {
        &self.plugin_dir
    }

    /// The bridge binary of this bench (panics with a build hint when it is missing).
    pub fn plugin(&self) -> Plugin {
        if self.plugin_dir == Path::new(REFERENCE_PLUGIN_DIR) {
            Plugin::reference("bridge")
        } else if self.plugin_dir == locate::our_plugin_dir() {
            Plugin::ours("bridge")
        } else {
            Plugin {
                name: "bridge".to_owned(),
                path: self.plugin_dir.join("bridge"),
                dir: self.plugin_dir.clone(),
            }
        }
    }

    /// A host-local `ipam` object over `subnets` in the world's `dataDir`.
    pub fn ipam(&self, subnets: &[&str]) -> Value {
        config::host_local_ipam(&self.world.data_dir(), subnets)
    }

    /// [`Self::ipam`] plus a default route for each family among `subnets`.
    pub fn ipam_with_default_routes(&self, subnets: &[&str]) -> Value {
        let mut routes = Vec::new();
        if subnets.iter().any(|s| !s.contains(':')) {
            routes.push(json!({"dst": "0.0.0.0/0"}));
        }
        if subnets.iter().any(|s| s.contains(':')) {
            routes.push(json!({"dst": "::/0"}));
        }
        config::merge(self.ipam(subnets), json!({ "routes": routes }))
    }

    /// The plugin object of the conflist: `{"type": "bridge", "bridge": <bridge>}` + `extra`.
    pub fn plugin_conf(&self, extra: Value) -> Value {
        config::bridge(&self.bridge, extra)
    }

    /// A complete single-plugin network config (stdin for a direct exec).
    pub fn conf(&self, version: &str, extra: Value) -> Value {
        config::merge(
            json!({"cniVersion": version, "name": self.net}),
            self.plugin_conf(extra),
        )
    }

    /// Writes `<netconf>/10-<net>.conflist` with the bridge plugin alone; returns the conflist.
    pub fn write(&self, version: &str, extra: Value) -> Value {
        let list = config::conflist(version, &self.net, vec![self.plugin_conf(extra)]);
        self.world
            .write_conflist(&format!("10-{}", self.net), &list);
        list
    }

    /// A cnitool driver using this bench's plugins.
    pub fn tool(&self) -> CnitoolCall<'w> {
        self.world.cnitool().plugin_dir(&self.plugin_dir)
    }

    /// `cnitool add` that must succeed; returns the result.
    #[track_caller]
    pub fn add(&self, ctr: &Netns) -> Value {
        self.tool().add(&self.net, ctr).result()
    }

    /// `cnitool add` with an explicit container ID that must succeed; returns the result.
    #[track_caller]
    pub fn add_id(&self, ctr: &Netns, id: &str) -> Value {
        self.tool().container_id(id).add(&self.net, ctr).result()
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

    /// Runs `call` with this bench's bridge binary in the host namespace.
    pub fn exec(&self, call: &PluginCall) -> Output {
        self.world.exec(&self.plugin(), call)
    }

    /// The host-local store of this network.
    pub fn store_dir(&self) -> PathBuf {
        self.world.data_dir().join(&self.net)
    }

    /// Reservation files (IP → content), without `lock` and `last_reserved_ip.*`.
    pub fn reservations(&self) -> BTreeMap<String, Vec<u8>> {
        read_tree(&self.store_dir())
            .into_iter()
            .filter(|(name, _)| !is_bookkeeping(name))
            .map(|(name, entry)| (name, entry.content().to_vec()))
            .collect()
    }

    /// The world's state minus what bridge DEL legitimately keeps (see the module docs).
    pub fn snapshot(&self) -> Snapshot {
        without_kept_state(&self.world.snapshot(), self.world.host(), &self.bridge)
    }

    /// Like [`BridgeBench::snapshot`] but only the host namespace and the directory tree (for
    /// tests that delete a container namespace on purpose).
    pub fn host_snapshot(&self) -> Snapshot {
        let snap =
            Snapshot::netns(self.world.host()).merge(Snapshot::dir("world", self.world.root()));
        without_kept_state(&snap, self.world.host(), &self.bridge)
    }

    /// Panics unless the bridge still exists in the host namespace as a bridge.
    #[track_caller]
    pub fn assert_bridge_kept(&self) {
        let link = crate::inspect::link(self.world.host(), &self.bridge);
        assert_eq!(crate::inspect::kind(&link), "bridge", "{link}");
    }
}

/// A bridge name unique to `world`: `br<pid>x<n>` from its host namespace `cnit-<pid>-<n>h`.
pub fn bridge_name(world: &World) -> String {
    let host = world.host().name();
    let digits: Vec<&str> = host
        .trim_start_matches(crate::netns::PREFIX)
        .trim_end_matches('h')
        .split('-')
        .collect();
    let name = format!("br{}", digits.join("x"));
    if name.len() <= 15 {
        name
    } else {
        // Very large pids: fall back to a hash of the namespace name.
        let digest = Sha512::digest(host.as_bytes());
        format!("br{}", hex(&digest[..6]))
    }
}

/// Makes sure the `nat` tables (IPv4 and IPv6) and their POSTROUTING base chains exist in `ns`.
///
/// With iptables-nft the table and the base chain appear the first time any rule is added and
/// stay after the last one is removed; a real host has them already. Priming before the
/// baseline means a plugin that adds and removes its rules returns to the baseline exactly.
pub fn prime_nat(ns: &Netns) {
    for tool in ["iptables", "ip6tables"] {
        ns.run_ok(&[tool, "-t", "nat", "-N", "CNIT-PRIME"]);
        ns.run_ok(&[tool, "-t", "nat", "-A", "POSTROUTING", "-j", "CNIT-PRIME"]);
        ns.run_ok(&[tool, "-t", "nat", "-D", "POSTROUTING", "-j", "CNIT-PRIME"]);
        ns.run_ok(&[tool, "-t", "nat", "-X", "CNIT-PRIME"]);
    }
}

/// `CNI-` + the first 24 hex digits of SHA-512(network name + container ID).
pub fn masq_chain(net: &str, container_id: &str) -> String {
    let digest = Sha512::digest(format!("{net}{container_id}").as_bytes());
    format!("CNI-{}", &hex(&digest)[..24])
}

/// The rules `iptables-save -t nat` shows for one masqueraded address, sorted: `ip` is the
/// container's address (no prefix), `subnet` its network in CIDR form.
pub fn masq_rules(net: &str, container_id: &str, ip: &str, subnet: &str) -> Vec<String> {
    let chain = masq_chain(net, container_id);
    let comment = format!(r#"-m comment --comment "name: \"{net}\" id: \"{container_id}\"""#);
    let (host_len, multicast) = if ip.contains(':') {
        (128, "ff00::/8")
    } else {
        (32, "224.0.0.0/4")
    };
    let mut rules = vec![
        format!("-A POSTROUTING -s {ip}/{host_len} {comment} -j {chain}"),
        format!("-A {chain} -d {subnet} {comment} -j ACCEPT"),
        format!("-A {chain} ! -d {multicast} {comment} -j MASQUERADE"),
    ];
    rules.sort();
    rules
}

/// True for `veth` + 8 lowercase hex digits, the host-side veth name formula.
pub fn is_host_veth_name(name: &str) -> bool {
    name.strip_prefix("veth").is_some_and(|rest| {
        rest.len() == 8
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// True for a lowercase colon-separated unicast MAC address (`0a:58:…`).
pub fn is_mac(mac: &str) -> bool {
    let parts: Vec<&str> = mac.split(':').collect();
    parts.len() == 6
        && parts.iter().all(|p| {
            p.len() == 2
                && p.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        && u8::from_str_radix(parts[0], 16).is_ok_and(|first| first & 1 == 0)
}

/// A bridge ADD result with its random parts checked and replaced: every `interfaces[].mac`
/// must be a unicast MAC (→ `"<mac>"`), `interfaces[1].name` must be `veth` + 8 hex
/// (→ `"<veth>"`); empty members are stripped (see [`crate::strip_empty`]).
#[track_caller]
pub fn result_shape(result: &Value) -> Value {
    let mut shape = crate::strip_empty(result.clone());
    if let Some(ifaces) = shape["interfaces"].as_array_mut() {
        for (i, iface) in ifaces.iter_mut().enumerate() {
            if let Some(mac) = iface.get("mac").and_then(Value::as_str) {
                assert!(
                    is_mac(mac),
                    "interfaces[{i}].mac {mac:?} is not a unicast MAC"
                );
                iface["mac"] = json!("<mac>");
            }
            if i == 1 {
                let name = iface["name"].as_str().unwrap_or_default();
                assert!(is_host_veth_name(name), "host veth name {name:?}");
                iface["name"] = json!("<veth>");
            }
        }
    }
    shape
}

/// `interfaces[i].name` of a result.
#[track_caller]
pub fn iface_name(result: &Value, i: usize) -> String {
    result["interfaces"][i]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("result has no interfaces[{i}].name: {result}"))
        .to_owned()
}

impl BridgeBench<'_> {
    /// Panics unless the kernel matches the interfaces of an ADD `result` for container `ctr`
    /// (ifname `ifname`): the bridge and host veth exist with the reported MACs, the veth's
    /// master is the bridge and the container interface has the reported MAC.
    #[track_caller]
    pub fn assert_result_matches_kernel(&self, result: &Value, ctr: &Netns, ifname: &str) {
        use crate::inspect::{has_flag, kind, link};
        let host = self.world.host();
        assert_eq!(iface_name(result, 0), self.bridge, "{result}");
        let br = link(host, &self.bridge);
        assert_eq!(kind(&br), "bridge");
        assert_eq!(br["address"], result["interfaces"][0]["mac"], "bridge MAC");
        let veth = link(host, &iface_name(result, 1));
        assert_eq!(kind(&veth), "veth");
        assert_eq!(veth["master"], json!(self.bridge), "host veth master");
        assert_eq!(
            veth["address"], result["interfaces"][1]["mac"],
            "host veth MAC"
        );
        assert!(has_flag(&veth, "UP"), "host veth must be up: {veth}");
        assert_eq!(iface_name(result, 2), ifname);
        assert_eq!(result["interfaces"][2]["sandbox"], json!(ctr.path_str()));
        let inner = link(ctr, ifname);
        assert_eq!(kind(&inner), "veth");
        assert_eq!(
            inner["address"], result["interfaces"][2]["mac"],
            "container MAC"
        );
    }
}

/// The comment the nftables masquerade backend puts on the rule of one attachment:
/// `<16 hex of SHA-512(net)>-<16 hex of SHA-512(ifname:containerID)>, net: …, if: …, id: …`
/// (at most 128 bytes).
pub fn nft_masq_comment(net: &str, ifname: &str, container_id: &str) -> String {
    let net_hash = hex(&Sha512::digest(net.as_bytes()));
    let inst_hash = hex(&Sha512::digest(
        format!("{ifname}:{container_id}").as_bytes(),
    ));
    let mut comment = format!(
        "{}-{}, net: {net}, if: {ifname}, id: {container_id}",
        &net_hash[..16],
        &inst_hash[..16]
    );
    comment.truncate(128);
    comment
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// nft tables the plugins share between attachments and legitimately keep once created:
/// macspoofchk's `bridge nat` and the nftables masquerade backend's table.
pub const SHARED_NFT_TABLES: &[&str] = &["table bridge nat", "table inet cni_plugins_masquerade"];

/// `snap` with every [`SHARED_NFT_TABLES`] block dropped from the `nft` sections when no rule
/// in it carries a `comment` (per-attachment rules always do; table and chain comments do not
/// count): the skeleton a DEL leaves.
pub fn without_shared_nft_skeletons(snap: &Snapshot) -> Snapshot {
    snap.map_sections(|name, text| {
        if name.ends_with(": nft") {
            drop_nft_skeletons(text)
        } else {
            text.to_owned()
        }
    })
}

fn drop_nft_skeletons(text: &str) -> String {
    let mut out = String::new();
    let mut block: Vec<&str> = Vec::new();
    for line in text.lines() {
        if block.is_empty() && !line.starts_with("table ") {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        block.push(line);
        if line == "}" {
            let head = block[0].trim_end_matches(" {");
            // Table and chain comments stand on their own line; rule comments end a rule.
            let skeleton = SHARED_NFT_TABLES.contains(&head)
                && !block
                    .iter()
                    .any(|l| l.contains("comment \"") && !l.trim_start().starts_with("comment"));
            if !skeleton {
                block.iter().for_each(|l| {
                    out.push_str(l);
                    out.push('\n');
                });
            }
            block.clear();
        }
    }
    block.iter().for_each(|l| {
        out.push_str(l);
        out.push('\n');
    });
    out
}

/// `snap` without the bridge's own entries in `host`'s link/addr/route sections, without
/// host-local bookkeeping files, with bridge-port timers and nft counters normalised.
pub fn without_kept_state(snap: &Snapshot, host: &Netns, bridge: &str) -> Snapshot {
    let host_prefix = format!("netns {}: ", host.name());
    snap.map_sections(|name, text| {
        let what = name.rsplit(": ").next().unwrap_or_default();
        let is_host = name.starts_with(&host_prefix);
        match what {
            "link" | "addr" | "route4" | "route6" if name.starts_with("netns ") => {
                filter_ip_json(text, if is_host { Some(bridge) } else { None })
            }
            "nft" => normalise_nft_counters(text),
            _ if name == "dir world" => drop_store_bookkeeping(text),
            _ => text.to_owned(),
        }
    })
}

fn filter_ip_json(text: &str, bridge: Option<&str>) -> String {
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(text) else {
        return text.to_owned();
    };
    let kept: Vec<Value> = items
        .into_iter()
        .filter(|item| bridge.is_none_or(|br| item["ifname"] != br && item["dev"] != br))
        .map(drop_timers)
        .collect();
    let mut out = serde_json::to_string_pretty(&Value::Array(kept)).expect("serialise JSON");
    out.push('\n');
    out
}

/// Removes `*_timer` members (bridge and bridge-port timers tick on their own).
fn drop_timers(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| !k.ends_with("_timer"))
                .map(|(k, v)| (k, drop_timers(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(drop_timers).collect()),
        other => other,
    }
}

/// `counter packets 12 bytes 900` → `counter`.
fn normalise_nft_counters(text: &str) -> String {
    text.lines()
        .map(|line| {
            let mut out = String::new();
            let mut rest = line;
            while let Some(at) = rest.find("counter packets ") {
                out.push_str(&rest[..at]);
                out.push_str("counter");
                let tail = &rest[at + "counter packets ".len()..];
                // Skip "<n> bytes <m>".
                let mut words = tail.splitn(4, ' ');
                let _packets = words.next();
                let _bytes_word = words.next();
                let _bytes = words.next();
                rest = words.next().map_or("", |r| r);
                if !rest.is_empty() {
                    out.push(' ');
                }
            }
            out.push_str(rest);
            out.push('\n');
            out
        })
        .collect()
}

/// Drops `ipam/<net>` directory lines and `lock`/`last_reserved_ip.*` files of any network.
fn drop_store_bookkeeping(text: &str) -> String {
    text.lines()
        .filter(|line| {
            let Some(path) = line.split(' ').next() else {
                return true;
            };
            let parts: Vec<&str> = path.split('/').collect();
            let bookkeeping = match parts.as_slice() {
                ["ipam", _] => line.contains(" dir "),
                ["ipam", _, file] => is_bookkeeping(file),
                _ => false,
            };
            !bookkeeping
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_name_matches_the_lab_value() {
        // shared/docs/cni-facts.md §2.0: net cnixnet, id ctr1.
        assert_eq!(
            masq_chain("cnixnet", "ctr1"),
            "CNI-89724df900daa5db77d08f33"
        );
    }

    #[test]
    fn masq_rules_match_the_lab_layout() {
        let rules = masq_rules("cnixnet", "ctr1", "10.99.0.2", "10.99.0.0/24");
        let c = r#"-m comment --comment "name: \"cnixnet\" id: \"ctr1\"""#;
        assert_eq!(
            rules,
            vec![
                format!("-A CNI-89724df900daa5db77d08f33 ! -d 224.0.0.0/4 {c} -j MASQUERADE"),
                format!("-A CNI-89724df900daa5db77d08f33 -d 10.99.0.0/24 {c} -j ACCEPT"),
                format!("-A POSTROUTING -s 10.99.0.2/32 {c} -j CNI-89724df900daa5db77d08f33"),
            ]
        );
    }

    #[test]
    fn nft_counters_are_normalised() {
        assert_eq!(
            normalise_nft_counters("\t\tip saddr 10.0.0.2 counter packets 3 bytes 252 jump X\n"),
            "\t\tip saddr 10.0.0.2 counter jump X\n"
        );
        assert_eq!(
            normalise_nft_counters("a counter packets 0 bytes 0\n"),
            "a counter\n"
        );
    }

    #[test]
    fn empty_shared_nft_tables_are_dropped() {
        let text = "table bridge nat {\n\tchain PREROUTING {\n\t\ttype filter hook prerouting \
                    priority dstnat; policy accept;\n\t}\n}\ntable ip nat {\n}\n\
                    table inet cni_plugins_masquerade {\n\tchain x {\n\t\tdrop comment \"a\"\n\t}\n}\n\
                    table inet cni_plugins_masquerade {\n\tcomment \"t\"\n\tchain y {\n\t\tgoto z\n\t}\n}\n";
        assert_eq!(
            drop_nft_skeletons(text),
            "table ip nat {\n}\ntable inet cni_plugins_masquerade {\n\tchain x {\n\t\tdrop comment \"a\"\n\t}\n}\n"
        );
    }

    #[test]
    fn bookkeeping_lines_are_dropped() {
        let text = "cache dir 0755\nipam dir 0755\nipam/n dir 0755\nipam/n/lock file 0644 \"\"\n\
                    ipam/n/last_reserved_ip.0 file 0600 \"10.0.0.2\"\nipam/n/10.0.0.2 file 0600 \"x\"\n";
        assert_eq!(
            drop_store_bookkeeping(text),
            "cache dir 0755\nipam dir 0755\nipam/n/10.0.0.2 file 0600 \"x\"\n"
        );
    }

    #[test]
    fn bridge_entries_and_timers_are_dropped() {
        let text = r#"[{"ifname":"lo"},{"ifname":"br1","x":1},{"dev":"br1"},
            {"ifname":"veth1","linkinfo":{"info_slave_data":{"hold_timer":0.5,"state":"fwd"}}}]"#;
        let out: Value = serde_json::from_str(&filter_ip_json(text, Some("br1"))).unwrap();
        assert_eq!(
            out,
            json!([{"ifname":"lo"},{"ifname":"veth1","linkinfo":{"info_slave_data":{"state":"fwd"}}}])
        );
    }
}

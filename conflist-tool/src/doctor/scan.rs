//! Finding staleness: the cache against live namespaces, reservations against the cache,
//! masquerade chains against cached attachments, isolation rules against live bridges, bridges
//! against network files, plugins against the CNI path.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;

use cni_netfilter::iptables::IpFamily;
use cni_netfilter::names;
use serde_json::Value;

use super::{Action, Environment, Kind, Problem, Status};
use crate::model::{ConfDir, ConfList};
use crate::runtime::cache::{self, CachedAttachment};
use crate::runtime::invoke;
use crate::runtime::{Runtime, list_version, netns};
use crate::subnets;

/// Chain names of the isolation stages the firewall plugin writes.
const STAGE_1: &str = "CNI-ISOLATION-STAGE-1";
const STAGE_2: &str = "CNI-ISOLATION-STAGE-2";

fn problem(kind: Kind, network: Option<&str>, subject: String, message: String) -> Problem {
    Problem {
        kind,
        network: network.map(str::to_owned),
        subject,
        message,
        fix: None,
        status: Status::Found,
        action: None,
    }
}

fn with_fix(mut p: Problem, fix: &str, action: Action) -> Problem {
    p.fix = Some(fix.to_owned());
    p.action = Some(action);
    p
}

/// One host-local reservation file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reservation {
    pub ip: IpAddr,
    pub container_id: String,
    pub ifname: Option<String>,
}

/// The host-local data directory of a list's first `ipam` of type host-local.
pub(super) fn data_dir(list: &ConfList) -> Option<PathBuf> {
    list.plugins.iter().find_map(|p| {
        let ipam = p.get("ipam")?.as_object()?;
        if ipam.get("type").and_then(Value::as_str) != Some("host-local") {
            return None;
        }
        let dir = ipam.get("dataDir").and_then(Value::as_str).unwrap_or("");
        Some(PathBuf::from(if dir.is_empty() {
            host_local::DEFAULT_DATA_DIR
        } else {
            dir
        }))
    })
}

/// Reservations of a network (`<dataDir>/<name>/<ip>` holding `<id>\r\n<ifname>`).
pub(super) fn reservations(list: &ConfList) -> Vec<Reservation> {
    let Some(dir) = data_dir(list).map(|d| d.join(&list.name)) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Reservation> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let ip: IpAddr = e.file_name().to_str()?.parse().ok()?;
            let text = fs::read_to_string(e.path()).ok()?;
            let (id, ifname) = match text.split_once("\r\n") {
                Some((id, ifname)) => (id.trim(), Some(ifname.trim().to_owned())),
                None => (text.trim(), None),
            };
            Some(Reservation {
                ip,
                container_id: id.to_owned(),
                ifname,
            })
        })
        .collect();
    out.sort_by_key(|r| r.ip);
    out
}

fn is_masquerade_chain(chain: &str) -> bool {
    chain.len() == names::MAX_CHAIN_LEN
        && chain.strip_prefix(names::CHAIN_PREFIX).is_some_and(|h| {
            h.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
}

/// Every problem, in a fixed order: cache, reservations, masquerade, isolation, bridges, plugins.
pub(super) fn all(dir: &ConfDir, rt: &Runtime, env: &Environment) -> Vec<Problem> {
    let mut out = Vec::new();
    let lists: Vec<&ConfList> = dir.effective().into_iter().map(|(_, l)| l).collect();
    let mut cached: Vec<CachedAttachment> = Vec::new();
    let mut alive: Vec<CachedAttachment> = Vec::new();
    for (path, entry) in cache::list(&rt.cache_dir) {
        match entry {
            Err(e) => out.push(with_fix(
                problem(
                    Kind::CorruptCache,
                    None,
                    path.display().to_string(),
                    e.to_string(),
                ),
                "remove the file (libcni does the same when it reads it)",
                Action::RemoveFile(path),
            )),
            Ok(a) => {
                cached.push(a.clone());
                if netns::attachment_alive(&a) == Some(false) {
                    let p = problem(
                        Kind::StaleCache,
                        Some(&a.network_name),
                        format!("{}/{}", a.container_id, a.if_name),
                        format!("network namespace {} is gone", a.netns),
                    );
                    out.push(with_fix(
                        p,
                        "DEL through the network's plugins, which also removes the entry",
                        Action::Del {
                            network: a.network_name.clone(),
                            attachment: Box::new(a),
                        },
                    ));
                } else {
                    alive.push(a);
                }
            }
        }
    }
    let mut reserved: HashSet<(String, String)> = HashSet::new();
    for list in &lists {
        for r in reservations(list) {
            reserved.insert((list.name.clone(), r.container_id.clone()));
            let held = cached.iter().any(|a| {
                a.network_name == list.name
                    && a.container_id == r.container_id
                    && r.ifname.as_deref().is_none_or(|i| i == a.if_name)
            });
            if held {
                continue;
            }
            let subject = format!(
                "{} ({}/{})",
                r.ip,
                r.container_id,
                r.ifname.as_deref().unwrap_or("?")
            );
            let p = problem(
                Kind::OrphanReservation,
                Some(&list.name),
                subject,
                "host-local reservation with no cached attachment".into(),
            );
            let Some(ifname) = r.ifname.clone() else {
                out.push(p);
                continue;
            };
            let attachment = CachedAttachment {
                kind: cache::KIND_V1.into(),
                container_id: r.container_id.clone(),
                config: list.bytes.clone(),
                if_name: ifname,
                network_name: list.name.clone(),
                netns: String::new(),
                cni_args: Vec::new(),
                capability_args: serde_json::Map::new(),
                result: None,
            };
            out.push(with_fix(
                p,
                "DEL of the attachment (no netns) through the network's plugins",
                Action::Del {
                    network: list.name.clone(),
                    attachment: Box::new(attachment),
                },
            ));
        }
    }
    masquerade(env, &alive, &reserved, &mut out);
    isolation(env, &mut out);
    bridges(dir, env, &mut out);
    plugins(&lists, rt, &mut out);
    out
}

fn masquerade(
    env: &Environment,
    alive: &[CachedAttachment],
    reserved: &HashSet<(String, String)>,
    out: &mut Vec<Problem>,
) {
    let mut seen = HashSet::new();
    for (family, nat) in &env.nat {
        for chain in nat.chains.iter().filter(|c| is_masquerade_chain(c)) {
            let owner = nat
                .rules_in(chain)
                .find_map(|r| r.comment().and_then(names::parse_comment));
            let Some((network, container_id)) = owner else {
                continue;
            };
            let valid = reserved.contains(&(network.clone(), container_id.clone()))
                || alive
                    .iter()
                    .any(|a| a.network_name == network && a.container_id == container_id);
            if valid || !seen.insert((chain.clone(), network.clone())) {
                continue;
            }
            let keep = alive
                .iter()
                .filter(|a| a.network_name == network)
                .map(|a| (a.container_id.clone(), a.if_name.clone()))
                .collect();
            let p = problem(
                Kind::OrphanMasquerade,
                Some(&network),
                format!("{} {chain}", family.iptables()),
                format!(
                    "masquerade chain of container {container_id} with no live cached attachment"
                ),
            );
            out.push(with_fix(
                p,
                "masquerade GC of the network, keeping its live attachments",
                Action::MasqueradeGc { network, keep },
            ));
        }
    }
}

fn isolation(env: &Environment, out: &mut Vec<Problem>) {
    for (family, filter) in &env.filter {
        for rule in &filter.rules {
            let bridge = match rule.chain.as_str() {
                STAGE_1 => rule.option("-i"),
                STAGE_2 => rule.option("-o"),
                _ => None,
            };
            let Some(bridge) = bridge.filter(|b| env.host.link(b).is_none()) else {
                continue;
            };
            let p = problem(
                Kind::OrphanIsolation,
                None,
                format!(
                    "{} -A {} {}",
                    family.iptables(),
                    rule.chain,
                    rule.args.join(" ")
                ),
                format!("isolation rule for bridge {bridge}, which does not exist"),
            );
            out.push(with_fix(
                p,
                "delete the rule",
                Action::DeleteRule {
                    v6: *family == IpFamily::V6,
                    table: "filter".into(),
                    chain: rule.chain.clone(),
                    args: rule.args.clone(),
                },
            ));
        }
    }
}

fn bridges(dir: &ConfDir, env: &Environment, out: &mut Vec<Problem>) {
    let named: HashSet<String> = dir
        .lists()
        .filter_map(|(_, l)| subnets::list_bridge(l))
        .collect();
    for link in env.host.links.iter().filter(|l| l.kind == "bridge") {
        if !link.name.starts_with("cni") || named.contains(&link.name) {
            continue;
        }
        let ports = env.host.ports_of(&link.name);
        let p = problem(
            Kind::OrphanBridge,
            None,
            link.name.clone(),
            format!("bridge no network file in {} names", dir.dir.display()),
        );
        if ports.is_empty() {
            out.push(with_fix(
                p,
                "delete the bridge (it has no ports)",
                Action::DeleteBridge(link.name.clone()),
            ));
        } else {
            let mut p = p;
            p.message
                .push_str(&format!(" ({} ports still attached)", ports.len()));
            out.push(p);
        }
    }
}

fn plugins(lists: &[&ConfList], rt: &Runtime, out: &mut Vec<Problem>) {
    let mut versions: HashMap<PathBuf, Option<Vec<String>>> = HashMap::new();
    for list in lists {
        let version = list_version(list);
        let mut types: Vec<String> = list.plugin_types();
        types.extend(list.plugins.iter().filter_map(|p| {
            p.get("ipam")?
                .get("type")?
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        }));
        types.dedup();
        for t in types {
            let binary = match invoke::find(&t, &rt.cni_path) {
                Ok(b) => b,
                Err(e) => {
                    out.push(problem(
                        Kind::PluginMissing,
                        Some(&list.name),
                        t.clone(),
                        e.to_string(),
                    ));
                    continue;
                }
            };
            let supported = versions
                .entry(binary.clone())
                .or_insert_with(|| invoke::versions(&binary, &version).ok());
            if let Some(s) = supported
                && !version.is_empty()
                && !s.contains(&version)
            {
                out.push(problem(
                    Kind::PluginVersion,
                    Some(&list.name),
                    t.clone(),
                    format!(
                        "plugin {t} does not support config version {version:?} (it supports {})",
                        s.join(", ")
                    ),
                ));
            }
        }
    }
}

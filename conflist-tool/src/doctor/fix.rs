//! `doctor --fix`: DEL stale and orphaned attachments through the network's own plugins first
//! (that also releases their reservations and masquerade rules), then the GC-style cleanups.

use std::collections::HashMap;

use cni_netfilter::iptables::{IpFamily, Iptables, RestoreBatch};
use cni_netfilter::masquerade;

use super::{Action, Environment, Report, Status};
use crate::host;
use crate::model::{self, ConfDir};
use crate::runtime::{Runtime, RuntimeConf};

fn order(a: &Action) -> u8 {
    match a {
        Action::Del { .. } => 0,
        Action::RemoveFile(_) => 1,
        Action::MasqueradeGc { .. } => 2,
        Action::DeleteRule { .. } => 3,
        Action::DeleteBridge(_) => 4,
    }
}

fn apply(dir: &ConfDir, rt: &Runtime, env: &Environment, action: &Action) -> Result<(), String> {
    match action {
        Action::Del {
            network,
            attachment,
        } => {
            let from_cache;
            let list = match dir
                .effective()
                .into_iter()
                .find(|(_, l)| &l.name == network)
            {
                Some((_, l)) => l,
                None => {
                    from_cache = model::parse_conflist(&attachment.config, &[]).map_err(|e| {
                        format!("the network file is gone and the cached config is unusable: {e}")
                    })?;
                    &from_cache
                }
            };
            let conf = RuntimeConf {
                container_id: attachment.container_id.clone(),
                netns: attachment.netns.clone(),
                ifname: attachment.if_name.clone(),
                args: attachment.cni_args.clone(),
                capability_args: attachment.capability_args.clone(),
            };
            rt.del(list, &conf).map_err(|e| e.to_string())
        }
        Action::RemoveFile(path) => std::fs::remove_file(path).map_err(|e| e.to_string()),
        Action::MasqueradeGc { network, keep } => {
            let keep: Vec<(&str, &str)> =
                keep.iter().map(|(c, i)| (c.as_str(), i.as_str())).collect();
            masquerade::gc_all(&env.runner, network, &keep).map_err(|e| e.to_string())
        }
        Action::DeleteRule {
            v6,
            table,
            chain,
            args,
        } => {
            let family = if *v6 { IpFamily::V6 } else { IpFamily::V4 };
            let mut batch = RestoreBatch::new(table);
            batch.delete(chain, args);
            Iptables::new(env.runner.clone(), family)
                .restore(&batch)
                .map_err(|e| e.to_string())
        }
        Action::DeleteBridge(name) => host::delete_link(name).map_err(|e| format!("{e:#}")),
    }
}

/// Applies every fixable problem's action (each distinct action once), recording the outcome.
pub fn fix(dir: &ConfDir, rt: &Runtime, env: &Environment, report: &mut Report) {
    let mut indices: Vec<usize> = (0..report.problems.len())
        .filter(|i| report.problems[*i].action.is_some())
        .collect();
    indices.sort_by_key(|i| report.problems[*i].action.as_ref().map_or(9, order));
    let mut done: HashMap<String, Result<(), String>> = HashMap::new();
    for i in indices {
        let Some(action) = report.problems[i].action.clone() else {
            continue;
        };
        let key = format!("{action:?}");
        let outcome = done
            .entry(key)
            .or_insert_with(|| apply(dir, rt, env, &action))
            .clone();
        report.problems[i].status = match outcome {
            Ok(()) => Status::Fixed,
            Err(e) => Status::FixFailed(e),
        };
    }
}

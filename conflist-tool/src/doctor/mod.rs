//! `doctor`: the state real hosts accumulate and nobody shows — cache entries whose netns is
//! gone, host-local reservations nobody holds, `CNI-*` masquerade chains without an owner,
//! isolation rules for bridges that no longer exist, bridges no network file names, plugins
//! missing or too old. `--fix` removes only what is provably stale, through DEL and GC.

mod fix;
mod scan;

use std::path::PathBuf;
use std::sync::Arc;

use cni_netfilter::iptables::{IpFamily, Iptables, SavedTable};
use cni_netfilter::{CommandRunner, SystemRunner};
use serde::Serialize;

use crate::host::{HostError, HostSnapshot};
use crate::model::ConfDir;
use crate::runtime::Runtime;
use crate::runtime::cache::CachedAttachment;

pub use fix::fix;

/// What kind of staleness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A cache entry whose network namespace is gone.
    StaleCache,
    /// A cache file that cannot be parsed.
    CorruptCache,
    /// A host-local reservation no cached attachment holds.
    OrphanReservation,
    /// A `CNI-<hash>` masquerade chain no attachment owns.
    OrphanMasquerade,
    /// An isolation rule for a bridge that does not exist.
    OrphanIsolation,
    /// A `cni*` bridge no network file names.
    OrphanBridge,
    /// A plugin binary missing from the CNI path.
    PluginMissing,
    /// A plugin that does not support the list's version.
    PluginVersion,
}

/// How a problem can be fixed.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// DEL the attachment through the network's plugins (from the file, or the cached config).
    Del {
        /// The network.
        network: String,
        /// The attachment (netns may be gone; empty when unknown).
        attachment: Box<CachedAttachment>,
    },
    /// Remove an unreadable cache file (libcni does the same).
    RemoveFile(PathBuf),
    /// Masquerade GC of a network, keeping these `(containerID, ifname)`.
    MasqueradeGc {
        /// The network.
        network: String,
        /// Attachments still valid.
        keep: Vec<(String, String)>,
    },
    /// Delete one iptables rule.
    DeleteRule {
        /// Family.
        v6: bool,
        /// Table.
        table: String,
        /// Chain.
        chain: String,
        /// Rule arguments.
        args: Vec<String>,
    },
    /// Delete a bridge link with no ports.
    DeleteBridge(String),
}

/// Where a problem stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "error")]
pub enum Status {
    /// Found, not (yet) fixed.
    Found,
    /// Fixed by `--fix`.
    Fixed,
    /// `--fix` tried and failed.
    FixFailed(String),
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// Kind.
    pub kind: Kind,
    /// The network concerned, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// What is stale (address, file, chain, bridge, plugin).
    pub subject: String,
    /// Why it is a problem.
    pub message: String,
    /// What `--fix` does about it (`None`: nothing, it needs a human).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Status.
    pub status: Status,
    /// The fix.
    #[serde(skip)]
    pub action: Option<Action>,
}

/// Every problem found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// Problems in discovery order.
    pub problems: Vec<Problem>,
}

impl Report {
    /// True when a problem is not fixed.
    pub fn problems_left(&self) -> bool {
        self.problems.iter().any(|p| p.status != Status::Fixed)
    }
}

/// The host state doctor looks at.
pub struct Environment {
    /// Links and addresses.
    pub host: HostSnapshot,
    /// `nat` tables (v4, v6) that could be read.
    pub nat: Vec<(IpFamily, SavedTable)>,
    /// `filter` tables (v4, v6) that could be read.
    pub filter: Vec<(IpFamily, SavedTable)>,
    /// Runs iptables / nft for fixes.
    pub runner: Arc<dyn CommandRunner>,
}

impl Environment {
    /// Reads links, addresses and the iptables tables (families whose tools are missing are
    /// left out).
    pub fn read() -> Result<Environment, HostError> {
        let runner: Arc<dyn CommandRunner> = Arc::new(SystemRunner);
        let mut nat = Vec::new();
        let mut filter = Vec::new();
        for family in IpFamily::ALL {
            let tools = Iptables::new(runner.clone(), family);
            if let Ok(t) = tools.save("nat") {
                nat.push((family, t));
            }
            if let Ok(t) = tools.save("filter") {
                filter.push((family, t));
            }
        }
        Ok(Environment {
            host: HostSnapshot::read()?,
            nat,
            filter,
            runner,
        })
    }
}

/// Looks for every kind of staleness (only for network `only`, when given).
pub fn diagnose(dir: &ConfDir, rt: &Runtime, env: &Environment, only: Option<&str>) -> Report {
    let mut problems = scan::all(dir, rt, env);
    if let Some(name) = only {
        problems.retain(|p| p.network.as_deref() == Some(name));
    }
    Report { problems }
}

/// The report as text.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for p in &report.problems {
        let net = p.network.as_deref().unwrap_or("-");
        out.push_str(&format!(
            "{:<19} {net:<14} {}: {}",
            kind_name(p.kind),
            p.subject,
            p.message
        ));
        match (&p.status, &p.fix) {
            (Status::Fixed, _) => out.push_str("  [fixed]"),
            (Status::FixFailed(e), _) => out.push_str(&format!("  [fix failed: {e}]")),
            (Status::Found, Some(f)) => out.push_str(&format!("  [--fix: {f}]")),
            (Status::Found, None) => {}
        }
        out.push('\n');
    }
    let fixed = report
        .problems
        .iter()
        .filter(|p| p.status == Status::Fixed)
        .count();
    match (report.problems.len(), fixed) {
        (0, _) => out.push_str("no problems found\n"),
        (n, 0) => out.push_str(&format!("{n} problem(s) found\n")),
        (n, f) => out.push_str(&format!("{n} problem(s) found, {f} fixed\n")),
    }
    out
}

fn kind_name(k: Kind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;

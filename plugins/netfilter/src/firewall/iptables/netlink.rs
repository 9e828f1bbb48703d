//! The steady-state ADD and DEL without an iptables read, asking nf_tables directly (see
//! [`crate::nfnl`]) on hosts where iptables is iptables-nft.
//!
//! - ADD: the shared rules a first ADD relies on ([`shared_requirements`]) are looked up in the
//!   few short chains they live in — `FORWARD`, the isolation stages, and only the top of
//!   `CNI-FORWARD`, where the admin jump is inserted — so the cost is the same at any number
//!   of containers. When all are there the caller appends with a batch holding no `-C`.
//! - DEL and GC: `FORWARD`, the plugin's chains and the admin chains are read into the same
//!   model `iptables-save` would give, the same teardown plan runs on it, and what it deletes
//!   — the attachment's rules, a bridge's isolation rules, chains left idle — goes by handle in
//!   one nf_tables transaction. A rule in `CNI-FORWARD` without an owner tag (the Go plugin's:
//!   only the tools' full view attributes it), a foreign rule leading into our chains, or a plan
//!   that would add anything sends the teardown to `iptables-save` instead.

use std::collections::HashMap;

use super::edit::TableEdit;
use super::plan::shared_requirements;
use super::rules::{ADMIN_COMMENT, Args, FILTER, FORWARD, PRIV_CHAIN, STAGE1, STAGE2};
use crate::NetfilterError;
use crate::firewall::{ContainerFirewall, OwnerTag};
use crate::iptables::{IpFamily, SavedRule, SavedTable};
use crate::nfnl::{Deletion, NfRules, NftRule};

/// How many rules at the top of `CNI-FORWARD` may precede the admin jump. ADD inserts it at
/// position 1; an admin who inserted rules above it sends ADD to the reading path.
const ADMIN_JUMP_DEPTH: usize = 4;

/// Whether every shared rule `fw` relies on is in `family`'s filter table.
pub(crate) fn requirements_met(
    nf: &dyn NfRules,
    family: IpFamily,
    fw: &ContainerFirewall,
) -> Result<bool, NetfilterError> {
    let mut chains: HashMap<&str, Vec<Args>> = HashMap::new();
    for (chain, wanted) in shared_requirements(fw) {
        if !chains.contains_key(chain) {
            let depth = (chain == PRIV_CHAIN).then_some(ADMIN_JUMP_DEPTH);
            let rules = nf.list(family, FILTER, chain, depth)?;
            let args = rules.iter().filter_map(NftRule::iptables_args).collect();
            chains.insert(chain, args);
        }
        if !chains[chain].contains(&wanted) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A family's CNI chains as nf_tables holds them, in `iptables-save` terms, and each rule's
/// handle (`handles[i]` belongs to `table.rules[i]`).
struct Snapshot {
    table: SavedTable,
    handles: Vec<u64>,
    /// The chains read (FORWARD and ours); the plan may only delete in these.
    read: Vec<String>,
}

/// `-m comment --comment <text> -j ACCEPT`: what a plan needs of a container's rule (its owner)
/// when the reader does not interpret its addresses and conntrack match.
fn tagged_stand_in(text: String) -> Args {
    let mut args: Args = ["-m", "comment", "--comment"].map(str::to_owned).into();
    args.extend([text, "-j".to_owned(), "ACCEPT".to_owned()]);
    args
}

/// What reading nf_tables gave.
enum Read {
    /// None of our chains is in nf_tables.
    Nothing,
    /// `CNI-FORWARD` holds a rule without an owner tag that the reader cannot interpret (the Go
    /// plugin's, which only the tools' full view attributes), or a foreign rule leads into our
    /// chains.
    NotForNetlink,
    /// The model.
    Model(Snapshot),
}

/// Read `FORWARD`, `CNI-FORWARD`, the isolation stages and the admin chains.
fn snapshot(nf: &dyn NfRules, family: IpFamily) -> Result<Read, NetfilterError> {
    let mut read = vec![FORWARD.to_owned()];
    for chain in [PRIV_CHAIN, STAGE1, STAGE2] {
        if nf.has_chain(family, FILTER, chain)? {
            read.push(chain.to_owned());
        }
    }
    if read.len() == 1 {
        return Ok(Read::Nothing);
    }
    let mut table = builtin_chains_only();
    let mut handles = Vec::new();
    let mut next = 0;
    while next < read.len() {
        let chain = read[next].clone();
        next += 1;
        for rule in nf.list(family, FILTER, &chain, None)? {
            let jump = rule.jump_target().map(str::to_owned);
            let args = match (rule.iptables_args(), tag_text(&rule)) {
                (Some(args), _) => args,
                (None, Some(text)) => tagged_stand_in(text),
                (None, None) if chain == PRIV_CHAIN => return Ok(Read::NotForNetlink),
                // Someone else's rule: kept as an opaque stand-in unless it leads into our
                // chains, which only the tools' full view can judge.
                (None, None) if jump.as_deref().is_some_and(is_ours) => {
                    return Ok(Read::NotForNetlink);
                }
                (None, None) => vec![format!("#rule-{}", rule.handle)],
            };
            if chain == PRIV_CHAIN
                && rule.comment().as_deref() == Some(ADMIN_COMMENT)
                && let Some(admin) = jump
                && !read.contains(&admin)
                && nf.has_chain(family, FILTER, &admin)?
            {
                read.push(admin);
            }
            table.rules.push(SavedRule {
                chain: chain.clone(),
                args,
            });
            handles.push(rule.handle);
        }
        if chain != FORWARD {
            table.chains.push(chain);
        }
    }
    Ok(Read::Model(Snapshot {
        table,
        handles,
        read,
    }))
}

/// The filter table with its built-in chains and no rule.
fn builtin_chains_only() -> SavedTable {
    SavedTable {
        chains: ["INPUT", "FORWARD", "OUTPUT"].map(str::to_owned).into(),
        rules: Vec::new(),
    }
}

/// The comment of a rule that carries an owner tag.
fn tag_text(rule: &NftRule) -> Option<String> {
    rule.comment()
        .filter(|text| OwnerTag::parse_iptables(text).is_some())
}

/// Whether `chain` is one of the chains this plugin manages.
fn is_ours(chain: &str) -> bool {
    [PRIV_CHAIN, STAGE1, STAGE2].contains(&chain)
}

/// The deletions that turn the snapshot into `planned`; `None` when the plan does anything
/// but delete rules and chains among those read.
fn deletions<'s>(snap: &'s Snapshot, planned: &SavedTable) -> Option<Vec<Deletion<'s>>> {
    let mut steps = Vec::new();
    for chain in &snap.read {
        let mut kept = planned.rules_in(chain).map(|r| &r.args).peekable();
        for (rule, handle) in snap.table.rules.iter().zip(&snap.handles) {
            if &rule.chain != chain {
                continue;
            }
            if kept.peek() == Some(&&rule.args) {
                kept.next();
            } else {
                steps.push(Deletion::Rule {
                    chain: chain.as_str(),
                    handle: *handle,
                });
            }
        }
        if kept.next().is_some() {
            return None;
        }
    }
    let added = planned.rules.iter().any(|r| !snap.read.contains(&r.chain))
        || planned.chains.iter().any(|c| !snap.table.has_chain(c));
    if added {
        return None;
    }
    for chain in &snap.read {
        if !planned.has_chain(chain) {
            steps.push(Deletion::Chain { chain });
        }
    }
    Some(steps)
}

/// The model of a family's CNI chains as nf_tables holds them, for planning an ADD: `None`
/// when the reader cannot build it (see [`Read`]); with none of our chains there, the empty
/// built-in table when the host's iptables is `known_nft`, else `None`.
pub(crate) fn netlink_model(
    nf: &dyn NfRules,
    family: IpFamily,
    known_nft: bool,
) -> Result<Option<SavedTable>, NetfilterError> {
    Ok(match snapshot(nf, family)? {
        Read::Model(snap) => Some(snap.table),
        Read::Nothing if known_nft => Some(builtin_chains_only()),
        Read::Nothing | Read::NotForNetlink => None,
    })
}

/// Run a teardown `plan` on the tables as nf_tables holds them and apply it in one transaction.
/// `Ok(false)`: not for netlink (see [`Read`], or a plan that would add something) and nothing
/// changed; the caller plans from `iptables-save` instead. None of our chains in nf_tables is
/// the end of it when the host's iptables is `known_nft`; otherwise the tools look too.
pub(crate) fn netlink_teardown(
    nf: &dyn NfRules,
    family: IpFamily,
    plan: &dyn Fn(&SavedTable) -> TableEdit,
    known_nft: bool,
) -> Result<bool, NetfilterError> {
    let snap = match snapshot(nf, family)? {
        Read::Model(snap) => snap,
        Read::Nothing => return Ok(known_nft),
        Read::NotForNetlink => return Ok(false),
    };
    let edit = plan(&snap.table);
    let Some(steps) = deletions(&snap, edit.model()) else {
        return Ok(false);
    };
    nf.delete_all(family, FILTER, &steps)?;
    Ok(true)
}

#[cfg(test)]
mod tests;

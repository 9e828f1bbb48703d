//! Pure planning for the iptables masquerade backend: from one `iptables-save -t nat` snapshot to
//! the one restore batch that reaches the wanted state (or `None` when it is already there).

use std::collections::HashSet;

use ipnetwork::IpNetwork;

use crate::NetfilterError;
use crate::iptables::{IpFamily, RestoreBatch, SavedRule, SavedTable, render_args};
use crate::names;

/// The built-in chain the per-attachment jumps live in.
pub(crate) const POSTROUTING: &str = "POSTROUTING";

fn comment_args(comment: &str) -> [String; 4] {
    [
        "-m".into(),
        "comment".into(),
        "--comment".into(),
        comment.into(),
    ]
}

/// The rules of the attachment chain, in the order iptables-save prints their options: one
/// ACCEPT per distinct subnet, then the MASQUERADE.
pub(crate) fn chain_rules(family: IpFamily, comment: &str, ips: &[IpNetwork]) -> Vec<Vec<String>> {
    let mut rules: Vec<Vec<String>> = Vec::new();
    for ip in ips {
        let mut rule = Vec::new();
        // iptables-save omits a match on the whole address space, so we do not write one.
        if ip.prefix() > 0 {
            let subnet = IpNetwork::new(ip.network(), ip.prefix()).unwrap_or(*ip);
            rule.extend(["-d".to_owned(), subnet.to_string()]);
        }
        rule.extend(comment_args(comment));
        rule.extend(["-j".to_owned(), "ACCEPT".to_owned()]);
        if !rules.contains(&rule) {
            rules.push(rule);
        }
    }
    let mut masquerade = vec![
        "!".to_owned(),
        "-d".to_owned(),
        family.multicast().to_owned(),
    ];
    masquerade.extend(comment_args(comment));
    masquerade.extend(["-j".to_owned(), "MASQUERADE".to_owned()]);
    rules.push(masquerade);
    rules
}

/// The POSTROUTING jumps: one per distinct address, as a host route (`/32`, `/128`).
pub(crate) fn jump_rules(
    family: IpFamily,
    chain: &str,
    comment: &str,
    ips: &[IpNetwork],
) -> Vec<Vec<String>> {
    let mut rules: Vec<Vec<String>> = Vec::new();
    for ip in ips {
        let mut rule = vec![
            "-s".to_owned(),
            format!("{}/{}", ip.ip(), family.host_prefix()),
        ];
        rule.extend(comment_args(comment));
        rule.extend(["-j".to_owned(), chain.to_owned()]);
        if !rules.contains(&rule) {
            rules.push(rule);
        }
    }
    rules
}

/// Whether a fresh attachment's batch declares its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NewChain {
    /// With `-N`: the batch fails if the chain exists.
    Declare,
    /// Without: the chain was just created over netlink, so iptables-nft fetches only the
    /// chains it appends to instead of every chain of `nat`.
    AlreadyCreated,
}

/// The batch for an attachment that has no chain yet: its rules and its POSTROUTING jumps,
/// after `-N` when asked.
pub(crate) fn fresh_chain_batch(
    new_chain: NewChain,
    family: IpFamily,
    chain: &str,
    comment: &str,
    ips: &[IpNetwork],
) -> RestoreBatch {
    let mut batch = RestoreBatch::new("nat");
    if new_chain == NewChain::Declare {
        batch.new_chain(chain);
    }
    for rule in chain_rules(family, comment, ips) {
        batch.append(chain, &rule);
    }
    for jump in jump_rules(family, chain, comment, ips) {
        batch.append(POSTROUTING, &jump);
    }
    batch
}

/// The batch that makes `chain` hold exactly [`chain_rules`] and POSTROUTING jump to it exactly
/// for `ips` (stale or duplicate jumps to it are deleted).
pub(crate) fn setup_batch(
    saved: &SavedTable,
    family: IpFamily,
    chain: &str,
    comment: &str,
    ips: &[IpNetwork],
) -> Option<RestoreBatch> {
    let wanted_rules = chain_rules(family, comment, ips);
    let wanted_jumps = jump_rules(family, chain, comment, ips);
    let have_rules: Vec<&Vec<String>> = saved.rules_in(chain).map(|r| &r.args).collect();
    let chain_ok = saved.has_chain(chain) && have_rules.iter().copied().eq(wanted_rules.iter());

    let mut kept: Vec<&Vec<String>> = Vec::new();
    let mut stale: Vec<&SavedRule> = Vec::new();
    for jump in saved.rules_jumping_to(chain) {
        if jump.chain == POSTROUTING
            && wanted_jumps.contains(&jump.args)
            && !kept.contains(&&jump.args)
        {
            kept.push(&jump.args);
        } else {
            stale.push(jump);
        }
    }
    let missing: Vec<&Vec<String>> = wanted_jumps.iter().filter(|j| !kept.contains(j)).collect();
    if chain_ok && stale.is_empty() && missing.is_empty() {
        return None;
    }

    let mut batch = RestoreBatch::new("nat");
    if !chain_ok {
        // Creates the chain, or flushes it when it exists: either way it ends up with exactly
        // the rules appended next, in one transaction.
        batch.declare_chain(chain);
        for rule in &wanted_rules {
            batch.append(chain, rule);
        }
    }
    for jump in stale {
        batch.delete(&jump.chain, &jump.args);
    }
    for jump in missing {
        batch.append(POSTROUTING, jump);
    }
    Some(batch)
}

/// The batch deleting every jump to each of `chains`, then flushing and deleting the chains.
/// `None` when none of them exists.
pub(crate) fn teardown_batch(saved: &SavedTable, chains: &[&str]) -> Option<RestoreBatch> {
    let mut batch = RestoreBatch::new("nat");
    for chain in chains {
        for jump in saved.rules_jumping_to(chain) {
            batch.delete(&jump.chain, &jump.args);
        }
    }
    for chain in chains {
        if saved.has_chain(chain) {
            batch.flush_chain(chain).delete_chain(chain);
        }
    }
    (!batch.is_empty()).then_some(batch)
}

/// The chains of `network`'s attachments whose container ID is not in `keep`. A chain belongs to
/// the network when one of its rules (or a jump to it) carries the comment
/// `name: "<network>" id: "<cid>"` and its name is the hash of that pair.
pub(crate) fn gc_chains(saved: &SavedTable, network: &str, keep: &HashSet<&str>) -> Vec<String> {
    let mut stale: Vec<String> = Vec::new();
    for rule in &saved.rules {
        let Some((net, cid)) = rule.comment().and_then(names::parse_comment) else {
            continue;
        };
        if net != network || keep.contains(cid.as_str()) {
            continue;
        }
        let chain = names::chain_name("", &net, &cid);
        let related = rule.chain == chain || rule.target() == Some(chain.as_str());
        if related && saved.has_chain(&chain) && !stale.contains(&chain) {
            stale.push(chain);
        }
    }
    stale
}

/// CHECK for one family: the chain exists, holds every wanted rule, and every wanted jump is in
/// POSTROUTING.
pub(crate) fn check_family(
    saved: &SavedTable,
    family: IpFamily,
    chain: &str,
    comment: &str,
    ips: &[IpNetwork],
) -> Result<(), NetfilterError> {
    let tool = family.iptables();
    if !saved.has_chain(chain) {
        return Err(NetfilterError::RuleMissing {
            what: format!("chain {chain} in {tool} table nat"),
        });
    }
    let expect = |in_chain: &str, rules: Vec<Vec<String>>| {
        for rule in rules {
            if !saved.rules_in(in_chain).any(|r| r.args == rule) {
                return Err(NetfilterError::RuleMissing {
                    what: format!("rule `{tool} -t nat -A {in_chain} {}`", render_args(&rule)),
                });
            }
        }
        Ok(())
    };
    expect(chain, chain_rules(family, comment, ips))?;
    expect(POSTROUTING, jump_rules(family, chain, comment, ips))
}

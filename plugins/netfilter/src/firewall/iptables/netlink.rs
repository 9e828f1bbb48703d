//! The steady-state ADD and DEL without an iptables read, asking nf_tables directly (see
//! [`crate::nfnl`]) on hosts where iptables is iptables-nft.
//!
//! - ADD: the shared rules a first ADD relies on ([`shared_requirements`]) are looked up in the
//!   few short chains they live in — `FORWARD`, the isolation stages, and only the top of
//!   `CNI-FORWARD`, where the admin jump is inserted — so the cost is the same at any number
//!   of containers. When all are there the caller appends with a batch holding no `-C`.
//! - DEL: `CNI-FORWARD` is read once and the attachment's owner-tagged rules are deleted by
//!   handle in one transaction, when that is all a full teardown would do: another container
//!   still relies on each bridge's isolation rules, the chain keeps other containers' rules, and
//!   every rule in it is either owner-tagged or the admin jump. The bridge's last container, a
//!   chain about to become idle, a rule of the Go plugin's or an operator's, or anything
//!   unexpected goes to the full teardown, which reads the table with `iptables-save`.

use std::collections::HashMap;

use super::plan::shared_requirements;
use super::rules::{ADMIN_COMMENT, Args, FILTER, PRIV_CHAIN};
use crate::NetfilterError;
use crate::firewall::{ContainerFirewall, IngressPolicy, Isolation, Owner, OwnerTag};
use crate::iptables::IpFamily;
use crate::nfnl::{NfRules, NftRule};

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

/// The owner tag in a rule's comment.
fn tag_of(rule: &NftRule) -> Option<OwnerTag> {
    rule.comment().as_deref().and_then(OwnerTag::parse_iptables)
}

/// Whether removing an attachment relying on `iso` leaves the bridge's isolation rules needed
/// by one of `others`.
fn isolation_still_needed(iso: &Isolation, others: &[OwnerTag]) -> bool {
    others.iter().any(|t| {
        t.isolation.as_ref().is_some_and(|o| {
            o.bridge == iso.bridge
                && (iso.policy != IngressPolicy::Isolated || o.policy == IngressPolicy::Isolated)
        })
    })
}

/// The handles of `owner`'s rules in `family`'s `CNI-FORWARD`, when deleting just those is the
/// whole teardown; `None` when the full teardown must decide.
fn family_plan(
    nf: &dyn NfRules,
    family: IpFamily,
    owner: &Owner,
) -> Result<Option<Vec<u64>>, NetfilterError> {
    let mut mine = Vec::new();
    let mut isolations: Vec<Isolation> = Vec::new();
    let mut others = Vec::new();
    for rule in nf.list(family, FILTER, PRIV_CHAIN, None)? {
        match tag_of(&rule) {
            Some(tag) if tag.owner == *owner => {
                mine.push(rule.handle);
                if let Some(iso) = tag.isolation
                    && !isolations.contains(&iso)
                {
                    isolations.push(iso);
                }
            }
            Some(tag) => others.push(tag),
            // A rule without an owner: the admin jump, or one the Go plugin (uncommented, for
            // a container it added) or an operator put here. Only the full teardown attributes
            // those (to a prevResult's addresses, to bridges by route).
            None if rule.comment().as_deref() == Some(ADMIN_COMMENT) => {}
            None => return Ok(None),
        }
    }
    if mine.is_empty() {
        return Ok(Some(mine));
    }
    let keeps_all = !others.is_empty()
        && isolations
            .iter()
            .all(|iso| isolation_still_needed(iso, &others));
    Ok(keeps_all.then_some(mine))
}

/// Delete `owner`'s rules by handle when that is the whole teardown (see the module docs).
/// `Ok(false)`: nothing was changed and the full teardown must run.
pub(crate) fn quick_teardown(nf: &dyn NfRules, owner: &Owner) -> Result<bool, NetfilterError> {
    let mut plans = Vec::new();
    for family in IpFamily::ALL {
        match family_plan(nf, family, owner)? {
            None => return Ok(false),
            Some(handles) if handles.is_empty() => {}
            Some(handles) => plans.push((family, handles)),
        }
    }
    // Nothing of ours here (already removed, or the rules are in iptables-legacy's tables):
    // the full teardown looks in the table the tools actually use.
    if plans.is_empty() {
        return Ok(false);
    }
    for (family, handles) in plans {
        nf.delete(family, FILTER, PRIV_CHAIN, &handles)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests;

//! ADD and CHECK for one family, planned from one `iptables-save -t filter` snapshot.
//!
//! ADD produces, in one batch (reference order; `-N`/`-I` only where missing):
//!
//! ```text
//! -N CNI-FORWARD / -N <admin>
//! -I FORWARD 1 -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
//! -I CNI-FORWARD 1 -m comment --comment "CNI firewall plugin admin overrides" -j <admin>
//! -A CNI-FORWARD -d <ip>/32 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "<owner>" -j ACCEPT
//! -A CNI-FORWARD -s <ip>/32 -m comment --comment "<owner>" -j ACCEPT
//! same-bridge / isolated:
//! -N CNI-ISOLATION-STAGE-1 / -N CNI-ISOLATION-STAGE-2
//! -I FORWARD 1 -m comment --comment "<shared>" -j CNI-ISOLATION-STAGE-1
//! -I CNI-ISOLATION-STAGE-1 1 -i <br> ! -o <br> -m comment --comment "<policy>" -j CNI-ISOLATION-STAGE-2
//! -I CNI-ISOLATION-STAGE-1 1 -i <br> -o <br> -m comment --comment "<policy>" -j DROP      (isolated)
//! -A CNI-ISOLATION-STAGE-1 -m comment --comment "<shared>" -j RETURN
//! -I CNI-ISOLATION-STAGE-2 1 -o <br> -m comment --comment "<shared>" -j DROP
//! -A CNI-ISOLATION-STAGE-2 -m comment --comment "<shared>" -j RETURN
//! ```

use std::net::IpAddr;

use super::edit::TableEdit;
use super::rules::{
    Args, FILTER, FORWARD, PRIV_CHAIN, STAGE1, STAGE2, admin_jump, forward_jump, go_list, inbound,
    isolated_drop, outbound, policy_comment, same_isolation_rule, stage_return, stage1_bridge,
    stage1_jump, stage2_drop,
};
use crate::NetfilterError;
use crate::firewall::{ContainerFirewall, IngressPolicy, Isolation, OwnerTag};
use crate::iptables::{IpFamily, RestoreBatch, SavedRule, SavedTable};

/// The addresses of `fw` in `family`.
pub(crate) fn family_ips(fw_ips: &[IpAddr], family: IpFamily) -> Vec<IpAddr> {
    fw_ips
        .iter()
        .copied()
        .filter(|ip| IpFamily::of(ip) == family)
        .collect()
}

/// The attachment's two rules per address, owner-tagged.
fn container_rules(ips: &[IpAddr], tag: &str) -> Vec<Args> {
    ips.iter()
        .flat_map(|ip| [inbound(*ip, Some(tag)), outbound(*ip, Some(tag))])
        .collect()
}

/// Whether a saved rule carries this attachment's owner (whatever isolation it recorded).
fn owned_by(rule: &SavedRule, fw: &ContainerFirewall) -> bool {
    rule.comment()
        .and_then(OwnerTag::parse_iptables)
        .is_some_and(|tag| tag.owner == fw.owner)
}

/// True when the table already holds rules of this attachment: this ADD repeats an earlier one.
pub(crate) fn has_own_rules(saved: &SavedTable, fw: &ContainerFirewall) -> bool {
    saved.rules_in(PRIV_CHAIN).any(|r| owned_by(r, fw))
}

/// The isolation rules a bridge needs: (chain, rule, insert at the top?).
fn isolation_rules(iso: &Isolation) -> Vec<(&'static str, Args, bool)> {
    let pol = policy_comment(iso.policy.as_str());
    let mut list = vec![(STAGE1, stage1_bridge(&iso.bridge, &pol), true)];
    if iso.policy == IngressPolicy::Isolated {
        list.push((STAGE1, isolated_drop(&iso.bridge, &pol), true));
    }
    list.push((STAGE1, stage_return(), false));
    list.push((STAGE2, stage2_drop(&iso.bridge), true));
    list.push((STAGE2, stage_return(), false));
    list
}

/// The batch that gives `fw` its rules in `family` (`ips` = its addresses of that family), or
/// `None` when everything is in place.
pub(crate) fn plan_add(
    saved: &SavedTable,
    fw: &ContainerFirewall,
    ips: &[IpAddr],
) -> Result<Option<String>, NetfilterError> {
    let tag = fw.tag().iptables_comment()?;
    let mut e = TableEdit::new(saved);
    e.ensure_chain(PRIV_CHAIN);
    e.ensure_chain(&fw.admin_chain);
    if !e.has(FORWARD, |r| r == forward_jump()) {
        e.insert_first(FORWARD, forward_jump());
    }
    let admin = admin_jump(&fw.admin_chain);
    if !e.has(PRIV_CHAIN, |r| r == admin) {
        e.insert_first(PRIV_CHAIN, admin);
    }

    // Keep one copy of each wanted rule; drop what an earlier ADD of this attachment left.
    let wanted = container_rules(ips, &tag);
    let mut kept: Vec<Args> = Vec::new();
    e.delete_all(PRIV_CHAIN, |r| {
        if !owned_by(r, fw) {
            return false;
        }
        if wanted.contains(&r.args) && !kept.contains(&r.args) {
            kept.push(r.args.clone());
            return false;
        }
        true
    });
    for rule in wanted {
        if !kept.contains(&rule) {
            e.append(PRIV_CHAIN, rule);
        }
    }

    if let Some(iso) = &fw.isolation {
        e.ensure_chain(STAGE1);
        e.ensure_chain(STAGE2);
        if !e.has(FORWARD, |r| same_isolation_rule(r, &stage1_jump())) {
            e.insert_first(FORWARD, stage1_jump());
        }
        for (chain, rule, at_top) in isolation_rules(iso) {
            if e.has(chain, |r| same_isolation_rule(r, &rule)) {
                continue;
            }
            if at_top {
                e.insert_first(chain, rule);
            } else {
                e.append(chain, rule);
            }
        }
    }
    Ok(e.into_batch())
}

/// The shared rules a first ADD relies on, per chain: the jumps into `CNI-FORWARD` and the
/// admin chain and, with isolation, the stage-1 jump and the bridge's isolation rules.
pub(crate) fn shared_requirements(fw: &ContainerFirewall) -> Vec<(&'static str, Args)> {
    let mut wanted = vec![
        (FORWARD, forward_jump()),
        (PRIV_CHAIN, admin_jump(&fw.admin_chain)),
    ];
    if let Some(iso) = &fw.isolation {
        wanted.push((FORWARD, stage1_jump()));
        wanted.extend(
            isolation_rules(iso)
                .into_iter()
                .map(|(chain, rule, _)| (chain, rule)),
        );
    }
    wanted
}

/// Appends of the attachment's two rules per address to `batch`.
fn append_container_rules(
    batch: &mut RestoreBatch,
    fw: &ContainerFirewall,
    ips: &[IpAddr],
) -> Result<(), NetfilterError> {
    let tag = fw.tag().iptables_comment()?;
    for rule in container_rules(ips, &tag) {
        batch.append(PRIV_CHAIN, &rule);
    }
    Ok(())
}

/// ADD of an attachment that has no rules yet, without reading the table: a batch that requires
/// (`-C`) every shared rule [`plan_add`] would create — so it applies only when the chains, jumps
/// and the bridge's isolation rules are all in place — and appends the attachment's two rules
/// per address. When it fails, nothing was applied and the caller plans from a read instead.
pub(crate) fn first_add_batch(
    fw: &ContainerFirewall,
    ips: &[IpAddr],
) -> Result<RestoreBatch, NetfilterError> {
    let mut batch = RestoreBatch::new(FILTER);
    for (chain, rule) in shared_requirements(fw) {
        batch.require(chain, &rule);
    }
    append_container_rules(&mut batch, fw, ips)?;
    Ok(batch)
}

/// The same ADD once the shared rules are known to be in place (read over netlink, see
/// [`super::netlink`]): only the appends. Without a `-C` in it, iptables-nft does not fetch
/// the rules of `CNI-FORWARD`, so its cost does not grow with the number of containers.
pub(crate) fn append_only_batch(
    fw: &ContainerFirewall,
    ips: &[IpAddr],
) -> Result<RestoreBatch, NetfilterError> {
    let mut batch = RestoreBatch::new(FILTER);
    append_container_rules(&mut batch, fw, ips)?;
    Ok(batch)
}

fn missing(what: String) -> NetfilterError {
    NetfilterError::RuleMissing { what }
}

/// CHECK for one family: the chains, the jumps, each address's two rules (ours, or the Go
/// plugin's uncommented ones for a container it added), and the bridge's isolation rules.
pub(crate) fn check(
    saved: &SavedTable,
    family: IpFamily,
    fw: &ContainerFirewall,
    ips: &[IpAddr],
) -> Result<(), NetfilterError> {
    let tool = family.iptables();
    for chain in [PRIV_CHAIN, fw.admin_chain.as_str()] {
        if !saved.has_chain(chain) {
            return Err(missing(format!("chain {chain} in {tool} table filter")));
        }
    }
    let has = |chain: &str, want: &[String]| saved.rules_in(chain).any(|r| r.args == want);
    let expect_in = |chain: &str, want: Args| {
        if has(chain, &want) {
            Ok(())
        } else {
            Err(missing(format!("expected {chain} rule {}", go_list(&want))))
        }
    };
    expect_in(FORWARD, forward_jump())?;
    expect_in(PRIV_CHAIN, admin_jump(&fw.admin_chain))?;
    let tag = fw.tag().iptables_comment()?;
    for ip in ips {
        for (ours, theirs) in [
            (inbound(*ip, Some(&tag)), inbound(*ip, None)),
            (outbound(*ip, Some(&tag)), outbound(*ip, None)),
        ] {
            if !has(PRIV_CHAIN, &ours) && !has(PRIV_CHAIN, &theirs) {
                return Err(missing(format!("expected rule {}", go_list(&theirs))));
            }
        }
    }
    if let Some(iso) = &fw.isolation {
        let equivalent = |chain: &str, want: &[String]| {
            saved
                .rules_in(chain)
                .any(|r| same_isolation_rule(&r.args, want))
        };
        let mut expected = vec![(FORWARD, stage1_jump())];
        expected.extend(isolation_rules(iso).into_iter().map(|(c, r, _)| (c, r)));
        for (chain, rule) in expected {
            if !equivalent(chain, &rule) {
                return Err(missing(format!("expected {chain} rule {}", go_list(&rule))));
            }
        }
    }
    Ok(())
}

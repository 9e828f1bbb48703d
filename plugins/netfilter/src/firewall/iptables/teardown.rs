//! DEL and GC for one family, planned from one `iptables-save -t filter` snapshot:
//!
//! 1. delete the selected attachments' owner-tagged rules in `CNI-FORWARD` (and, for the
//!    addresses of a `prevResult`, the Go plugin's uncommented rules for them);
//! 2. for each bridge those attachments relied on: when no remaining tagged rule names the
//!    bridge, and no remaining uncommented (Go-made) rule is for an address routed via it,
//!    delete the bridge's isolation rules (the `isolated` drop only while no `isolated`
//!    container is left);
//! 3. delete `CNI-ISOLATION-STAGE-1/2` with their `FORWARD` jump when only their `RETURN`s are
//!    left, and `CNI-FORWARD` with its `FORWARD` jump and its admin chains when only empty admin
//!    chains are left. A chain holding anything else (a user's rule in `CNI-ADMIN`, a rule
//!    another tool appended) is kept, and so is everything that leads to it.
//!
//! Every `-D`/`-X` fails when the table changed since the snapshot, so a stale plan never
//! removes a rule added in between.

use std::net::IpAddr;

use super::edit::TableEdit;
use super::rules::{
    ADMIN_COMMENT, FORWARD, PRIV_CHAIN, STAGE1, STAGE2, forward_jump, inbound, isolated_drop,
    outbound, policy_comment, same_isolation_rule, stage_return, stage1_bridge, stage1_jump,
    stage2_drop, untagged_address,
};
use crate::firewall::{HostRoutes, IngressPolicy, Owner, OwnerTag};
use crate::iptables::{SavedRule, SavedTable};

/// What a teardown removes besides the selected owners' rules.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Known<'a> {
    /// Addresses (of this family) from `prevResult`: their uncommented rules go too.
    pub(crate) ips: &'a [IpAddr],
    /// The bridge from `prevResult`: a candidate for isolation-rule removal.
    pub(crate) bridge: Option<&'a str>,
}

fn tag_of(rule: &SavedRule) -> Option<OwnerTag> {
    rule.comment().and_then(OwnerTag::parse_iptables)
}

/// The batch removing the rules of every owner `select` picks (see the module docs), or `None`
/// when nothing changes.
pub(crate) fn plan_teardown(
    saved: &SavedTable,
    select: &dyn Fn(&Owner) -> bool,
    known: Known<'_>,
    routes: &dyn HostRoutes,
) -> Option<String> {
    plan_teardown_edit(saved, select, known, routes).into_batch()
}

/// [`plan_teardown`] as the planned table (for applying it other than by a restore batch).
pub(crate) fn plan_teardown_edit(
    saved: &SavedTable,
    select: &dyn Fn(&Owner) -> bool,
    known: Known<'_>,
    routes: &dyn HostRoutes,
) -> TableEdit {
    let mut e = TableEdit::new(saved);
    let removed = e.delete_all(PRIV_CHAIN, |r| tag_of(r).is_some_and(|t| select(&t.owner)));
    let mut bridges: Vec<String> = Vec::new();
    let tagged = removed
        .iter()
        .filter_map(tag_of)
        .filter_map(|t| t.isolation);
    for bridge in tagged
        .map(|iso| iso.bridge)
        .chain(known.bridge.map(str::to_owned))
    {
        if !bridges.contains(&bridge) {
            bridges.push(bridge);
        }
    }
    for ip in known.ips {
        let (a, b) = (inbound(*ip, None), outbound(*ip, None));
        e.delete_all(PRIV_CHAIN, |r| r.args == a || r.args == b);
    }
    for bridge in &bridges {
        release_bridge(&mut e, bridge, routes);
    }
    remove_idle_isolation_chains(&mut e);
    remove_idle_forward_chains(&mut e);
    e
}

/// Delete `bridge`'s isolation rules that no remaining container relies on.
fn release_bridge(e: &mut TableEdit, bridge: &str, routes: &dyn HostRoutes) {
    let tags: Vec<OwnerTag> = e.rules_in(PRIV_CHAIN).filter_map(tag_of).collect();
    let on_bridge = |policy: Option<IngressPolicy>| {
        tags.iter().any(|t| {
            t.isolation
                .as_ref()
                .is_some_and(|i| i.bridge == bridge && policy.is_none_or(|p| i.policy == p))
        })
    };
    let keep_bridge = on_bridge(None);
    let keep_drop = on_bridge(Some(IngressPolicy::Isolated));
    if keep_bridge && keep_drop {
        return;
    }
    // A container the Go plugin added has uncommented rules; if one of them is (or may be)
    // behind this bridge, its isolation stays.
    let go_on_bridge = e
        .rules_in(PRIV_CHAIN)
        .filter_map(untagged_address)
        .any(|ip| match routes.route_interface(ip) {
            Ok(Some(iface)) => iface == bridge,
            Ok(None) => false,
            Err(_) => true,
        });
    if go_on_bridge {
        return;
    }
    if !keep_bridge {
        let (s1, s2) = (
            stage1_bridge(bridge, &policy_comment("same-bridge")),
            stage2_drop(bridge),
        );
        e.delete_all(STAGE1, |r| same_isolation_rule(&r.args, &s1));
        e.delete_all(STAGE2, |r| same_isolation_rule(&r.args, &s2));
    }
    if !keep_drop {
        let drop = isolated_drop(bridge, &policy_comment("isolated"));
        e.delete_all(STAGE1, |r| same_isolation_rule(&r.args, &drop));
    }
}

/// Whether every rule jumping to `target` is in `chain` and accepted by `form`.
fn only_referenced_from(
    e: &TableEdit,
    target: &str,
    chain: &str,
    form: &dyn Fn(&[String]) -> bool,
) -> bool {
    e.model()
        .rules_jumping_to(target)
        .all(|r| r.chain == chain && form(&r.args))
}

/// Remove the isolation chains when only their `RETURN`s are left.
fn remove_idle_isolation_chains(e: &mut TableEdit) {
    let ret = stage_return();
    let is_return = |args: &[String]| same_isolation_rule(args, &ret);
    let idle = |e: &TableEdit, chain: &str| e.rules_in(chain).all(|r| is_return(&r.args));
    let jump = stage1_jump();
    let is_jump = |args: &[String]| same_isolation_rule(args, &jump);
    let stage1 = e.model().has_chain(STAGE1);
    let stage2 = e.model().has_chain(STAGE2);
    if !stage1 && !stage2 {
        return;
    }
    let removable = idle(e, STAGE1)
        && idle(e, STAGE2)
        && only_referenced_from(e, STAGE1, FORWARD, &is_jump)
        && e.model().rules_jumping_to(STAGE2).next().is_none();
    if !removable {
        return;
    }
    e.delete_all(FORWARD, |r| r.target() == Some(STAGE1));
    for (chain, exists) in [(STAGE1, stage1), (STAGE2, stage2)] {
        if exists {
            e.delete_all(chain, |r| is_return(&r.args));
            e.delete_chain(chain);
        }
    }
}

/// The admin chain an admin-override jump leads to.
fn admin_target(args: &[String]) -> Option<&str> {
    match args {
        [m, comment, flag, text, j, target]
            if m == "-m"
                && comment == "comment"
                && flag == "--comment"
                && text == ADMIN_COMMENT
                && j == "-j" =>
        {
            Some(target)
        }
        _ => None,
    }
}

/// Remove `CNI-FORWARD`, its `FORWARD` jump and its admin chains when only jumps to empty admin
/// chains are left in it.
fn remove_idle_forward_chains(e: &mut TableEdit) {
    if !e.model().has_chain(PRIV_CHAIN) {
        return;
    }
    let mut admins: Vec<String> = Vec::new();
    for rule in e.rules_in(PRIV_CHAIN) {
        match admin_target(&rule.args) {
            Some(target) if !admins.iter().any(|a| a == target) => admins.push(target.to_owned()),
            Some(_) => {}
            None => return,
        }
    }
    let is_admin_jump = |args: &[String]| admin_target(args).is_some();
    let admins_idle = admins.iter().all(|a| {
        e.model().has_chain(a)
            && e.rules_in(a).next().is_none()
            && only_referenced_from(e, a, PRIV_CHAIN, &is_admin_jump)
    });
    let jump = forward_jump();
    if !admins_idle || !only_referenced_from(e, PRIV_CHAIN, FORWARD, &|args| args == jump) {
        return;
    }
    e.delete_all(FORWARD, |r| r.args == jump);
    e.delete_all(PRIV_CHAIN, |r| is_admin_jump(&r.args));
    e.delete_chain(PRIV_CHAIN);
    for admin in admins {
        e.delete_chain(&admin);
    }
}

//! ADD, removal and CHECK for one family, planned from one `iptables-save -t nat` snapshot.
//!
//! Each edit updates an in-memory model of the table and emits the `iptables-restore --noflush`
//! line making the same change, so later decisions ("is `CNI-HOSTPORT-DNAT` empty now?") see the
//! planned state. Lines that fail when the table changed under us (`-N` of an existing chain,
//! `-D` of a missing rule, `-X` of a used chain) make the whole batch fail; the caller re-reads
//! and re-plans.

use super::rules::{
    Args, chain_rules, dnat_jump, dnat_mapping, entry_rules, go_list, is_masq_rule,
    is_setmark_rule, masq_jump, masq_rule, own_mark_bit, parse_entry_comment, same_entry,
    setmark_rule,
};
use super::{DNAT_CHAIN, MASQ_CHAIN, NAT, SETMARK_CHAIN};
use crate::NetfilterError;
use crate::iptables::{IpFamily, SavedRule, SavedTable, render_args};
use crate::portmap::{ContainerPorts, MarkMode, PortmapError};

/// The planned state and the restore lines leading to it.
#[derive(Debug, Clone)]
pub(crate) struct TableEdit {
    model: SavedTable,
    lines: Vec<String>,
}

impl TableEdit {
    pub(crate) fn new(saved: &SavedTable) -> TableEdit {
        TableEdit {
            model: saved.clone(),
            lines: Vec::new(),
        }
    }

    fn has(&self, chain: &str, want: &[String]) -> bool {
        self.model.rules_in(chain).any(|r| r.args == want)
    }

    fn rules(&self, chain: &str) -> Vec<SavedRule> {
        self.model.rules_in(chain).cloned().collect()
    }

    fn ensure_chain(&mut self, chain: &str) {
        if !self.model.has_chain(chain) {
            self.lines.push(format!("-N {chain}"));
            self.model.chains.push(chain.to_owned());
        }
    }

    fn insert_first(&mut self, chain: &str, args: Args) {
        self.lines
            .push(format!("-I {chain} 1 {}", render_args(&args)));
        let rules = &mut self.model.rules;
        let at = rules
            .iter()
            .position(|r| r.chain == chain)
            .unwrap_or(rules.len());
        let chain = chain.to_owned();
        rules.insert(at, SavedRule { chain, args });
    }

    fn append(&mut self, chain: &str, args: Args) {
        self.lines
            .push(format!("-A {chain} {}", render_args(&args)));
        let rules = &mut self.model.rules;
        let at = rules
            .iter()
            .rposition(|r| r.chain == chain)
            .map_or(rules.len(), |i| i + 1);
        let chain = chain.to_owned();
        rules.insert(at, SavedRule { chain, args });
    }

    /// `-D` for every rule (in any chain) `matches` accepts.
    fn delete_where(&mut self, matches: impl Fn(&SavedRule) -> bool) {
        let mut removed = Vec::new();
        self.model.rules.retain(|r| {
            let hit = matches(r);
            if hit {
                removed.push(r.clone());
            }
            !hit
        });
        for r in removed {
            self.lines
                .push(format!("-D {} {}", r.chain, render_args(&r.args)));
        }
    }

    fn flush(&mut self, chain: &str) {
        if self.model.rules_in(chain).next().is_some() {
            self.lines.push(format!("-F {chain}"));
            self.model.rules.retain(|r| r.chain != chain);
        }
    }

    /// `-F` (when it holds rules) and `-X`.
    fn remove_chain(&mut self, chain: &str) {
        self.flush(chain);
        self.lines.push(format!("-X {chain}"));
        self.model.chains.retain(|c| c != chain);
    }

    fn into_batch(self) -> Option<String> {
        if self.lines.is_empty() {
            return None;
        }
        let mut text = format!("*{NAT}\n");
        for line in self.lines {
            text.push_str(&line);
            text.push('\n');
        }
        text.push_str("COMMIT\n");
        Some(text)
    }
}

/// Who holds the `CNI-DN-…` chain an entry rule jumps to: from its comment, else the chain.
fn holder(rule: &SavedRule, chain: &str) -> (Option<String>, String) {
    match rule.comment().and_then(parse_entry_comment) {
        Some((net, cid)) => (
            Some(cid.clone()),
            format!("container {cid:?} of network {net:?}"),
        ),
        None => (None, format!("the container of chain {chain}")),
    }
}

/// The first mapping of `ports` (in `family`) that another container's reachable chain already
/// publishes. The same container ID on another network is not a conflict.
fn conflict(saved: &SavedTable, ports: &ContainerPorts, family: IpFamily) -> Option<PortmapError> {
    let ours = ports.owner.dnat_chain();
    let mut seen: Vec<&str> = Vec::new();
    for entry in saved.rules_in(DNAT_CHAIN) {
        let Some(chain) = entry
            .target()
            .filter(|t| t.starts_with("CNI-DN-") && *t != ours)
        else {
            continue;
        };
        if seen.contains(&chain) {
            continue;
        }
        seen.push(chain);
        let (cid, holder) = holder(entry, chain);
        if cid.as_deref() == Some(ports.owner.container_id.as_str()) {
            continue;
        }
        for theirs in saved.rules_in(chain).filter_map(dnat_mapping) {
            if let Some(mine) = ports.mappings_for(family).find(|m| m.overlaps(&theirs)) {
                return Some(PortmapError::Conflict {
                    mapping: mine.describe(),
                    holder,
                });
            }
        }
    }
    None
}

/// The batch publishing `ports` in `family` (reference order: mark chains, the top-level DNAT
/// chain and its jumps, the container's chain, its entry rules), `None` when all is in place.
pub(crate) fn plan_add(
    saved: &SavedTable,
    ports: &ContainerPorts,
    family: IpFamily,
) -> Result<Option<String>, PortmapError> {
    let Some(addr) = ports.address(family) else {
        return Ok(None);
    };
    if let Some(conflict) = conflict(saved, ports, family) {
        return Err(conflict);
    }
    if let MarkMode::External(chain) = &ports.options.mark
        && ports.options.snat
        && !saved.has_chain(chain)
    {
        let what = format!(
            "externalSetMarkChain {chain} in {} table nat",
            family.iptables()
        );
        return Err(NetfilterError::RuleMissing { what }.into());
    }
    let mut e = TableEdit::new(saved);
    if let Some(bit) = own_mark_bit(ports) {
        e.ensure_chain(SETMARK_CHAIN);
        if !e.has(SETMARK_CHAIN, &setmark_rule(bit)) {
            e.append(SETMARK_CHAIN, setmark_rule(bit));
        }
        e.ensure_chain(MASQ_CHAIN);
        if !e.has(MASQ_CHAIN, &masq_rule(bit)) {
            e.append(MASQ_CHAIN, masq_rule(bit));
        }
        if !e.has("POSTROUTING", &masq_jump()) {
            e.insert_first("POSTROUTING", masq_jump());
        }
    }
    e.ensure_chain(DNAT_CHAIN);
    for builtin in ["PREROUTING", "OUTPUT"] {
        if !e.has(builtin, &dnat_jump()) {
            e.append(builtin, dnat_jump());
        }
    }

    let chain = ports.owner.dnat_chain();
    let wanted = chain_rules(ports, family, addr);
    let have: Vec<Args> = e.rules(&chain).into_iter().map(|r| r.args).collect();
    if !e.model.has_chain(&chain) || have != wanted {
        e.ensure_chain(&chain);
        e.flush(&chain);
        for rule in wanted {
            e.append(&chain, rule);
        }
    }

    let comment = ports.owner.iptables_comment();
    let owned = |r: &SavedRule| {
        r.chain == DNAT_CHAIN
            && (r.target() == Some(chain.as_str()) || r.comment() == Some(&comment))
    };
    let entries = entry_rules(ports, family);
    let existing: Vec<Args> = e
        .rules(DNAT_CHAIN)
        .into_iter()
        .filter(owned)
        .map(|r| r.args)
        .collect();
    // With conditions the saved form differs from what we write: rewrite every time.
    if existing != entries || !ports.options.conditions(family).is_empty() {
        e.delete_where(owned);
        for rule in entries {
            e.append(DNAT_CHAIN, rule);
        }
    }
    Ok(e.into_batch())
}

/// What a removal takes away: per-container chains (with every rule jumping to them) and entry
/// rules carrying one of `comments`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Doomed {
    pub(crate) chains: Vec<String>,
    pub(crate) comments: Vec<String>,
}

/// The GC selection: containers of `network` whose ID is not in `valid`, found by the comment
/// of their entry rules (whose jump must be the chain their names hash to).
pub(crate) fn stale(saved: &SavedTable, network: &str, valid: &[&str]) -> Doomed {
    let mut doomed = Doomed::default();
    for rule in saved.rules_in(DNAT_CHAIN) {
        let Some((net, cid)) = rule.comment().and_then(parse_entry_comment) else {
            continue;
        };
        let owner = crate::portmap::PortmapOwner::new(&net, &cid);
        if net != network || valid.contains(&cid.as_str()) {
            continue;
        }
        if rule.target() == Some(owner.dnat_chain().as_str()) {
            for chain in [owner.dnat_chain(), owner.legacy_snat_chain()] {
                if !doomed.chains.contains(&chain) {
                    doomed.chains.push(chain);
                }
            }
        }
    }
    doomed
}

/// The batch removing `doomed`, then the shared chains when no container is left, or `None`.
pub(crate) fn plan_removal(saved: &SavedTable, doomed: &Doomed) -> Option<String> {
    let mut e = TableEdit::new(saved);
    e.delete_where(|r| {
        r.target()
            .is_some_and(|t| doomed.chains.iter().any(|c| c == t))
            || (r.chain == DNAT_CHAIN
                && r.comment()
                    .is_some_and(|c| doomed.comments.iter().any(|d| d == c)))
    });
    for chain in &doomed.chains {
        if e.model.has_chain(chain) {
            e.remove_chain(chain);
        }
    }
    if e.lines.is_empty() {
        return None;
    }
    release_idle(&mut e);
    e.into_batch()
}

/// Remove the shared chains once `CNI-HOSTPORT-DNAT` publishes nothing: its jumps and chain,
/// and the mark chains when they hold only their boilerplate and nothing else uses them.
fn release_idle(e: &mut TableEdit) {
    if !e.model.has_chain(DNAT_CHAIN) || e.model.rules_in(DNAT_CHAIN).next().is_some() {
        return;
    }
    e.delete_where(|r| r.target() == Some(DNAT_CHAIN));
    e.remove_chain(DNAT_CHAIN);
    let boilerplate = e
        .model
        .rules_in(SETMARK_CHAIN)
        .all(|r| is_setmark_rule(&r.args))
        && e.model.rules_in(MASQ_CHAIN).all(|r| is_masq_rule(&r.args));
    let marking_used = e
        .model
        .rules
        .iter()
        .any(|r| r.chain != SETMARK_CHAIN && r.target() == Some(SETMARK_CHAIN));
    if e.model.has_chain(SETMARK_CHAIN)
        && e.model.has_chain(MASQ_CHAIN)
        && boilerplate
        && !marking_used
    {
        e.delete_where(|r| r.chain != MASQ_CHAIN && r.target() == Some(MASQ_CHAIN));
        e.remove_chain(MASQ_CHAIN);
        e.remove_chain(SETMARK_CHAIN);
    }
}

fn missing(what: String) -> NetfilterError {
    NetfilterError::RuleMissing { what }
}

/// CHECK for one family: the shared chains and jumps, the container's chain and every rule of
/// it, and the entry rules (reference messages where the reference has one).
pub(crate) fn check(
    saved: &SavedTable,
    ports: &ContainerPorts,
    family: IpFamily,
) -> Result<(), NetfilterError> {
    let Some(addr) = ports.address(family) else {
        return Ok(());
    };
    let tool = family.iptables();
    let need_chain = |chain: &str| {
        if saved.has_chain(chain) {
            Ok(())
        } else {
            Err(missing(format!("chain {chain} in {tool} table {NAT}")))
        }
    };
    let need_rule = |chain: &str, rule: &[String]| {
        if saved.rules_in(chain).any(|r| r.args == rule) {
            Ok(())
        } else {
            Err(missing(format!(
                "rule {} in chain {chain} of {tool} table {NAT}",
                go_list(rule)
            )))
        }
    };
    need_chain(DNAT_CHAIN)?;
    need_rule("PREROUTING", &dnat_jump())?;
    need_rule("OUTPUT", &dnat_jump())?;
    if let Some(bit) = own_mark_bit(ports) {
        need_chain(SETMARK_CHAIN)?;
        need_rule(SETMARK_CHAIN, &setmark_rule(bit))?;
        need_chain(MASQ_CHAIN)?;
        need_rule(MASQ_CHAIN, &masq_rule(bit))?;
        need_rule("POSTROUTING", &masq_jump())?;
    }
    let chain = ports.owner.dnat_chain();
    need_chain(&chain)?;
    for rule in chain_rules(ports, family, addr) {
        need_rule(&chain, &rule)?;
    }
    let conditions = !ports.options.conditions(family).is_empty();
    for rule in entry_rules(ports, family) {
        if conditions {
            if !saved
                .rules_in(DNAT_CHAIN)
                .any(|r| same_entry(r, &rule, &chain))
            {
                return Err(missing(format!(
                    "rule {} in chain {DNAT_CHAIN} of {tool} table {NAT}",
                    go_list(&rule)
                )));
            }
        } else {
            need_rule(DNAT_CHAIN, &rule)?;
        }
    }
    Ok(())
}

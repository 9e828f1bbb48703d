//! Pure planning for the nftables firewall backend: from one `nft -j list table` to one
//! `nft -f -` transaction.

use std::net::IpAddr;

use serde_json::Value;

use super::{FAMILY, TABLE};
use crate::NetfilterError;
use crate::firewall::{ContainerFirewall, IngressPolicy, Isolation, NftTag};
use crate::nft::{NftRule, NftTable, quote};

const FORWARD: &str = "forward";
const ADMIN: &str = "admin";
const STAGE1: &str = "isolation_stage_1";
const STAGE2: &str = "isolation_stage_2";
const CHAINS: [&str; 4] = [FORWARD, ADMIN, STAGE1, STAGE2];
const TABLE_COMMENT: &str = "CNI firewall plugin rules";
const ISOLATION_JUMP: &str = "CNI firewall plugin: isolation";
const ADMIN_JUMP: &str = "CNI firewall plugin: admin overrides";

/// Traffic to a container (established) or from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    In,
    Out,
}

/// The comment of a bridge's isolation rules: `same-bridge: <br>` or `isolated: <br>`.
fn bridge_comment(policy: IngressPolicy, bridge: &str) -> String {
    format!("{}: {bridge}", policy.as_str())
}

fn rules_in<'a>(table: &'a NftTable, chain: &'a str) -> impl Iterator<Item = &'a NftRule> {
    table.rules.iter().filter(move |r| r.chain == chain)
}

fn find<'a>(table: &'a NftTable, chain: &str, comment: &str) -> Option<&'a NftRule> {
    table
        .rules
        .iter()
        .filter(|r| r.chain == chain)
        .find(|r| r.comment.as_deref() == Some(comment))
}

fn tag_of(rule: &NftRule) -> Option<NftTag> {
    rule.comment.as_deref().and_then(NftTag::parse)
}

/// `(direction, address)` of a per-container rule from its `nft -j` expression.
fn describe(expr: &Value) -> Option<(Direction, IpAddr)> {
    let items = expr.as_array()?;
    let mut found = None;
    let mut stateful = false;
    for m in items.iter().filter_map(|i| i.get("match")) {
        if m.pointer("/left/ct/key").and_then(Value::as_str) == Some("state") {
            stateful = true;
        }
        let field = m.pointer("/left/payload/field").and_then(Value::as_str);
        let ip = m
            .get("right")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok());
        match (field, ip) {
            (Some("daddr"), Some(ip)) => found = Some((Direction::In, ip)),
            (Some("saddr"), Some(ip)) => found = Some((Direction::Out, ip)),
            _ => {}
        }
    }
    let accepts = items.iter().any(|i| i.get("accept").is_some());
    match found {
        Some((Direction::In, ip)) if stateful && accepts => Some((Direction::In, ip)),
        Some((Direction::Out, ip)) if !stateful && accepts => Some((Direction::Out, ip)),
        _ => None,
    }
}

fn wanted(ips: &[IpAddr]) -> Vec<(Direction, IpAddr)> {
    ips.iter()
        .flat_map(|ip| [(Direction::In, *ip), (Direction::Out, *ip)])
        .collect()
}

fn rule_text(direction: Direction, ip: IpAddr) -> String {
    let proto = if ip.is_ipv4() { "ip" } else { "ip6" };
    match direction {
        Direction::In => format!("{proto} daddr {ip} ct state established,related accept"),
        Direction::Out => format!("{proto} saddr {ip} accept"),
    }
}

/// The isolation rules a bridge needs: (chain, comment, rule text, insert at the top?).
fn isolation_rules(
    iso: &Isolation,
) -> Result<Vec<(&'static str, String, String, bool)>, NetfilterError> {
    let br = quote(&iso.bridge)?;
    let same = bridge_comment(IngressPolicy::SameBridge, &iso.bridge);
    let mut list = vec![(
        STAGE1,
        same.clone(),
        format!("iifname {br} oifname != {br} jump {STAGE2}"),
        true,
    )];
    if iso.policy == IngressPolicy::Isolated {
        let c = bridge_comment(IngressPolicy::Isolated, &iso.bridge);
        list.push((STAGE1, c, format!("iifname {br} oifname {br} drop"), true));
    }
    list.push((STAGE2, same, format!("oifname {br} drop"), false));
    Ok(list)
}

/// The ADD transaction, or `None` when every rule is in place.
pub(crate) fn plan_add(
    table: Option<&NftTable>,
    fw: &ContainerFirewall,
) -> Result<Option<String>, NetfilterError> {
    let empty = NftTable::default();
    let existing = table.unwrap_or(&empty);
    let t = format!("{FAMILY} {TABLE}");
    let mut lines = Vec::new();

    let iso_jump = find(existing, FORWARD, ISOLATION_JUMP);
    let admin_jump = find(existing, FORWARD, ADMIN_JUMP);
    match (iso_jump, admin_jump) {
        (Some(_), Some(_)) => {}
        (Some(iso), None) => lines.push(format!(
            "add rule {t} {FORWARD} position {} jump {ADMIN} comment {}",
            iso.handle,
            quote(ADMIN_JUMP)?
        )),
        (None, admin) => {
            if admin.is_none() {
                lines.push(format!(
                    "insert rule {t} {FORWARD} jump {ADMIN} comment {}",
                    quote(ADMIN_JUMP)?
                ));
            }
            lines.push(format!(
                "insert rule {t} {FORWARD} jump {STAGE1} comment {}",
                quote(ISOLATION_JUMP)?
            ));
        }
    }

    let tag = fw.tag();
    let comment = tag.nft_comment();
    let instance = tag.owner.instance_hash();
    let mine: Vec<&NftRule> = rules_in(existing, FORWARD)
        .filter(|r| tag_of(r).is_some_and(|t| t.instance == instance))
        .collect();
    let want = wanted(&fw.ips);
    let have: Vec<(Direction, IpAddr)> = mine
        .iter()
        .filter(|r| r.comment.as_deref() == Some(comment.as_str()))
        .filter_map(|r| describe(&r.expr))
        .collect();
    if mine.len() != want.len() || want.iter().any(|w| !have.contains(w)) {
        for rule in &mine {
            lines.push(format!("delete rule {t} {FORWARD} handle {}", rule.handle));
        }
        let quoted = quote(&comment)?;
        for (direction, ip) in want {
            let rule = rule_text(direction, ip);
            lines.push(format!("add rule {t} {FORWARD} {rule} comment {quoted}"));
        }
    }

    if let Some(iso) = &fw.isolation {
        for (chain, comment, rule, at_top) in isolation_rules(iso)? {
            if find(existing, chain, &comment).is_none() {
                let verb = if at_top { "insert" } else { "add" };
                lines.push(format!(
                    "{verb} rule {t} {chain} {rule} comment {}",
                    quote(&comment)?
                ));
            }
        }
    }
    // Declaring existing objects again costs a slow table update in the kernel: only what is
    // missing is declared.
    let mut head = Vec::new();
    if table.is_none() {
        head.push(format!(
            "add table {t} {{ comment {} ; }}",
            quote(TABLE_COMMENT)?
        ));
    }
    for chain in CHAINS.iter().filter(|c| !existing.has_chain(c)) {
        head.push(match *chain {
            FORWARD => format!(
                "add chain {t} {FORWARD} {{ type filter hook forward priority 0 ; policy accept ; }}"
            ),
            other => format!("add chain {t} {other}"),
        });
    }
    if head.is_empty() && lines.is_empty() {
        return Ok(None);
    }
    head.extend(lines);
    Ok(Some(head.join("\n") + "\n"))
}

/// The transaction removing the per-container rules `select` picks, the isolation rules of
/// bridges left without a container, or the whole table when nothing else is left in it.
pub(crate) fn plan_removal(
    table: &NftTable,
    select: &dyn Fn(&NftTag) -> bool,
    known_bridge: Option<&str>,
) -> Option<String> {
    let mut doomed: Vec<u64> = Vec::new();
    let mut bridges: Vec<String> = known_bridge.map(str::to_owned).into_iter().collect();
    for rule in rules_in(table, FORWARD) {
        if let Some(tag) = tag_of(rule).filter(|t| select(t)) {
            doomed.push(rule.handle);
            if let Some(iso) = tag.isolation
                && !bridges.contains(&iso.bridge)
            {
                bridges.push(iso.bridge);
            }
        }
    }
    let remaining: Vec<NftTag> = rules_in(table, FORWARD)
        .filter(|r| !doomed.contains(&r.handle))
        .filter_map(tag_of)
        .collect();
    for bridge in &bridges {
        let relies = |policy: Option<IngressPolicy>| {
            remaining.iter().any(|t| {
                t.isolation
                    .as_ref()
                    .is_some_and(|i| &i.bridge == bridge && policy.is_none_or(|p| p == i.policy))
            })
        };
        let mut release = Vec::new();
        if !relies(None) {
            release.push(bridge_comment(IngressPolicy::SameBridge, bridge));
        }
        if !relies(Some(IngressPolicy::Isolated)) {
            release.push(bridge_comment(IngressPolicy::Isolated, bridge));
        }
        doomed.extend(
            table
                .rules
                .iter()
                .filter(|r| r.chain == STAGE1 || r.chain == STAGE2)
                .filter(|r| r.comment.as_ref().is_some_and(|c| release.contains(c)))
                .map(|r| r.handle),
        );
    }
    let t = format!("{FAMILY} {TABLE}");
    let structural = |r: &NftRule| {
        r.chain == FORWARD
            && matches!(
                r.comment.as_deref(),
                Some(ISOLATION_JUMP) | Some(ADMIN_JUMP)
            )
    };
    let idle = table.chains.iter().all(|c| CHAINS.contains(&c.as_str()))
        && table
            .rules
            .iter()
            .all(|r| doomed.contains(&r.handle) || structural(r));
    if idle {
        return Some(format!("delete table {t}\n"));
    }
    if doomed.is_empty() {
        return None;
    }
    let chain_of = |h: u64| {
        table
            .rules
            .iter()
            .find(|r| r.handle == h)
            .map(|r| r.chain.as_str())
    };
    Some(
        doomed
            .iter()
            .filter_map(|h| chain_of(*h).map(|c| format!("delete rule {t} {c} handle {h}\n")))
            .collect(),
    )
}

fn missing(what: String) -> NetfilterError {
    NetfilterError::RuleMissing { what }
}

/// CHECK: chains, the structural jumps, both rules per address with this attachment's comment,
/// and the bridge's isolation rules.
pub(crate) fn check_table(table: &NftTable, fw: &ContainerFirewall) -> Result<(), NetfilterError> {
    let t = format!("{FAMILY} {TABLE}");
    for chain in CHAINS {
        if !table.has_chain(chain) {
            return Err(missing(format!("nftables chain {t} {chain}")));
        }
    }
    for (comment, target) in [(ISOLATION_JUMP, STAGE1), (ADMIN_JUMP, ADMIN)] {
        if find(table, FORWARD, comment).is_none() {
            return Err(missing(format!(
                "expected nftables rule `{FORWARD} jump {target}` in {t}"
            )));
        }
    }
    let comment = fw.tag().nft_comment();
    let have: Vec<(Direction, IpAddr)> = rules_in(table, FORWARD)
        .filter(|r| r.comment.as_deref() == Some(comment.as_str()))
        .filter_map(|r| describe(&r.expr))
        .collect();
    for (direction, ip) in wanted(&fw.ips) {
        if !have.contains(&(direction, ip)) {
            return Err(missing(format!(
                "expected nftables rule `{FORWARD} {}` in {t}",
                rule_text(direction, ip)
            )));
        }
    }
    if let Some(iso) = &fw.isolation {
        for (chain, comment, rule, _) in isolation_rules(iso)? {
            if find(table, chain, &comment).is_none() {
                return Err(missing(format!(
                    "expected nftables rule `{chain} {rule}` in {t}"
                )));
            }
        }
    }
    Ok(())
}

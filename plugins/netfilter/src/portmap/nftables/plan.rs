//! Pure planning for the nftables portmap backend: from the `nft -j` listings of the
//! `cni_hostport` tables to the lines of one `nft -f -` transaction.

use std::net::IpAddr;

use super::expr::{
    DnatRule, MasqRule, family_name, is_jump, is_local_jump, jumps_to, parse_dnat, parse_masq,
};
use super::{
    ALL_CHAIN, CHAINS, HOSTIP_CHAIN, HOSTPORTS_CHAIN, MASQ_CHAIN, OUTPUT_CHAIN, PREROUTING_CHAIN,
    TABLE, TABLE_COMMENT,
};
use crate::NetfilterError;
use crate::iptables::IpFamily;
use crate::nft::{NftRule, NftTable, quote};
use crate::portmap::{ContainerPorts, PortMapping, PortmapError};

/// `<family> cni_hostport`.
pub(crate) fn table_ref(family: IpFamily) -> String {
    format!("{} {TABLE}", family_name(family))
}

/// The chains holding per-container rules.
const MAPPING_CHAINS: [&str; 3] = [HOSTPORTS_CHAIN, HOSTIP_CHAIN, MASQ_CHAIN];

fn in_chain<'a>(table: &'a NftTable, chain: &'a str) -> impl Iterator<Item = &'a NftRule> {
    table.rules.iter().filter(move |r| r.chain == chain)
}

/// The DNAT rules `ports` needs in `family`.
fn wanted_dnat(ports: &ContainerPorts, family: IpFamily) -> Vec<DnatRule> {
    let Some(addr) = ports.address(family) else {
        return Vec::new();
    };
    ports
        .mappings_for(family)
        .map(|m| DnatRule {
            mapping: PortMapping {
                host_ip: m.destination(),
                ..*m
            },
            to: Some(addr.ip()),
        })
        .collect()
}

/// The masquerade rules `ports` needs in `family`: hairpin and (IPv4) localhost, or with
/// `masqAll` every DNATed connection to the container.
fn wanted_masq(ports: &ContainerPorts, family: IpFamily) -> Vec<MasqRule> {
    let Some(addr) = ports.address(family).filter(|_| ports.options.snat) else {
        return Vec::new();
    };
    let daddr = addr.ip();
    if ports.options.masq_all {
        return vec![MasqRule {
            saddr: None,
            daddr,
            dnatted: true,
        }];
    }
    let mut rules = vec![MasqRule {
        saddr: Some(daddr),
        daddr,
        dnatted: false,
    }];
    if family == IpFamily::V4 {
        rules.push(MasqRule {
            saddr: Some(IpAddr::from([127, 0, 0, 1])),
            daddr,
            dnatted: false,
        });
    }
    rules
}

/// Who holds a listed rule: `container "<cid>"` from the reference's comment, the network and
/// container from ours, or just the comment.
fn holder(comment: Option<&str>) -> String {
    match comment {
        Some(c) => match c
            .split_once(", net: ")
            .and_then(|(_, rest)| rest.split_once(", id: "))
        {
            Some((net, cid)) => format!("container {cid:?} of network {net:?}"),
            None => format!("container {c:?}"),
        },
        None => "an uncommented nftables rule".to_owned(),
    }
}

/// The container-ID hash of one of our comments (`<16 hex>-<16 hex>, …`).
fn container_hash(comment: &str) -> Option<&str> {
    let hex = |s: &str| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let (net, cid) = (comment.get(..16)?, comment.get(17..33)?);
    (hex(net) && hex(cid) && comment.get(16..17) == Some("-")).then_some(cid)
}

/// The first mapping of `ports` that a rule of another container already publishes.
fn conflict(table: &NftTable, ports: &ContainerPorts, family: IpFamily) -> Option<PortmapError> {
    let instance = ports.owner.nft_instance();
    let cid = ports.owner.container_id.as_str();
    for rule in table
        .rules
        .iter()
        .filter(|r| r.chain == HOSTPORTS_CHAIN || r.chain == HOSTIP_CHAIN)
    {
        let comment = rule.comment.as_deref();
        // Ours (any network: same container) or the reference's for this container ID.
        let same_container =
            comment.is_some_and(|c| c == cid || container_hash(c) == instance.get(17..33));
        if same_container {
            continue;
        }
        let Some(theirs) = parse_dnat(&rule.expr) else {
            continue;
        };
        if let Some(mine) = ports
            .mappings_for(family)
            .find(|m| m.overlaps(&theirs.mapping))
        {
            return Some(PortmapError::Conflict {
                mapping: mine.describe(),
                holder: holder(comment),
            });
        }
    }
    None
}

/// The lines publishing `ports` in `family` given the listed table (`None`: no table yet).
/// Empty when everything is in place.
pub(crate) fn plan_add(
    table: Option<&NftTable>,
    ports: &ContainerPorts,
    family: IpFamily,
) -> Result<Vec<String>, PortmapError> {
    if ports.address(family).is_none() {
        return Ok(Vec::new());
    }
    let empty = NftTable::default();
    let existing = table.unwrap_or(&empty);
    if let Some(conflict) = conflict(existing, ports, family) {
        return Err(conflict);
    }
    let t = table_ref(family);
    let mut head = Vec::new();
    let mut lines = Vec::new();
    if table.is_none() {
        head.push(format!(
            "add table {t} {{ comment {} ; }}",
            quote(TABLE_COMMENT)?
        ));
    }
    for chain in CHAINS {
        if chain == MASQ_CHAIN && !ports.options.snat {
            continue;
        }
        if !existing.has_chain(chain) {
            head.push(match chain {
                PREROUTING_CHAIN => format!(
                    "add chain {t} {chain} {{ type nat hook prerouting priority dstnat ; policy accept ; }}"
                ),
                OUTPUT_CHAIN => format!(
                    "add chain {t} {chain} {{ type nat hook output priority -100 ; policy accept ; }}"
                ),
                MASQ_CHAIN => format!(
                    "add chain {t} {chain} {{ type nat hook postrouting priority srcnat ; policy accept ; }}"
                ),
                other => format!("add chain {t} {other}"),
            });
        }
    }
    let all: Vec<&NftRule> = in_chain(existing, ALL_CHAIN).collect();
    let all_ok = matches!(all.as_slice(), [a, b] if is_jump(&a.expr, HOSTIP_CHAIN) && is_jump(&b.expr, HOSTPORTS_CHAIN));
    if !all_ok {
        if !all.is_empty() {
            lines.push(format!("flush chain {t} {ALL_CHAIN}"));
        }
        lines.push(format!("add rule {t} {ALL_CHAIN} jump {HOSTIP_CHAIN}"));
        lines.push(format!("add rule {t} {ALL_CHAIN} jump {HOSTPORTS_CHAIN}"));
    }
    let conditions = ports.options.conditions(family).join(" ");
    for base in [PREROUTING_CHAIN, OUTPUT_CHAIN] {
        let rules: Vec<&NftRule> = in_chain(existing, base).collect();
        let ok = conditions.is_empty()
            && matches!(rules.as_slice(), [only] if is_local_jump(&only.expr, ALL_CHAIN));
        if !ok {
            if !rules.is_empty() {
                lines.push(format!("flush chain {t} {base}"));
            }
            let prefix = if conditions.is_empty() {
                String::new()
            } else {
                format!("{conditions} ")
            };
            lines.push(format!(
                "add rule {t} {base} {prefix}fib daddr type local jump {ALL_CHAIN}"
            ));
        }
    }

    let comment = ports.owner.nft_comment();
    let instance = ports.owner.nft_instance();
    let mine: Vec<&NftRule> = owned(existing, &instance).collect();
    let dnat = wanted_dnat(ports, family);
    let masq = wanted_masq(ports, family);
    let exact = |r: &&&NftRule| r.comment.as_deref() == Some(comment.as_str());
    let have_dnat: Vec<DnatRule> = mine
        .iter()
        .filter(exact)
        .filter(|r| r.chain == HOSTPORTS_CHAIN)
        .filter_map(|r| parse_dnat(&r.expr))
        .collect();
    let have_masq: Vec<MasqRule> = mine
        .iter()
        .filter(exact)
        .filter(|r| r.chain == MASQ_CHAIN)
        .filter_map(|r| parse_masq(&r.expr))
        .collect();
    let current = mine.len() == dnat.len() + masq.len()
        && have_dnat.len() == dnat.len()
        && have_masq.len() == masq.len()
        && dnat.iter().all(|d| have_dnat.contains(d))
        && masq.iter().all(|m| have_masq.contains(m));
    if !current {
        for rule in &mine {
            lines.push(format!(
                "delete rule {t} {} handle {}",
                rule.chain, rule.handle
            ));
        }
        let quoted = quote(&comment)?;
        for d in dnat {
            let text = d.text(family);
            lines.push(format!(
                "add rule {t} {HOSTPORTS_CHAIN} {text} comment {quoted}"
            ));
        }
        for m in masq {
            let text = m.text(family);
            lines.push(format!("add rule {t} {MASQ_CHAIN} {text} comment {quoted}"));
        }
    }
    if lines.is_empty() && head.is_empty() {
        return Ok(Vec::new());
    }
    head.extend(lines);
    Ok(head)
}

/// Rules of the mapping chains whose comment starts with `instance`.
fn owned<'a>(table: &'a NftTable, instance: &'a str) -> impl Iterator<Item = &'a NftRule> {
    table
        .rules
        .iter()
        .filter(|r| MAPPING_CHAINS.contains(&r.chain.as_str()))
        .filter(move |r| {
            r.comment
                .as_deref()
                .is_some_and(|c| c.starts_with(instance))
        })
}

/// The lines removing the per-container rules `doomed` picks (by comment) in `family`, or the
/// whole table once nothing but its skeleton is left. Empty when nothing is there.
pub(crate) fn plan_removal(
    table: &NftTable,
    family: IpFamily,
    doomed: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let handles: Vec<(&str, u64)> = table
        .rules
        .iter()
        .filter(|r| MAPPING_CHAINS.contains(&r.chain.as_str()))
        .filter(|r| r.comment.as_deref().is_some_and(doomed))
        .map(|r| (r.chain.as_str(), r.handle))
        .collect();
    if handles.is_empty() {
        return Vec::new();
    }
    let t = table_ref(family);
    let skeleton = |r: &NftRule| match r.chain.as_str() {
        ALL_CHAIN => is_jump(&r.expr, HOSTIP_CHAIN) || is_jump(&r.expr, HOSTPORTS_CHAIN),
        PREROUTING_CHAIN | OUTPUT_CHAIN => jumps_to(&r.expr, ALL_CHAIN),
        _ => false,
    };
    let idle = table.chains.iter().all(|c| CHAINS.contains(&c.as_str()))
        && table
            .rules
            .iter()
            .all(|r| handles.contains(&(r.chain.as_str(), r.handle)) || skeleton(r));
    if idle {
        return vec![format!("delete table {t}")];
    }
    handles
        .into_iter()
        .map(|(chain, handle)| format!("delete rule {t} {chain} handle {handle}"))
        .collect()
}

fn missing(what: String) -> NetfilterError {
    NetfilterError::RuleMissing { what }
}

/// CHECK for one family: table, chains, the jumps into `hostports_all`, every DNAT and
/// masquerade rule of the container with its comment.
pub(crate) fn check(
    table: Option<&NftTable>,
    ports: &ContainerPorts,
    family: IpFamily,
) -> Result<(), NetfilterError> {
    if ports.address(family).is_none() {
        return Ok(());
    }
    let t = table_ref(family);
    let table = table.ok_or_else(|| missing(format!("nftables table {t}")))?;
    for chain in CHAINS {
        if (chain != MASQ_CHAIN || ports.options.snat) && !table.has_chain(chain) {
            return Err(missing(format!("nftables chain {t} {chain}")));
        }
    }
    for base in [PREROUTING_CHAIN, OUTPUT_CHAIN] {
        if !in_chain(table, base).any(|r| jumps_to(&r.expr, ALL_CHAIN)) {
            return Err(missing(format!(
                "nftables rule `{base} fib daddr type local jump {ALL_CHAIN}` in {t}"
            )));
        }
    }
    for target in [HOSTIP_CHAIN, HOSTPORTS_CHAIN] {
        if !in_chain(table, ALL_CHAIN).any(|r| is_jump(&r.expr, target)) {
            return Err(missing(format!(
                "nftables rule `{ALL_CHAIN} jump {target}` in {t}"
            )));
        }
    }
    let comment = ports.owner.nft_comment();
    let mine = |chain: &'static str| {
        in_chain(table, chain).filter(|r| r.comment.as_deref() == Some(comment.as_str()))
    };
    let have_dnat: Vec<DnatRule> = mine(HOSTPORTS_CHAIN)
        .filter_map(|r| parse_dnat(&r.expr))
        .collect();
    for want in wanted_dnat(ports, family) {
        if !have_dnat.contains(&want) {
            return Err(missing(format!(
                "nftables rule `{HOSTPORTS_CHAIN} {}` in {t}",
                want.text(family)
            )));
        }
    }
    let have_masq: Vec<MasqRule> = mine(MASQ_CHAIN)
        .filter_map(|r| parse_masq(&r.expr))
        .collect();
    for want in wanted_masq(ports, family) {
        if !have_masq.contains(&want) {
            return Err(missing(format!(
                "nftables rule `{MASQ_CHAIN} {}` in {t}",
                want.text(family)
            )));
        }
    }
    Ok(())
}

//! nftables masquerade backend, the reference's layout:
//!
//! ```text
//! table inet cni_plugins_masquerade {
//!   chain masq_checks { ip saddr == <ip> ip daddr != <subnet> masquerade comment "<hash>, net: …" … }
//!   chain postrouting { type nat hook postrouting priority srcnat;
//!     ip daddr 224.0.0.0/4 return; ip6 daddr ff00::/8 return; goto masq_checks }
//! }
//! ```
//!
//! One rule per address, commented `<16hex(net)>-<16hex(ifname:cid)>, net: N, if: I, id: C`
//! (cut to 128 bytes). Setup is one listing plus one `nft -f -`; teardown one listing plus one
//! `nft -f -` when something is there.

use std::collections::HashSet;
use std::sync::Arc;

use ipnetwork::IpNetwork;
use serde_json::Value;

use super::{BackendKind, MasqueradeBackend, validate};
use crate::NetfilterError;
use crate::exec::CommandRunner;
use crate::names::{hash_with_prefix, validate_name};
use crate::nft::{self, Nft, NftRule, NftTable};

/// The table family.
pub(crate) const FAMILY: &str = "inet";
/// The table.
pub(crate) const TABLE: &str = "cni_plugins_masquerade";
/// The chain holding one rule per address.
pub(crate) const MASQ_CHAIN: &str = "masq_checks";
/// The base chain.
pub(crate) const POSTROUTING: &str = "postrouting";
/// nftables' comment limit, as knftables enforces it.
const COMMENT_MAX: usize = 128;

/// First 16 hex of SHA-512(network): the comment prefix shared by a network's rules.
pub fn network_hash(network: &str) -> String {
    hash_with_prefix(16, "", network)
}

/// `<network_hash>-<16hex(ifname:container_id)>`: the comment prefix of one attachment's rules.
pub fn instance_hash(network: &str, ifname: &str, container_id: &str) -> String {
    format!(
        "{}-{}",
        network_hash(network),
        hash_with_prefix(16, "", &format!("{ifname}:{container_id}"))
    )
}

/// The full rule comment, cut to 128 bytes like the reference.
pub fn instance_comment(network: &str, ifname: &str, container_id: &str) -> String {
    let strip = |s: &str| s.replace('"', "");
    let mut comment = format!(
        "{}, net: {}, if: {}, id: {}",
        instance_hash(network, ifname, container_id),
        strip(network),
        strip(ifname),
        strip(container_id)
    );
    if comment.len() > COMMENT_MAX {
        let mut end = COMMENT_MAX;
        while !comment.is_char_boundary(end) {
            end -= 1;
        }
        comment.truncate(end);
    }
    comment
}

/// The nftables masquerade backend.
#[derive(Clone)]
pub struct NftablesMasquerade {
    nft: Nft,
}

impl std::fmt::Debug for NftablesMasquerade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NftablesMasquerade").finish_non_exhaustive()
    }
}

impl NftablesMasquerade {
    /// The backend over `runner`.
    pub fn new(runner: Arc<dyn CommandRunner>) -> Self {
        Self {
            nft: Nft::new(runner),
        }
    }

    fn list(&self) -> Result<Option<NftTable>, NetfilterError> {
        self.nft.list_table(FAMILY, TABLE)
    }

    /// Delete the masq_checks rules `select` picks, in one transaction; nothing picked or no
    /// table (or no nft at all) is success.
    fn delete_rules(&self, select: impl Fn(&NftRule) -> bool) -> Result<(), NetfilterError> {
        let table = match self.list() {
            Ok(Some(table)) => table,
            Ok(None) | Err(NetfilterError::ProgramNotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let handles: Vec<u64> = masq_rules(&table)
            .filter(|r| select(r))
            .map(|r| r.handle)
            .collect();
        if handles.is_empty() {
            return Ok(());
        }
        self.nft.apply(&delete_batch(&handles))
    }
}

impl MasqueradeBackend for NftablesMasquerade {
    fn kind(&self) -> BackendKind {
        BackendKind::Nftables
    }

    fn setup(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
        ips: &[IpNetwork],
    ) -> Result<(), NetfilterError> {
        validate(network, container_id)?;
        validate_name("interface name", ifname)?;
        let prefix = instance_hash(network, ifname, container_id);
        let stale: Vec<u64> = match self.list()? {
            Some(table) => masq_rules(&table)
                .filter(|r| has_prefix(r, &prefix))
                .map(|r| r.handle)
                .collect(),
            None => Vec::new(),
        };
        let comment = instance_comment(network, ifname, container_id);
        self.nft.apply(&setup_batch(&stale, &comment, ips)?)
    }

    fn teardown(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<(), NetfilterError> {
        validate(network, container_id)?;
        validate_name("interface name", ifname)?;
        let prefix = instance_hash(network, ifname, container_id);
        self.delete_rules(|r| has_prefix(r, &prefix))
    }

    fn check(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
        ips: &[IpNetwork],
    ) -> Result<(), NetfilterError> {
        validate(network, container_id)?;
        validate_name("interface name", ifname)?;
        let Some(table) = self.list()? else {
            return Err(NetfilterError::RuleMissing {
                what: format!("nftables table {FAMILY} {TABLE}"),
            });
        };
        check_table(
            &table,
            &instance_comment(network, ifname, container_id),
            ips,
        )
    }

    fn gc(&self, network: &str, valid: &[(&str, &str)]) -> Result<(), NetfilterError> {
        validate_name("network name", network)?;
        let prefix = network_hash(network);
        let keep: HashSet<String> = valid
            .iter()
            .map(|(cid, ifname)| instance_comment(network, ifname, cid))
            .collect();
        self.delete_rules(|r| {
            has_prefix(r, &prefix) && !r.comment.as_ref().is_some_and(|c| keep.contains(c))
        })
    }

    fn status(&self) -> Result<(), NetfilterError> {
        self.nft
            .probe(FAMILY, TABLE)
            .map_err(|e| NetfilterError::Unusable {
                backend: "nftables",
                source: Box::new(e),
            })
    }
}

fn masq_rules(table: &NftTable) -> impl Iterator<Item = &NftRule> {
    table.rules.iter().filter(|r| r.chain == MASQ_CHAIN)
}

fn has_prefix(rule: &NftRule, prefix: &str) -> bool {
    rule.comment
        .as_deref()
        .is_some_and(|c| c.starts_with(prefix))
}

/// `ip`/`ip6` and the subnet text of an address.
fn match_parts(ip: &IpNetwork) -> (&'static str, String) {
    let proto = if ip.is_ipv4() { "ip" } else { "ip6" };
    let subnet = IpNetwork::new(ip.network(), ip.prefix()).unwrap_or(*ip);
    (proto, subnet.to_string())
}

/// The setup transaction: ensure table and chains, rewrite `postrouting`, replace this
/// attachment's rules.
pub(crate) fn setup_batch(
    stale: &[u64],
    comment: &str,
    ips: &[IpNetwork],
) -> Result<String, NetfilterError> {
    let t = format!("{FAMILY} {TABLE}");
    let mut lines = vec![
        format!(
            "add table {t} {{ comment {} ; }}",
            nft::quote("Masquerading for plugins from github.com/containernetworking/plugins")?
        ),
        format!(
            "add chain {t} {MASQ_CHAIN} {{ comment {} ; }}",
            nft::quote(
                "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet"
            )?
        ),
        // srcnat = 100; written as a number like knftables does, for older nft.
        format!("add chain {t} {POSTROUTING} {{ type nat hook postrouting priority 100 ; }}"),
        format!("flush chain {t} {POSTROUTING}"),
        format!("add rule {t} {POSTROUTING} ip daddr == 224.0.0.0/4 return"),
        format!("add rule {t} {POSTROUTING} ip6 daddr == ff00::/8 return"),
        format!("add rule {t} {POSTROUTING} goto {MASQ_CHAIN}"),
    ];
    lines.extend(
        stale
            .iter()
            .map(|h| format!("delete rule {t} {MASQ_CHAIN} handle {h}")),
    );
    let quoted = nft::quote(comment)?;
    let mut seen = Vec::new();
    for ip in ips {
        if seen.contains(ip) {
            continue;
        }
        seen.push(*ip);
        let (proto, subnet) = match_parts(ip);
        lines.push(format!(
            "add rule {t} {MASQ_CHAIN} {proto} saddr == {} {proto} daddr != {subnet} masquerade comment {quoted}",
            ip.ip()
        ));
    }
    Ok(lines.join("\n") + "\n")
}

fn delete_batch(handles: &[u64]) -> String {
    handles
        .iter()
        .map(|h| format!("delete rule {FAMILY} {TABLE} {MASQ_CHAIN} handle {h}\n"))
        .collect()
}

/// CHECK: the base chain exists and each address has its rule with this attachment's comment.
pub(crate) fn check_table(
    table: &NftTable,
    comment: &str,
    ips: &[IpNetwork],
) -> Result<(), NetfilterError> {
    for chain in [POSTROUTING, MASQ_CHAIN] {
        if !table.has_chain(chain) {
            return Err(NetfilterError::RuleMissing {
                what: format!("nftables chain {FAMILY} {TABLE} {chain}"),
            });
        }
    }
    for ip in ips {
        let (proto, subnet) = match_parts(ip);
        let found = masq_rules(table)
            .filter(|r| r.comment.as_deref() == Some(comment))
            .any(|r| {
                rule_matches(
                    &r.expr,
                    &ip.ip().to_string(),
                    ip.prefix(),
                    &ip.network().to_string(),
                )
            });
        if !found {
            return Err(NetfilterError::RuleMissing {
                what: format!(
                    "nftables rule `{MASQ_CHAIN} {proto} saddr {} {proto} daddr != {subnet} masquerade comment \"{comment}\"`",
                    ip.ip()
                ),
            });
        }
    }
    Ok(())
}

/// Does an `nft -j` expression list read `saddr == ip`, `daddr != network/prefix`, `masquerade`?
fn rule_matches(expr: &Value, ip: &str, prefix: u8, network: &str) -> bool {
    let Some(items) = expr.as_array() else {
        return false;
    };
    let field_of = |m: &Value| {
        m.pointer("/left/payload/field")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let matches: Vec<&Value> = items.iter().filter_map(|i| i.get("match")).collect();
    let saddr_ok = matches.iter().any(|m| {
        field_of(m).as_deref() == Some("saddr")
            && m.get("op").and_then(Value::as_str) == Some("==")
            && m.get("right").and_then(Value::as_str) == Some(ip)
    });
    let daddr_ok = matches.iter().any(|m| {
        let right = m.get("right");
        let is_prefix = right.and_then(|r| r.get("prefix")).is_some_and(|p| {
            p.get("addr").and_then(Value::as_str) == Some(network)
                && p.get("len").and_then(Value::as_u64) == Some(u64::from(prefix))
        });
        // A host-length "subnet" is printed as a plain address.
        let is_host = right.and_then(Value::as_str) == Some(network);
        field_of(m).as_deref() == Some("daddr")
            && m.get("op").and_then(Value::as_str) == Some("!=")
            && (is_prefix || is_host)
    });
    let masquerades = items.iter().any(|i| i.get("masquerade").is_some());
    saddr_ok && daddr_ok && masquerades
}

#[cfg(test)]
mod tests;

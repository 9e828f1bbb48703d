//! The portmap plugin's config fields, `runtimeConfig.portMappings`, and their validation
//! (code 7 for anything wrong, before any rule changes).

use std::net::IpAddr;
use std::path::PathBuf;

use cni_core::CniError;
use cni_netfilter::exec::{self, CommandRunner};
use cni_netfilter::names::go_quote;
use cni_netfilter::portmap::{
    DEFAULT_LOCK_DIR, DEFAULT_MARK_BIT, MarkMode, PortMapping, PortmapKind, PortmapOptions,
    Protocol, validate_chain, validate_condition,
};
use serde::Deserialize;
use serde_json::Value;

/// The plugin's own fields, as the reference names them (plus `dataDir`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PortmapFields {
    /// Masquerade hairpin and localhost traffic (default true).
    #[serde(default)]
    pub snat: Option<bool>,
    /// Masquerade every source of published traffic.
    #[serde(default, rename = "masqAll")]
    pub masq_all: Option<bool>,
    /// The mark bit (0–31, default 13); exclusive with `externalSetMarkChain`.
    #[serde(default, rename = "markMasqBit")]
    pub mark_masq_bit: Option<i64>,
    /// An existing chain that marks traffic for masquerading.
    #[serde(default, rename = "externalSetMarkChain")]
    pub external_set_mark_chain: Option<String>,
    /// Extra matches on the IPv4 entry rules (iptables arguments or nft text).
    #[serde(default, rename = "conditionsV4")]
    pub conditions_v4: Option<Vec<String>>,
    /// Extra matches on the IPv6 entry rules.
    #[serde(default, rename = "conditionsV6")]
    pub conditions_v6: Option<Vec<String>>,
    /// `iptables` or `nftables` (absent: see [`load`]).
    #[serde(default)]
    pub backend: Option<String>,
    /// Directory of the host lock file (default `/run/cni/portmap`). Every config on a host
    /// should use the same one: only plugins sharing the lock are serialised.
    #[serde(default, rename = "dataDir")]
    pub data_dir: Option<PathBuf>,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortmapConfig {
    /// Which backend writes the rules.
    pub backend: PortmapKind,
    /// Rule-shaping options.
    pub options: PortmapOptions,
    /// Where the lock file lives.
    pub data_dir: PathBuf,
}

/// Which rule language a conditions list is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Iptables,
    Nftables,
}

/// iptables arguments start with an option (`-s`, `!`); anything else is nft text (the
/// reference's rule).
fn dialect(conditions: &[String]) -> Option<Dialect> {
    let first = conditions.first()?;
    if first.starts_with('-') || first == "!" {
        Some(Dialect::Iptables)
    } else {
        Some(Dialect::Nftables)
    }
}

/// Validate the fields (code 7 with the reference's messages where it has one). `runner`
/// only answers whether tools are installed (no exec).
pub fn load(fields: &PortmapFields, runner: &dyn CommandRunner) -> Result<PortmapConfig, CniError> {
    let v4 = fields.conditions_v4.clone().unwrap_or_default();
    let v6 = fields.conditions_v6.clone().unwrap_or_default();
    let mark = match (&fields.mark_masq_bit, &fields.external_set_mark_chain) {
        (Some(_), Some(_)) => {
            return Err(CniError::invalid_config(
                "Cannot specify externalSetMarkChain and markMasqBit",
            ));
        }
        (_, Some(chain)) => {
            validate_chain(chain).map_err(|e| {
                CniError::invalid_config(format!("invalid externalSetMarkChain: {e}"))
            })?;
            MarkMode::External(chain.clone())
        }
        (Some(bit), None) => match u8::try_from(*bit) {
            Ok(bit) if bit <= 31 => MarkMode::Bit(bit),
            _ => {
                return Err(CniError::invalid_config(
                    "MasqMarkBit must be between 0 and 31",
                ));
            }
        },
        (None, None) => MarkMode::Bit(DEFAULT_MARK_BIT),
    };
    for condition in v4.iter().chain(&v6) {
        validate_condition(condition)
            .map_err(|e| CniError::invalid_config(format!("invalid condition: {e}")))?;
    }

    let mut iptables_only = Vec::new();
    if fields.external_set_mark_chain.is_some() {
        iptables_only.push("externalSetMarkChain");
    }
    if fields.mark_masq_bit.is_some() {
        iptables_only.push("markMasqBit");
    }
    let mut nftables_only = Vec::new();
    for (key, list) in [("conditionsV4", &v4), ("conditionsV6", &v6)] {
        match dialect(list) {
            Some(Dialect::Iptables) => iptables_only.push(key),
            Some(Dialect::Nftables) => nftables_only.push(key),
            None => {}
        }
    }
    let backend = match fields.backend.as_deref() {
        Some("iptables") => PortmapKind::Iptables,
        Some("nftables") => PortmapKind::Nftables,
        None | Some("") => {
            let iptables_missing =
                !runner.has_program(exec::IPTABLES_RESTORE) && runner.has_program(exec::NFT);
            if !nftables_only.is_empty() || (iptables_only.is_empty() && iptables_missing) {
                PortmapKind::Nftables
            } else {
                PortmapKind::Iptables
            }
        }
        Some(other) => {
            return Err(CniError::invalid_config(format!(
                "unknown portmap backend {}: use \"iptables\" or \"nftables\"",
                go_quote(other)
            )));
        }
    };
    let (offending, other) = match backend {
        PortmapKind::Iptables => (&nftables_only, "nftables"),
        PortmapKind::Nftables => (&iptables_only, "iptables"),
    };
    if !offending.is_empty() {
        return Err(CniError::invalid_config(format!(
            "{} backend was requested but configuration contains {other}-specific options [{}]",
            backend.as_str(),
            offending.join(" ")
        )));
    }

    let data_dir = fields
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_LOCK_DIR));
    if !data_dir.is_absolute() {
        return Err(CniError::invalid_config(format!(
            "dataDir must be an absolute path, got {:?}",
            data_dir.display().to_string()
        )));
    }
    Ok(PortmapConfig {
        backend,
        options: PortmapOptions {
            snat: fields.snat.unwrap_or(true),
            masq_all: fields.masq_all.unwrap_or(false),
            mark,
            conditions_v4: v4,
            conditions_v6: v6,
        },
        data_dir,
    })
}

/// One `runtimeConfig.portMappings[]` entry as the runtime sends it.
#[derive(Debug, Clone, Default, Deserialize)]
struct RawMapping {
    #[serde(default, rename = "hostPort")]
    host_port: i64,
    #[serde(default, rename = "containerPort")]
    container_port: i64,
    #[serde(default)]
    protocol: String,
    #[serde(default, rename = "hostIP")]
    host_ip: String,
}

/// The raw entries (absent or `null`: none).
fn raw_mappings(raw: Option<&Value>) -> Result<Vec<RawMapping>, CniError> {
    match raw {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            CniError::invalid_config(format!("invalid runtimeConfig.portMappings: {e}"))
        }),
    }
}

/// Whether the runtime passed any mapping at all (DEL acts only then, as the reference).
pub fn has_mappings(raw: Option<&Value>) -> bool {
    raw.and_then(Value::as_array).is_some_and(|a| !a.is_empty())
}

/// `runtimeConfig.portMappings`, validated in the runtime's order: ports 1–65535 (the
/// reference's messages), protocol `tcp`/`udp`/`sctp` (empty: `tcp`), `hostIP` an address.
pub fn mappings(raw: Option<&Value>) -> Result<Vec<PortMapping>, CniError> {
    raw_mappings(raw)?
        .into_iter()
        .map(|m| {
            let container_port = port(m.container_port).ok_or_else(|| {
                invalid(format!(
                    "Invalid container port number: {}",
                    m.container_port
                ))
            })?;
            let host_port = port(m.host_port)
                .ok_or_else(|| invalid(format!("Invalid host port number: {}", m.host_port)))?;
            let protocol = if m.protocol.is_empty() {
                Protocol::Tcp
            } else {
                Protocol::parse(&m.protocol).ok_or_else(|| {
                    invalid(format!(
                        "Invalid protocol {}: must be tcp, udp or sctp",
                        go_quote(&m.protocol)
                    ))
                })?
            };
            let host_ip = match m.host_ip.as_str() {
                "" => None,
                text => Some(
                    text.parse::<IpAddr>()
                        .map_err(|_| invalid(format!("Invalid host IP {}", go_quote(text))))?,
                ),
            };
            Ok(PortMapping {
                host_port,
                container_port,
                protocol,
                host_ip,
            })
        })
        .collect()
}

fn port(n: i64) -> Option<u16> {
    u16::try_from(n).ok().filter(|p| *p > 0)
}

fn invalid(msg: String) -> CniError {
    CniError::invalid_config(msg)
}

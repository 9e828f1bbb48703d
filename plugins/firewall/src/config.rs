//! The firewall plugin's config fields and their validation (code 7 for anything wrong, before
//! any rule changes).

use std::path::PathBuf;

use cni_core::CniError;
use cni_netfilter::firewall::{
    DEFAULT_ADMIN_CHAIN, FirewallKind, IngressPolicy, lock, unknown_policy_message,
    validate_chain_name,
};
use cni_netfilter::names::go_quote;
use serde::Deserialize;

/// The plugin's own fields, as the reference names them (plus `dataDir`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FirewallFields {
    /// `iptables` (also `""` or absent, as podman writes it), `nftables`; `firewalld` is refused.
    #[serde(default)]
    pub backend: Option<String>,
    /// `open` (default), `same-bridge`, `isolated`.
    #[serde(default, rename = "ingressPolicy")]
    pub ingress_policy: Option<String>,
    /// Admin chain jumped to first from `CNI-FORWARD` (iptables; default `CNI-ADMIN`).
    #[serde(default, rename = "iptablesAdminChainName")]
    pub iptables_admin_chain_name: Option<String>,
    /// firewalld zone: accepted and ignored (the firewalld backend is not supported).
    #[serde(default, rename = "firewalldZone")]
    pub firewalld_zone: Option<String>,
    /// Directory of the host lock file (default `/run/cni/firewall`). Every config on a host
    /// should use the same one: only plugins sharing the lock are serialised.
    #[serde(default, rename = "dataDir")]
    pub data_dir: Option<PathBuf>,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallConfig {
    /// Which backend writes the rules.
    pub backend: FirewallKind,
    /// The ingress policy.
    pub policy: IngressPolicy,
    /// The admin chain (iptables).
    pub admin_chain: String,
    /// Where the lock file lives.
    pub data_dir: PathBuf,
}

/// Validate the fields (code 7 with the reason).
pub fn load(fields: &FirewallFields) -> Result<FirewallConfig, CniError> {
    let backend = match fields.backend.as_deref().unwrap_or_default() {
        "" | "iptables" => FirewallKind::Iptables,
        "nftables" => FirewallKind::Nftables,
        "firewalld" => {
            return Err(CniError::invalid_config(
                "the firewalld backend is not supported (no D-Bus client in this plugin): \
                 use backend \"iptables\" or \"nftables\"",
            ));
        }
        other => {
            return Err(CniError::invalid_config(format!(
                "unknown firewall backend {}: use \"iptables\" or \"nftables\"",
                go_quote(other)
            )));
        }
    };
    let requested = fields.ingress_policy.as_deref().unwrap_or_default();
    let policy = IngressPolicy::parse(requested)
        .ok_or_else(|| CniError::invalid_config(unknown_policy_message(requested)))?;
    let admin_chain = match fields.iptables_admin_chain_name.as_deref() {
        None | Some("") => DEFAULT_ADMIN_CHAIN.to_owned(),
        Some(name) => {
            validate_chain_name(name).map_err(|e| {
                CniError::invalid_config(format!("invalid iptablesAdminChainName: {e}"))
            })?;
            name.to_owned()
        }
    };
    let data_dir = fields
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(lock::DEFAULT_DIR));
    if !data_dir.is_absolute() {
        return Err(CniError::invalid_config(format!(
            "dataDir must be an absolute path, got {:?}",
            data_dir.display().to_string()
        )));
    }
    Ok(FirewallConfig {
        backend,
        policy,
        admin_chain,
        data_dir,
    })
}

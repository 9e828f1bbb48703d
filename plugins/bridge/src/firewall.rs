//! The bridge's netfilter state: masquerade rules (iptables or nftables backend, from the
//! netfilter crate) and the MAC spoof check (nft bridge-family rules, reference layout).

use std::sync::Arc;

use cni_core::config::AttachmentKey;
use cni_core::{CniError, ErrorCode};
use cni_netfilter::NetfilterError;
use cni_netfilter::exec::{CommandRunner, SystemRunner};
use cni_netfilter::masquerade::{self, MasqueradeBackend};
use cni_netfilter::nft::{Nft, quote};
use ipnetwork::IpNetwork;

use crate::config::BridgeConfig;
use crate::error::{self, BridgeCode};
use crate::ports::{Masquerade, SpoofChecker};

/// 11 (try again later) when an iptables tool gave up waiting for the xtables lock, else 124.
fn firewall_error(what: &str, e: &NetfilterError) -> CniError {
    let msg = format!("{what}: {}", error::chain(e));
    if e.is_lock_timeout() {
        return CniError::new(ErrorCode::TryAgainLater, msg);
    }
    error::plugin(BridgeCode::Firewall, msg)
}

fn runner() -> Arc<dyn CommandRunner> {
    Arc::new(SystemRunner)
}

/// How a masquerade backend is chosen (`masquerade::select_backend` or its netlink variant).
type SelectBackend =
    fn(Option<&str>, Arc<dyn CommandRunner>) -> Result<Box<dyn MasqueradeBackend>, NetfilterError>;

/// The masquerade rules of one attachment. The backend is chosen on first use, so a DEL of a
/// network without `ipMasq` runs no firewall tool at all.
pub struct MasqueradeRules<'a> {
    backend_name: Option<&'a str>,
    network: &'a str,
    container_id: &'a str,
    ifname: &'a str,
}

impl<'a> MasqueradeRules<'a> {
    /// Rules of `(network, container_id, ifname)` with the config's backend choice.
    pub fn new(
        cfg: &'a BridgeConfig,
        network: &'a str,
        container_id: &'a str,
        ifname: &'a str,
    ) -> Self {
        MasqueradeRules {
            backend_name: cfg.ip_masq_backend.as_deref(),
            network,
            container_id,
            ifname,
        }
    }

    fn backend(&self) -> Result<Box<dyn MasqueradeBackend>, CniError> {
        self.backend_from(masquerade::select_backend)
    }

    /// The configured backend as `select` builds it.
    fn backend_from(&self, select: SelectBackend) -> Result<Box<dyn MasqueradeBackend>, CniError> {
        select(self.backend_name, runner()).map_err(|e| match e {
            NetfilterError::UnknownBackend { .. } => CniError::invalid_config(e.to_string()),
            other => firewall_error("failed to choose the ipMasq backend", &other),
        })
    }

    /// STATUS: the chosen backend works here (code 50 otherwise).
    pub fn status(cfg: &BridgeConfig) -> Result<(), CniError> {
        let rules = MasqueradeRules {
            backend_name: cfg.ip_masq_backend.as_deref(),
            network: "",
            container_id: "",
            ifname: "",
        };
        rules
            .backend()?
            .status()
            .map_err(|e| CniError::new(ErrorCode::NotAvailable, error::chain(&e)))
    }

    /// GC: removes masquerade state of attachments of `network` not in `valid`, in both
    /// backends (an attachment may predate a change of backend).
    pub fn gc(network: &str, valid: &[AttachmentKey]) -> Result<(), CniError> {
        let pairs: Vec<(&str, &str)> = valid
            .iter()
            .map(|k| (k.container_id.as_str(), k.ifname.as_str()))
            .collect();
        masquerade::gc_all(&runner(), network, &pairs)
            .map_err(|e| firewall_error("masquerade GC failed", &e))
    }
}

impl Masquerade for MasqueradeRules<'_> {
    fn setup(&self, ips: &[IpNetwork]) -> Result<(), CniError> {
        // ADD: with iptables-nft the chain is created over netlink, the batch needs no `-N`.
        self.backend_from(masquerade::select_backend_with_netlink)?
            .setup(self.network, self.container_id, self.ifname, ips)
            .map_err(|e| firewall_error("failed to set up IP masquerade", &e))
    }

    /// Only in the configured (or default) backend: the config must not change between ADD
    /// and DEL, and looking into the other backend costs an exec per DEL. GC looks in both.
    fn teardown(&self) -> Result<(), CniError> {
        // DEL only: deleting over netlink needs no iptables read of `nat`.
        self.backend_from(masquerade::select_backend_with_netlink)?
            .teardown(self.network, self.container_id, self.ifname)
            .map_err(|e| firewall_error("failed to tear down IP masquerade", &e))
    }

    fn check(&self, ips: &[IpNetwork]) -> Result<(), CniError> {
        self.backend()?
            .check(self.network, self.container_id, self.ifname, ips)
            .map_err(|e| {
                if e.is_lock_timeout() {
                    firewall_error("failed to check IP masquerade", &e)
                } else {
                    error::plugin(BridgeCode::CheckFailed, error::chain(&e))
                }
            })
    }
}

const TABLE: &str = "nat";
const FAMILY: &str = "bridge";
const PREROUTING: &str = "PREROUTING";

/// The reference's MAC spoof check: in `table bridge nat`, base chain `PREROUTING`, per-port
/// chains `cni-br-iface-<id>` and `cni-br-iface-<id>-mac`, where `<id>` is `<containerID>-<ifname>`.
pub struct SpoofCheck {
    id: String,
}

impl SpoofCheck {
    /// The spoof check of `(container_id, ifname)`.
    pub fn new(container_id: &str, ifname: &str) -> Self {
        SpoofCheck {
            id: format!("{container_id}-{ifname}"),
        }
    }

    fn iface_chain(&self) -> String {
        format!("cni-br-iface-{}", self.id)
    }

    fn mac_chain(&self) -> String {
        format!("{}-mac", self.iface_chain())
    }

    fn comment(&self) -> String {
        format!("macspoofchk-{}", self.id)
    }

    /// The `nft -f -` batch that sets the check up.
    pub fn setup_batch(&self, host_iface: &str, mac: &str) -> Result<String, NetfilterError> {
        let comment = quote(&self.comment())?;
        let iface = quote(host_iface)?;
        let (ic, mc) = (self.iface_chain(), self.mac_chain());
        Ok(format!(
            "add table {FAMILY} {TABLE}\n\
             add chain {FAMILY} {TABLE} {PREROUTING} {{ type filter hook prerouting priority -300 ; policy accept ; }}\n\
             add chain {FAMILY} {TABLE} {ic}\n\
             add chain {FAMILY} {TABLE} {mc}\n\
             add rule {FAMILY} {TABLE} {PREROUTING} iifname == {iface} jump {ic} comment {comment}\n\
             add rule {FAMILY} {TABLE} {ic} jump {mc} comment {comment}\n\
             add rule {FAMILY} {TABLE} {mc} ether saddr == {mac} return comment {comment}\n\
             add rule {FAMILY} {TABLE} {mc} drop comment {comment}\n"
        ))
    }

    fn teardown_with(&self, nft: &Nft) -> Result<(), NetfilterError> {
        let Some(table) = nft.list_table(FAMILY, TABLE)? else {
            return Ok(());
        };
        let comment = self.comment();
        let mut batch = String::new();
        for rule in table
            .rules
            .iter()
            .filter(|r| r.chain == PREROUTING && r.comment.as_deref() == Some(&comment))
        {
            batch.push_str(&format!(
                "delete rule {FAMILY} {TABLE} {PREROUTING} handle {}\n",
                rule.handle
            ));
        }
        for chain in [self.iface_chain(), self.mac_chain()] {
            if table.has_chain(&chain) {
                batch.push_str(&format!(
                    "flush chain {FAMILY} {TABLE} {chain}\ndelete chain {FAMILY} {TABLE} {chain}\n"
                ));
            }
        }
        if batch.is_empty() {
            Ok(())
        } else {
            nft.apply(&batch)
        }
    }
}

impl SpoofChecker for SpoofCheck {
    fn setup(&self, host_iface: &str, mac: &str) -> Result<(), CniError> {
        let batch = self
            .setup_batch(host_iface, mac)
            .map_err(|e| firewall_error("invalid spoof-check input", &e))?;
        Nft::new(runner())
            .apply(&batch)
            .map_err(|e| firewall_error("failed to set up the MAC spoof check", &e))
    }

    fn teardown(&self) -> Result<(), CniError> {
        self.teardown_with(&Nft::new(runner()))
            .map_err(|e| firewall_error("failed to remove the MAC spoof check", &e))
    }
}

//! The CNI face of the firewall plugin: config and `prevResult` in, one backend call, the
//! `prevResult` out.

use std::net::IpAddr;
use std::sync::Arc;

use cni_core::config::AttachmentKey;
use cni_core::skel::{Attachment, Invocation, Plugin};
use cni_core::version::CniVersion;
use cni_core::{CniError, CniResult};
use cni_netfilter::exec::{CommandRunner, SystemRunner};
use cni_netfilter::firewall::{
    ContainerFirewall, FirewallBackend, FirewallKind, HostLock, HostRoutes, IngressPolicy,
    IptablesFirewall, NftablesFirewall, Owner, ProcRoutes, Teardown,
};
use cni_netfilter::names::{go_quote, validate_name};
use cni_netfilter::nfnl::{NfRules, for_this_host};

use crate::config::{self, FirewallConfig, FirewallFields};
use crate::error;

/// Config versions the plugin accepts (the reference's list: CHECK must exist).
const VERSIONS: [CniVersion; 3] = [CniVersion::V0_4_0, CniVersion::V1_0_0, CniVersion::V1_1_0];

/// The plugin, on the real tools.
#[derive(Debug, Default, Clone, Copy)]
pub struct Firewall;

/// The plugin over a given command runner and route table (tests use fakes).
#[derive(Clone)]
pub struct Service {
    runner: Arc<dyn CommandRunner>,
    routes: Arc<dyn HostRoutes>,
    nf: Option<(Arc<dyn NfRules>, bool)>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").finish_non_exhaustive()
    }
}

impl Service {
    /// The plugin over `runner` and `routes`.
    pub fn new(runner: Arc<dyn CommandRunner>, routes: Arc<dyn HostRoutes>) -> Self {
        Service {
            runner,
            routes,
            nf: None,
        }
    }

    /// Also read and prune iptables-nft's rules through `nf` (see [`IptablesFirewall::with_nf_rules`]).
    pub fn with_nf_rules(mut self, nf: Arc<dyn NfRules>, known_nft: bool) -> Self {
        self.nf = Some((nf, known_nft));
        self
    }

    /// The real tools and procfs, and nf_tables netlink unless iptables is iptables-legacy.
    pub fn system() -> Self {
        let service = Service::new(Arc::new(SystemRunner), Arc::new(ProcRoutes));
        match for_this_host() {
            Some((nf, known_nft)) => service.with_nf_rules(nf, known_nft),
            None => service,
        }
    }

    fn backend(&self, cfg: &FirewallConfig) -> Box<dyn FirewallBackend> {
        let lock = HostLock::in_dir(&cfg.data_dir);
        match cfg.backend {
            FirewallKind::Iptables => {
                let backend = IptablesFirewall::new(self.runner.clone(), lock)
                    .with_routes(self.routes.clone());
                Box::new(match &self.nf {
                    Some((nf, known_nft)) => backend.with_nf_rules(nf.clone(), *known_nft),
                    None => backend,
                })
            }
            FirewallKind::Nftables => Box::new(NftablesFirewall::new(self.runner.clone(), lock)),
        }
    }
}

/// `prevResult`, required (code 7 with the reference's message).
fn required_prev(inv: &Invocation<FirewallFields>) -> Result<CniResult, CniError> {
    inv.conf
        .prev_result(inv.version)?
        .ok_or_else(|| CniError::invalid_config("missing prevResult from earlier plugin"))
}

/// The bridge the isolation rules are for: the name of `prevResult.interfaces[0]`.
fn bridge_of(prev: &CniResult, policy: IngressPolicy) -> Result<Option<String>, CniError> {
    if !policy.isolates() {
        return Ok(None);
    }
    let Some(first) = prev.interfaces.first() else {
        return Err(CniError::invalid_config(format!(
            "interface needs to be set for ingress policy {}, make sure to chain \"firewall\" plugin with \"bridge\"",
            go_quote(policy.as_str())
        )));
    };
    if first.name.is_empty() {
        return Err(CniError::invalid_config("got empty bridge name"));
    }
    let invalid =
        |e: String| CniError::invalid_config(format!("invalid bridge name in prevResult: {e}"));
    cni_core::validate::interface_name(&first.name).map_err(|e| invalid(e.to_string()))?;
    validate_name("bridge name", &first.name).map_err(|e| invalid(e.to_string()))?;
    Ok(Some(first.name.clone()))
}

fn addresses(prev: &CniResult) -> Vec<IpAddr> {
    prev.ips.iter().map(|ip| ip.address.ip()).collect()
}

/// ADD and CHECK's view of the attachment (code 7 when a name cannot go into a rule).
fn container_firewall(
    inv: &Invocation<FirewallFields>,
    att: &Attachment,
    cfg: &FirewallConfig,
    prev: &CniResult,
) -> Result<ContainerFirewall, CniError> {
    let bridge = bridge_of(prev, cfg.policy)?;
    ContainerFirewall::new(
        Owner::new(&inv.conf.name, &att.container_id, &att.ifname),
        &addresses(prev),
        cfg.policy,
        bridge.as_deref(),
        &cfg.admin_chain,
    )
    .map_err(|e| CniError::invalid_config(error::chain(&e)))
}

impl Plugin for Service {
    type Conf = FirewallFields;
    const NAME: &'static str = "firewall";

    fn supported_versions(&self) -> &'static [CniVersion] {
        &VERSIONS
    }

    fn add(
        &self,
        inv: &Invocation<FirewallFields>,
        att: &Attachment,
    ) -> Result<CniResult, CniError> {
        let cfg = config::load(&inv.conf.plugin)?;
        let prev = required_prev(inv)?;
        let fw = container_firewall(inv, att, &cfg, &prev)?;
        self.backend(&cfg)
            .add(&fw)
            .map_err(|e| error::apply("failed to add firewall rules", &e))?;
        Ok(prev)
    }

    fn del(&self, inv: &Invocation<FirewallFields>, att: &Attachment) -> Result<(), CniError> {
        // A config ADD refuses cannot have made rules: nothing to delete.
        let Ok(cfg) = config::load(&inv.conf.plugin) else {
            return Ok(());
        };
        // DEL must work without (or with an unreadable) prevResult: rules are found by owner.
        let prev = inv.conf.prev_result(inv.version).ok().flatten();
        let ips = prev.as_ref().map(addresses).unwrap_or_default();
        let bridge = prev
            .as_ref()
            .and_then(|p| bridge_of(p, cfg.policy).ok().flatten());
        let owner = Owner::new(&inv.conf.name, &att.container_id, &att.ifname);
        let Ok(teardown) = Teardown::new(owner, &ips, bridge.as_deref()) else {
            // Names ADD would have refused: no rule can carry them.
            return Ok(());
        };
        self.backend(&cfg)
            .del(&teardown)
            .map_err(|e| error::apply("failed to delete firewall rules", &e))
    }

    fn check(&self, inv: &Invocation<FirewallFields>, att: &Attachment) -> Result<(), CniError> {
        let cfg = config::load(&inv.conf.plugin)?;
        let prev = required_prev(inv)?;
        let fw = container_firewall(inv, att, &cfg, &prev)?;
        self.backend(&cfg).check(&fw).map_err(|e| error::check(&e))
    }

    fn status(&self, inv: &Invocation<FirewallFields>) -> Result<(), CniError> {
        let cfg = config::load(&inv.conf.plugin)?;
        self.backend(&cfg).status().map_err(|e| error::status(&e))
    }

    fn gc(
        &self,
        inv: &Invocation<FirewallFields>,
        valid: &[AttachmentKey],
    ) -> Result<(), CniError> {
        let Ok(cfg) = config::load(&inv.conf.plugin) else {
            return Ok(());
        };
        let pairs: Vec<(&str, &str)> = valid
            .iter()
            .map(|k| (k.container_id.as_str(), k.ifname.as_str()))
            .collect();
        self.backend(&cfg)
            .gc(&inv.conf.name, &pairs)
            .map_err(|e| error::apply("firewall GC failed", &e))
    }
}

impl Plugin for Firewall {
    type Conf = FirewallFields;
    const NAME: &'static str = "firewall";

    fn supported_versions(&self) -> &'static [CniVersion] {
        &VERSIONS
    }

    fn add(
        &self,
        inv: &Invocation<FirewallFields>,
        att: &Attachment,
    ) -> Result<CniResult, CniError> {
        Service::system().add(inv, att)
    }

    fn del(&self, inv: &Invocation<FirewallFields>, att: &Attachment) -> Result<(), CniError> {
        Service::system().del(inv, att)
    }

    fn check(&self, inv: &Invocation<FirewallFields>, att: &Attachment) -> Result<(), CniError> {
        Service::system().check(inv, att)
    }

    fn status(&self, inv: &Invocation<FirewallFields>) -> Result<(), CniError> {
        Service::system().status(inv)
    }

    fn gc(
        &self,
        inv: &Invocation<FirewallFields>,
        valid: &[AttachmentKey],
    ) -> Result<(), CniError> {
        Service::system().gc(inv, valid)
    }
}

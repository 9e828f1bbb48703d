//! The CNI face of the portmap plugin: config, `runtimeConfig.portMappings` and `prevResult` in,
//! one backend call (plus `route_localnet` and a UDP conntrack flush on ADD), the `prevResult`
//! out.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use cni_core::config::AttachmentKey;
use cni_core::skel::{Attachment, Invocation, Plugin};
use cni_core::{CniError, CniResult};
use cni_kernel::sysctl::{ProcSysctl, Sysctl};
use cni_netfilter::exec::{CommandRunner, SystemRunner};
use cni_netfilter::firewall::{HostLock, HostRoutes, ProcRoutes};
use cni_netfilter::portmap::{ContainerPorts, PortmapBackend, PortmapOwner, flush_udp_conntrack};
use ipnetwork::IpNetwork;

use crate::config::{self, PortmapConfig, PortmapFields};
use crate::error::{self, PortmapCode};

/// The plugin, on the real tools, procfs and sysctls.
#[derive(Debug, Default, Clone, Copy)]
pub struct Portmap;

/// Sysctl access shared by the verbs.
type SharedSysctl = Arc<Mutex<dyn Sysctl + Send>>;

/// The plugin over a given command runner, route table and sysctls (tests use fakes).
#[derive(Clone)]
pub struct Service {
    runner: Arc<dyn CommandRunner>,
    routes: Arc<dyn HostRoutes>,
    sysctl: SharedSysctl,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").finish_non_exhaustive()
    }
}

impl Service {
    /// The plugin over `runner`, `routes` and `sysctl`.
    pub fn new(
        runner: Arc<dyn CommandRunner>,
        routes: Arc<dyn HostRoutes>,
        sysctl: SharedSysctl,
    ) -> Self {
        Service {
            runner,
            routes,
            sysctl,
        }
    }

    /// The real tools, procfs and `/proc/sys` of the plugin's own namespace.
    pub fn system() -> Self {
        Service::new(
            Arc::new(SystemRunner),
            Arc::new(ProcRoutes),
            Arc::new(Mutex::new(ProcSysctl::new(None))),
        )
    }

    fn load(&self, inv: &Invocation<PortmapFields>) -> Result<PortmapConfig, CniError> {
        config::load(&inv.conf.plugin, self.runner.as_ref())
    }

    fn backend(&self, cfg: &PortmapConfig) -> Box<dyn PortmapBackend> {
        cfg.backend
            .backend(self.runner.clone(), HostLock::in_dir(&cfg.data_dir))
    }

    /// `net/ipv4/conf/<if>/route_localnet=1` on the host interface routing to `ip`, so
    /// connections from 127.0.0.1 may be DNATed out of it (nothing when no route matches, as
    /// the reference).
    fn enable_route_localnet(&self, ip: IpAddr) -> Result<(), CniError> {
        let fail = |e: String| {
            error::plugin(
                PortmapCode::Apply,
                format!("unable to enable route_localnet: {e}"),
            )
        };
        let Ok(Some(iface)) = self.routes.route_interface(ip) else {
            return Ok(());
        };
        cni_core::validate::interface_name(&iface).map_err(|e| fail(e.msg))?;
        let key = format!("net/ipv4/conf/{iface}/route_localnet");
        let mut sysctl = self.sysctl.lock().unwrap_or_else(PoisonError::into_inner);
        if sysctl.read(&key).is_ok_and(|v| v.trim() == "1") {
            return Ok(());
        }
        sysctl.write(&key, "1").map_err(|e| fail(error::chain(&e)))
    }
}

/// `prevResult`, required (code 7).
fn required_prev(inv: &Invocation<PortmapFields>, missing: &str) -> Result<CniResult, CniError> {
    inv.conf
        .prev_result(inv.version)?
        .ok_or_else(|| CniError::invalid_config(missing))
}

/// The first IPv4 and first IPv6 address of the container interface (or of no interface), as
/// the reference picks them.
pub fn container_addresses(prev: &CniResult, ifname: &str) -> [Option<IpNetwork>; 2] {
    let mut found: [Option<IpNetwork>; 2] = [None, None];
    for ip in &prev.ips {
        let slot = usize::from(ip.address.is_ipv6());
        if found[slot].is_some() {
            continue;
        }
        let other_iface = ip
            .interface
            .and_then(|i| prev.interfaces.get(i))
            .is_some_and(|iface| iface.name != ifname || iface.sandbox.is_empty());
        if !other_iface {
            found[slot] = Some(ip.address);
        }
    }
    found
}

/// ADD and CHECK's view of the attachment (code 7 for anything that cannot go into a rule).
fn container_ports(
    inv: &Invocation<PortmapFields>,
    att: &Attachment,
    cfg: &PortmapConfig,
    prev: &CniResult,
) -> Result<ContainerPorts, CniError> {
    let mappings = config::mappings(inv.conf.runtime_config.port_mappings.as_ref())?;
    ContainerPorts::new(
        PortmapOwner::new(&inv.conf.name, &att.container_id),
        container_addresses(prev, &att.ifname),
        &mappings,
        cfg.options.clone(),
    )
    .map_err(|e| CniError::invalid_config(error::chain(&e)))
}

impl Plugin for Service {
    type Conf = PortmapFields;
    const NAME: &'static str = "portmap";

    fn add(
        &self,
        inv: &Invocation<PortmapFields>,
        att: &Attachment,
    ) -> Result<CniResult, CniError> {
        let cfg = self.load(inv)?;
        let prev = required_prev(inv, "must be called as chained plugin")?;
        let ports = container_ports(inv, att, &cfg, &prev)?;
        if ports.mappings.is_empty() || ports.families().is_empty() {
            return Ok(prev);
        }
        let backend = self.backend(&cfg);
        backend
            .add(&ports)
            .map_err(|e| error::apply("failed to set up port mappings", &e))?;
        if let Some(v4) = ports.v4.filter(|_| cfg.options.snat)
            && let Err(e) = self.enable_route_localnet(v4.ip())
        {
            let _ = backend.del(&ports.owner);
            return Err(e);
        }
        // Informative only, as the reference: a stale entry is a nuisance, not a failure.
        for e in flush_udp_conntrack(self.runner.as_ref(), &ports.families(), &ports.mappings) {
            eprintln!("portmap: failed to delete stale UDP conntrack entries: {e}");
        }
        Ok(prev)
    }

    fn del(&self, inv: &Invocation<PortmapFields>, att: &Attachment) -> Result<(), CniError> {
        // A config ADD refuses cannot have made rules; without mappings ADD made none either.
        let Ok(cfg) = self.load(inv) else {
            return Ok(());
        };
        if !config::has_mappings(inv.conf.runtime_config.port_mappings.as_ref()) {
            return Ok(());
        }
        let owner = PortmapOwner::new(&inv.conf.name, &att.container_id);
        if owner.validate().is_err() {
            return Ok(());
        }
        self.backend(&cfg)
            .del(&owner)
            .map_err(|e| error::apply("failed to remove port mappings", &e))
    }

    fn check(&self, inv: &Invocation<PortmapFields>, att: &Attachment) -> Result<(), CniError> {
        let cfg = self.load(inv)?;
        let prev = required_prev(inv, "Required prevResult missing")?;
        let ports = container_ports(inv, att, &cfg, &prev)?;
        self.backend(&cfg)
            .check(&ports)
            .map_err(|e| error::check(&e))
    }

    fn status(&self, inv: &Invocation<PortmapFields>) -> Result<(), CniError> {
        let cfg = self.load(inv)?;
        self.backend(&cfg).status().map_err(|e| error::status(&e))
    }

    fn gc(&self, inv: &Invocation<PortmapFields>, valid: &[AttachmentKey]) -> Result<(), CniError> {
        let Ok(cfg) = self.load(inv) else {
            return Ok(());
        };
        let ids: Vec<&str> = valid.iter().map(|k| k.container_id.as_str()).collect();
        self.backend(&cfg)
            .gc(&inv.conf.name, &ids)
            .map_err(|e| error::apply("portmap GC failed", &e))
    }
}

impl Plugin for Portmap {
    type Conf = PortmapFields;
    const NAME: &'static str = "portmap";

    fn add(
        &self,
        inv: &Invocation<PortmapFields>,
        att: &Attachment,
    ) -> Result<CniResult, CniError> {
        Service::system().add(inv, att)
    }

    fn del(&self, inv: &Invocation<PortmapFields>, att: &Attachment) -> Result<(), CniError> {
        Service::system().del(inv, att)
    }

    fn check(&self, inv: &Invocation<PortmapFields>, att: &Attachment) -> Result<(), CniError> {
        Service::system().check(inv, att)
    }

    fn status(&self, inv: &Invocation<PortmapFields>) -> Result<(), CniError> {
        Service::system().status(inv)
    }

    fn gc(&self, inv: &Invocation<PortmapFields>, valid: &[AttachmentKey]) -> Result<(), CniError> {
        Service::system().gc(inv, valid)
    }
}

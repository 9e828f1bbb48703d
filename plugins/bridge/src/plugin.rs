//! The CNI face of the bridge plugin: opens namespaces and sockets, builds the real
//! IPAM / firewall services, and runs ADD, DEL, CHECK, STATUS and GC.

use std::os::fd::AsFd;

use cni_core::config::AttachmentKey;
use cni_core::env::Command;
use cni_core::skel::{Attachment, Invocation, Plugin};
use cni_core::{CniError, CniResult};
use cni_kernel::netlink::{Netlink, RtnlSocket};
use cni_kernel::netns::Netns;
use cni_kernel::random::random_u32;
use cni_kernel::sysctl::ProcSysctl;

use crate::add::{AddRequest, Services, add};
use crate::check::{CheckRequest, check};
use crate::config::{self, BridgeFields};
use crate::del::del;
use crate::error;
use crate::firewall::{MasqueradeRules, SpoofCheck};
use crate::ports::Kernel;
use cni_ipconfig::{DelegatedIpam, open_netns};

/// The plugin.
#[derive(Debug, Default, Clone, Copy)]
pub struct Bridge;

fn sockets(container_ns: &Netns) -> Result<(RtnlSocket, RtnlSocket), CniError> {
    let host = RtnlSocket::open().map_err(|e| error::kernel("failed to open netlink", e))?;
    let container = RtnlSocket::open_in(container_ns)
        .map_err(|e| error::kernel("failed to open netlink in the netns", e))?;
    Ok((host, container))
}

impl Plugin for Bridge {
    type Conf = BridgeFields;
    const NAME: &'static str = "bridge";
    const CNI_ARGS_KEYS: &'static [&'static str] = &["MAC"];

    fn add(&self, inv: &Invocation<BridgeFields>, att: &Attachment) -> Result<CniResult, CniError> {
        let cfg = config::load(&inv.conf, Some(att))?;
        let path = att.netns()?;
        let container_ns = open_netns(path)?;
        let host_ns =
            Netns::current().map_err(|e| error::kernel("failed to open the host netns", e))?;
        let (mut host, mut container) = sockets(&container_ns)?;
        let mut host_sysctl = ProcSysctl::new(None);
        let mut container_sysctl = ProcSysctl::new(Some(&container_ns));
        let mut random = random_u32;
        let mut k = Kernel {
            host: &mut host,
            container: &mut container,
            host_sysctl: &mut host_sysctl,
            container_sysctl: &mut container_sysctl,
            random: &mut random,
            sleep: &std::thread::sleep,
        };
        let ipam = DelegatedIpam::new(inv);
        let masq = MasqueradeRules::new(&cfg, &inv.conf.name, &att.container_id, &att.ifname);
        let spoof = SpoofCheck::new(&att.container_id, &att.ifname);
        let req = AddRequest {
            cfg: &cfg,
            ifname: &att.ifname,
            sandbox: &path.to_string_lossy(),
            container_ns: container_ns.as_fd(),
            host_ns: host_ns.as_fd(),
            layer3: inv.conf.ipam_type().is_some(),
            dns: inv.conf.dns.clone(),
        };
        add(
            &req,
            &mut k,
            &Services {
                ipam: &ipam,
                masq: &masq,
                spoof: &spoof,
            },
        )
    }

    fn del(&self, inv: &Invocation<BridgeFields>, att: &Attachment) -> Result<(), CniError> {
        let cfg = config::load(&inv.conf, None)?;
        let ipam = DelegatedIpam::new(inv);
        let masq = MasqueradeRules::new(&cfg, &inv.conf.name, &att.container_id, &att.ifname);
        let spoof = SpoofCheck::new(&att.container_id, &att.ifname);
        let container_ns = match att.netns.as_deref() {
            None => None,
            Some(path) => match Netns::open(path) {
                Ok(ns) => Some(ns),
                Err(e) if e.is_not_found() => None,
                Err(e) => {
                    return Err(error::kernel(
                        &format!("failed to open netns {:?}", path.display().to_string()),
                        e,
                    ));
                }
            },
        };
        let mut socket = match &container_ns {
            Some(ns) => Some(
                RtnlSocket::open_in(ns)
                    .map_err(|e| error::kernel("failed to open netlink in the netns", e))?,
            ),
            None => None,
        };
        let layer3 = inv.conf.ipam_type().is_some();
        del(
            &cfg,
            &att.ifname,
            layer3,
            socket.as_mut().map(|s| s as &mut dyn Netlink),
            &ipam,
            &masq,
            &spoof,
        )
    }

    fn check(&self, inv: &Invocation<BridgeFields>, att: &Attachment) -> Result<(), CniError> {
        let cfg = config::load(&inv.conf, Some(att))?;
        // L2-only networks have no IPAM to ask (the reference fails CHECK for them).
        DelegatedIpam::new(inv).run(Command::Check)?;
        let prev = inv.conf.prev_result(inv.version)?.ok_or_else(|| {
            error::plugin(
                error::BridgeCode::CheckFailed,
                "Required prevResult missing",
            )
        })?;
        let path = att.netns()?;
        let container_ns = open_netns(path)?;
        let (mut host, mut container) = sockets(&container_ns)?;
        let masq = MasqueradeRules::new(&cfg, &inv.conf.name, &att.container_id, &att.ifname);
        let req = CheckRequest {
            cfg: &cfg,
            ifname: &att.ifname,
            sandbox: &path.to_string_lossy(),
            prev: &prev,
        };
        check(&req, &mut host, &mut container, &masq)
    }

    fn status(&self, inv: &Invocation<BridgeFields>) -> Result<(), CniError> {
        let cfg = config::load(&inv.conf, None)?;
        DelegatedIpam::new(inv).run(Command::Status)?;
        if cfg.ip_masq {
            MasqueradeRules::status(&cfg)?;
        }
        Ok(())
    }

    fn gc(&self, inv: &Invocation<BridgeFields>, valid: &[AttachmentKey]) -> Result<(), CniError> {
        config::load(&inv.conf, None)?;
        // Keep going: GC reports every failure but does all it can.
        let ipam = DelegatedIpam::new(inv).run(Command::Gc);
        let rules = MasqueradeRules::gc(&inv.conf.name, valid);
        ipam.and(rules)
    }
}

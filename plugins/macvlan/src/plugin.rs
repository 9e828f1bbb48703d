//! The CNI face of macvlan: namespaces, sockets, delegated IPAM.

use std::os::fd::AsFd;

use cni_core::config::AttachmentKey;
use cni_core::env::Command;
use cni_core::skel::{Attachment, Invocation, Plugin};
use cni_core::{CniError, CniResult};
use cni_ipconfig::{DelegatedIpam, kernel_error, open_netns};
use cni_kernel::netlink::{Netlink, RtnlSocket};
use cni_kernel::netns::Netns;
use cni_kernel::random::random_u32;
use cni_kernel::sysctl::ProcSysctl;

use crate::attach::{AddRequest, Kernel, add, del};
use crate::check::check;
use crate::config::{self, MacvlanFields};

/// The plugin.
#[derive(Debug, Default, Clone, Copy)]
pub struct Macvlan;

fn socket_in(ns: &Netns) -> Result<RtnlSocket, CniError> {
    RtnlSocket::open_in(ns).map_err(|e| kernel_error("failed to open netlink in the netns", e))
}

impl Plugin for Macvlan {
    type Conf = MacvlanFields;
    const NAME: &'static str = "macvlan";
    const CNI_ARGS_KEYS: &'static [&'static str] = &["MAC"];

    fn add(
        &self,
        inv: &Invocation<MacvlanFields>,
        att: &Attachment,
    ) -> Result<CniResult, CniError> {
        let cfg = config::load(&inv.conf, Some(att))?;
        let path = att.netns()?;
        let container_ns = open_netns(path)?;
        let mut container = socket_in(&container_ns)?;
        let mut host = match cfg.link_in_container {
            true => None,
            false => {
                Some(RtnlSocket::open().map_err(|e| kernel_error("failed to open netlink", e))?)
            }
        };
        let mut second = match cfg.link_in_container {
            true => Some(socket_in(&container_ns)?),
            false => None,
        };
        let master_ns: &mut dyn Netlink = match (host.as_mut(), second.as_mut()) {
            (Some(h), _) => h,
            (None, Some(s)) => s,
            (None, None) => {
                return Err(CniError::plugin(
                    cni_core::error::codes::PLUGIN_FAILURE,
                    "no netlink socket",
                ));
            }
        };
        let mut sysctl = ProcSysctl::new(Some(&container_ns));
        let mut random = random_u32;
        let mut k = Kernel {
            master_ns,
            container: &mut container,
            container_sysctl: &mut sysctl,
            random: &mut random,
            sleep: &std::thread::sleep,
        };
        let req = AddRequest {
            cfg: &cfg,
            ifname: &att.ifname,
            sandbox: &path.to_string_lossy(),
            create_in: (!cfg.link_in_container).then(|| container_ns.as_fd()),
            layer3: inv.conf.ipam_type().is_some(),
            dns: inv.conf.dns.clone(),
        };
        add(&req, &mut k, &DelegatedIpam::new(inv))
    }

    fn del(&self, inv: &Invocation<MacvlanFields>, att: &Attachment) -> Result<(), CniError> {
        // Only what DEL needs: a vanished master must not make the config unusable.
        let layer3 = inv.conf.ipam_type().is_some();
        let ns = match att.netns.as_deref() {
            None => None,
            Some(path) => match Netns::open(path) {
                Ok(ns) => Some(ns),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(kernel_error("failed to open netns", e)),
            },
        };
        let mut socket = match &ns {
            Some(ns) => Some(socket_in(ns)?),
            None => None,
        };
        del(
            &att.ifname,
            layer3,
            socket.as_mut().map(|s| s as &mut dyn Netlink),
            &DelegatedIpam::new(inv),
        )
    }

    fn check(&self, inv: &Invocation<MacvlanFields>, att: &Attachment) -> Result<(), CniError> {
        let cfg = config::load(&inv.conf, Some(att))?;
        DelegatedIpam::new(inv).run(Command::Check)?;
        let prev = inv
            .conf
            .prev_result(inv.version)?
            .ok_or_else(|| CniError::invalid_config("required prevResult missing"))?;
        let path = att.netns()?;
        let container_ns = open_netns(path)?;
        let mut container = socket_in(&container_ns)?;
        let mut master_ns = match cfg.link_in_container {
            true => socket_in(&container_ns)?,
            false => RtnlSocket::open().map_err(|e| kernel_error("failed to open netlink", e))?,
        };
        check(
            &cfg,
            &att.ifname,
            &path.to_string_lossy(),
            &prev,
            &mut master_ns,
            &mut container,
        )
    }

    fn status(&self, inv: &Invocation<MacvlanFields>) -> Result<(), CniError> {
        DelegatedIpam::new(inv).run(Command::Status)
    }

    fn gc(
        &self,
        inv: &Invocation<MacvlanFields>,
        _valid: &[AttachmentKey],
    ) -> Result<(), CniError> {
        DelegatedIpam::new(inv).run(Command::Gc)
    }
}

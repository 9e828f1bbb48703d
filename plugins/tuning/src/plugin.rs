//! The CNI face of the tuning plugin: validates, opens the container namespace, and runs
//! ADD, DEL, CHECK, STATUS and GC over the real kernel.

use std::path::Path;

use cni_core::CniError;
use cni_core::config::AttachmentKey;
use cni_core::result::CniResult;
use cni_core::skel::{Attachment, Invocation, Plugin};
use cni_kernel::KernelError;
use cni_kernel::netlink::{RtnlSocket, format_mac};
use cni_kernel::netns::Netns;
use cni_kernel::sysctl::ProcSysctl;

use crate::add::{AddRequest, add};
use crate::allowlist::{self, AllowList};
use crate::backup::{self, BackupFile};
use crate::check::check;
use crate::config::{self, Overrides, TuningConfig, TuningFields};
use crate::del::restore;
use crate::error;

/// The plugin.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tuning;

/// Validates an ADD or CHECK request: the config (code 7), and for ADD the allow-list at
/// `allowlist` (a missing file allows everything).
pub fn validate(
    inv: &Invocation<TuningFields>,
    att: &Attachment,
    allowlist: Option<&Path>,
) -> Result<TuningConfig, CniError> {
    let cfg = config::load(
        &inv.conf,
        &inv.raw,
        Overrides {
            ifname: &att.ifname,
            cni_args_mac: att.args.get("MAC"),
        },
    )?;
    if let Some(path) = allowlist
        && let Some(list) = AllowList::load(path)?
    {
        list.check(&cfg.sysctls)?;
    }
    Ok(cfg)
}

/// The previous plugin's result, which a chained plugin needs (code 7 without it).
pub fn prev_result(inv: &Invocation<TuningFields>) -> Result<CniResult, CniError> {
    inv.conf
        .prev_result(inv.version)?
        .ok_or_else(|| CniError::invalid_config("Required prevResult missing"))
}

/// Writes `mac` into the result's entry for the container interface (the one with a sandbox
/// when there is one, else any of that name).
pub fn patch_mac(result: &mut CniResult, ifname: &str, mac: &str) {
    let in_sandbox = result
        .interfaces
        .iter()
        .any(|i| i.name == ifname && !i.sandbox.is_empty());
    for iface in &mut result.interfaces {
        if iface.name == ifname && (!in_sandbox || !iface.sandbox.is_empty()) {
            iface.mac = mac.to_string();
        }
    }
}

fn open_netns(path: &Path) -> Result<Netns, CniError> {
    Netns::open(path)
        .map_err(|e| error::kernel(&format!("failed to open netns {:?}", path.display()), &e))
}

fn open_socket(ns: &Netns) -> Result<RtnlSocket, CniError> {
    RtnlSocket::open_in(ns).map_err(|e| error::kernel("failed to open netlink in the netns", &e))
}

fn allowlist_path() -> std::path::PathBuf {
    allowlist::path(&|k| std::env::var(k).ok())
}

impl Plugin for Tuning {
    type Conf = TuningFields;
    const NAME: &'static str = "tuning";
    const CNI_ARGS_KEYS: &'static [&'static str] = &["MAC"];

    fn add(&self, inv: &Invocation<TuningFields>, att: &Attachment) -> Result<CniResult, CniError> {
        let cfg = validate(inv, att, Some(&allowlist_path()))?;
        let mut result = prev_result(inv)?;
        let file = BackupFile::new(&cfg.data_dir, &att.container_id, &att.ifname)?;
        let ns = open_netns(att.netns()?)?;
        let mut nl = open_socket(&ns)?;
        let mut sys = ProcSysctl::new(Some(&ns));
        let req = AddRequest {
            cfg: &cfg,
            ifname: &att.ifname,
            network: &inv.conf.name,
        };
        add(&req, &mut nl, &mut sys, &file)?;
        if let Some(mac) = cfg.link.mac {
            patch_mac(&mut result, &att.ifname, &format_mac(&mac));
        }
        Ok(result)
    }

    fn del(&self, inv: &Invocation<TuningFields>, att: &Attachment) -> Result<(), CniError> {
        let dir = config::data_dir(&inv.conf.plugin);
        let file = BackupFile::new(&dir, &att.container_id, &att.ifname)?;
        if !file.path().exists() {
            // Nothing to restore; an ADD killed while writing the backup may have left its
            // temporary file, which goes now.
            return file.remove();
        }
        let Some(path) = att.netns.as_deref() else {
            return file.remove();
        };
        let ns = match Netns::open(path) {
            Ok(ns) => ns,
            // The namespace is gone, and with it everything the backup describes.
            Err(e) if e.is_not_found() || matches!(e, KernelError::NotANetns { .. }) => {
                return file.remove();
            }
            Err(e) => return Err(error::kernel(&format!("failed to open netns {path:?}"), &e)),
        };
        let mut nl = open_socket(&ns)?;
        let mut sys = ProcSysctl::new(Some(&ns));
        restore(&att.ifname, &mut nl, &mut sys, &file)
    }

    fn check(&self, inv: &Invocation<TuningFields>, att: &Attachment) -> Result<(), CniError> {
        let cfg = validate(inv, att, None)?;
        prev_result(inv)?;
        let ns = open_netns(att.netns()?)?;
        let mut nl = open_socket(&ns)?;
        let mut sys = ProcSysctl::new(Some(&ns));
        check(&cfg, &att.ifname, &mut nl, &mut sys)
    }

    fn status(&self, inv: &Invocation<TuningFields>) -> Result<(), CniError> {
        backup::status(&config::data_dir(&inv.conf.plugin))
    }

    fn gc(&self, inv: &Invocation<TuningFields>, valid: &[AttachmentKey]) -> Result<(), CniError> {
        backup::gc(&config::data_dir(&inv.conf.plugin), &inv.conf.name, valid)
    }
}

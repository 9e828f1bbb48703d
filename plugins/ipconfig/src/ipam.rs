//! The IPAM plugin an interface plugin delegates to, behind a trait so ADD/DEL logic can be
//! tested with a fake.

use cni_core::delegate::Delegate;
use cni_core::env::Command;
use cni_core::skel::Invocation;
use cni_core::{CniError, CniResult};

/// The delegated IPAM plugin.
pub trait Ipam {
    /// ADD: the addresses, routes and DNS to apply.
    fn add(&self) -> Result<CniResult, CniError>;
    /// DEL: release what ADD reserved.
    fn del(&self) -> Result<(), CniError>;
}

/// IPAM through delegation to the config's `ipam.type` (nothing at all when there is none).
pub struct DelegatedIpam<'a>(Option<Delegate<'a>>);

impl<'a> DelegatedIpam<'a> {
    /// The IPAM plugin of `inv` (from its `ipam.type`, `CNI_PATH` and stdin).
    pub fn new<C>(inv: &'a Invocation<C>) -> Self {
        DelegatedIpam(inv.conf.ipam_type().map(|t| Delegate {
            plugin_type: t,
            cni_path: &inv.cni_path,
            stdin: &inv.raw,
            version: inv.version,
        }))
    }

    /// Runs a verb that prints nothing (DEL, CHECK, STATUS, GC); no IPAM = success.
    pub fn run(&self, verb: Command) -> Result<(), CniError> {
        self.0.as_ref().map_or(Ok(()), |d| d.run(verb))
    }
}

impl Ipam for DelegatedIpam<'_> {
    fn add(&self) -> Result<CniResult, CniError> {
        match &self.0 {
            Some(d) => d.add(),
            None => Ok(CniResult::default()),
        }
    }

    fn del(&self) -> Result<(), CniError> {
        self.run(Command::Del)
    }
}

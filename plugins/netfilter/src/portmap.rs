//! The portmap plugin's rules: host ports published to a container, behind a [`PortmapBackend`]
//! trait with an iptables and an nftables implementation.
//!
//! - [`iptables`]: the reference layout in table `nat` of iptables and ip6tables
//!   (`CNI-HOSTPORT-DNAT`, per-container `CNI-DN-<hash>`, `CNI-HOSTPORT-SETMARK`,
//!   `CNI-HOSTPORT-MASQ`), the entry rules commented `dnat name: "<net>" id: "<cid>"`.
//! - [`nftables`]: the reference's `ip|ip6 cni_hostport` tables, one atomic `nft -f -` per
//!   operation, rules commented with the attachment's hashes.
//!
//! Owner of a mapping: network name + container ID (the reference's per-container chain is
//! derived from exactly these), so DEL needs neither the netns nor `prevResult`, and GC finds a
//! network's mappings by comment. Every read-modify-write holds the [`HostLock`].

pub mod iptables;
mod model;
pub mod nftables;

use std::path::PathBuf;
use std::sync::Arc;

pub use self::iptables::IptablesPortmap;
pub use self::model::{
    ContainerPorts, DEFAULT_MARK_BIT, MarkMode, PortMapping, PortmapOptions, PortmapOwner,
    Protocol, network_hash, validate_chain, validate_condition,
};
pub use self::nftables::NftablesPortmap;
use crate::NetfilterError;
use crate::exec::CommandRunner;
use crate::firewall::lock::HostLockGuard;
use crate::firewall::{FirewallError, HostLock};
use crate::iptables::IpFamily;

/// Where the lock lives unless the config's `dataDir` says otherwise.
pub const DEFAULT_LOCK_DIR: &str = "/run/cni/portmap";

/// A failed portmap operation.
#[derive(Debug, thiserror::Error)]
pub enum PortmapError {
    /// A rule tool failed, or CHECK found a rule missing ([`NetfilterError::RuleMissing`]).
    #[error(transparent)]
    Netfilter(#[from] NetfilterError),
    /// The host lock could not be taken.
    #[error("failed to lock {}", .path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Another container already publishes an overlapping host port: nothing was changed.
    #[error("host port {mapping} is already mapped to {holder}")]
    Conflict {
        /// The requested mapping (`tcp *:8080`).
        mapping: String,
        /// Who holds it (`container "c2" of network "n"`, or its chain).
        holder: String,
    },
}

impl PortmapError {
    /// True when CHECK found drift rather than failing to look.
    pub fn is_rule_missing(&self) -> bool {
        matches!(
            self,
            PortmapError::Netfilter(NetfilterError::RuleMissing { .. })
        )
    }
}

/// Take `lock`, as a [`PortmapError`].
pub(crate) fn acquire(lock: &HostLock) -> Result<HostLockGuard, PortmapError> {
    lock.acquire().map_err(|e| match e {
        FirewallError::Lock { path, source } | FirewallError::Ledger { path, source } => {
            PortmapError::Lock { path, source }
        }
        FirewallError::Netfilter(n) => PortmapError::Netfilter(n),
    })
}

/// The published ports of containers, in one backend.
///
/// Every changing operation holds the [`HostLock`] for its whole read-modify-write and is
/// idempotent; `del` and `gc` need no addresses.
pub trait PortmapBackend: Send + Sync {
    /// Which backend this is.
    fn kind(&self) -> PortmapKind;

    /// Publish the mappings for each address of the container (replacing what an earlier ADD
    /// of the same owner left). A mapping overlapping another container's is
    /// [`PortmapError::Conflict`], and then nothing changes.
    fn add(&self, ports: &ContainerPorts) -> Result<(), PortmapError>;

    /// Remove every mapping of `owner` in both families; shared structure once nothing is left.
    fn del(&self, owner: &PortmapOwner) -> Result<(), PortmapError>;

    /// Verify every rule `add` made, for the families the container has addresses in.
    fn check(&self, ports: &ContainerPorts) -> Result<(), PortmapError>;

    /// `del` for every container of `network` whose ID is not in `valid`.
    fn gc(&self, network: &str, valid: &[&str]) -> Result<(), PortmapError>;

    /// Error ([`NetfilterError::Unusable`]) when the tools are missing or the kernel refuses.
    fn status(&self) -> Result<(), PortmapError>;
}

/// The backends `backend` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortmapKind {
    /// iptables / ip6tables, table `nat`, the reference's chains.
    Iptables,
    /// nftables, tables `ip cni_hostport` and `ip6 cni_hostport`.
    Nftables,
}

impl PortmapKind {
    /// `iptables` / `nftables`.
    pub fn as_str(self) -> &'static str {
        match self {
            PortmapKind::Iptables => "iptables",
            PortmapKind::Nftables => "nftables",
        }
    }

    /// The backend of this kind, locking `lock` around its read-modify-writes.
    pub fn backend(
        self,
        runner: Arc<dyn CommandRunner>,
        lock: HostLock,
    ) -> Box<dyn PortmapBackend> {
        match self {
            PortmapKind::Iptables => Box::new(IptablesPortmap::new(runner, lock)),
            PortmapKind::Nftables => Box::new(NftablesPortmap::new(runner, lock)),
        }
    }
}

/// Drop the UDP conntrack entries of each UDP host port in `families`, so traffic that hit the
/// host port before the mapping existed is not black-holed by a stale entry (the reference does
/// this over netlink). Runs `conntrack -D -f <family> -p udp --orig-port-dst <port>` when the
/// `conntrack` tool is installed and does nothing otherwise; failures are returned for logging
/// only ("0 flow entries have been deleted" is none).
pub fn flush_udp_conntrack(
    runner: &dyn CommandRunner,
    families: &[IpFamily],
    mappings: &[PortMapping],
) -> Vec<NetfilterError> {
    const CONNTRACK: &str = "conntrack";
    if !runner.has_program(CONNTRACK) {
        return Vec::new();
    }
    let mut ports: Vec<u16> = mappings
        .iter()
        .filter(|m| m.protocol == Protocol::Udp)
        .map(|m| m.host_port)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    let mut errors = Vec::new();
    for family in families {
        let f = match family {
            IpFamily::V4 => "ipv4",
            IpFamily::V6 => "ipv6",
        };
        for port in &ports {
            let port = port.to_string();
            let args = ["-D", "-f", f, "-p", "udp", "--orig-port-dst", &port];
            match runner.run(CONNTRACK, &args, None) {
                // Nothing to delete is the common case, and not a failure.
                Ok(out) if out.success() || out.stderr.contains(" 0 flow entries") => {}
                Ok(out) => {
                    if let Err(e) = out.check(CONNTRACK, &args) {
                        errors.push(e);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests;

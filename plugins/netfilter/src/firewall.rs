//! The firewall plugin's rules: what a container needs in the host's forward path, behind a
//! [`FirewallBackend`] trait with an iptables and an nftables implementation.
//!
//! - [`iptables`]: the reference layout (`CNI-FORWARD`, `CNI-ADMIN`, `CNI-ISOLATION-STAGE-1/2`),
//!   coexisting with rules the Go plugin made.
//! - [`nftables`]: the same semantics in our own table `inet cni_firewall`.
//! - [`owner`]: the rule comment that names the attachment a per-container rule belongs to, so
//!   DEL and GC find a container's rules without knowing its addresses.
//! - [`routes`]: which host interface an address lives behind (attributes the Go plugin's
//!   uncommented rules to bridges).
//! - [`lock`]: the host-wide lock around every read-modify-write.
//! - `ledger`: which attachments the iptables backend set up (lets a first ADD skip reading).

pub mod iptables;
mod ledger;
pub mod lock;
pub mod nftables;
pub mod owner;
pub mod routes;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use self::iptables::IptablesFirewall;
pub use self::lock::HostLock;
pub use self::nftables::NftablesFirewall;
pub use self::owner::{NftTag, Owner, OwnerTag};
pub use self::routes::{HostRoutes, ProcRoutes};
use crate::NetfilterError;
use crate::exec::CommandRunner;
use crate::names::{go_quote, validate_name};

/// A failed firewall operation.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
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
    /// The attachment ledger beside the lock could not be updated.
    #[error("failed to update the attachment ledger beside {}", .path.display())]
    Ledger {
        /// The lock file the ledger sits beside.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

impl FirewallError {
    /// True when CHECK found drift rather than failing to look.
    pub fn is_rule_missing(&self) -> bool {
        matches!(
            self,
            FirewallError::Netfilter(NetfilterError::RuleMissing { .. })
        )
    }
}

/// `ingressPolicy`: which traffic may reach a container from other bridges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IngressPolicy {
    /// `open` (default): no isolation.
    #[default]
    Open,
    /// `same-bridge`: traffic between different isolated bridges is dropped.
    SameBridge,
    /// `isolated`: like `same-bridge`, and traffic between containers of one bridge is dropped too.
    Isolated,
}

impl IngressPolicy {
    /// Parse a config value: `""`/`open`, `same-bridge`, `isolated`; `None` for anything else
    /// (see [`unknown_policy_message`]).
    pub fn parse(value: &str) -> Option<IngressPolicy> {
        match value {
            "" | "open" => Some(IngressPolicy::Open),
            "same-bridge" => Some(IngressPolicy::SameBridge),
            "isolated" => Some(IngressPolicy::Isolated),
            _ => None,
        }
    }

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            IngressPolicy::Open => "open",
            IngressPolicy::SameBridge => "same-bridge",
            IngressPolicy::Isolated => "isolated",
        }
    }

    /// True for the policies that need per-bridge isolation rules.
    pub fn isolates(self) -> bool {
        self != IngressPolicy::Open
    }
}

/// The reference's message for an unknown policy: `unknown ingress policy: "x"`.
pub fn unknown_policy_message(value: &str) -> String {
    format!("unknown ingress policy: {}", go_quote(value))
}

/// Per-bridge isolation a container asked for: its bridge and whether traffic inside that bridge
/// is dropped as well.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Isolation {
    /// The bridge (`prevResult.interfaces[0].name`).
    pub bridge: String,
    /// `same-bridge` or `isolated`.
    pub policy: IngressPolicy,
}

/// Everything ADD and CHECK need for one attachment: whose rules, for which addresses, and which
/// isolation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerFirewall {
    /// Whose rules these are.
    pub owner: Owner,
    /// The container's addresses (any prefix is ignored: rules match host addresses).
    pub ips: Vec<IpAddr>,
    /// `None` for `ingressPolicy: open`.
    pub isolation: Option<Isolation>,
    /// `iptablesAdminChainName` (iptables backend only).
    pub admin_chain: String,
}

/// The admin chain name when `iptablesAdminChainName` is not set.
pub const DEFAULT_ADMIN_CHAIN: &str = "CNI-ADMIN";

impl ContainerFirewall {
    /// Validate and assemble. `bridge` is required when `policy` isolates; every name is checked
    /// before it can reach a rule.
    pub fn new(
        owner: Owner,
        ips: &[IpAddr],
        policy: IngressPolicy,
        bridge: Option<&str>,
        admin_chain: &str,
    ) -> Result<ContainerFirewall, NetfilterError> {
        owner.validate()?;
        validate_chain_name(admin_chain)?;
        let isolation = match (policy.isolates(), bridge) {
            (false, _) => None,
            (true, None) => {
                return Err(NetfilterError::InvalidName {
                    what: "bridge name",
                    value: String::new(),
                    reason: "an isolating ingress policy needs the bridge",
                });
            }
            (true, Some(bridge)) => {
                validate_interface(bridge)?;
                Some(Isolation {
                    bridge: bridge.to_owned(),
                    policy,
                })
            }
        };
        let mut unique: Vec<IpAddr> = Vec::new();
        for ip in ips {
            if !unique.contains(ip) {
                unique.push(*ip);
            }
        }
        Ok(ContainerFirewall {
            owner,
            ips: unique,
            isolation,
            admin_chain: admin_chain.to_owned(),
        })
    }

    /// The rule comment of this attachment's per-container rules.
    pub fn tag(&self) -> OwnerTag {
        OwnerTag {
            owner: self.owner.clone(),
            isolation: self.isolation.clone(),
        }
    }
}

/// What DEL knows about an attachment: always its owner; from `prevResult` (when the runtime
/// passed one) its addresses and bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Teardown {
    /// Whose rules to remove.
    pub owner: Owner,
    /// Addresses from `prevResult` (empty without one): rules the Go plugin made for them, which
    /// carry no owner comment, are removed too.
    pub ips: Vec<IpAddr>,
    /// The bridge from `prevResult` when the policy isolates: a candidate for isolation-rule
    /// removal even when no owned rule names it.
    pub bridge: Option<String>,
}

impl Teardown {
    /// Validate and assemble.
    pub fn new(
        owner: Owner,
        ips: &[IpAddr],
        bridge: Option<&str>,
    ) -> Result<Teardown, NetfilterError> {
        owner.validate()?;
        if let Some(bridge) = bridge {
            validate_interface(bridge)?;
        }
        Ok(Teardown {
            owner,
            ips: ips.to_vec(),
            bridge: bridge.map(str::to_owned),
        })
    }
}

/// The firewall rules of containers, in one backend.
///
/// Every operation takes the [`HostLock`] for its whole read-modify-write and is idempotent.
/// `del` and `gc` need no addresses: per-container rules carry an [`OwnerTag`] comment.
pub trait FirewallBackend: Send + Sync {
    /// Which backend this is.
    fn kind(&self) -> FirewallKind;

    /// Allow forwarding to (established) and from each address; add the bridge's isolation
    /// rules. Replaces rules an earlier ADD of the same attachment left.
    fn add(&self, fw: &ContainerFirewall) -> Result<(), FirewallError>;

    /// Remove the attachment's rules; the bridge's isolation rules when no container on it is
    /// left; shared chains when nothing but their boilerplate is left.
    fn del(&self, teardown: &Teardown) -> Result<(), FirewallError>;

    /// Verify every rule `add` made ([`NetfilterError::RuleMissing`] names the first missing).
    fn check(&self, fw: &ContainerFirewall) -> Result<(), FirewallError>;

    /// `del` for every attachment of `network` not in `valid` (container ID, interface name).
    fn gc(&self, network: &str, valid: &[(&str, &str)]) -> Result<(), FirewallError>;

    /// Error ([`NetfilterError::Unusable`]) when the tools are missing or the kernel refuses.
    fn status(&self) -> Result<(), FirewallError>;
}

/// The backends `backend` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FirewallKind {
    /// iptables / ip6tables, table `filter`, the reference's chains.
    Iptables,
    /// nftables, table `inet cni_firewall`.
    Nftables,
}

impl FirewallKind {
    /// `iptables` / `nftables`.
    pub fn as_str(self) -> &'static str {
        match self {
            FirewallKind::Iptables => "iptables",
            FirewallKind::Nftables => "nftables",
        }
    }

    /// The backend of this kind, locking `lock` around its read-modify-writes.
    pub fn backend(
        self,
        runner: Arc<dyn CommandRunner>,
        lock: HostLock,
    ) -> Box<dyn FirewallBackend> {
        match self {
            FirewallKind::Iptables => Box::new(IptablesFirewall::new(runner, lock)),
            FirewallKind::Nftables => Box::new(NftablesFirewall::new(runner, lock)),
        }
    }
}

/// An interface name (bridge or container interface) that can go into a rule: the kernel's
/// limits and no characters that need quoting.
pub(crate) fn validate_interface(name: &str) -> Result<(), NetfilterError> {
    validate_name("interface name", name)?;
    if name.len() > 15 || name == "." || name == ".." || name.contains(['/', ':']) {
        return Err(NetfilterError::InvalidName {
            what: "interface name",
            value: name.to_owned(),
            reason: "not a valid Linux interface name",
        });
    }
    Ok(())
}

/// A user chain name iptables accepts and we can tell from a target or an option
/// (`iptablesAdminChainName`).
pub fn validate_chain_name(name: &str) -> Result<(), NetfilterError> {
    const RESERVED: [&str; 13] = [
        "ACCEPT",
        "DROP",
        "RETURN",
        "QUEUE",
        "REJECT",
        "INPUT",
        "OUTPUT",
        "FORWARD",
        "PREROUTING",
        "POSTROUTING",
        "CNI-FORWARD",
        "CNI-ISOLATION-STAGE-1",
        "CNI-ISOLATION-STAGE-2",
    ];
    validate_name("chain name", name)?;
    let reason = if name.len() > 28 {
        Some("it is longer than 28 characters")
    } else if name.starts_with(['-', '!']) {
        Some("it starts with '-' or '!'")
    } else if RESERVED.contains(&name) {
        Some("it names a built-in chain or target, or one of the plugin's own chains")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(NetfilterError::InvalidName {
            what: "chain name",
            value: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner {
        Owner::new("cnixnet", "ctr1", "eth0")
    }

    #[test]
    fn policies_parse() {
        assert_eq!(IngressPolicy::parse(""), Some(IngressPolicy::Open));
        assert_eq!(IngressPolicy::parse("open"), Some(IngressPolicy::Open));
        assert_eq!(
            IngressPolicy::parse("same-bridge"),
            Some(IngressPolicy::SameBridge)
        );
        assert_eq!(
            IngressPolicy::parse("isolated"),
            Some(IngressPolicy::Isolated)
        );
        assert_eq!(IngressPolicy::parse("Open"), None);
        assert_eq!(
            unknown_policy_message("x"),
            r#"unknown ingress policy: "x""#
        );
    }

    #[test]
    fn container_firewall_validates_names() {
        let ips: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        let fw = ContainerFirewall::new(owner(), &ips, IngressPolicy::Open, Some("x"), "CNI-ADMIN")
            .unwrap();
        assert_eq!(fw.ips.len(), 1, "duplicates dropped");
        assert_eq!(fw.isolation, None, "open needs no bridge");
        let need_bridge =
            ContainerFirewall::new(owner(), &ips, IngressPolicy::SameBridge, None, "CNI-ADMIN");
        assert!(need_bridge.is_err());
        for bad in ["a b", "x\"y", "sixteen-chars-xx", "a/b", "a:b", ".."] {
            let r = ContainerFirewall::new(
                owner(),
                &ips,
                IngressPolicy::SameBridge,
                Some(bad),
                "CNI-ADMIN",
            );
            assert!(r.is_err(), "{bad:?} accepted");
        }
        for bad in ["", "ACCEPT", "-X", "A B", "CNI-FORWARD", &"A".repeat(29)] {
            let r = ContainerFirewall::new(owner(), &ips, IngressPolicy::Open, None, bad);
            assert!(r.is_err(), "{bad:?} accepted");
        }
        let bad_owner = Owner::new("net", "ctr\"1", "eth0");
        assert!(ContainerFirewall::new(bad_owner, &ips, IngressPolicy::Open, None, "A").is_err());
    }

    #[test]
    fn teardown_validates_bridge() {
        assert!(Teardown::new(owner(), &[], Some("br0")).is_ok());
        assert!(Teardown::new(owner(), &[], Some("br 0")).is_err());
    }
}

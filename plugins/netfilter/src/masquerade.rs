//! The bridge plugin's `ipMasq`: a [`MasqueradeBackend`] trait with an iptables and an nftables
//! implementation, both writing exactly what the reference plugin writes so either side can
//! tear down the other's rules.

mod iptables;
mod nftables;

use std::sync::Arc;

use ipnetwork::IpNetwork;

pub use self::iptables::IptablesMasquerade;
pub use self::nftables::{NftablesMasquerade, instance_comment, instance_hash, network_hash};
use crate::NetfilterError;
use crate::exec::{self, CommandRunner};

/// Masquerading of an attachment's addresses behind the host's, as the bridge plugin's
/// `ipMasq: true` asks for.
///
/// Every operation is idempotent. `teardown` needs no addresses, so a DEL that runs after the
/// container's netns is gone still removes the rules.
pub trait MasqueradeBackend: Send + Sync {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;

    /// Masquerade traffic from each address in `ips` to anything outside its subnet (multicast
    /// excepted). Re-running with the same input changes nothing; re-running with other
    /// addresses replaces the attachment's rules.
    fn setup(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
        ips: &[IpNetwork],
    ) -> Result<(), NetfilterError>;

    /// Remove every masquerade rule of the attachment; nothing there is success.
    fn teardown(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<(), NetfilterError>;

    /// Verify that every rule `setup` would create for `ips` exists
    /// ([`NetfilterError::RuleMissing`] names the first missing one).
    fn check(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
        ips: &[IpNetwork],
    ) -> Result<(), NetfilterError>;

    /// Remove the masquerade state of every attachment of `network` that is not in `valid`
    /// (pairs of container ID and interface name).
    fn gc(&self, network: &str, valid: &[(&str, &str)]) -> Result<(), NetfilterError>;

    /// Error ([`NetfilterError::Unusable`]) when this backend's tools are missing or the kernel
    /// refuses them.
    fn status(&self) -> Result<(), NetfilterError>;
}

/// The two backends `ipMasqBackend` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// iptables / ip6tables, table `nat`, one `CNI-<hash>` chain per attachment.
    Iptables,
    /// nftables, table `inet cni_plugins_masquerade`.
    Nftables,
}

impl BackendKind {
    /// Parse an `ipMasqBackend` value; anything but `iptables`/`nftables` is
    /// `unknown ipmasq backend "x"`.
    pub fn parse(name: &str) -> Result<BackendKind, NetfilterError> {
        match name {
            "iptables" => Ok(BackendKind::Iptables),
            "nftables" => Ok(BackendKind::Nftables),
            other => Err(NetfilterError::UnknownBackend {
                name: other.to_owned(),
            }),
        }
    }

    /// `iptables` / `nftables`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Iptables => "iptables",
            BackendKind::Nftables => "nftables",
        }
    }

    /// The default when `ipMasqBackend` is absent: iptables when it is installed, else nftables
    /// when `nft` is, else iptables. The reference runs iptables to see whether it works; this
    /// runs nothing (a plugin exec per container pays for every probe), and a broken iptables
    /// then fails setup with its own error instead of silently switching backends.
    pub fn detect(runner: &Arc<dyn CommandRunner>) -> BackendKind {
        if !runner.has_program(exec::IPTABLES) && runner.has_program(exec::NFT) {
            return BackendKind::Nftables;
        }
        BackendKind::Iptables
    }

    /// The backend of this kind.
    pub fn backend(self, runner: Arc<dyn CommandRunner>) -> Box<dyn MasqueradeBackend> {
        match self {
            BackendKind::Iptables => Box::new(IptablesMasquerade::new(runner)),
            BackendKind::Nftables => Box::new(NftablesMasquerade::new(runner)),
        }
    }
}

/// The backend for a config's `ipMasqBackend` (`None` = absent → [`BackendKind::detect`]).
pub fn select_backend(
    requested: Option<&str>,
    runner: Arc<dyn CommandRunner>,
) -> Result<Box<dyn MasqueradeBackend>, NetfilterError> {
    Ok(requested_kind(requested, &runner)?.backend(runner))
}

fn requested_kind(
    requested: Option<&str>,
    runner: &Arc<dyn CommandRunner>,
) -> Result<BackendKind, NetfilterError> {
    match requested {
        Some(name) => BackendKind::parse(name),
        None => Ok(BackendKind::detect(runner)),
    }
}

/// [`select_backend`], with the iptables backend also using nf_tables netlink unless the
/// host's iptables is iptables-legacy (see [`crate::nfnl::iptables_flavor`] and
/// [`IptablesMasquerade::with_nf_rules`]).
pub fn select_backend_with_netlink(
    requested: Option<&str>,
    runner: Arc<dyn CommandRunner>,
) -> Result<Box<dyn MasqueradeBackend>, NetfilterError> {
    let kind = requested_kind(requested, &runner)?;
    Ok(match (kind, crate::nfnl::for_this_host()) {
        (BackendKind::Iptables, Some((nf, known_nft))) => {
            Box::new(IptablesMasquerade::new(runner).with_nf_rules(nf, known_nft))
        }
        _ => kind.backend(runner),
    })
}

/// Tear the attachment down in **both** backends, as the reference DEL does (the attachment may
/// have been set up by another version or configuration). A backend's error counts only when
/// that backend is usable.
pub fn teardown_all(
    runner: &Arc<dyn CommandRunner>,
    network: &str,
    container_id: &str,
    ifname: &str,
) -> Result<(), NetfilterError> {
    for_both(runner, |backend| {
        backend.teardown(network, container_id, ifname)
    })
}

/// [`MasqueradeBackend::gc`] in both backends, as the reference GC does.
pub fn gc_all(
    runner: &Arc<dyn CommandRunner>,
    network: &str,
    valid: &[(&str, &str)],
) -> Result<(), NetfilterError> {
    for_both(runner, |backend| backend.gc(network, valid))
}

fn for_both(
    runner: &Arc<dyn CommandRunner>,
    op: impl Fn(&dyn MasqueradeBackend) -> Result<(), NetfilterError>,
) -> Result<(), NetfilterError> {
    let mut errors = Vec::new();
    for kind in [BackendKind::Iptables, BackendKind::Nftables] {
        let backend = kind.backend(runner.clone());
        if let Err(e) = op(backend.as_ref())
            && backend.status().is_ok()
        {
            errors.push(e);
        }
    }
    NetfilterError::collect(errors)
}

/// Check the names that go into rules.
fn validate(network: &str, container_id: &str) -> Result<(), NetfilterError> {
    crate::names::validate_name("network name", network)?;
    crate::names::validate_name("container ID", container_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::FakeRunner;

    #[test]
    fn parse_backend_names() {
        assert_eq!(
            BackendKind::parse("iptables").unwrap(),
            BackendKind::Iptables
        );
        assert_eq!(
            BackendKind::parse("nftables").unwrap(),
            BackendKind::Nftables
        );
        let err = BackendKind::parse("x").map(|_| ()).unwrap_err();
        assert_eq!(err.to_string(), r#"unknown ipmasq backend "x""#);
        assert!(select_backend(Some("ebtables"), Arc::new(FakeRunner::new())).is_err());
    }

    #[test]
    fn detect_runs_nothing_and_prefers_installed_iptables() {
        let fake = Arc::new(FakeRunner::new());
        let runner: Arc<dyn CommandRunner> = fake.clone();
        assert_eq!(BackendKind::detect(&runner), BackendKind::Iptables);
        assert!(
            fake.command_lines().is_empty(),
            "{:?}",
            fake.command_lines()
        );
    }

    #[test]
    fn detect_falls_back_to_nftables_only_without_iptables() {
        let fake = Arc::new(FakeRunner::new());
        fake.set_missing("iptables");
        let runner: Arc<dyn CommandRunner> = fake.clone();
        assert_eq!(BackendKind::detect(&runner), BackendKind::Nftables);
        let fake = Arc::new(FakeRunner::new());
        fake.set_missing("iptables").set_missing("nft");
        let runner: Arc<dyn CommandRunner> = fake.clone();
        assert_eq!(BackendKind::detect(&runner), BackendKind::Iptables);
        assert!(fake.command_lines().is_empty());
    }

    #[test]
    fn teardown_all_ignores_unusable_backend() {
        let fake = Arc::new(FakeRunner::new());
        // iptables: nothing there (empty saves); nftables: nft missing entirely.
        fake.set_missing("nft");
        let runner: Arc<dyn CommandRunner> = fake.clone();
        teardown_all(&runner, "cnixnet", "ctr1", "eth0").unwrap();
        let mut lines = fake.command_lines();
        lines.sort(); // the iptables families run in parallel
        assert_eq!(
            lines,
            [
                "ip6tables-save -t nat",
                "iptables-save -t nat",
                "nft -j list table inet cni_plugins_masquerade"
            ]
        );
    }
}

//! Unit tests of the iptables firewall backend, on an emulated filter table.

mod add_tests;
mod coexistence_tests;
mod del_tests;
mod emulator;

use std::net::IpAddr;
use std::sync::Arc;

use super::IptablesFirewall;
use crate::firewall::{
    ContainerFirewall, FirewallBackend, HostLock, HostRoutes, IngressPolicy, Owner, Teardown,
};
pub(crate) use emulator::Emulator;

/// Route lookups from a fixed list (exact address → interface); `None` for the rest.
pub(crate) struct FakeRoutes(pub(crate) Vec<(IpAddr, &'static str)>);

impl HostRoutes for FakeRoutes {
    fn route_interface(&self, ip: IpAddr) -> Result<Option<String>, String> {
        Ok(self
            .0
            .iter()
            .find(|(a, _)| *a == ip)
            .map(|(_, i)| (*i).to_owned()))
    }
}

/// Route lookups that cannot read the table.
pub(crate) struct BrokenRoutes;

impl HostRoutes for BrokenRoutes {
    fn route_interface(&self, _ip: IpAddr) -> Result<Option<String>, String> {
        Err("no procfs".to_owned())
    }
}

pub(crate) struct World {
    pub(crate) kernel: Arc<Emulator>,
    pub(crate) backend: IptablesFirewall,
    _dir: tempfile::TempDir,
}

pub(crate) fn world_with(routes: Arc<dyn HostRoutes>) -> World {
    let dir = tempfile::tempdir().unwrap();
    let kernel = Arc::new(Emulator::new());
    let backend =
        IptablesFirewall::new(kernel.clone(), HostLock::in_dir(dir.path())).with_routes(routes);
    World {
        kernel,
        backend,
        _dir: dir,
    }
}

/// The batches of `batches` that are not first-ADD batches (those start with `-C` probes).
pub(crate) fn without_probes(batches: Vec<String>) -> Vec<String> {
    batches
        .into_iter()
        .filter(|b| !b.starts_with("*filter\n-C "))
        .collect()
}

pub(crate) fn world() -> World {
    world_with(Arc::new(FakeRoutes(Vec::new())))
}

pub(crate) fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter()
        .map(|s| s.split('/').next().unwrap().parse().unwrap())
        .collect()
}

pub(crate) fn fw(
    net: &str,
    cid: &str,
    addrs: &[&str],
    policy: IngressPolicy,
    bridge: &str,
) -> ContainerFirewall {
    ContainerFirewall::new(
        Owner::new(net, cid, "eth0"),
        &ips(addrs),
        policy,
        Some(bridge),
        "CNI-ADMIN",
    )
    .unwrap()
}

pub(crate) fn bare(net: &str, cid: &str) -> Teardown {
    Teardown::new(Owner::new(net, cid, "eth0"), &[], None).unwrap()
}

impl World {
    pub(crate) fn add(&self, fw: &ContainerFirewall) {
        self.backend.add(fw).unwrap();
    }
}

/// The filter table of a fresh netns.
pub(crate) const EMPTY: &str =
    "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";

/// Go `/usr/lib/cni/firewall` v1.1.1 (Debian 12, iptables-nft 1.8.9), `same-bridge`: `ctr1`
/// (net `cnixnet`, bridge `cnix0`, 10.99.0.2 + fd00:99::2) then `ctr2` (net `cnixnet2`, bridge
/// `cnix1`, 10.98.0.2), run inside a scratch netns.
pub(crate) const GO_V4: &str = include_str!("../../../../testdata/go-firewall-v4.save");
/// The same run, ip6tables.
pub(crate) const GO_V6: &str = include_str!("../../../../testdata/go-firewall-v6.save");

#[test]
fn status_probes_filter_table_and_lock() {
    let w = world();
    w.backend.status().unwrap();
    assert_eq!(w.kernel.calls(), ["iptables -w 30 -t filter -S FORWARD"]);
    w.kernel.set_missing("iptables-restore");
    let err = w.backend.status().unwrap_err();
    assert_eq!(err.to_string(), "iptables backend is not usable");
    assert_eq!(w.kernel.calls().len(), 1, "missing binaries need no exec");
}

//! Seams between the bridge logic and the outside: the kernel handles, IPAM and masquerade, so
//! ADD, DEL and CHECK run against fakes in unit tests.

use std::net::IpAddr;

use cni_core::CniError;
use cni_kernel::netlink::Netlink;
use cni_kernel::sysctl::Sysctl;
use ipnetwork::IpNetwork;

pub use cni_ipconfig::Ipam;

/// Masquerade rules of one attachment.
pub trait Masquerade {
    /// Creates the rules for `ips`.
    fn setup(&self, ips: &[IpNetwork]) -> Result<(), CniError>;
    /// Removes every rule of the attachment; needs no addresses.
    fn teardown(&self) -> Result<(), CniError>;
    /// Verifies the rules for `ips`.
    fn check(&self, ips: &[IpNetwork]) -> Result<(), CniError>;
}

/// The MAC spoof check of one attachment (nft bridge-family rules).
pub trait SpoofChecker {
    /// Drops frames from `host_iface` whose source MAC is not `mac`.
    fn setup(&self, host_iface: &str, mac: &str) -> Result<(), CniError>;
    /// Removes the attachment's rules; idempotent.
    fn teardown(&self) -> Result<(), CniError>;
}

/// Everything ADD acts through.
pub struct Kernel<'a> {
    /// Netlink in the host namespace.
    pub host: &'a mut dyn Netlink,
    /// Netlink in the container namespace.
    pub container: &'a mut dyn Netlink,
    /// Sysctls of the host namespace.
    pub host_sysctl: &'a mut dyn Sysctl,
    /// Sysctls of the container namespace.
    pub container_sysctl: &'a mut dyn Sysctl,
    /// Source of random host-veth names.
    pub random: &'a mut dyn FnMut() -> u32,
    /// Sleeps (real time, or nothing in tests).
    pub sleep: &'a dyn Fn(std::time::Duration),
}

/// The first address of a subnet after the network address: the default gateway.
pub fn default_gateway(net: &IpNetwork) -> Option<IpAddr> {
    match net {
        IpNetwork::V4(n) => n
            .network()
            .to_bits()
            .checked_add(1)
            .map(|b| IpAddr::V4(b.into())),
        IpNetwork::V6(n) => n
            .network()
            .to_bits()
            .checked_add(1)
            .map(|b| IpAddr::V6(b.into())),
    }
}

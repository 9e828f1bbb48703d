//! Netlink operations as a trait, so plugin logic decides and the kernel layer acts.

mod fake;
mod socket;

use ipnetwork::IpNetwork;

pub use fake::FakeNetlink;
pub use socket::RtnlSocket;

use crate::error::KernelError;

/// A network interface as netlink reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Hardware address, lower-case colon form (`00:00:00:00:00:00` for `lo`).
    pub mac: String,
    /// MTU.
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
}

/// The rtnetlink operations the plugins need, in one namespace (the one the socket was opened in).
pub trait Netlink {
    /// The link called `name`, or [`KernelError::LinkNotFound`].
    fn link_by_name(&mut self, name: &str) -> Result<Link, KernelError>;
    /// Sets IFF_UP on (`up`) or off.
    fn set_link_up(&mut self, index: u32, up: bool) -> Result<(), KernelError>;
    /// Addresses on the link, in the kernel's order.
    fn addresses(&mut self, index: u32) -> Result<Vec<IpNetwork>, KernelError>;
}

/// Formats a hardware address as lower-case colon-separated hex.
pub fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

//! Netlink operations as a trait, so plugin logic decides and the kernel layer acts.
//!
//! One [`Netlink`] value works in one namespace: the one its socket was opened in
//! ([`RtnlSocket::open_in`]). Plugins hold one for the host side and one for the container side.

mod devconf;
mod fake;
mod rtnl;
mod socket;

use std::net::IpAddr;
use std::os::fd::BorrowedFd;

use ipnetwork::IpNetwork;

pub use devconf::IpFamily;
pub use fake::{FakeNetlink, SharedFake};
pub use socket::RtnlSocket;

use crate::error::KernelError;

/// A network interface as netlink reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// Promiscuous mode (IFF_PROMISC).
    pub promisc: bool,
    /// Operational state is UP.
    pub oper_up: bool,
    /// Link kind from IFLA_INFO_KIND (`bridge`, `veth`, …); empty for plain devices.
    pub kind: String,
    /// Index of the master (bridge) this link is a port of.
    pub master: Option<u32>,
    /// IFLA_LINK: for a veth, the peer's index (in the peer's namespace); for a macvlan, its
    /// master's index (in the master's namespace).
    pub peer_index: Option<u32>,
    /// IFF_ALLMULTI.
    pub allmulti: bool,
    /// Transmit queue length.
    pub txqlen: u32,
    /// The mode of a macvlan link.
    pub macvlan_mode: Option<MacvlanMode>,
}

/// Macvlan modes, as `ip link` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacvlanMode {
    /// `private`: no traffic between macvlans of one master.
    Private,
    /// `vepa`: traffic between macvlans goes out through the master's peer.
    Vepa,
    /// `bridge`: macvlans of one master talk directly.
    Bridge,
    /// `passthru`: one macvlan takes over the master.
    Passthru,
    /// `source`: filtered by source MAC.
    Source,
}

impl MacvlanMode {
    /// Parses the CNI / `ip link` name.
    pub fn parse(s: &str) -> Option<MacvlanMode> {
        Some(match s {
            "private" => MacvlanMode::Private,
            "vepa" => MacvlanMode::Vepa,
            "bridge" => MacvlanMode::Bridge,
            "passthru" => MacvlanMode::Passthru,
            "source" => MacvlanMode::Source,
            _ => return None,
        })
    }

    /// The CNI / `ip link` name.
    pub fn as_str(self) -> &'static str {
        match self {
            MacvlanMode::Private => "private",
            MacvlanMode::Vepa => "vepa",
            MacvlanMode::Bridge => "bridge",
            MacvlanMode::Passthru => "passthru",
            MacvlanMode::Source => "source",
        }
    }
}

/// Options of a new macvlan link.
#[derive(Debug, Clone, Copy)]
pub struct MacvlanSpec<'a> {
    /// Name at creation.
    pub name: &'a str,
    /// Index of the master in the socket's namespace.
    pub master: u32,
    /// Mode.
    pub mode: MacvlanMode,
    /// MTU (None = the master's).
    pub mtu: Option<u32>,
    /// MAC (None = random).
    pub mac: Option<[u8; 6]>,
    /// Broadcast queue length (None = kernel default).
    pub bcqueuelen: Option<u32>,
    /// Transmit queue length (None = kernel default).
    pub txqlen: Option<u32>,
    /// Namespace to create it in (None = the socket's).
    pub netns: Option<BorrowedFd<'a>>,
}

/// A route in the main (or a given) table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    /// Destination.
    pub dst: IpNetwork,
    /// Next hop.
    pub gw: Option<IpAddr>,
    /// Output interface index.
    pub oif: Option<u32>,
    /// Metric.
    pub priority: u32,
    /// Table (None = main).
    pub table: Option<u32>,
    /// Scope (None = global, or link when there is no gateway).
    pub scope: Option<u8>,
}

/// One VLAN on a bridge port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeVlan {
    /// VLAN ID.
    pub vid: u16,
    /// Port VLAN ID (untagged ingress goes here).
    pub pvid: bool,
    /// Egress untagged.
    pub untagged: bool,
}

/// Options of a new veth pair.
#[derive(Debug, Clone, Copy)]
pub struct VethSpec<'a> {
    /// Name of the end that stays in the socket's namespace.
    pub name: &'a str,
    /// Name of the peer.
    pub peer_name: &'a str,
    /// Namespace the peer is created in.
    pub peer_netns: BorrowedFd<'a>,
    /// MTU of both ends (None = kernel default).
    pub mtu: Option<u32>,
    /// MAC of the peer (None = random).
    pub peer_mac: Option<[u8; 6]>,
}

/// The rtnetlink operations the plugins need, in one namespace.
pub trait Netlink {
    /// The link called `name`, or [`KernelError::LinkNotFound`].
    fn link_by_name(&mut self, name: &str) -> Result<Link, KernelError>;
    /// The link with `index`, or [`KernelError::LinkNotFound`].
    fn link_by_index(&mut self, index: u32) -> Result<Link, KernelError>;
    /// Every link.
    fn links(&mut self) -> Result<Vec<Link>, KernelError>;
    /// Creates a bridge (fails with EEXIST when the name is taken).
    fn create_bridge(
        &mut self,
        name: &str,
        mtu: Option<u32>,
        vlan_filtering: bool,
    ) -> Result<(), KernelError>;
    /// Creates a veth pair whose peer lives in another namespace.
    fn create_veth(&mut self, spec: &VethSpec<'_>) -> Result<(), KernelError>;
    /// Creates a macvlan link on a master.
    fn create_macvlan(&mut self, spec: &MacvlanSpec<'_>) -> Result<(), KernelError>;
    /// Deletes a link (a veth takes its peer with it).
    fn delete_link(&mut self, index: u32) -> Result<(), KernelError>;
    /// Sets IFF_UP on (`up`) or off.
    fn set_link_up(&mut self, index: u32, up: bool) -> Result<(), KernelError>;
    /// Renames a link (it must be down).
    fn set_name(&mut self, index: u32, name: &str) -> Result<(), KernelError>;
    /// Sets the MTU.
    fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<(), KernelError>;
    /// Sets IFF_ALLMULTI.
    fn set_allmulti(&mut self, index: u32, on: bool) -> Result<(), KernelError>;
    /// Sets the transmit queue length.
    fn set_txqlen(&mut self, index: u32, len: u32) -> Result<(), KernelError>;
    /// Sets IFF_PROMISC.
    fn set_promisc(&mut self, index: u32, on: bool) -> Result<(), KernelError>;
    /// Attaches to (Some) or detaches from (None) a master.
    fn set_master(&mut self, index: u32, master: Option<u32>) -> Result<(), KernelError>;
    /// Sets the hardware address.
    fn set_mac(&mut self, index: u32, mac: [u8; 6]) -> Result<(), KernelError>;
    /// Sets the bridge-port flags of a port.
    fn set_bridge_port(
        &mut self,
        index: u32,
        hairpin: bool,
        isolated: bool,
    ) -> Result<(), KernelError>;
    /// VLANs configured on a bridge port.
    fn bridge_vlans(&mut self, index: u32) -> Result<Vec<BridgeVlan>, KernelError>;
    /// Adds a VLAN to a bridge port.
    fn add_bridge_vlan(&mut self, index: u32, vlan: BridgeVlan) -> Result<(), KernelError>;
    /// Removes a VLAN from a bridge port.
    fn del_bridge_vlan(&mut self, index: u32, vid: u16) -> Result<(), KernelError>;
    /// Addresses on the link, in the kernel's order.
    fn addresses(&mut self, index: u32) -> Result<Vec<IpNetwork>, KernelError>;
    /// IPv6 addresses still in duplicate address detection: `(address, dad_failed)`.
    fn tentative_addresses(&mut self, index: u32) -> Result<Vec<(IpNetwork, bool)>, KernelError>;
    /// Adds an address (fails with EEXIST when present).
    fn add_address(&mut self, index: u32, addr: IpNetwork) -> Result<(), KernelError>;
    /// Removes an address.
    fn del_address(&mut self, index: u32, addr: IpNetwork) -> Result<(), KernelError>;
    /// Routes of one family, every table.
    fn routes(&mut self, ipv4: bool) -> Result<Vec<RouteEntry>, KernelError>;
    /// Adds a route (append semantics: a second default route over another interface is fine).
    fn add_route(&mut self, route: &RouteEntry) -> Result<(), KernelError>;
}

/// Formats a hardware address as lower-case colon-separated hex.
pub fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff` (either case; `-` separators accepted too).
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = text.split([':', '-']);
    for byte in &mut out {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        assert_eq!(
            parse_mac("C2:11:22:33:44:55"),
            Some([0xc2, 0x11, 0x22, 0x33, 0x44, 0x55])
        );
        assert_eq!(
            format_mac(&[0xc2, 0x11, 0x22, 0x33, 0x44, 0x55]),
            "c2:11:22:33:44:55"
        );
        for bad in [
            "",
            "c2:11:22:33:44",
            "c2:11:22:33:44:55:66",
            "zz:11:22:33:44:55",
            "c2:1:22:33:44:55",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }
}

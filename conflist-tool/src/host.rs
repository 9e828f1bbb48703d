//! What the tool needs to know about the host's links and addresses, read through the kernel
//! layer's netlink (no `ip`), as plain data so decisions are unit-tested without root.

use cni_kernel::netlink::{Netlink, RtnlSocket};
use ipnetwork::IpNetwork;

/// One link of the host namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostLink {
    /// Interface index.
    pub index: u32,
    /// Name.
    pub name: String,
    /// `bridge`, `veth`, `macvlan`, … (empty for plain devices).
    pub kind: String,
    /// Index of the bridge this link is a port of.
    pub master: Option<u32>,
    /// Addresses with their prefix.
    pub addresses: Vec<IpNetwork>,
}

/// The links of the namespace the tool runs in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostSnapshot {
    /// Every link.
    pub links: Vec<HostLink>,
}

/// Reading the host failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the host's links and addresses through netlink")]
pub struct HostError(#[source] pub cni_kernel::KernelError);

impl HostSnapshot {
    /// Reads links and addresses of the current network namespace.
    pub fn read() -> Result<HostSnapshot, HostError> {
        let mut nl = RtnlSocket::open().map_err(HostError)?;
        let mut links = Vec::new();
        for link in nl.links().map_err(HostError)? {
            let addresses = nl.addresses(link.index).map_err(HostError)?;
            links.push(HostLink {
                index: link.index,
                name: link.name,
                kind: link.kind,
                master: link.master,
                addresses,
            });
        }
        Ok(HostSnapshot { links })
    }

    /// The link called `name`.
    pub fn link(&self, name: &str) -> Option<&HostLink> {
        self.links.iter().find(|l| l.name == name)
    }

    /// The links enslaved to the bridge called `name` (its ports: one per attached container).
    pub fn ports_of(&self, name: &str) -> Vec<&HostLink> {
        match self.link(name) {
            None => Vec::new(),
            Some(bridge) => self
                .links
                .iter()
                .filter(|l| l.master == Some(bridge.index))
                .collect(),
        }
    }

    /// Every address with the name of the link holding it.
    pub fn addresses(&self) -> impl Iterator<Item = (&str, &IpNetwork)> {
        self.links
            .iter()
            .flat_map(|l| l.addresses.iter().map(move |a| (l.name.as_str(), a)))
    }
}

/// Deletes the link called `name` in the current namespace.
pub fn delete_link(name: &str) -> Result<(), HostError> {
    let mut nl = RtnlSocket::open().map_err(HostError)?;
    let link = nl.link_by_name(name).map_err(HostError)?;
    nl.delete_link(link.index).map_err(HostError)
}

//! An in-memory [`Netlink`] for unit tests of plugin logic.

use ipnetwork::IpNetwork;

use super::{Link, Netlink};
use crate::error::KernelError;

/// A fake namespace: links and their addresses, plus a log of mutating calls.
#[derive(Debug, Default, Clone)]
pub struct FakeNetlink {
    /// Links with their addresses.
    pub links: Vec<(Link, Vec<IpNetwork>)>,
    /// Mutating calls, e.g. `set_link_up 1 true`.
    pub calls: Vec<String>,
    /// When set, every mutating call fails with this errno.
    pub fail_mutations: Option<i32>,
}

impl FakeNetlink {
    /// A namespace with only `lo` (index 1, down, 127.0.0.1/8 and ::1/128).
    pub fn with_loopback() -> Self {
        let lo = Link {
            index: 1,
            name: "lo".into(),
            mac: "00:00:00:00:00:00".into(),
            mtu: 65536,
            up: false,
        };
        let addrs = ["127.0.0.1/8", "::1/128"]
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        FakeNetlink {
            links: vec![(lo, addrs)],
            ..Default::default()
        }
    }

    fn entry(&mut self, index: u32) -> Result<&mut (Link, Vec<IpNetwork>), KernelError> {
        self.links
            .iter_mut()
            .find(|(l, _)| l.index == index)
            .ok_or(KernelError::Netlink {
                op: "link lookup",
                source: std::io::Error::from_raw_os_error(nix::errno::Errno::ENODEV as i32),
            })
    }
}

impl Netlink for FakeNetlink {
    fn link_by_name(&mut self, name: &str) -> Result<Link, KernelError> {
        self.links
            .iter()
            .find(|(l, _)| l.name == name)
            .map(|(l, _)| l.clone())
            .ok_or_else(|| KernelError::LinkNotFound { name: name.into() })
    }

    fn set_link_up(&mut self, index: u32, up: bool) -> Result<(), KernelError> {
        self.calls.push(format!("set_link_up {index} {up}"));
        if let Some(errno) = self.fail_mutations {
            return Err(KernelError::Netlink {
                op: "set link",
                source: std::io::Error::from_raw_os_error(errno),
            });
        }
        self.entry(index)?.0.up = up;
        Ok(())
    }

    fn addresses(&mut self, index: u32) -> Result<Vec<IpNetwork>, KernelError> {
        Ok(self.entry(index)?.1.clone())
    }
}

//! Sysctls under `/proc/sys/net`, read and written from inside the right namespace.
//!
//! Keys use the `/` form relative to `/proc/sys` (`net/ipv4/conf/eth0.100/arp_notify`), so
//! interface names containing dots need no escaping. Keys are validated before use: only
//! `net/…`, no empty, `.` or `..` components.
//!
//! A few keys are served over rtnetlink instead ([`over_netlink`]): opening files under
//! `/proc/sys/net/ipv{4,6}` costs time proportional to the number of namespaces on the host.

mod over_netlink;

use std::path::PathBuf;

use crate::error::KernelError;
use crate::netlink::RtnlSocket;
use crate::netns::Netns;

/// Sysctl access in one namespace.
pub trait Sysctl {
    /// Reads a value (trailing newline removed).
    fn read(&mut self, key: &str) -> Result<String, KernelError>;
    /// Writes a value.
    fn write(&mut self, key: &str, value: &str) -> Result<(), KernelError>;
}

/// Checks a key and returns its path under `/proc/sys`.
pub fn key_path(key: &str) -> Result<PathBuf, KernelError> {
    let bad = |why: &str| KernelError::BadSysctlKey {
        key: key.into(),
        why: why.into(),
    };
    let mut parts = key.split('/');
    if parts.next() != Some("net") {
        return Err(bad("only keys under net/ are allowed"));
    }
    for part in parts {
        if part.is_empty() || part == "." || part == ".." {
            return Err(bad("empty, . or .. component"));
        }
        if part.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("control or whitespace character"));
        }
    }
    Ok(PathBuf::from("/proc/sys").join(key))
}

/// `/proc/sys` as seen from a namespace (the caller's own when `netns` is None), with the keys
/// that have an equivalent netlink form served over an rtnetlink socket opened in it.
#[derive(Debug)]
pub struct ProcSysctl<'a> {
    netns: Option<&'a Netns>,
    /// Opened on the first key with a netlink form; `Some(None)` after opening failed.
    rtnl: Option<Option<RtnlSocket>>,
}

impl<'a> ProcSysctl<'a> {
    /// Sysctls of `netns`, or of the caller's namespace.
    pub fn new(netns: Option<&'a Netns>) -> Self {
        ProcSysctl { netns, rtnl: None }
    }

    /// The namespace's rtnetlink socket, opened on first use; `None` when it cannot be opened
    /// (then proc serves every key).
    fn rtnl(&mut self) -> Option<&mut RtnlSocket> {
        let netns = self.netns;
        self.rtnl
            .get_or_insert_with(|| match netns {
                Some(ns) => RtnlSocket::open_in(ns).ok(),
                None => RtnlSocket::open().ok(),
            })
            .as_mut()
    }

    fn in_ns<T>(
        &self,
        f: impl FnOnce() -> std::io::Result<T>,
        key: &str,
    ) -> Result<T, KernelError> {
        let _inside = match self.netns {
            Some(ns) => Some(ns.enter()?),
            None => None,
        };
        f().map_err(|source| KernelError::Sysctl {
            key: key.into(),
            source,
        })
    }
}

impl Sysctl for ProcSysctl<'_> {
    fn read(&mut self, key: &str) -> Result<String, KernelError> {
        let path = key_path(key)?;
        if let Some(nl_key) = over_netlink::classify(key)
            && let Some(sock) = self.rtnl()
            && let Ok(Some(value)) = over_netlink::read(sock, nl_key)
        {
            return Ok(value);
        }
        let raw = self.in_ns(|| std::fs::read_to_string(&path), key)?;
        Ok(raw.trim_end_matches('\n').to_string())
    }

    fn write(&mut self, key: &str, value: &str) -> Result<(), KernelError> {
        let path = key_path(key)?;
        if let Some(nl_key) = over_netlink::classify(key)
            && let Some(sock) = self.rtnl()
            && let Ok(true) = over_netlink::write(sock, nl_key, value)
        {
            return Ok(());
        }
        self.in_ns(|| std::fs::write(&path, value), key)
    }
}

/// In-memory sysctls for unit tests.
#[derive(Debug, Default, Clone)]
pub struct FakeSysctl {
    /// Current values.
    pub values: std::collections::BTreeMap<String, String>,
    /// Writes in order.
    pub writes: Vec<(String, String)>,
}

impl Sysctl for FakeSysctl {
    fn read(&mut self, key: &str) -> Result<String, KernelError> {
        key_path(key)?;
        self.values
            .get(key)
            .cloned()
            .ok_or_else(|| KernelError::Sysctl {
                key: key.into(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            })
    }

    fn write(&mut self, key: &str, value: &str) -> Result<(), KernelError> {
        key_path(key)?;
        self.writes.push((key.into(), value.into()));
        self.values.insert(key.into(), value.into());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_confined_to_net() {
        assert_eq!(
            key_path("net/ipv4/conf/eth0.100/arp_notify").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/arp_notify")
        );
        for bad in [
            "kernel/x",
            "net/../kernel/x",
            "net/ipv4//x",
            "net/./x",
            "/net/x",
            "net/a b",
            "net/a\n",
        ] {
            assert!(key_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reads_own_namespace() {
        let mut s = ProcSysctl::new(None);
        let v = s.read("net/ipv4/ip_forward").unwrap();
        assert!(v == "0" || v == "1");
    }
}

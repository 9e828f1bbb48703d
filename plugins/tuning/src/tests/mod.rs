//! Unit tests: fakes for the kernel, a temporary directory for backups.

mod add_tests;
mod check_del_tests;
mod config_tests;
mod keys_tests;
mod plugin_tests;

use cni_core::CniVersion;
use cni_core::args::CniArgs;
use cni_core::config::NetConf;
use cni_core::skel::{Attachment, Invocation};
use cni_kernel::KernelError;
use cni_kernel::netlink::FakeNetlink;
use cni_kernel::sysctl::{FakeSysctl, Sysctl};
use serde_json::Value;

use crate::config::TuningFields;

/// An invocation of `conf` (cniVersion taken from it, 1.1.0 when absent).
pub fn invocation(conf: &Value) -> Invocation<TuningFields> {
    let raw = serde_json::to_vec(conf).unwrap();
    invocation_raw(&raw)
}

/// An invocation of raw config bytes (to keep duplicate keys).
pub fn invocation_raw(raw: &[u8]) -> Invocation<TuningFields> {
    let conf: NetConf<TuningFields> = NetConf::parse(raw).unwrap();
    let version = CniVersion::parse(&conf.cni_version).unwrap_or(CniVersion::LATEST);
    Invocation {
        version,
        conf,
        raw: raw.to_vec(),
        cni_path: Vec::new(),
    }
}

/// An attachment `(c1, ifname)` with CNI_ARGS `args`.
pub fn attachment(ifname: &str, args: &str) -> Attachment {
    Attachment {
        container_id: "c1".into(),
        ifname: ifname.into(),
        netns: Some("/run/netns/x".into()),
        args: CniArgs::parse(args, &["MAC"]).unwrap(),
    }
}

/// A container namespace with `lo` and `eth0` (index 2, MAC 02:00:00:00:00:02, MTU 1500,
/// txqueuelen 1000).
pub fn container() -> FakeNetlink {
    let mut nl = FakeNetlink::with_loopback();
    let i = nl.add_link("eth0", "veth");
    nl.links[1].0.txqlen = 1000;
    assert_eq!(i, 2);
    nl
}

/// Sysctls of a fresh namespace, as far as the tests touch them.
pub fn sysctls() -> FakeSysctl {
    let mut s = FakeSysctl::default();
    for (k, v) in [
        ("net/core/somaxconn", "4096"),
        ("net/ipv4/conf/eth0/arp_filter", "0"),
        ("net/ipv4/conf/eth0.100/arp_filter", "0"),
        ("net/ipv4/ip_forward", "0"),
        ("net/ipv4/ping_group_range", "1\t0"),
    ] {
        s.values.insert(k.into(), v.into());
    }
    s
}

/// A [`FakeSysctl`] that can fail writes of one key and treats some keys as write-only.
#[derive(Debug, Default)]
pub struct FlakySysctl {
    pub inner: FakeSysctl,
    pub fail_write: Option<String>,
    pub write_only: Vec<String>,
    pub missing: Vec<String>,
}

fn missing(key: &str) -> KernelError {
    KernelError::Sysctl {
        key: key.into(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    }
}

impl Sysctl for FlakySysctl {
    fn read(&mut self, key: &str) -> Result<String, KernelError> {
        if self.write_only.iter().any(|k| k == key) {
            return Err(KernelError::Sysctl {
                key: key.into(),
                source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            });
        }
        if self.missing.iter().any(|k| k == key) {
            return Err(missing(key));
        }
        self.inner.read(key)
    }

    fn write(&mut self, key: &str, value: &str) -> Result<(), KernelError> {
        if self.fail_write.as_deref() == Some(key) {
            return Err(KernelError::Sysctl {
                key: key.into(),
                source: std::io::Error::from_raw_os_error(22),
            });
        }
        if self.missing.iter().any(|k| k == key) {
            return Err(missing(key));
        }
        self.inner.write(key, value)
    }
}

//! Recording fakes for the bridge's seams.

use std::cell::RefCell;
use std::os::fd::{AsFd, BorrowedFd};
use std::rc::Rc;
use std::sync::Mutex;

use cni_core::result::types::{IpConfig, Route};
use cni_core::{CniError, CniResult};
use cni_kernel::netlink::{FakeNetlink, SharedFake};
use cni_kernel::sysctl::FakeSysctl;
use ipnetwork::IpNetwork;

use crate::add::{AddRequest, Services, add};
use crate::config::BridgeConfig;
use crate::ports::{Ipam, Kernel, Masquerade, SpoofChecker};

/// IPAM that hands out fixed addresses and records DELs.
#[derive(Default)]
pub struct FakeIpam {
    pub result: CniResult,
    pub fail: bool,
    pub dels: Mutex<u32>,
}

impl FakeIpam {
    pub fn v4(addr: &str, gw: Option<&str>) -> Self {
        FakeIpam {
            result: CniResult {
                ips: vec![IpConfig {
                    address: addr.parse().unwrap(),
                    gateway: gw.map(|g| g.parse().unwrap()),
                    interface: None,
                }],
                routes: vec![Route::new("0.0.0.0/0".parse().unwrap(), None)],
                ..CniResult::default()
            },
            ..FakeIpam::default()
        }
    }
}

impl Ipam for FakeIpam {
    fn add(&self) -> Result<CniResult, CniError> {
        if self.fail {
            return Err(CniError::plugin(
                111,
                "no IP addresses available in range set",
            ));
        }
        Ok(self.result.clone())
    }
    fn del(&self) -> Result<(), CniError> {
        *self.dels.lock().unwrap() += 1;
        Ok(())
    }
}

/// Masquerade / spoof check that records calls and can fail setup.
#[derive(Default)]
pub struct FakeRules {
    pub calls: Mutex<Vec<String>>,
    pub fail_setup: bool,
}

impl Masquerade for FakeRules {
    fn setup(&self, ips: &[IpNetwork]) -> Result<(), CniError> {
        self.calls.lock().unwrap().push(format!("setup {ips:?}"));
        if self.fail_setup {
            Err(CniError::plugin(124, "iptables-restore failed"))
        } else {
            Ok(())
        }
    }
    fn teardown(&self) -> Result<(), CniError> {
        self.calls.lock().unwrap().push("teardown".into());
        Ok(())
    }
    fn check(&self, _ips: &[IpNetwork]) -> Result<(), CniError> {
        Ok(())
    }
}

impl SpoofChecker for FakeRules {
    fn setup(&self, host_iface: &str, mac: &str) -> Result<(), CniError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("spoof {host_iface} {mac}"));
        if self.fail_setup {
            Err(CniError::plugin(124, "nft failed"))
        } else {
            Ok(())
        }
    }
    fn teardown(&self) -> Result<(), CniError> {
        self.calls.lock().unwrap().push("spoof teardown".into());
        Ok(())
    }
}

/// A host and a container namespace wired so that veth peers land in the container.
pub struct World {
    pub host: FakeNetlink,
    pub container: SharedFake,
    pub host_sysctl: FakeSysctl,
    pub container_sysctl: FakeSysctl,
}

impl World {
    pub fn new() -> World {
        let container = SharedFake(Rc::new(RefCell::new(FakeNetlink::with_loopback())));
        let mut host = FakeNetlink::with_loopback();
        host.peer_ns = Some(container.0.clone());
        let mut host_sysctl = FakeSysctl::default();
        host_sysctl
            .values
            .insert("net/ipv4/ip_forward".into(), "0".into());
        World {
            host,
            container,
            host_sysctl,
            container_sysctl: FakeSysctl::default(),
        }
    }

    /// Names of the host's links.
    pub fn host_links(&self) -> Vec<String> {
        self.host
            .links
            .iter()
            .map(|(l, _)| l.name.clone())
            .collect()
    }

    /// Names of the container's links.
    pub fn container_links(&self) -> Vec<String> {
        self.container
            .0
            .borrow()
            .links
            .iter()
            .map(|(l, _)| l.name.clone())
            .collect()
    }

    pub fn add(
        &mut self,
        cfg: &BridgeConfig,
        ipam: &FakeIpam,
        masq: &FakeRules,
        spoof: &FakeRules,
    ) -> Result<CniResult, CniError> {
        let stdin = std::io::stdin();
        let fd: BorrowedFd<'_> = stdin.as_fd();
        let mut n = 0x1234_5600u32;
        let mut random = move || {
            n += 1;
            n
        };
        let mut k = Kernel {
            host: &mut self.host,
            container: &mut self.container,
            host_sysctl: &mut self.host_sysctl,
            container_sysctl: &mut self.container_sysctl,
            random: &mut random,
            sleep: &|_| {},
        };
        let req = AddRequest {
            cfg,
            ifname: "eth0",
            sandbox: "/run/netns/c1",
            container_ns: fd,
            host_ns: fd,
            layer3: !ipam.result.ips.is_empty() || ipam.fail,
            dns: None,
        };
        add(&req, &mut k, &Services { ipam, masq, spoof })
    }
}

pub fn cfg() -> BridgeConfig {
    BridgeConfig {
        bridge: "br-test".into(),
        is_gateway: true,
        is_default_gateway: false,
        force_address: false,
        ip_masq: true,
        ip_masq_backend: None,
        mtu: None,
        hairpin: false,
        promisc: false,
        vlan: 0,
        trunk: vec![],
        preserve_default_vlan: false,
        macspoofchk: false,
        enable_dad: false,
        disable_container_interface: false,
        port_isolation: false,
        mac: None,
    }
}

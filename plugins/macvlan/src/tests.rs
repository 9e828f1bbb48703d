//! Unit tests of ADD, DEL and CHECK against fakes: no root, no kernel.

use std::cell::RefCell;
use std::os::fd::AsFd;
use std::rc::Rc;

use cni_core::result::types::{Dns, IpConfig, Route};
use cni_core::{CniError, CniResult, ErrorCode};
use cni_ipconfig::Ipam;
use cni_kernel::netlink::{FakeNetlink, MacvlanMode, Netlink, RouteEntry, SharedFake};
use cni_kernel::sysctl::FakeSysctl;

use crate::attach::{AddRequest, Kernel, add, del};
use crate::check::check;
use crate::config::MacvlanConfig;

#[derive(Default)]
struct FakeIpam {
    result: CniResult,
    dels: RefCell<u32>,
}

impl Ipam for FakeIpam {
    fn add(&self) -> Result<CniResult, CniError> {
        Ok(self.result.clone())
    }
    fn del(&self) -> Result<(), CniError> {
        *self.dels.borrow_mut() += 1;
        Ok(())
    }
}

fn ipam() -> FakeIpam {
    FakeIpam {
        result: CniResult {
            ips: vec![IpConfig {
                address: "192.168.50.5/24".parse().unwrap(),
                gateway: Some("192.168.50.1".parse().unwrap()),
                interface: None,
            }],
            routes: vec![Route::new("0.0.0.0/0".parse().unwrap(), None)],
            dns: Dns {
                nameservers: vec!["192.168.50.1".into()],
                ..Dns::default()
            },
            ..CniResult::default()
        },
        ..FakeIpam::default()
    }
}

fn cfg() -> MacvlanConfig {
    MacvlanConfig {
        master: Some("eth9".into()),
        mode: MacvlanMode::Bridge,
        mtu: None,
        mac: None,
        bcqueuelen: None,
        link_in_container: false,
    }
}

struct World {
    host: FakeNetlink,
    container: SharedFake,
    sysctl: FakeSysctl,
}

impl World {
    fn new() -> World {
        let container = SharedFake(Rc::new(RefCell::new(FakeNetlink::with_loopback())));
        let mut host = FakeNetlink::with_loopback();
        host.peer_ns = Some(container.0.clone());
        let eth9 = host.add_link("eth9", "veth");
        host.routes.push(RouteEntry {
            dst: "0.0.0.0/0".parse().unwrap(),
            gw: Some("10.0.0.1".parse().unwrap()),
            oif: Some(eth9),
            priority: 0,
            table: None,
            scope: Some(0),
        });
        World {
            host,
            container,
            sysctl: FakeSysctl::default(),
        }
    }

    fn add(&mut self, cfg: &MacvlanConfig, ipam: &FakeIpam) -> Result<CniResult, CniError> {
        let stdin = std::io::stdin();
        let mut n = 0xabc0_0000u32;
        let mut random = move || {
            n += 1;
            n
        };
        let mut k = Kernel {
            master_ns: &mut self.host,
            container: &mut self.container,
            container_sysctl: &mut self.sysctl,
            random: &mut random,
            sleep: &|_| {},
        };
        let req = AddRequest {
            cfg,
            ifname: "eth0",
            sandbox: "/run/netns/c",
            create_in: Some(stdin.as_fd()),
            layer3: !ipam.result.ips.is_empty(),
            dns: None,
        };
        add(&req, &mut k, ipam)
    }

    fn container_links(&self) -> Vec<String> {
        self.container
            .0
            .borrow()
            .links
            .iter()
            .map(|(l, _)| l.name.clone())
            .collect()
    }
}

#[test]
fn l3_add_creates_renames_and_configures() {
    let mut w = World::new();
    let r = w.add(&cfg(), &ipam()).unwrap();
    assert_eq!(w.container_links(), ["lo", "eth0"]);
    assert!(
        w.host
            .calls
            .iter()
            .any(|c| c.starts_with("create_macvlan vethabc00001 2 bridge")),
        "{:?}",
        w.host.calls
    );
    assert_eq!(r.interfaces.len(), 1);
    assert_eq!(
        (
            r.interfaces[0].name.as_str(),
            r.interfaces[0].sandbox.as_str()
        ),
        ("eth0", "/run/netns/c")
    );
    assert_eq!(r.ips[0].interface, Some(0));
    assert_eq!(r.dns.nameservers, ["192.168.50.1"], "IPAM DNS is kept");
    let c = w.container.0.borrow();
    let eth0 = c.links.iter().find(|(l, _)| l.name == "eth0").unwrap();
    assert!(eth0.0.up);
    assert_eq!(eth0.1, vec!["192.168.50.5/24".parse().unwrap()]);
    assert_eq!(c.routes[0].gw, Some("192.168.50.1".parse().unwrap()));
    assert_eq!(w.sysctl.values["net/ipv4/conf/eth0/arp_notify"], "1");
}

#[test]
fn default_master_and_its_absence() {
    let mut w = World::new();
    let mut c = cfg();
    c.master = None;
    w.add(&c, &ipam()).unwrap();
    assert!(
        w.host
            .calls
            .iter()
            .any(|l| l.starts_with("create_macvlan vethabc00001 2 "))
    );
    let mut w = World::new();
    w.host.routes.clear();
    let e = w.add(&c, &ipam()).unwrap_err();
    assert_eq!(
        (e.code, e.msg.as_str()),
        (ErrorCode::Plugin(141), "no default route interface found")
    );
    let mut c = cfg();
    c.master = Some("nope0".into());
    let e = World::new().add(&c, &ipam()).unwrap_err();
    assert_eq!(e.msg, "failed to lookup master \"nope0\": Link not found");
}

#[test]
fn mtu_above_master_is_refused() {
    let mut c = cfg();
    c.mtu = Some(9000);
    let e = World::new().add(&c, &ipam()).unwrap_err();
    assert_eq!(
        (e.code, e.msg.as_str()),
        (
            ErrorCode::InvalidNetworkConfig,
            "invalid MTU 9000, must be [0, master MTU(1500)]"
        )
    );
}

#[test]
fn failures_roll_back_link_and_reservation() {
    for step in ["add_address", "add_route", "set_link_up", "set_name"] {
        let mut w = World::new();
        w.container.0.borrow_mut().fail_on = Some(step.into());
        let ip = ipam();
        assert!(w.add(&cfg(), &ip).is_err(), "{step}");
        assert_eq!(w.container_links(), ["lo"], "{step}");
        let reserved = step != "set_name";
        assert_eq!(*ip.dels.borrow(), u32::from(reserved), "{step}");
    }
}

#[test]
fn existing_interface_is_refused() {
    let mut w = World::new();
    w.container.0.borrow_mut().add_link("eth0", "veth");
    let e = w.add(&cfg(), &ipam()).unwrap_err();
    assert_eq!(e.code, ErrorCode::Plugin(140));
}

#[test]
fn del_releases_then_deletes_and_tolerates_absence() {
    let mut w = World::new();
    w.add(&cfg(), &ipam()).unwrap();
    let ip = ipam();
    del("eth0", true, Some(&mut w.container), &ip).unwrap();
    assert_eq!(w.container_links(), ["lo"]);
    del("eth0", true, Some(&mut w.container), &ip).unwrap();
    del("eth0", true, None, &ip).unwrap();
    assert_eq!(*ip.dels.borrow(), 3);
}

#[test]
fn check_passes_then_catches_drift() {
    let mut w = World::new();
    let r = w.add(&cfg(), &ipam()).unwrap();
    check(
        &cfg(),
        "eth0",
        "/run/netns/c",
        &r,
        &mut w.host,
        &mut w.container,
    )
    .unwrap();
    let mut vepa = cfg();
    vepa.mode = MacvlanMode::Vepa;
    let e = check(
        &vepa,
        "eth0",
        "/run/netns/c",
        &r,
        &mut w.host,
        &mut w.container,
    )
    .unwrap_err();
    assert_eq!(
        e.msg,
        "container macvlan mode bridge does not match expected value: vepa"
    );
    let idx = w.container.link_by_name("eth0").unwrap().index;
    w.container.set_mac(idx, [2, 1, 1, 1, 1, 1]).unwrap();
    let e = check(
        &cfg(),
        "eth0",
        "/run/netns/c",
        &r,
        &mut w.host,
        &mut w.container,
    )
    .unwrap_err();
    assert!(e.msg.starts_with("Interface eth0 Mac"), "{}", e.msg);
    let mut w = World::new();
    let r = w.add(&cfg(), &ipam()).unwrap();
    let master = w.host.link_by_name("eth9").unwrap().index;
    w.host.delete_link(master).unwrap();
    let e = check(
        &cfg(),
        "eth0",
        "/run/netns/c",
        &r,
        &mut w.host,
        &mut w.container,
    )
    .unwrap_err();
    assert_eq!(
        (e.code, e.msg.as_str()),
        (
            ErrorCode::Plugin(142),
            "master interface eth9 of eth0 not found"
        )
    );
}

use cni_core::ErrorCode;
use cni_kernel::netlink::Netlink;

use super::fakes::{FakeIpam, FakeRules, World, cfg};
use crate::check::{CheckRequest, check};

fn run_check(w: &mut World, prev: &cni_core::CniResult) -> Result<(), cni_core::CniError> {
    let c = cfg();
    let req = CheckRequest {
        cfg: &c,
        ifname: "eth0",
        sandbox: "/run/netns/c1",
        prev,
    };
    check(&req, &mut w.host, &mut w.container, &FakeRules::default())
}

fn added() -> (World, cni_core::CniResult) {
    let mut w = World::new();
    let r = w
        .add(
            &cfg(),
            &FakeIpam::v4("10.1.0.5/24", None),
            &FakeRules::default(),
            &FakeRules::default(),
        )
        .unwrap();
    (w, r)
}

#[test]
fn passes_right_after_add() {
    let (mut w, r) = added();
    run_check(&mut w, &r).unwrap();
}

#[test]
fn drift_table() {
    type Drift = fn(&mut World);
    let cases: [(&str, Drift, &str); 5] = [
        (
            "address removed",
            |w| {
                let mut c = w.container.0.borrow_mut();
                let i = c.links.iter().position(|(l, _)| l.name == "eth0").unwrap();
                c.links[i].1.clear();
            },
            "Failed to match addr 10.1.0.5/24 on interface eth0",
        ),
        (
            "route removed",
            |w| w.container.0.borrow_mut().routes.clear(),
            "Expected Route 0.0.0.0/0 via 10.1.0.1 not found in routing table",
        ),
        (
            "container MAC changed",
            |w| {
                let idx = w.container.link_by_name("eth0").unwrap().index;
                w.container.set_mac(idx, [2, 9, 9, 9, 9, 9]).unwrap();
            },
            "Interface eth0 Mac",
        ),
        (
            "veth detached",
            |w| {
                let idx = w
                    .host
                    .links
                    .iter()
                    .find(|(l, _)| l.kind == "veth")
                    .unwrap()
                    .0
                    .index;
                w.host.set_master(idx, None).unwrap();
            },
            "CNI veth created for bridge br-test was not found",
        ),
        (
            "promisc turned on",
            |w| {
                let idx = w.host.link_by_name("br-test").unwrap().index;
                w.host.set_promisc(idx, true).unwrap();
            },
            "Bridge interface br-test configured Promisc Mode false doesn't match current state: true",
        ),
    ];
    for (what, drift, msg) in cases {
        let (mut w, r) = added();
        drift(&mut w);
        let e = run_check(&mut w, &r).unwrap_err();
        assert_eq!(e.code, ErrorCode::Plugin(123), "{what}");
        assert!(e.msg.starts_with(msg), "{what}: {}", e.msg);
    }
}

#[test]
fn l2_bridge_checks_without_ipam() {
    let mut w = World::new();
    let mut c = cfg();
    c.is_gateway = false;
    c.ip_masq = false;
    let r = w
        .add(
            &c,
            &FakeIpam::default(),
            &FakeRules::default(),
            &FakeRules::default(),
        )
        .unwrap();
    let req = CheckRequest {
        cfg: &c,
        ifname: "eth0",
        sandbox: "/run/netns/c1",
        prev: &r,
    };
    check(&req, &mut w.host, &mut w.container, &FakeRules::default()).unwrap();
}

#[test]
fn sandbox_mismatch() {
    let (mut w, r) = added();
    let c = cfg();
    let req = CheckRequest {
        cfg: &c,
        ifname: "eth0",
        sandbox: "/run/netns/other",
        prev: &r,
    };
    let e = check(&req, &mut w.host, &mut w.container, &FakeRules::default()).unwrap_err();
    assert_eq!(
        e.msg,
        "Sandbox in prevResult /run/netns/c1 doesn't match configured netns: /run/netns/other"
    );
}

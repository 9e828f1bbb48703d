use super::fakes::{FakeIpam, FakeRules, World, cfg};
use cni_core::ErrorCode;

#[test]
fn l3_add_builds_bridge_port_addresses_gateway_and_rules() {
    let mut w = World::new();
    let ipam = FakeIpam::v4("10.1.0.5/24", None);
    let masq = FakeRules::default();
    let r = w.add(&cfg(), &ipam, &masq, &FakeRules::default()).unwrap();
    let names: Vec<&str> = r.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["br-test", "veth12345601", "eth0"]);
    assert_eq!(r.interfaces[2].sandbox, "/run/netns/c1");
    assert_eq!(r.ips[0].interface, Some(2));
    assert_eq!(
        r.ips[0].gateway,
        Some("10.1.0.1".parse().unwrap()),
        "isGateway computes network+1"
    );
    let br = w
        .host
        .links
        .iter()
        .find(|(l, _)| l.name == "br-test")
        .unwrap();
    assert_eq!(br.1, vec!["10.1.0.1/24".parse().unwrap()]);
    let c = w.container.0.borrow();
    let eth0 = c.links.iter().find(|(l, _)| l.name == "eth0").unwrap();
    assert_eq!(eth0.1, vec!["10.1.0.5/24".parse().unwrap()]);
    assert!(eth0.0.up);
    assert_eq!(c.routes.len(), 1);
    assert_eq!(
        c.routes[0].gw,
        Some("10.1.0.1".parse().unwrap()),
        "route gw defaults to the family gateway"
    );
    assert_eq!(w.host_sysctl.values["net/ipv4/ip_forward"], "1");
    assert_eq!(
        masq.calls.lock().unwrap().as_slice(),
        ["setup [V4(Ipv4Network { addr: 10.1.0.5, prefix: 24 })]"]
    );
    let veth = w
        .host
        .links
        .iter()
        .find(|(l, _)| l.name == "veth12345601")
        .unwrap();
    assert_eq!(veth.0.master, Some(br.0.index));
}

/// Every mutating step, made to fail, leaves host, container, IPAM and rules as they were.
#[test]
fn failure_at_every_step_rolls_back_everything() {
    let steps = [
        "create_bridge",
        "create_veth",
        "set_master",
        "set_bridge_port",
        "set_link_up",
        "add_address 2",
        "set_mac",
    ];
    for step in steps {
        let mut w = World::new();
        w.host.fail_on = Some(step.into());
        let ipam = FakeIpam::v4("10.1.0.5/24", None);
        let masq = FakeRules::default();
        let err = w.add(&cfg(), &ipam, &masq, &FakeRules::default());
        if step == "set_mac" {
            // Pinning the bridge MAC is best effort.
            assert!(err.is_ok(), "{step}");
            continue;
        }
        assert!(err.is_err(), "{step} should fail the ADD");
        assert_eq!(w.host_links(), ["lo"], "{step}: host links left behind");
        assert_eq!(
            w.container_links(),
            ["lo"],
            "{step}: container links left behind"
        );
        assert_eq!(w.host_sysctl.values["net/ipv4/ip_forward"], "0", "{step}");
        let ipam_used = !matches!(
            step,
            "create_bridge" | "create_veth" | "set_master" | "set_bridge_port" | "set_link_up"
        );
        assert_eq!(
            *ipam.dels.lock().unwrap(),
            u32::from(ipam_used),
            "{step}: IPAM released exactly when reserved"
        );
    }
}

#[test]
fn container_side_and_rule_failures_roll_back_too() {
    for fail in ["add_address", "add_route", "set_link_up"] {
        let mut w = World::new();
        w.container.0.borrow_mut().fail_on = Some(fail.into());
        let ipam = FakeIpam::v4("10.1.0.5/24", None);
        assert!(
            w.add(&cfg(), &ipam, &FakeRules::default(), &FakeRules::default())
                .is_err(),
            "{fail}"
        );
        assert_eq!(w.host_links(), ["lo"], "{fail}");
        assert_eq!(w.container_links(), ["lo"], "{fail}");
        assert_eq!(*ipam.dels.lock().unwrap(), 1);
    }
    let mut w = World::new();
    let ipam = FakeIpam::v4("10.1.0.5/24", None);
    let masq = FakeRules {
        fail_setup: true,
        ..FakeRules::default()
    };
    let e = w
        .add(&cfg(), &ipam, &masq, &FakeRules::default())
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Plugin(124));
    assert_eq!(w.host_links(), ["lo"]);
    let br_addr_gone = w
        .host
        .links
        .iter()
        .all(|(_, a)| !a.iter().any(|a| a.to_string() == "10.1.0.1/24"));
    assert!(br_addr_gone);
    assert_eq!(*ipam.dels.lock().unwrap(), 1);
}

#[test]
fn ipam_failure_releases_nothing_and_removes_links() {
    let mut w = World::new();
    let ipam = FakeIpam {
        fail: true,
        ..FakeIpam::default()
    };
    let e = w
        .add(&cfg(), &ipam, &FakeRules::default(), &FakeRules::default())
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Plugin(111));
    assert_eq!(w.host_links(), ["lo"]);
    assert_eq!(*ipam.dels.lock().unwrap(), 0);
}

#[test]
fn gateway_conflict_needs_force_address() {
    let mut w = World::new();
    let br = w.host.add_link("br-test", "bridge");
    w.host
        .links
        .iter_mut()
        .find(|(l, _)| l.index == br)
        .unwrap()
        .1
        .push("10.9.9.9/24".parse().unwrap());
    let ipam = FakeIpam::v4("10.1.0.5/24", None);
    let e = w
        .add(&cfg(), &ipam, &FakeRules::default(), &FakeRules::default())
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Plugin(120));
    assert_eq!(
        e.msg,
        "failed to set bridge addr: \"br-test\" already has an IP address different from 10.1.0.1/24"
    );
    assert_eq!(
        w.host_links(),
        ["lo", "br-test"],
        "a bridge we did not create stays"
    );
    assert_eq!(w.container_links(), ["lo"]);
    assert_eq!(*ipam.dels.lock().unwrap(), 1);

    let mut forced = cfg();
    forced.force_address = true;
    w.add(&forced, &ipam, &FakeRules::default(), &FakeRules::default())
        .unwrap();
    let addrs = &w.host.links.iter().find(|(l, _)| l.index == br).unwrap().1;
    assert_eq!(addrs, &vec!["10.1.0.1/24".parse().unwrap()]);
}

#[test]
fn existing_container_iface_and_non_bridge_are_refused_without_leftovers() {
    let mut w = World::new();
    w.container.0.borrow_mut().add_link("eth0", "veth");
    let ipam = FakeIpam::v4("10.1.0.5/24", None);
    let e = w
        .add(&cfg(), &ipam, &FakeRules::default(), &FakeRules::default())
        .unwrap_err();
    assert_eq!(
        (e.code, e.msg.as_str()),
        (
            ErrorCode::Plugin(122),
            "container veth name provided (eth0) already exists"
        )
    );
    assert_eq!(
        w.host_links(),
        ["lo"],
        "the bridge this ADD created is removed again"
    );

    let mut w = World::new();
    w.host.add_link("br-test", "dummy");
    let e = w
        .add(&cfg(), &ipam, &FakeRules::default(), &FakeRules::default())
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Plugin(121));
    assert_eq!(
        e.msg,
        "failed to create bridge \"br-test\": \"br-test\" already exists but is not a bridge"
    );
}

#[test]
fn l2_vlan_and_port_flags() {
    let mut w = World::new();
    let mut c = cfg();
    c.is_gateway = false;
    c.ip_masq = false;
    c.vlan = 10;
    c.trunk = vec![20, 21];
    c.hairpin = true;
    c.port_isolation = true;
    c.mtu = Some(1400);
    let r = w
        .add(
            &c,
            &FakeIpam::default(),
            &FakeRules::default(),
            &FakeRules::default(),
        )
        .unwrap();
    assert!(r.ips.is_empty());
    let veth = w
        .host
        .links
        .iter()
        .find(|(l, _)| l.name == "veth12345601")
        .unwrap()
        .0
        .index;
    assert_eq!(w.host.port_flags[&veth], (true, true));
    let vids: Vec<(u16, bool, bool)> = w.host.vlans[&veth]
        .iter()
        .map(|v| (v.vid, v.pvid, v.untagged))
        .collect();
    assert_eq!(
        vids,
        [(10, true, true), (20, false, false), (21, false, false)]
    );
    assert!(
        w.host
            .calls
            .iter()
            .any(|c| c == "create_bridge br-test Some(1400) true"),
        "{:?}",
        w.host.calls
    );
    assert!(
        w.container
            .0
            .borrow()
            .links
            .iter()
            .any(|(l, _)| l.name == "eth0" && l.up && l.mtu == 1400)
    );
}

#[test]
fn spoof_check_gets_host_veth_and_container_mac_and_is_undone() {
    let mut w = World::new();
    let mut c = cfg();
    c.macspoofchk = true;
    c.mac = Some([0xc2, 0x11, 0x22, 0x33, 0x44, 0x55]);
    let spoof = FakeRules::default();
    let masq = FakeRules {
        fail_setup: true,
        ..FakeRules::default()
    };
    assert!(
        w.add(&c, &FakeIpam::v4("10.1.0.5/24", None), &masq, &spoof)
            .is_err()
    );
    assert_eq!(
        spoof.calls.lock().unwrap().as_slice(),
        ["spoof veth12345601 c2:11:22:33:44:55", "spoof teardown"]
    );
}

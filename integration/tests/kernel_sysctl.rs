//! The kernel layer's sysctls served over rtnetlink (netconf, link messages, `RTM_SETLINK`)
//! against `/proc/sys` in a real namespace: every value read over netlink must be the one proc
//! prints, before and after changes made through proc, and a write over netlink must be what
//! proc reads back. Keys without a netlink form must still work through proc.

use cni_kernel::netlink::{IpFamily, RtnlSocket};
use cni_kernel::netns::Netns as KernelNetns;
use cni_kernel::sysctl::{ProcSysctl, Sysctl};
use integration_tests::World;
use integration_tests::inspect::sysctl;

fn set_proc(ns: &integration_tests::Netns, key: &str, value: &str) {
    let path = format!("/proc/sys/{key}");
    ns.run_ok(&["sh", "-c", &format!("echo {value} > {path}")]);
}

#[test]
fn netlink_served_sysctls_read_and_write_what_proc_shows() {
    let world = World::new();
    let host = world.host();
    host.run_ok(&[
        "ip", "link", "add", "sxa0", "type", "veth", "peer", "name", "sxb0",
    ]);
    let ns = KernelNetns::open(&host.path()).unwrap();
    let mut sys = ProcSysctl::new(Some(&ns));

    let keys = [
        "net/ipv4/ip_forward",
        "net/ipv6/conf/all/forwarding",
        "net/ipv6/conf/sxa0/accept_ra",
        "net/ipv6/conf/sxa0/accept_dad",
        "net/ipv4/conf/sxa0/arp_notify",
    ];
    let agree = |sys: &mut ProcSysctl<'_>, when: &str| {
        for key in keys {
            assert_eq!(sys.read(key).unwrap(), sysctl(host, key), "{key} {when}");
        }
    };
    agree(&mut sys, "on a new namespace");
    for (key, value) in [
        ("net/ipv4/ip_forward", "1"),
        ("net/ipv6/conf/all/forwarding", "1"),
        ("net/ipv6/conf/sxa0/accept_ra", "2"),
        ("net/ipv6/conf/sxa0/accept_dad", "0"),
        ("net/ipv4/conf/sxa0/arp_notify", "1"),
    ] {
        set_proc(host, key, value);
        assert_eq!(sysctl(host, key), value, "proc took {key}");
    }
    agree(&mut sys, "after proc changed each of them");

    // The same values straight from the netlink requests, so a silent fall-back to proc in
    // the layer above could not pass this test unnoticed.
    let mut rtnl = RtnlSocket::open_in(&ns).unwrap();
    assert_eq!(rtnl.forwarding(IpFamily::V4).unwrap(), Some(1));
    assert_eq!(rtnl.forwarding(IpFamily::V6).unwrap(), Some(1));
    let v6 = rtnl.inet6_devconf("sxa0").unwrap().expect("IPv6 settings");
    assert_eq!((v6.accept_ra, v6.accept_dad), (2, 0));
    let v4 = rtnl.inet_devconf("sxa0").unwrap().expect("IPv4 settings");
    assert_eq!(v4.arp_notify, 1);
    rtnl.set_inet_devconf("sxb0", 22, 2).unwrap();
    assert_eq!(sysctl(host, "net/ipv4/conf/sxb0/arp_notify"), "2");

    // Writes: arp_notify goes over netlink, both ways; the others through proc.
    sys.write("net/ipv4/conf/sxa0/arp_notify", "0").unwrap();
    assert_eq!(sysctl(host, "net/ipv4/conf/sxa0/arp_notify"), "0");
    sys.write("net/ipv4/conf/sxb0/arp_notify", "1").unwrap();
    assert!(
        rtnl.inet_devconf("sxb0")
            .unwrap()
            .is_some_and(|c| c.arp_notify == 1)
    );
    assert_eq!(sysctl(host, "net/ipv4/conf/sxb0/arp_notify"), "1");
    assert_eq!(
        sysctl(host, "net/ipv4/conf/sxa0/arp_notify"),
        "0",
        "only sxb0 changed"
    );
    sys.write("net/ipv6/conf/sxa0/accept_ra", "0").unwrap();
    sys.write("net/ipv4/ip_forward", "0").unwrap();
    agree(&mut sys, "after writes through the layer");

    // A key without a netlink form, and a missing device: proc answers, as before.
    assert_eq!(
        sys.read("net/ipv4/conf/sxa0/rp_filter").unwrap(),
        sysctl(host, "net/ipv4/conf/sxa0/rp_filter")
    );
    assert!(sys.read("net/ipv4/conf/nosuchdev0/arp_notify").is_err());
    assert!(
        sys.write("net/ipv4/conf/nosuchdev0/arp_notify", "1")
            .is_err()
    );
    // A value proc would refuse is refused, not half-applied over netlink.
    assert!(sys.write("net/ipv4/conf/sxa0/arp_notify", "yes").is_err());
    assert_eq!(sysctl(host, "net/ipv4/conf/sxa0/arp_notify"), "0");
}

#[test]
fn a_device_with_ipv6_disabled_reads_as_proc_and_a_gone_one_fails() {
    let world = World::new();
    let host = world.host();
    host.run_ok(&[
        "ip", "link", "add", "sxc0", "type", "veth", "peer", "name", "sxd0",
    ]);
    set_proc(host, "net/ipv6/conf/sxc0/disable_ipv6", "1");
    let ns = KernelNetns::open(&host.path()).unwrap();
    let mut sys = ProcSysctl::new(Some(&ns));
    // disable_ipv6 keeps the device's IPv6 settings (proc still shows them); both agree.
    assert_eq!(
        sys.read("net/ipv6/conf/sxc0/accept_ra").unwrap(),
        sysctl(host, "net/ipv6/conf/sxc0/accept_ra")
    );
    host.run_ok(&["ip", "link", "del", "sxc0"]);
    assert!(sys.read("net/ipv6/conf/sxc0/accept_ra").is_err());
}

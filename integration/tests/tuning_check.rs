//! tuning CHECK: passes right after ADD (through libcni and directly with the cached result),
//! then fails with the reference's message for every kind of drift made by hand — MTU, MAC,
//! promiscuous and all-multicast mode, a per-netns sysctl and an `IFNAME` sysctl (which the
//! reference's CHECK cannot even resolve) — and passes again once the drift is repaired.

use integration_tests::{Netns, PluginCall, TuningNet, World, assert_same};
use serde_json::{Value, json};

const MAC: &str = "c2:00:00:00:91:01";

/// One drift: what to do, the message tuning's CHECK must give, what libcni's CHECK of the
/// whole list must mention (the bridge, checked first, may see the drift too), how to repair.
struct Drift {
    make: Vec<&'static str>,
    message: String,
    via_libcni: String,
    repair: Vec<&'static str>,
}

fn drift(make: &[&'static str], message: &str, repair: &[&'static str]) -> Drift {
    Drift {
        make: make.to_vec(),
        message: message.to_owned(),
        via_libcni: message.to_owned(),
        repair: repair.to_vec(),
    }
}

/// ADD `tuning`, CHECK ok both ways; for each drift: CHECK fails with its message (code 132
/// from ours), repair, CHECK ok; DEL back to the baseline.
fn run_drifts(net: &str, subnet: &str, tuning: Value, drifts: Vec<Drift>) {
    let world = World::new();
    let t = TuningNet::new(&world, net, subnet);
    t.write("1.0.0", json!({}), tuning.clone());
    let ctr = world.container();
    let baseline = t.snapshot();
    let id = t.tool().effective_container_id(&ctr);

    t.add(&ctr);
    t.check(&ctr).expect_silent_success();
    let cached = world.read_cache(t.net(), &id, "eth0");
    assert!(cached.is_some(), "libcni cached the ADD result");
    let cached = cached.unwrap_or_default();
    let conf = t.direct_conf("1.0.0", tuning, Some(&cached["result"]));
    let check = PluginCall::check(&conf).id(&id).ifname("eth0").netns(&ctr);
    t.exec(&check).expect_silent_success();

    for d in drifts {
        run(&ctr, &d.make);
        let out = t.exec(&check);
        let err = out.cni_error();
        eprintln!("drift {:?}: code {} {}", d.make, err.code, err.text());
        if !t.is_reference() {
            assert_eq!(err.code, 132, "{}", out.describe());
        }
        assert_eq!(err.msg, d.message, "{}", out.describe());
        let via_tool = t.check(&ctr);
        assert!(
            via_tool.stderr_str().contains(&d.via_libcni),
            "{}",
            via_tool.describe()
        );
        run(&ctr, &d.repair);
        t.exec(&check).expect_silent_success();
    }
    t.check(&ctr).expect_silent_success();
    t.del(&ctr);
    assert_eq!(t.backup_files(), Vec::<String>::new());
    assert_same!(baseline, t.snapshot(), "after DEL");
}

fn run(ns: &Netns, argv: &[&str]) {
    ns.run_ok(argv);
}

#[test]
fn check_detects_link_and_netns_sysctl_drift() {
    run_drifts(
        "tunchk",
        "10.151.0.0/24",
        json!({"mtu": 1450, "mac": MAC, "promisc": true, "allmulti": true,
               "sysctl": {"net.core.somaxconn": "512"}}),
        vec![
            drift(
                &["ip", "link", "set", "eth0", "mtu", "1400"],
                "Error: Tuning configured MTU of eth0 is 1450, current value is 1400",
                &["ip", "link", "set", "eth0", "mtu", "1450"],
            ),
            Drift {
                // The bridge's CHECK (first in the list) notices a foreign MAC as well.
                via_libcni: "c2:00:00:00:91:99".to_owned(),
                ..drift(
                    &["ip", "link", "set", "eth0", "address", "c2:00:00:00:91:99"],
                    &format!(
                        "Error: Tuning configured Ethernet of eth0 is {MAC}, current value is \
                         c2:00:00:00:91:99"
                    ),
                    &["ip", "link", "set", "eth0", "address", MAC],
                )
            },
            drift(
                &["ip", "link", "set", "eth0", "promisc", "off"],
                "Error: Tuning link eth0 configured promisc is true, current value is 0",
                &["ip", "link", "set", "eth0", "promisc", "on"],
            ),
            drift(
                &["sysctl", "-q", "-w", "net.core.somaxconn=100"],
                "Error: Tuning configured value of /proc/sys/net/core/somaxconn is 512, current \
                 value is 100",
                &["sysctl", "-q", "-w", "net.core.somaxconn=512"],
            ),
        ],
    );
}

#[test]
fn check_detects_allmulti_drift() {
    run_drifts(
        "tunchkam",
        "10.152.0.0/24",
        json!({"allmulti": true}),
        vec![drift(
            &["ip", "link", "set", "eth0", "allmulticast", "off"],
            "Error: Tuning configured all-multicast mode of eth0 is true, current value is false",
            &["ip", "link", "set", "eth0", "allmulticast", "on"],
        )],
    );
}

#[test]
fn check_resolves_ifname_in_sysctl_keys_and_detects_their_drift() {
    run_drifts(
        "tunchkif",
        "10.153.0.0/24",
        json!({"sysctl": {"net.ipv4.conf.IFNAME.arp_filter": "1",
                          "net/ipv4/conf/IFNAME/arp_ignore": "2"}}),
        vec![
            drift(
                &["sysctl", "-q", "-w", "net.ipv4.conf.eth0.arp_filter=0"],
                "Error: Tuning configured value of /proc/sys/net/ipv4/conf/eth0/arp_filter is 1, \
                 current value is 0",
                &["sysctl", "-q", "-w", "net.ipv4.conf.eth0.arp_filter=1"],
            ),
            drift(
                &["sysctl", "-q", "-w", "net.ipv4.conf.eth0.arp_ignore=0"],
                "Error: Tuning configured value of /proc/sys/net/ipv4/conf/eth0/arp_ignore is 2, \
                 current value is 0",
                &["sysctl", "-q", "-w", "net.ipv4.conf.eth0.arp_ignore=2"],
            ),
        ],
    );
}

//! bridge error codes and messages: configuration validation (7) before anything is touched,
//! and plugin-specific failures (121 not a bridge, 122 interface exists, 104 netns) that leave
//! the world as it was.

use integration_tests::inspect::{has_link, ports_of};
use integration_tests::{BridgeBench, PluginCall, World, assert_same};
use serde_json::{Value, json};

/// Direct ADD of `extra` (on top of a host-local config unless `extra` sets `ipam`).
fn add_call(b: &BridgeBench<'_>, extra: Value, ctr: &integration_tests::Netns) -> PluginCall {
    let mut conf = b.conf("1.0.0", json!({"ipam": b.ipam(&["10.59.0.0/24"])}));
    if let (Some(conf), Value::Object(extra)) = (conf.as_object_mut(), extra) {
        conf.extend(extra);
    }
    PluginCall::add(&conf).id("bad").ifname("eth0").netns(ctr)
}

#[test]
fn invalid_configurations_fail_with_code_7_before_touching_anything() {
    let world = World::new();
    let b = BridgeBench::new(&world, "badconf");
    let ctr = world.container();
    // Strict: not even the bridge may appear.
    let baseline = world.snapshot();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"vlan": 5000}),
            "invalid VLAN ID 5000 (must be between 0 and 4094)",
        ),
        (
            json!({"vlan": -1}),
            "invalid VLAN ID -1 (must be between 0 and 4094)",
        ),
        (
            json!({"hairpinMode": true, "promiscMode": true}),
            "cannot set hairpin mode and promiscuous mode at the same time",
        ),
        (
            json!({"disableContainerInterface": true}),
            "cannot use IPAM when DisableContainerInterface flag is set",
        ),
        (
            json!({"vlanTrunk": [{"minID": 0, "maxID": 10}]}),
            "incorrect trunk minID parameter",
        ),
        (
            json!({"vlanTrunk": [{"minID": 1, "maxID": 4095}]}),
            "incorrect trunk maxID parameter",
        ),
        (
            json!({"vlanTrunk": [{"minID": 10, "maxID": 5}]}),
            "minID is greater than maxID in trunk parameter",
        ),
        (
            json!({"vlanTrunk": [{"maxID": 5}]}),
            "minID and maxID should be configured simultaneously, minID is missing",
        ),
        (
            json!({"vlanTrunk": [{"minID": 5}]}),
            "minID and maxID should be configured simultaneously, maxID is missing",
        ),
        (
            json!({"vlanTrunk": [{"id": 0}]}),
            "incorrect trunk id parameter",
        ),
        (
            json!({"vlanTrunk": [{"id": 4095}]}),
            "incorrect trunk id parameter",
        ),
        (
            json!({"ipMasq": true, "ipMasqBackend": "x"}),
            "unknown ipmasq backend \"x\"",
        ),
    ];
    for (extra, message) in cases {
        let out = b.exec(&add_call(&b, extra.clone(), &ctr));
        let err = out.expect_error(7, message);
        assert!(
            err.cni_version.is_some(),
            "our errors carry cniVersion\n{}",
            out.describe()
        );
        assert_same!(
            baseline,
            world.snapshot(),
            "after the rejected ADD of {extra}"
        );
    }
}

#[test]
fn an_existing_link_that_is_not_a_bridge_fails_with_121() {
    let world = World::new();
    let b = BridgeBench::new(&world, "notbr");
    // A veth pair (this kernel may have no dummy driver) whose first end takes the name.
    world.host().run_ok(&[
        "ip",
        "link",
        "add",
        &b.bridge,
        "type",
        "veth",
        "peer",
        "name",
        "cnit-peer",
    ]);
    let ctr = world.container();
    let baseline = world.snapshot();

    let out = b.exec(&add_call(&b, json!({}), &ctr));
    let message = format!(
        "failed to create bridge \"{0}\": \"{0}\" already exists but is not a bridge",
        b.bridge
    );
    out.expect_error(121, &message);
    assert_same!(baseline, world.snapshot(), "after the failed ADD");
}

#[test]
fn an_existing_container_interface_fails_with_122_and_reserves_nothing() {
    let world = World::new();
    let b = BridgeBench::new(&world, "ifexists");
    let ctr = world.container();
    ctr.run_ok(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer",
    ]);
    let baseline = b.snapshot();

    let out = b.exec(&add_call(
        &b,
        json!({"isGateway": true, "ipMasq": true}),
        &ctr,
    ));
    let err = out.expect_error(122, "eth0");
    assert!(err.text().contains("already exists"), "{}", out.describe());
    assert_same!(baseline, b.snapshot(), "after the failed ADD");
    assert!(b.reservations().is_empty());
    assert!(
        ports_of(world.host(), &b.bridge).is_empty(),
        "no veth on the bridge"
    );
    assert!(
        has_link(&ctr, "eth0"),
        "the existing interface is left alone"
    );
}

#[test]
fn a_missing_netns_fails_with_104_and_reserves_nothing() {
    let world = World::new();
    let b = BridgeBench::new(&world, "nonetns");
    let ctr = world.container();
    let baseline = b.snapshot();

    let missing = "/run/netns/cnit-no-such-netns";
    let call = add_call(&b, json!({"ipMasq": true}), &ctr).netns_path(missing);
    let out = b.exec(&call);
    out.expect_error(104, missing);
    assert_same!(baseline, b.snapshot(), "after the failed ADD");
    assert!(b.reservations().is_empty());

    // DEL with the same missing netns succeeds (nothing to do).
    let conf = b.conf(
        "1.0.0",
        json!({"ipMasq": true, "ipam": b.ipam(&["10.59.0.0/24"])}),
    );
    let del = PluginCall::del(&conf)
        .id("bad")
        .ifname("eth0")
        .netns_path(missing);
    b.exec(&del).expect_silent_success();
}

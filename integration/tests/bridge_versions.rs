//! bridge in every spec version a runtime uses: 0.3.1, 0.4.0 and 1.0.0 through cnitool
//! (libcni 1.1.2), 1.1.0 by direct exec — including STATUS and GC, which only 1.1.0 has.

use integration_tests::bridge::{
    masq_chain, masq_rules, nft_masq_comment, result_shape, without_shared_nft_skeletons,
};
use integration_tests::inspect::{has_link, nat_chains, nat_rules};
use integration_tests::{BridgeBench, PluginCall, World, assert_same};
use serde_json::{Value, json};

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The expected dual-stack result shape in `version` (0.3.x/0.4.0 carry `ips[].version`).
fn expected(version: &str, bridge: &str, sandbox: &str, n: u8) -> Value {
    let v4 = format!("10.58.0.{n}/24");
    let v6 = format!("fd58::{n}/64");
    let mut ips = json!([
        {"interface": 2, "address": v4, "gateway": "10.58.0.1"},
        {"interface": 2, "address": v6, "gateway": "fd58::1"},
    ]);
    if version.starts_with("0.") {
        ips[0]["version"] = json!("4");
        ips[1]["version"] = json!("6");
    }
    json!({
        "cniVersion": version,
        "interfaces": [
            {"name": bridge, "mac": "<mac>"},
            {"name": "<veth>", "mac": "<mac>"},
            {"name": "eth0", "mac": "<mac>", "sandbox": sandbox},
        ],
        "ips": ips,
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.58.0.1"}, {"dst": "::/0", "gw": "fd58::1"}],
    })
}

#[test]
fn cnitool_add_check_del_in_0_3_1_0_4_0_and_1_0_0() {
    let world = World::new();
    let base = BridgeBench::new(&world, "vers");
    let mut benches = Vec::new();
    for version in ["0.3.1", "0.4.0", "1.0.0"] {
        // One network (and so one host-local store) per version.
        let b = base.sibling(&format!("v{}", version.replace('.', "")));
        let ipam = b.ipam(&["10.58.0.0/24", "fd58::/64"]);
        b.write(
            version,
            json!({"isDefaultGateway": true, "ipMasq": true, "ipam": ipam}),
        );
        benches.push((version, b, world.container()));
    }
    let baseline = base.snapshot();

    for (version, b, ctr) in &benches {
        let result = b.add(ctr);
        assert_eq!(
            result_shape(&result),
            expected(version, &b.bridge, &ctr.path_str(), 2),
            "cniVersion {version}"
        );
        b.assert_result_matches_kernel(&result, ctr, "eth0");
        let check = b.check(ctr);
        if *version == "0.3.1" {
            assert_eq!(check.status, Some(1), "{}", check.describe());
            assert!(
                check
                    .stderr_str()
                    .contains("does not support the CHECK command"),
                "{}",
                check.describe()
            );
        } else {
            check.expect_silent_success();
        }
        b.del(ctr);
        assert_same!(baseline, b.snapshot(), "after DEL, cniVersion {version}");
    }
}

#[test]
fn direct_add_check_del_in_1_1_0() {
    let world = World::new();
    let b = BridgeBench::new(&world, "v110");
    let extra = json!({"isDefaultGateway": true, "ipMasq": true,
                       "ipam": b.ipam(&["10.58.0.0/24", "fd58::/64"])});
    let conf = b.conf("1.1.0", extra);
    let ctr = world.container();
    let baseline = b.snapshot();

    let add = PluginCall::add(&conf).id("c110").ifname("eth0").netns(&ctr);
    let result = b.exec(&add).result();
    assert_eq!(
        result_shape(&result),
        expected("1.1.0", &b.bridge, &ctr.path_str(), 2)
    );
    b.assert_result_matches_kernel(&result, &ctr, "eth0");

    let mut with_prev = conf.clone();
    with_prev["prevResult"] = result;
    let check = PluginCall::check(&with_prev)
        .id("c110")
        .ifname("eth0")
        .netns(&ctr);
    b.exec(&check).expect_silent_success();
    let del = PluginCall::del(&with_prev)
        .id("c110")
        .ifname("eth0")
        .netns(&ctr);
    b.exec(&del).expect_silent_success();
    assert_same!(baseline, b.snapshot(), "after DEL");
}

#[test]
fn status_forwards_to_ipam() {
    let world = World::new();
    let b = BridgeBench::new(&world, "status");
    let baseline = b.snapshot();

    let ok = b.conf("1.1.0", json!({"ipam": b.ipam(&["10.57.0.0/24"])}));
    b.exec(&PluginCall::status(&ok)).expect_silent_success();
    let l2 = b.conf("1.1.0", json!({}));
    b.exec(&PluginCall::status(&l2)).expect_silent_success();

    // host-local cannot use a dataDir that is a regular file: STATUS code 50.
    let file = world.write_file("state/not-a-dir", b"");
    let mut broken = ok.clone();
    broken["ipam"]["dataDir"] = json!(file);
    let out = b.exec(&PluginCall::status(&broken));
    assert_eq!(out.cni_error().code, 50, "{}", out.describe());
    // STATUS creates nothing (host-local may create its store directory), not the bridge.
    assert!(
        !has_link(world.host(), &b.bridge),
        "STATUS must not create the bridge"
    );
    let ignore_file = |l: &str| l.starts_with("state/not-a-dir ");
    assert_same!(
        baseline,
        b.snapshot().without_lines(ignore_file),
        "after STATUS"
    );
}

#[test]
fn gc_removes_masquerade_and_reservations_of_attachments_not_listed() {
    let world = World::new();
    let b = BridgeBench::new(&world, "gcnet");
    let other = b.sibling("gcother");
    let conf = b.conf(
        "1.1.0",
        json!({"isGateway": true, "ipMasq": true, "ipam": b.ipam(&["10.56.0.0/24"])}),
    );
    let other_conf = other.conf(
        "1.1.0",
        json!({"ipMasq": true, "ipam": other.ipam(&["10.55.0.0/24"])}),
    );
    let (keep, gone, foreign) = (world.container(), world.container(), world.container());
    let baseline = b.snapshot();

    let add = |conf: &Value, id: &str, ctr| PluginCall::add(conf).id(id).ifname("eth0").netns(ctr);
    b.exec(&add(&conf, "keep", &keep)).result();
    b.exec(&add(&conf, "gone", &gone)).result();
    // Another network on the same bridge, which GC of gcnet must not touch.
    b.exec(&add(&other_conf, "foreign", &foreign)).result();
    let host = world.host();
    let foreign_rules = masq_rules("gcother", "foreign", "10.55.0.2", "10.55.0.0/24");

    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    b.exec(&PluginCall::gc(&gc)).expect_silent_success();
    let mut want = masq_rules("gcnet", "keep", "10.56.0.2", "10.56.0.0/24");
    want.extend(foreign_rules.clone());
    assert_eq!(sorted(nat_rules(host, false)), sorted(want));
    assert!(!nat_chains(host, false).contains(&masq_chain("gcnet", "gone")));
    assert_eq!(
        b.reservations().keys().collect::<Vec<_>>(),
        ["10.56.0.2"],
        "only keep's reservation survives"
    );

    // An empty valid list releases everything of this network, nothing of the other.
    gc["cni.dev/valid-attachments"] = json!([]);
    b.exec(&PluginCall::gc(&gc)).expect_silent_success();
    assert_eq!(sorted(nat_rules(host, false)), sorted(foreign_rules));
    assert!(b.reservations().is_empty());
    assert_eq!(other.reservations().len(), 1);

    // DEL still works for every attachment afterwards.
    for (c, id, ctr) in [
        (&conf, "keep", &keep),
        (&conf, "gone", &gone),
        (&other_conf, "foreign", &foreign),
    ] {
        let del = PluginCall::del(c).id(id).ifname("eth0").netns(ctr);
        b.exec(&del).expect_silent_success();
    }
    assert_same!(baseline, b.snapshot(), "after DEL of all three");
}

#[test]
fn gc_removes_nftables_masquerade_rules_of_attachments_not_listed() {
    let world = World::new();
    let b = BridgeBench::new(&world, "gcnft");
    let conf = b.conf(
        "1.1.0",
        json!({"isGateway": true, "ipMasq": true, "ipMasqBackend": "nftables",
               "ipam": b.ipam(&["10.51.0.0/24"])}),
    );
    let (keep, gone) = (world.container(), world.container());
    let baseline = without_shared_nft_skeletons(&b.snapshot());

    for (id, ctr) in [("keep", &keep), ("gone", &gone)] {
        let add = PluginCall::add(&conf).id(id).ifname("eth0").netns(ctr);
        b.exec(&add).result();
    }
    let masq_rule = |ip: &str, id: &str| {
        format!(
            "ip saddr {ip} ip daddr != 10.51.0.0/24 masquerade comment \"{}\"",
            nft_masq_comment("gcnft", "eth0", id)
        )
    };
    let rules = || {
        let chain = world.host().run_ok(&[
            "nft",
            "list",
            "chain",
            "inet",
            "cni_plugins_masquerade",
            "masq_checks",
        ]);
        chain
            .lines()
            .map(str::trim)
            .filter(|l| l.contains("masquerade comment"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        rules(),
        [
            masq_rule("10.51.0.2", "keep"),
            masq_rule("10.51.0.3", "gone")
        ]
    );

    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    b.exec(&PluginCall::gc(&gc)).expect_silent_success();
    assert_eq!(rules(), [masq_rule("10.51.0.2", "keep")]);
    assert_eq!(b.reservations().keys().collect::<Vec<_>>(), ["10.51.0.2"]);

    for (id, ctr) in [("keep", &keep), ("gone", &gone)] {
        let del = PluginCall::del(&conf).id(id).ifname("eth0").netns(ctr);
        b.exec(&del).expect_silent_success();
    }
    assert_same!(
        baseline,
        without_shared_nft_skeletons(&b.snapshot()),
        "after DEL (empty shared nft table ignored)"
    );
}

//! loopback: ADD brings `lo` up in CNI_NETNS, DEL takes it down, CHECK sees it; results in
//! every spec version; DEL after the netns is gone.

use integration_tests::{
    Plugin, PluginCall, SUPPORTED_VERSIONS, Snapshot, World, assert_same, config, strip_empty,
};
use serde_json::{Value, json};

/// The result our loopback must print for `version` when `lo` lives in `sandbox`.
fn expected_result(version: &str, sandbox: &str) -> Value {
    match version {
        "0.1.0" | "0.2.0" => json!({
            "cniVersion": version,
            "ip4": {"ip": "127.0.0.1/8"},
            "ip6": {"ip": "::1/128"},
        }),
        "0.3.0" | "0.3.1" | "0.4.0" => json!({
            "cniVersion": version,
            "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": sandbox}],
            "ips": [
                {"version": "4", "interface": 0, "address": "127.0.0.1/8"},
                {"version": "6", "interface": 0, "address": "::1/128"},
            ],
        }),
        _ => json!({
            "cniVersion": version,
            "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": sandbox}],
            "ips": [
                {"interface": 0, "address": "127.0.0.1/8"},
                {"interface": 0, "address": "::1/128"},
            ],
        }),
    }
}

fn lo_conflist() -> Value {
    // The installed cnitool's libcni (1.1.2) speaks spec 1.0.0 at most.
    config::conflist("1.0.0", "lonet", vec![json!({"type": "loopback"})])
}

#[test]
fn cnitool_add_check_del_round_trip() {
    let world = World::new();
    let ctr = world.container();
    ctr.cycle_loopback();
    world.write_conflist("10-lonet", &lo_conflist());
    let baseline = world.snapshot();
    let tool = world.cnitool();
    let id = tool.effective_container_id(&ctr);

    let result = strip_empty(tool.add("lonet", &ctr).result());
    assert_eq!(result, expected_result("1.0.0", &ctr.path_str()));
    assert!(ctr.lo_is_up(), "lo must be UP after ADD");

    let cache = world
        .read_cache("lonet", &id, "eth0")
        .expect("libcni cache written after ADD");
    assert_eq!(cache["kind"], "cniCacheV1");
    assert_eq!(cache["containerId"], json!(id));
    assert_eq!(cache["ifName"], "eth0");
    assert_eq!(cache["networkName"], "lonet");
    assert_eq!(strip_empty(cache["result"].clone()), result);

    tool.check("lonet", &ctr).expect_silent_success();
    tool.del("lonet", &ctr).expect_silent_success();
    assert!(!ctr.lo_is_up(), "lo must be DOWN after DEL");
    assert!(
        world.read_cache("lonet", &id, "eth0").is_none(),
        "cache removed by DEL"
    );
    assert_same!(baseline, world.snapshot(), "after cnitool del");
}

#[test]
fn cnitool_check_fails_after_lo_is_set_down_externally() {
    let world = World::new();
    let ctr = world.container();
    ctr.cycle_loopback();
    world.write_conflist("10-lonet", &lo_conflist());
    let baseline = world.snapshot();
    let tool = world.cnitool();

    tool.add("lonet", &ctr).expect_success();
    ctr.run_ok(&["ip", "link", "set", "lo", "down"]);
    let check = tool.check("lonet", &ctr);
    assert_eq!(check.status, Some(1), "{}", check.describe());
    assert!(
        check.stderr_str().contains("loopback interface is down"),
        "{}",
        check.describe()
    );
    tool.del("lonet", &ctr).expect_silent_success();
    assert_same!(baseline, world.snapshot(), "after cnitool del");
}

#[test]
fn result_shape_in_every_version() {
    let world = World::new();
    let lo = Plugin::ours("loopback");
    for &version in SUPPORTED_VERSIONS {
        let ctr = world.container();
        ctr.cycle_loopback();
        let baseline = world.snapshot();
        let conf = config::loopback(version, "lonet");
        let add = PluginCall::add(&conf).id("c1").ifname("eth0").netns(&ctr);
        let result = strip_empty(world.exec(&lo, &add).result());
        assert_eq!(
            result,
            expected_result(version, &ctr.path_str()),
            "cniVersion {version}"
        );
        assert!(ctr.lo_is_up(), "{version}: lo must be UP after ADD");

        let del = PluginCall::del(&conf).id("c1").ifname("eth0").netns(&ctr);
        world.exec(&lo, &del).expect_silent_success();
        assert!(!ctr.lo_is_up(), "{version}: lo must be DOWN after DEL");
        assert_same!(
            baseline,
            world.snapshot(),
            "after DEL, cniVersion {version}"
        );
    }
}

#[test]
fn ifname_is_ignored_lo_is_always_used() {
    let world = World::new();
    let ctr = world.container();
    ctr.cycle_loopback();
    let baseline = world.snapshot();
    let lo = Plugin::ours("loopback");
    let conf = config::loopback("1.1.0", "lonet");
    let add = PluginCall::add(&conf).id("c1").ifname("net7").netns(&ctr);
    let result = world.exec(&lo, &add).result();
    assert_eq!(result["interfaces"][0]["name"], "lo");
    assert!(ctr.lo_is_up());
    let del = PluginCall::del(&conf).id("c1").ifname("net7").netns(&ctr);
    world.exec(&lo, &del).expect_silent_success();
    assert_same!(baseline, world.snapshot(), "after DEL");
}

#[test]
fn check_reports_lo_down_and_passes_when_up() {
    let world = World::new();
    let ctr = world.container();
    ctr.cycle_loopback();
    let baseline = world.snapshot();
    let lo = Plugin::ours("loopback");
    let mut conf = config::loopback("1.1.0", "lonet");
    let add = PluginCall::add(&conf).id("c1").ifname("eth0").netns(&ctr);
    conf["prevResult"] = world.exec(&lo, &add).result();
    let check = PluginCall::check(&conf).id("c1").ifname("eth0").netns(&ctr);

    world.exec(&lo, &check).expect_silent_success();
    ctr.run_ok(&["ip", "link", "set", "lo", "down"]);
    let err = world.exec(&lo, &check).cni_error();
    assert!(err.text().contains("loopback interface is down"), "{err:?}");
    assert_eq!(err.cni_version.as_deref(), Some("1.1.0"));
    let del = PluginCall::del(&conf).id("c1").ifname("eth0").netns(&ctr);
    world.exec(&lo, &del).expect_silent_success();
    assert_same!(baseline, world.snapshot(), "after DEL");
}

#[test]
fn check_needs_config_version_0_4_0() {
    let world = World::new();
    let ctr = world.container();
    let conf = config::loopback("0.3.1", "lonet");
    let check = PluginCall::check(&conf).id("c1").ifname("eth0").netns(&ctr);
    let err = world
        .exec(&Plugin::ours("loopback"), &check)
        .expect_error(1, "");
    assert_eq!(err.cni_version.as_deref(), Some("0.3.1"));
}

#[test]
fn del_succeeds_when_the_netns_is_gone() {
    let world = World::new();
    let ctr = world.container();
    // The namespace will be gone: the baseline is everything else.
    let baseline = Snapshot::netns(world.host()).merge(Snapshot::dir("world", world.root()));
    let lo = Plugin::ours("loopback");
    let conf = config::loopback("1.1.0", "lonet");
    world
        .exec(
            &lo,
            &PluginCall::add(&conf).id("c1").ifname("eth0").netns(&ctr),
        )
        .expect_success();
    let path = ctr.path_str();
    world.delete_netns(&ctr);

    let del = PluginCall::del(&conf)
        .id("c1")
        .ifname("eth0")
        .netns_path(&path);
    world.exec(&lo, &del).expect_silent_success();
    world.exec(&lo, &del).expect_silent_success();
    let del_no_netns = PluginCall::del(&conf).id("c1").ifname("eth0");
    world.exec(&lo, &del_no_netns).expect_silent_success();
    assert_same!(baseline, world.snapshot(), "after DEL");
}

#[test]
fn cnitool_del_succeeds_when_the_netns_is_gone() {
    let world = World::new();
    let ctr = world.container();
    world.write_conflist("10-lonet", &lo_conflist());
    let baseline = Snapshot::netns(world.host()).merge(Snapshot::dir("world", world.root()));
    let tool = world.cnitool();
    let id = tool.effective_container_id(&ctr);
    tool.add("lonet", &ctr).expect_success();
    let path = ctr.path_str();
    world.delete_netns(&ctr);
    tool.del_path("lonet", &path).expect_silent_success();
    assert!(world.read_cache("lonet", &id, "eth0").is_none());
    assert_same!(baseline, world.snapshot(), "after DEL");
}

#[test]
fn version_lists_every_supported_version() {
    let world = World::new();
    let call = PluginCall::raw("VERSION", br#"{"cniVersion":"1.1.0"}"#.to_vec());
    let out = world.exec(&Plugin::ours("loopback"), &call).result();
    assert_eq!(
        out,
        json!({"cniVersion": "1.1.0", "supportedVersions": SUPPORTED_VERSIONS})
    );
}

#[test]
fn cnitool_validate_accepts_the_list() {
    let world = World::new();
    world.write_conflist("10-lonet", &lo_conflist());
    let out = world.cnitool().validate("lonet");
    assert!(
        out.expect_success()
            .stdout_str()
            .starts_with("ok: lonet cniVersion=1.0.0")
    );
}

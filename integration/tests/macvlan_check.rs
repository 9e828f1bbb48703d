//! macvlan CHECK: passes right after ADD (through libcni and directly with the cached result)
//! and fails naming the drifted thing after each kind of drift — mode changed by hand or by
//! the config, MAC changed, address removed, master renamed away or deleted. DEL afterwards
//! still returns the world to its baseline.

use integration_tests::macvlan::ip_of;
use integration_tests::{MacvlanBench, Netns, PluginCall, World, assert_same};
use serde_json::{Value, json};

const SUBNET: &str = "10.101.0.0/24";

struct Attached<'a> {
    b: &'a MacvlanBench<'a>,
    ctr: &'a Netns,
    result: Value,
}

/// ADD (cnitool), CHECK ok both ways, `drift`, CHECK must fail with a message containing one
/// of `tokens`, then `repair` and DEL back to the baseline.
fn drift_case(
    drift: impl Fn(&Attached<'_>),
    tokens: impl Fn(&Attached<'_>) -> Vec<String>,
    repair: impl Fn(&Attached<'_>),
) {
    let world = World::new();
    let b = MacvlanBench::new(&world, "mvdrift", SUBNET);
    let extra = json!({"ipam": b.ipam()});
    b.write("1.0.0", extra.clone());
    let ctr = world.container();
    let baseline = b.snapshot();

    let id = b.tool().effective_container_id(&ctr);
    let result = b.add(&ctr);
    b.check(&ctr).expect_silent_success();
    let cached = world.read_cache(&b.net, &id, "eth0");
    assert!(cached.is_some(), "libcni cached the ADD result");
    let cached = cached.unwrap_or_default();
    assert_eq!(cached["result"], result, "cache holds the printed result");
    let mut conf = b.conf("1.0.0", extra);
    conf["prevResult"] = result.clone();
    let check = PluginCall::check(&conf).id(&id).ifname("eth0").netns(&ctr);
    b.exec(&check).expect_silent_success();

    let att = Attached {
        b: &b,
        ctr: &ctr,
        result,
    };
    drift(&att);
    let out = b.exec(&check);
    let err = out.cni_error();
    eprintln!("CHECK after drift: code {} {}", err.code, err.text());
    assert!(err.code >= 100, "a plugin error code\n{}", out.describe());
    let wanted = tokens(&att);
    assert!(
        wanted.iter().any(|t| err.text().contains(t.as_str())),
        "CHECK message must name one of {wanted:?}\n{}",
        out.describe()
    );
    let via_tool = b.check(&ctr);
    assert_eq!(via_tool.status, Some(1), "{}", via_tool.describe());

    repair(&att);
    b.del(&ctr);
    assert_same!(
        baseline,
        b.snapshot(),
        "after DEL of the drifted attachment"
    );
}

fn nothing(_: &Attached<'_>) {}

#[test]
fn check_fails_when_the_mode_is_changed_by_hand() {
    drift_case(
        |a| {
            a.ctr.run_ok(&[
                "ip", "link", "set", "eth0", "type", "macvlan", "mode", "private",
            ]);
        },
        |_| vec!["macvlan mode private does not match expected value: bridge".to_owned()],
        nothing,
    );
}

#[test]
fn check_fails_when_the_mac_changes() {
    drift_case(
        |a| {
            a.ctr
                .run_ok(&["ip", "link", "set", "eth0", "address", "c2:00:00:00:65:99"]);
        },
        |a| {
            vec![
                "c2:00:00:00:65:99".to_owned(),
                a.result["interfaces"][0]["mac"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ]
        },
        nothing,
    );
}

#[test]
fn check_fails_when_the_address_is_removed() {
    drift_case(
        |a| {
            let addr = a.result["ips"][0]["address"].as_str().unwrap_or_default();
            a.ctr.run_ok(&["ip", "addr", "del", addr, "dev", "eth0"]);
        },
        |a| vec![ip_of(&a.result, 0)],
        nothing,
    );
}

#[test]
fn check_fails_when_the_master_is_renamed_away() {
    drift_case(
        |a| {
            a.b.world
                .host()
                .run_ok(&["ip", "link", "set", MacvlanBench::MASTER, "name", "other0"]);
        },
        |_| vec![MacvlanBench::MASTER.to_owned(), "Link not found".to_owned()],
        |a| {
            a.b.world
                .host()
                .run_ok(&["ip", "link", "set", "other0", "name", MacvlanBench::MASTER]);
        },
    );
}

#[test]
fn check_fails_after_the_master_is_deleted_and_del_still_cleans_up() {
    let world = World::new();
    let b = MacvlanBench::new(&world, "mvdrift", SUBNET);
    b.write("1.0.0", json!({"ipam": b.ipam()}));
    let ctr = world.container();
    b.add(&ctr);
    b.check(&ctr).expect_silent_success();
    world
        .host()
        .run_ok(&["ip", "link", "del", MacvlanBench::MASTER]);
    let out = b.check(&ctr);
    assert_eq!(out.status, Some(1), "{}", out.describe());
    eprintln!("CHECK without master: {}", out.stderr_str().trim());
    assert!(out.stderr_str().contains("not found"), "{}", out.describe());
    b.del(&ctr);
    assert!(b.reservations().is_empty(), "{:?}", b.reservations());
}

#[test]
fn check_fails_when_the_config_asks_for_another_mode() {
    let world = World::new();
    let b = MacvlanBench::new(&world, "mvmodecfg", SUBNET);
    b.write("1.0.0", json!({"ipam": b.ipam()}));
    let ctr = world.container();
    b.add(&ctr);
    b.check(&ctr).expect_silent_success();
    b.write("1.0.0", json!({"mode": "vepa", "ipam": b.ipam()}));
    let out = b.check(&ctr);
    assert_eq!(out.status, Some(1), "{}", out.describe());
    assert!(
        out.stderr_str()
            .to_lowercase()
            .contains("container macvlan mode bridge does not match expected value: vepa"),
        "{}",
        out.describe()
    );
    b.write("1.0.0", json!({"ipam": b.ipam()}));
    b.check(&ctr).expect_silent_success();
    b.del(&ctr);
    assert!(b.reservations().is_empty(), "{:?}", b.reservations());
}

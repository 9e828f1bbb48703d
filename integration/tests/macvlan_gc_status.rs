//! macvlan with spec 1.1.0 (direct exec; the installed cnitool stops at 1.0.0): STATUS and GC
//! are forwarded to the IPAM plugin. STATUS reports host-local's exhausted range (code 50) and
//! recovers after DEL; GC releases exactly the reservations of attachments not in
//! `cni.dev/valid-attachments` and never touches links.

use integration_tests::inspect::has_link;
use integration_tests::macvlan::ip_of;
use integration_tests::{MacvlanBench, PluginCall, World, assert_same, config};
use serde_json::json;

#[test]
fn status_forwards_to_host_local_and_reports_an_exhausted_range() {
    let world = World::new();
    let b = MacvlanBench::new(&world, "mvstatus", "10.111.0.0/24");
    let ipam = config::merge(
        b.ipam(),
        json!({"ranges": [[{"subnet": "10.111.0.0/24", "rangeStart": "10.111.0.10",
                            "rangeEnd": "10.111.0.10"}]]}),
    );
    let conf = b.conf("1.1.0", json!({"ipam": ipam}));
    let ctr = world.container();
    let status = PluginCall::status(&conf);
    b.exec(&status).expect_silent_success();
    let baseline = b.snapshot();

    let add = b.exec(&PluginCall::add(&conf).id("s1").ifname("eth0").netns(&ctr));
    let result = add.result();
    assert_eq!(result["cniVersion"], json!("1.1.0"));
    assert_eq!(ip_of(&result, 0), "10.111.0.10");
    let out = b.exec(&status);
    let err = out.expect_error(50, "exhausted");
    eprintln!("STATUS with a full range: {}", err.text());

    b.exec(&PluginCall::del(&conf).id("s1").ifname("eth0").netns(&ctr))
        .expect_silent_success();
    b.exec(&status).expect_silent_success();
    assert_same!(baseline, b.snapshot(), "after DEL");

    // L2: nothing to forward to.
    let l2 = b.conf("1.1.0", json!({}));
    b.exec(&PluginCall::status(&l2)).expect_silent_success();
}

#[test]
fn gc_releases_only_stale_reservations_and_keeps_links() {
    let world = World::new();
    let b = MacvlanBench::new(&world, "mvgc", "10.112.0.0/24");
    let conf = b.conf("1.1.0", json!({"ipam": b.ipam()}));
    let (c1, c2) = (world.container(), world.container());
    let baseline = b.snapshot();

    let r1 = b
        .exec(&PluginCall::add(&conf).id("live").ifname("eth0").netns(&c1))
        .result();
    let r2 = b
        .exec(&PluginCall::add(&conf).id("stale").ifname("eth0").netns(&c2))
        .result();
    assert_eq!(b.reservations().len(), 2, "{:?}", b.reservations());

    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "live", "ifname": "eth0"}]);
    b.exec(&PluginCall::gc(&gc)).expect_silent_success();
    assert_eq!(
        b.reservations().into_iter().collect::<Vec<_>>(),
        vec![(ip_of(&r1, 0), "live\r\neth0".to_owned())],
        "GC keeps the valid attachment's address only (released {})",
        ip_of(&r2, 0)
    );
    assert!(
        has_link(&c1, "eth0") && has_link(&c2, "eth0"),
        "GC leaves links alone"
    );

    // Idempotent.
    b.exec(&PluginCall::gc(&gc)).expect_silent_success();
    assert_eq!(b.reservations().len(), 1);

    for (id, ctr) in [("live", &c1), ("stale", &c2)] {
        b.exec(&PluginCall::del(&conf).id(id).ifname("eth0").netns(ctr))
            .expect_silent_success();
    }
    assert_same!(baseline, b.snapshot(), "after DEL of both");
}

#[test]
fn version_lists_1_1_0_and_add_check_del_speak_it() {
    let world = World::new();
    let b = MacvlanBench::new(&world, "mvv11", "10.113.0.0/24");
    let conf = b.conf("1.1.0", json!({"ipam": b.ipam()}));
    let ver = b.exec(&PluginCall::new("VERSION", &json!({"cniVersion": "1.1.0"})));
    let versions = ver.result()["supportedVersions"].clone();
    assert!(
        versions
            .as_array()
            .is_some_and(|v| v.contains(&json!("1.1.0"))),
        "{versions}"
    );
    let ctr = world.container();
    let baseline = b.snapshot();
    let result = b
        .exec(&PluginCall::add(&conf).id("v11").ifname("eth0").netns(&ctr))
        .result();
    b.assert_result_matches_kernel(&result, &ctr, "eth0", "bridge");
    let mut check = conf.clone();
    check["prevResult"] = result;
    b.exec(
        &PluginCall::check(&check)
            .id("v11")
            .ifname("eth0")
            .netns(&ctr),
    )
    .expect_silent_success();
    b.exec(&PluginCall::del(&conf).id("v11").ifname("eth0").netns(&ctr))
        .expect_silent_success();
    assert_same!(baseline, b.snapshot(), "after DEL");
}

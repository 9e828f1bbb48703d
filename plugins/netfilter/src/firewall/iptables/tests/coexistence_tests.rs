//! Living next to rules the Go plugin (v1.1.1, `same-bridge` comments everywhere) made.

use super::*;
use crate::iptables::IpFamily;

fn go_world(routes: Vec<(IpAddr, &'static str)>) -> World {
    let w = world_with(Arc::new(FakeRoutes(routes)));
    w.kernel.load(IpFamily::V4, GO_V4);
    w.kernel.load(IpFamily::V6, GO_V6);
    w
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn go_output_parses_as_expected() {
    let saved = SavedTable::parse(GO_V4, "filter").unwrap();
    assert_eq!(saved.rules_in("CNI-FORWARD").count(), 5);
    let untagged: Vec<IpAddr> = saved
        .rules_in("CNI-FORWARD")
        .filter_map(super::super::rules::untagged_address)
        .collect();
    assert_eq!(
        untagged,
        ips(&["10.99.0.2", "10.99.0.2", "10.98.0.2", "10.98.0.2"])
    );
    assert!(
        saved
            .rules
            .iter()
            .all(|r| r.comment().and_then(OwnerTag::parse_iptables).is_none())
    );
}

#[test]
fn our_add_next_to_go_rules_adds_only_per_container_rules() {
    let w = go_world(Vec::new());
    w.add(&fw(
        "cnixnet",
        "ctr3",
        &["10.99.0.3/24", "fd00:99::3/64"],
        IngressPolicy::SameBridge,
        "cnix0",
    ));
    let tag = r#""name: \"cnixnet\" id: \"ctr3\" if: \"eth0\" same-bridge: \"cnix0\"""#;
    let batch = |ip: &str| {
        format!(
            "*filter\n\
             -A CNI-FORWARD -d {ip} -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment {tag} -j ACCEPT\n\
             -A CNI-FORWARD -s {ip} -m comment --comment {tag} -j ACCEPT\nCOMMIT\n"
        )
    };
    // The Go plugin's isolation rules count although their comments differ from ours (the
    // first-ADD probes, which require our exact rules, fail and the table is read).
    assert_eq!(
        without_probes(w.kernel.take_batches()),
        [batch("10.99.0.3/32"), batch("fd00:99::3/128")]
    );
}

#[test]
fn check_accepts_a_container_the_go_plugin_added() {
    let w = go_world(Vec::new());
    w.backend
        .check(&fw(
            "cnixnet",
            "ctr1",
            &["10.99.0.2/24", "fd00:99::2/64"],
            IngressPolicy::SameBridge,
            "cnix0",
        ))
        .unwrap();
    let err = w
        .backend
        .check(&fw(
            "cnixnet",
            "ctr1",
            &["10.99.0.2/24"],
            IngressPolicy::Isolated,
            "cnix0",
        ))
        .unwrap_err();
    assert!(err.to_string().contains("-i cnix0 -o cnix0"), "{err}");
}

#[test]
fn del_with_prev_result_removes_go_rules_and_the_bridge_left_empty() {
    let w = go_world(vec![(ip("10.98.0.2"), "cnix1")]);
    let t = Teardown::new(
        Owner::new("cnixnet", "ctr1", "eth0"),
        &ips(&["10.99.0.2", "fd00:99::2"]),
        Some("cnix0"),
    )
    .unwrap();
    w.backend.del(&t).unwrap();
    let v4 = w.kernel.state(IpFamily::V4).join("\n");
    assert!(!v4.contains("10.99.0.2") && !v4.contains("cnix0"), "{v4}");
    assert!(
        v4.contains("10.98.0.2") && v4.contains("-i cnix1 ! -o cnix1"),
        "ctr2 untouched: {v4}"
    );
    // IPv6 had only ctr1: back to the empty table, Go-made chains included.
    assert_eq!(w.kernel.save(IpFamily::V6), EMPTY);
}

#[test]
fn del_without_prev_result_cannot_find_go_rules_and_changes_nothing() {
    let w = go_world(Vec::new());
    w.backend.del(&bare("cnixnet", "ctr1")).unwrap();
    assert!(w.kernel.take_batches().is_empty());
}

#[test]
fn our_del_keeps_isolation_a_go_container_on_the_bridge_relies_on() {
    for routes in [
        Arc::new(FakeRoutes(vec![
            (ip("10.99.0.2"), "cnix0"),
            (ip("10.98.0.2"), "cnix1"),
        ])) as Arc<dyn HostRoutes>,
        Arc::new(BrokenRoutes),
    ] {
        let w = world_with(routes);
        w.kernel.load(IpFamily::V4, GO_V4);
        let ours = fw(
            "cnixnet",
            "ctr3",
            &["10.99.0.3/24"],
            IngressPolicy::SameBridge,
            "cnix0",
        );
        w.add(&ours);
        w.backend.del(&bare("cnixnet", "ctr3")).unwrap();
        assert_eq!(
            w.kernel.save(IpFamily::V4),
            SavedTable::parse(GO_V4, "filter")
                .map(|t| emulator::render(&t))
                .unwrap()
        );
    }
}

#[test]
fn go_container_elsewhere_does_not_pin_our_bridge() {
    let w = world_with(Arc::new(FakeRoutes(vec![
        (ip("10.99.0.2"), "cnix0"),
        (ip("10.98.0.2"), "cnix1"),
    ])));
    w.kernel.load(IpFamily::V4, GO_V4);
    let ours = fw(
        "net3",
        "ctr9",
        &["10.97.0.2/24"],
        IngressPolicy::SameBridge,
        "cnix9",
    );
    w.add(&ours);
    w.backend.del(&bare("net3", "ctr9")).unwrap();
    assert_eq!(
        w.kernel.save(IpFamily::V4),
        SavedTable::parse(GO_V4, "filter")
            .map(|t| emulator::render(&t))
            .unwrap()
    );
}

use crate::firewall::OwnerTag;
use crate::iptables::SavedTable;

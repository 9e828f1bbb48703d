//! The netlink paths on the emulated tables: the same end state as the reading paths, with
//! fewer tool runs, and the reading paths whenever the shortcut's conditions do not hold.

use std::sync::Arc;

use super::super::tests::{Emulator, World, bare, fw, world};
use crate::firewall::{FirewallBackend, HostLock, IngressPolicy};
use crate::iptables::IpFamily;

/// A world whose backend also reads and deletes through the emulator's netlink face.
fn nf_world() -> World {
    let mut w = world();
    let kernel: Arc<Emulator> = w.kernel.clone();
    w.backend = w.backend.clone().with_nf_rules(kernel, true);
    w
}

const SAME: IngressPolicy = IngressPolicy::SameBridge;

#[test]
fn the_bridges_first_container_is_planned_on_the_netlink_model() {
    let w = nf_world();
    w.add(&fw("net", "c1", &["10.99.0.2/24"], SAME, "br0"));
    // Netlink showed the shared rules missing: no `-C` batch that could only fail, and no
    // `iptables-save` either; the plan runs on the model read over netlink.
    assert_eq!(w.kernel.take_calls(), ["iptables-restore --noflush -w 30"]);
    assert_eq!(
        w.kernel.take_nf_calls(),
        [
            "list v4 FORWARD",
            "has v4 CNI-FORWARD",
            "has v4 CNI-ISOLATION-STAGE-1",
            "has v4 CNI-ISOLATION-STAGE-2"
        ]
    );
    let plain = world();
    plain.add(&fw("net", "c1", &["10.99.0.2/24"], SAME, "br0"));
    assert_eq!(
        w.kernel.state(IpFamily::V4),
        plain.kernel.state(IpFamily::V4)
    );
}

#[test]
fn a_later_container_is_checked_over_netlink_and_only_appended() {
    let w = nf_world();
    w.add(&fw("net", "c1", &["10.99.0.2/24"], SAME, "br0"));
    w.kernel.take_calls();
    w.kernel.take_batches();
    w.kernel.take_nf_calls();
    w.add(&fw("net", "c2", &["10.99.0.3/24"], SAME, "br0"));
    assert_eq!(w.kernel.take_calls(), ["iptables-restore --noflush -w 30"]);
    let batches = w.kernel.take_batches();
    assert_eq!(batches.len(), 1);
    assert!(!batches[0].contains("\n-C "), "no probes: {}", batches[0]);
    assert_eq!(
        batches[0].matches("\n-A CNI-FORWARD ").count(),
        2,
        "{}",
        batches[0]
    );
    assert_eq!(
        w.kernel.take_nf_calls(),
        [
            "list v4 FORWARD",
            "list v4 CNI-FORWARD",
            "list v4 CNI-ISOLATION-STAGE-1",
            "list v4 CNI-ISOLATION-STAGE-2"
        ]
    );
}

#[test]
fn del_plans_on_the_netlink_model_and_deletes_by_handle_without_any_tool() {
    let w = nf_world();
    w.add(&fw(
        "net",
        "c1",
        &["10.99.0.2/24", "fd00:99::2/64"],
        SAME,
        "br0",
    ));
    let with_c1 = (w.kernel.state(IpFamily::V4), w.kernel.state(IpFamily::V6));
    w.add(&fw(
        "net",
        "c2",
        &["10.99.0.3/24", "fd00:99::3/64"],
        SAME,
        "br0",
    ));
    w.kernel.take_calls();
    w.kernel.take_nf_calls();
    w.backend.del(&bare("net", "c2")).unwrap();
    assert_eq!(w.kernel.take_calls(), Vec::<String>::new());
    let mut deletes: Vec<String> = w
        .kernel
        .take_nf_calls()
        .into_iter()
        .filter(|c| c.starts_with("delete"))
        .collect();
    deletes.sort();
    assert_eq!(
        deletes,
        ["delete v4 rules 2 chains 0", "delete v6 rules 2 chains 0"]
    );
    assert_eq!(
        (w.kernel.state(IpFamily::V4), w.kernel.state(IpFamily::V6)),
        with_c1
    );
    // The last one: the shared rules and chains go too, in the same kind of transaction.
    w.backend.del(&bare("net", "c1")).unwrap();
    assert_eq!(w.kernel.take_calls(), Vec::<String>::new());
    assert!(
        w.kernel
            .take_nf_calls()
            .contains(&"delete v4 rules 9 chains 4".to_owned())
    );
    assert_eq!(w.kernel.state(IpFamily::V4), Vec::<String>::new());
    assert_eq!(w.kernel.state(IpFamily::V6), Vec::<String>::new());
    // Nothing of ours left in nf_tables on a known iptables-nft host: a repeat is a no-op.
    w.backend.del(&bare("net", "c1")).unwrap();
    assert_eq!(w.kernel.take_calls(), Vec::<String>::new());
}

/// Where iptables may not be iptables-nft (a wrapper script), nothing in nf_tables proves
/// nothing: the tools look.
#[test]
fn without_known_nft_an_empty_netlink_view_sends_del_to_the_tools() {
    let mut w = world();
    let kernel: Arc<Emulator> = w.kernel.clone();
    w.backend = w.backend.clone().with_nf_rules(kernel, false);
    w.backend.del(&bare("net", "c1")).unwrap();
    let mut calls = w.kernel.take_calls();
    calls.sort();
    assert_eq!(
        calls,
        ["ip6tables-save -t filter", "iptables-save -t filter"]
    );
}

/// Every step of a mixed sequence leaves the same tables with and without netlink.
#[test]
fn netlink_paths_end_in_the_same_tables_as_the_reading_paths() {
    let plain = world();
    let nf = nf_world();
    let iso = IngressPolicy::Isolated;
    let open = IngressPolicy::Open;
    let adds = [
        fw("net", "c1", &["10.99.0.2/24"], SAME, "br0"),
        fw("net", "c2", &["10.99.0.3/24", "fd00:99::3/64"], SAME, "br0"),
        fw("net", "c3", &["10.99.0.4/24"], iso, "br0"),
        fw("net", "c4", &["10.99.0.5/24"], iso, "br0"),
        fw("net2", "c5", &["10.98.0.2/24"], SAME, "br1"),
        fw("net3", "c6", &["10.97.0.2/24"], open, "br2"),
    ];
    let step = |what: &str| {
        for family in IpFamily::ALL {
            assert_eq!(
                nf.kernel.state(family),
                plain.kernel.state(family),
                "after {what} ({family:?})"
            );
        }
    };
    for c in &adds {
        plain.add(c);
        nf.add(c);
        step(&format!("ADD {}", c.owner.container_id));
    }
    // c4: another isolated container stays; c3: the bridge's last isolated one; c2: dual
    // stack, others stay; c5: its bridge's only container; c6 and c1 the last ones.
    for (net, cid) in [
        ("net", "c4"),
        ("net", "c3"),
        ("net", "c2"),
        ("net2", "c5"),
        ("net3", "c6"),
        ("net", "c1"),
        ("net", "c1"),
    ] {
        plain.backend.del(&bare(net, cid)).unwrap();
        nf.kernel.take_calls();
        nf.backend.del(&bare(net, cid)).unwrap();
        assert_eq!(
            nf.kernel.take_calls(),
            Vec::<String>::new(),
            "DEL {cid} ran a tool"
        );
        step(&format!("DEL {cid}"));
    }
    assert_eq!(nf.kernel.state(IpFamily::V4), Vec::<String>::new());
    // An `open` container alone: no isolation to keep, but its DEL leaves the chains idle.
    let alone = fw("net3", "c7", &["10.97.0.3/24"], open, "br2");
    plain.add(&alone);
    nf.add(&alone);
    step("ADD c7");
    plain.backend.del(&bare("net3", "c7")).unwrap();
    nf.backend.del(&bare("net3", "c7")).unwrap();
    step("DEL c7");
    assert_eq!(nf.kernel.state(IpFamily::V4), Vec::<String>::new());
}

#[test]
fn removing_the_bridges_last_isolated_container_removes_only_its_drop() {
    let w = nf_world();
    w.add(&fw("net", "c1", &["10.99.0.2/24"], SAME, "br0"));
    w.add(&fw(
        "net",
        "c2",
        &["10.99.0.3/24"],
        IngressPolicy::Isolated,
        "br0",
    ));
    assert!(w.kernel.save(IpFamily::V4).contains("-i br0 -o br0"));
    w.kernel.take_calls();
    w.backend.del(&bare("net", "c2")).unwrap();
    assert_eq!(w.kernel.take_calls(), Vec::<String>::new(), "over netlink");
    let v4 = w.kernel.save(IpFamily::V4);
    assert!(
        !v4.contains("-i br0 -o br0"),
        "isolated drop removed:\n{v4}"
    );
    assert!(
        v4.contains("-i br0 ! -o br0"),
        "same-bridge rules kept:\n{v4}"
    );
}

#[test]
fn a_failing_netlink_falls_back_to_probes_and_reads() {
    let w = nf_world();
    w.kernel.break_nf();
    w.add(&fw("net", "c1", &["10.99.0.2/24"], SAME, "br0"));
    w.kernel.take_calls();
    w.kernel.take_batches();
    w.add(&fw("net", "c2", &["10.99.0.3/24"], SAME, "br0"));
    assert!(w.kernel.take_batches()[0].contains("\n-C "), "probe batch");
    w.backend.del(&bare("net", "c2")).unwrap();
    assert!(
        w.kernel
            .take_calls()
            .contains(&"iptables-save -t filter".to_owned())
    );
    assert_eq!(
        w.kernel
            .state(IpFamily::V4)
            .iter()
            .filter(|r| r.contains("c2"))
            .count(),
        0
    );
}

#[test]
fn an_admin_jump_buried_under_other_rules_sends_add_to_the_reading_path() {
    let w = nf_world();
    w.add(&fw("net", "c1", &["10.99.0.2/24"], SAME, "br0"));
    let mut save = w.kernel.save(IpFamily::V4);
    let extra: String = (0..super::ADMIN_JUMP_DEPTH)
        .map(|i| format!("-I CNI-FORWARD 1 -s 10.1.0.{i}/32 -j ACCEPT\n"))
        .collect();
    // Rules an operator inserted above the admin jump.
    let first = save.find("-A CNI-FORWARD").unwrap();
    save.insert_str(first, &extra.replace("-I CNI-FORWARD 1", "-A CNI-FORWARD"));
    w.kernel.load(IpFamily::V4, &save);
    w.kernel.take_calls();
    w.add(&fw("net", "c2", &["10.99.0.3/24"], SAME, "br0"));
    let calls = w.kernel.take_calls();
    assert_eq!(calls[0], "iptables-save -t filter", "{calls:?}");
    let state = w.kernel.state(IpFamily::V4);
    let admin = state
        .iter()
        .filter(|r| r.contains("admin overrides"))
        .count();
    assert_eq!(admin, 1, "no second admin jump: {state:#?}");
}

#[test]
fn a_lock_dir_beside_the_ledger_is_all_the_netlink_paths_need() {
    // The netlink paths still take the host lock and keep the ledger: a repeat DEL is a no-op.
    let dir = tempfile::tempdir().unwrap();
    let kernel = Arc::new(Emulator::new());
    let backend = super::super::IptablesFirewall::new(kernel.clone(), HostLock::in_dir(dir.path()))
        .with_nf_rules(kernel.clone(), true);
    backend
        .add(&fw("net", "c1", &["10.99.0.2/24"], SAME, "br0"))
        .unwrap();
    backend
        .add(&fw("net", "c2", &["10.99.0.3/24"], SAME, "br0"))
        .unwrap();
    let ledger = dir.path().join("attachments");
    assert_eq!(std::fs::read_dir(&ledger).unwrap().count(), 2);
    backend.del(&bare("net", "c2")).unwrap();
    assert_eq!(std::fs::read_dir(&ledger).unwrap().count(), 1);
    backend.del(&bare("net", "c2")).unwrap();
    assert_eq!(
        kernel
            .state(IpFamily::V4)
            .iter()
            .filter(|r| r.contains("c1"))
            .count(),
        2
    );
}

/// Next to containers the Go plugin added (uncommented rules), and for a container whose
/// Go-made rules our ADD repeated: DEL takes the full teardown, which also removes the Go rules
/// for the `prevResult` addresses, and both paths end in the same tables.
#[test]
fn next_to_go_made_rules_del_takes_the_full_teardown() {
    use super::super::tests::{GO_V4, GO_V6, ips};
    use crate::firewall::{Owner, Teardown};
    let plain = world();
    let nf = nf_world();
    for w in [&plain, &nf] {
        w.kernel.load(IpFamily::V4, GO_V4);
        w.kernel.load(IpFamily::V6, GO_V6);
        // ctr1 was added by the Go plugin; a repeated ADD of it now comes to us.
        w.add(&fw("cnixnet", "ctr1", &["10.99.0.2/24"], SAME, "cnix0"));
        w.add(&fw("cnixnet", "ctr3", &["10.99.0.3/24"], SAME, "cnix0"));
        w.kernel.take_calls();
    }
    nf.kernel.take_nf_calls();
    let teardown = Teardown::new(
        Owner::new("cnixnet", "ctr1", "eth0"),
        &ips(&["10.99.0.2"]),
        None,
    )
    .unwrap();
    plain.backend.del(&teardown).unwrap();
    nf.backend.del(&teardown).unwrap();
    assert!(
        nf.kernel
            .take_calls()
            .contains(&"iptables-save -t filter".to_owned()),
        "full teardown"
    );
    for family in IpFamily::ALL {
        assert_eq!(
            nf.kernel.state(family),
            plain.kernel.state(family),
            "{family:?}"
        );
    }
    let v4 = nf.kernel.save(IpFamily::V4);
    assert!(
        !v4.contains("10.99.0.2/32"),
        "Go and our rules for ctr1 gone:\n{v4}"
    );
}

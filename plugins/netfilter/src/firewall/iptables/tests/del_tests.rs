//! DEL and GC: owner selection without addresses, last-container cleanup, what must stay.

use super::*;
use crate::iptables::{IpFamily, SavedRule};

#[test]
fn del_of_the_last_container_without_prev_result_restores_the_empty_table() {
    let w = world();
    w.add(&fw(
        "cnixnet",
        "ctr1",
        &["10.99.0.2/24"],
        IngressPolicy::SameBridge,
        "cnix0",
    ));
    w.kernel.take_calls();
    w.kernel.take_batches();
    w.backend.del(&bare("cnixnet", "ctr1")).unwrap();
    assert_eq!(
        w.kernel.family_calls(IpFamily::V4),
        [
            "iptables-save -t filter",
            "iptables-restore --noflush -w 30"
        ]
    );
    assert_eq!(
        w.kernel.family_calls(IpFamily::V6),
        ["ip6tables-save -t filter"]
    );
    let tag = r#""name: \"cnixnet\" id: \"ctr1\" if: \"eth0\" same-bridge: \"cnix0\"""#;
    let shared = "\"CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)\"";
    assert_eq!(
        w.kernel.take_batches(),
        [format!(
            "*filter\n\
             -D CNI-FORWARD -d 10.99.0.2/32 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment {tag} -j ACCEPT\n\
             -D CNI-FORWARD -s 10.99.0.2/32 -m comment --comment {tag} -j ACCEPT\n\
             -D CNI-ISOLATION-STAGE-1 -i cnix0 ! -o cnix0 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge)\" -j CNI-ISOLATION-STAGE-2\n\
             -D CNI-ISOLATION-STAGE-2 -o cnix0 -m comment --comment {shared} -j DROP\n\
             -D FORWARD -m comment --comment {shared} -j CNI-ISOLATION-STAGE-1\n\
             -D CNI-ISOLATION-STAGE-1 -m comment --comment {shared} -j RETURN\n\
             -X CNI-ISOLATION-STAGE-1\n\
             -D CNI-ISOLATION-STAGE-2 -m comment --comment {shared} -j RETURN\n\
             -X CNI-ISOLATION-STAGE-2\n\
             -D FORWARD -m comment --comment \"CNI firewall plugin rules\" -j CNI-FORWARD\n\
             -D CNI-FORWARD -m comment --comment \"CNI firewall plugin admin overrides\" -j CNI-ADMIN\n\
             -X CNI-FORWARD\n\
             -X CNI-ADMIN\n\
             COMMIT\n"
        )]
    );
    assert_eq!(w.kernel.save(IpFamily::V4), EMPTY);
    // Idempotent: a second DEL reads and writes nothing.
    w.kernel.take_calls();
    w.backend.del(&bare("cnixnet", "ctr1")).unwrap();
    let mut calls = w.kernel.calls();
    calls.sort();
    assert_eq!(
        calls,
        ["ip6tables-save -t filter", "iptables-save -t filter"]
    );
}

#[test]
fn bridge_rules_stay_while_a_container_on_that_bridge_remains() {
    let w = world();
    let dual = ["10.99.0.2/24", "fd00:99::2/64"];
    w.add(&fw(
        "cnixnet",
        "ctr1",
        &dual,
        IngressPolicy::Isolated,
        "cnix0",
    ));
    w.add(&fw(
        "cnixnet",
        "ctr2",
        &["10.99.0.3/24"],
        IngressPolicy::SameBridge,
        "cnix0",
    ));
    w.add(&fw(
        "other",
        "ctr3",
        &["10.98.0.2/24"],
        IngressPolicy::SameBridge,
        "cnix1",
    ));
    w.backend.del(&bare("cnixnet", "ctr1")).unwrap();
    let v4 = w.kernel.state(IpFamily::V4).join("\n");
    assert!(!v4.contains("ctr1"), "{v4}");
    assert!(
        v4.contains("-A CNI-ISOLATION-STAGE-1 -i cnix0 ! -o cnix0"),
        "ctr2 keeps cnix0 isolation: {v4}"
    );
    assert!(
        !v4.contains("-i cnix0 -o cnix0"),
        "no isolated container left on cnix0: {v4}"
    );
    // IPv6 had only ctr1: its family returns to empty.
    assert_eq!(w.kernel.save(IpFamily::V6), EMPTY);

    w.backend.del(&bare("cnixnet", "ctr2")).unwrap();
    let v4 = w.kernel.state(IpFamily::V4).join("\n");
    assert!(!v4.contains("cnix0"), "{v4}");
    assert!(
        v4.contains("-i cnix1 ! -o cnix1"),
        "other bridge untouched: {v4}"
    );
    w.backend.del(&bare("other", "ctr3")).unwrap();
    assert_eq!(w.kernel.save(IpFamily::V4), EMPTY);
}

#[test]
fn del_matches_the_interface_too() {
    let w = world();
    let eth1 = ContainerFirewall::new(
        Owner::new("cnixnet", "ctr1", "eth1"),
        &ips(&["10.99.0.5/24"]),
        IngressPolicy::Open,
        None,
        "CNI-ADMIN",
    )
    .unwrap();
    w.add(&fw(
        "cnixnet",
        "ctr1",
        &["10.99.0.2/24"],
        IngressPolicy::Open,
        "cnix0",
    ));
    w.add(&eth1);
    w.backend.del(&bare("cnixnet", "ctr1")).unwrap();
    w.backend.check(&eth1).unwrap();
    assert!(!w.kernel.save(IpFamily::V4).contains("10.99.0.2"));
}

fn add_rule(w: &World, chain: &str, args: &[&str]) {
    let mut table = SavedTable::parse(&w.kernel.save(IpFamily::V4), "filter").unwrap();
    table.rules.push(SavedRule {
        chain: chain.to_owned(),
        args: args.iter().map(|s| (*s).to_owned()).collect(),
    });
    w.kernel.load(IpFamily::V4, &emulator::render(&table));
}

#[test]
fn admin_chain_with_user_rules_keeps_the_path_to_it() {
    let w = world();
    w.add(&fw(
        "cnixnet",
        "ctr1",
        &["10.99.0.2/24"],
        IngressPolicy::Open,
        "cnix0",
    ));
    add_rule(&w, "CNI-ADMIN", &["-s", "192.0.2.0/24", "-j", "DROP"]);
    w.backend.del(&bare("cnixnet", "ctr1")).unwrap();
    assert_eq!(
        w.kernel.state(IpFamily::V4),
        [
            ":CNI-ADMIN - [0:0]",
            ":CNI-FORWARD - [0:0]",
            "-A FORWARD -m comment --comment \"CNI firewall plugin rules\" -j CNI-FORWARD",
            "-A CNI-ADMIN -s 192.0.2.0/24 -j DROP",
            "-A CNI-FORWARD -m comment --comment \"CNI firewall plugin admin overrides\" -j CNI-ADMIN",
        ]
    );
}

#[test]
fn foreign_rules_in_shared_chains_keep_them() {
    let w = world();
    w.add(&fw(
        "cnixnet",
        "ctr1",
        &["10.99.0.2/24"],
        IngressPolicy::SameBridge,
        "cnix0",
    ));
    add_rule(&w, "CNI-FORWARD", &["-s", "192.0.2.7/32", "-j", "ACCEPT"]);
    add_rule(&w, "CNI-ISOLATION-STAGE-2", &["-o", "virbr0", "-j", "DROP"]);
    w.backend.del(&bare("cnixnet", "ctr1")).unwrap();
    let state = w.kernel.state(IpFamily::V4).join("\n");
    for kept in [
        "-j CNI-FORWARD",
        "-j CNI-ADMIN",
        "-j CNI-ISOLATION-STAGE-1",
        "-o virbr0",
        "192.0.2.7",
    ] {
        assert!(state.contains(kept), "{kept} missing: {state}");
    }
    assert!(!state.contains("cnix0"), "{state}");
}

#[test]
fn rule_added_between_read_and_write_survives_chain_removal() {
    let w = world();
    w.add(&fw(
        "cnixnet",
        "ctr1",
        &["10.99.0.2/24"],
        IngressPolicy::Open,
        "cnix0",
    ));
    w.kernel.before_next_restore(IpFamily::V4, |t| {
        t.rules.push(SavedRule {
            chain: "CNI-FORWARD".to_owned(),
            args: ["-s", "10.99.0.9/32", "-j", "ACCEPT"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        });
    });
    w.kernel.take_calls();
    w.backend.del(&bare("cnixnet", "ctr1")).unwrap();
    assert_eq!(
        w.kernel
            .calls()
            .iter()
            .filter(|c| c.contains("iptables-restore"))
            .count(),
        2,
        "re-planned"
    );
    let state = w.kernel.state(IpFamily::V4).join("\n");
    assert!(
        state.contains("-A CNI-FORWARD -s 10.99.0.9/32 -j ACCEPT"),
        "{state}"
    );
    assert!(!state.contains("ctr1"), "{state}");
}

#[test]
fn del_without_ip6tables_succeeds() {
    let w = world();
    w.add(&fw(
        "cnixnet",
        "ctr1",
        &["10.99.0.2/24"],
        IngressPolicy::Open,
        "cnix0",
    ));
    w.kernel.set_missing("ip6tables-save");
    w.backend.del(&bare("cnixnet", "ctr1")).unwrap();
    assert_eq!(w.kernel.save(IpFamily::V4), EMPTY);
}

#[test]
fn gc_removes_only_stale_attachments_of_the_network() {
    let w = world();
    for (i, cid) in ["ctr1", "ctr2", "ctr3"].iter().enumerate() {
        w.add(&fw(
            "cnixnet",
            cid,
            &[&format!("10.99.0.{}/24", i + 2)],
            IngressPolicy::SameBridge,
            "cnix0",
        ));
    }
    w.add(&fw(
        "other",
        "ctr1",
        &["10.98.0.2/24", "fd00:98::2/64"],
        IngressPolicy::SameBridge,
        "cnix1",
    ));
    let v6_before = w.kernel.state(IpFamily::V6);
    w.backend
        .gc("cnixnet", &[("ctr2", "eth0"), ("ctr3", "eth1")])
        .unwrap();
    let v4 = w.kernel.state(IpFamily::V4).join("\n");
    assert!(v4.contains(r#"id: \"ctr2\""#), "{v4}");
    assert!(!v4.contains(r#"name: \"cnixnet\" id: \"ctr1\""#), "{v4}");
    assert!(
        !v4.contains(r#"id: \"ctr3\""#),
        "(ctr3, eth0) is not valid: {v4}"
    );
    assert!(v4.contains(r#"name: \"other\" id: \"ctr1\""#), "{v4}");
    assert!(
        v4.contains("-i cnix0 ! -o cnix0"),
        "ctr2 still on cnix0: {v4}"
    );
    assert_eq!(
        w.kernel.state(IpFamily::V6),
        v6_before,
        "other's v6 untouched"
    );

    w.backend.gc("cnixnet", &[]).unwrap();
    let v4 = w.kernel.state(IpFamily::V4).join("\n");
    assert!(!v4.contains("cnixnet") && !v4.contains("cnix0"), "{v4}");
    w.backend.gc("other", &[]).unwrap();
    assert_eq!(w.kernel.save(IpFamily::V4), EMPTY);
    assert_eq!(w.kernel.save(IpFamily::V6), EMPTY);
}

use crate::iptables::SavedTable;

#[test]
fn custom_admin_chains_are_jumped_to_and_removed_when_idle() {
    let w = world();
    let mine = ContainerFirewall::new(
        Owner::new("cnixnet", "ctr1", "eth0"),
        &ips(&["10.99.0.2/24"]),
        IngressPolicy::Open,
        None,
        "MY-ADMIN",
    )
    .unwrap();
    w.add(&mine);
    w.add(&fw(
        "other",
        "ctr2",
        &["10.98.0.2/24"],
        IngressPolicy::Open,
        "cnix1",
    ));
    let state = w.kernel.state(IpFamily::V4).join("\n");
    assert!(state.contains("admin overrides\" -j MY-ADMIN"), "{state}");
    assert!(state.contains("admin overrides\" -j CNI-ADMIN"), "{state}");
    w.backend.check(&mine).unwrap();
    w.backend.del(&bare("cnixnet", "ctr1")).unwrap();
    w.backend.del(&bare("other", "ctr2")).unwrap();
    assert_eq!(w.kernel.save(IpFamily::V4), EMPTY);
}

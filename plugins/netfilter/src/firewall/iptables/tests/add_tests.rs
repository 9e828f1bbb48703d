//! ADD: exact batches per policy and family, idempotence, repair, races, rollback.

use super::*;
use crate::iptables::IpFamily;

const OWNER_OPEN: &str = r#""name: \"cnixnet\" id: \"ctr1\" if: \"eth0\"""#;

fn open_batch(ip: &str, comment: &str) -> String {
    format!(
        "*filter\n\
         -N CNI-FORWARD\n\
         -N CNI-ADMIN\n\
         -I FORWARD 1 -m comment --comment \"CNI firewall plugin rules\" -j CNI-FORWARD\n\
         -I CNI-FORWARD 1 -m comment --comment \"CNI firewall plugin admin overrides\" -j CNI-ADMIN\n\
         -A CNI-FORWARD -d {ip} -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment {comment} -j ACCEPT\n\
         -A CNI-FORWARD -s {ip} -m comment --comment {comment} -j ACCEPT\n"
    )
}

/// A first ADD into an empty table: the no-read batch fails on its first probe, then one read
/// and one write create everything.
#[test]
fn open_v4_first_container_probes_then_reads_and_writes_once() {
    let w = world();
    w.add(&fw(
        "cnixnet",
        "ctr1",
        &["10.99.0.2/24"],
        IngressPolicy::Open,
        "cnix0",
    ));
    assert_eq!(
        w.kernel.calls(),
        [
            "iptables-restore --noflush -w 30",
            "iptables-save -t filter",
            "iptables-restore --noflush -w 30"
        ]
    );
    assert_eq!(
        without_probes(w.kernel.take_batches()),
        [open_batch("10.99.0.2/32", OWNER_OPEN) + "COMMIT\n"]
    );
}

const SAME: &str = r#""name: \"cnixnet\" id: \"ctr1\" if: \"eth0\" same-bridge: \"cnix0\"""#;
const ISO: &str = r#""name: \"cnixnet\" id: \"ctr1\" if: \"eth0\" isolated: \"cnix0\"""#;

const SAME_BRIDGE_TAIL: &str = "\
-N CNI-ISOLATION-STAGE-1
-N CNI-ISOLATION-STAGE-2
-I FORWARD 1 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)\" -j CNI-ISOLATION-STAGE-1
-I CNI-ISOLATION-STAGE-1 1 -i cnix0 ! -o cnix0 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge)\" -j CNI-ISOLATION-STAGE-2
-A CNI-ISOLATION-STAGE-1 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)\" -j RETURN
-I CNI-ISOLATION-STAGE-2 1 -o cnix0 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)\" -j DROP
-A CNI-ISOLATION-STAGE-2 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)\" -j RETURN
COMMIT
";

const ISOLATED_TAIL: &str = "\
-N CNI-ISOLATION-STAGE-1
-N CNI-ISOLATION-STAGE-2
-I FORWARD 1 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)\" -j CNI-ISOLATION-STAGE-1
-I CNI-ISOLATION-STAGE-1 1 -i cnix0 ! -o cnix0 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: isolated)\" -j CNI-ISOLATION-STAGE-2
-I CNI-ISOLATION-STAGE-1 1 -i cnix0 -o cnix0 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: isolated)\" -j DROP
-A CNI-ISOLATION-STAGE-1 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)\" -j RETURN
-I CNI-ISOLATION-STAGE-2 1 -o cnix0 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)\" -j DROP
-A CNI-ISOLATION-STAGE-2 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)\" -j RETURN
COMMIT
";

#[test]
fn same_bridge_v4_batch() {
    let w = world();
    w.add(&fw(
        "cnixnet",
        "ctr1",
        &["10.99.0.2/24"],
        IngressPolicy::SameBridge,
        "cnix0",
    ));
    assert_eq!(
        without_probes(w.kernel.take_batches()),
        [open_batch("10.99.0.2/32", SAME) + SAME_BRIDGE_TAIL]
    );
    // The resulting order is the reference's: isolation jump first in FORWARD.
    assert_eq!(
        w.kernel.state(IpFamily::V4)[4..6],
        [
            "-A FORWARD -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)\" -j CNI-ISOLATION-STAGE-1",
            "-A FORWARD -m comment --comment \"CNI firewall plugin rules\" -j CNI-FORWARD",
        ]
    );
}

#[test]
fn isolated_dual_stack_one_batch_per_family() {
    let w = world();
    w.add(&fw(
        "cnixnet",
        "ctr1",
        &["fd00:99::2/64", "10.99.0.2/24"],
        IngressPolicy::Isolated,
        "cnix0",
    ));
    assert_eq!(
        w.kernel.family_calls(IpFamily::V4),
        [
            "iptables-restore --noflush -w 30",
            "iptables-save -t filter",
            "iptables-restore --noflush -w 30"
        ]
    );
    assert_eq!(
        w.kernel.family_calls(IpFamily::V6),
        [
            "ip6tables-restore --noflush -w 30",
            "ip6tables-save -t filter",
            "ip6tables-restore --noflush -w 30"
        ]
    );
    let mut batches = without_probes(w.kernel.take_batches());
    batches.sort();
    assert_eq!(
        batches,
        [
            open_batch("10.99.0.2/32", ISO) + ISOLATED_TAIL,
            open_batch("fd00:99::2/128", ISO) + ISOLATED_TAIL
        ]
    );
}

#[test]
fn v6_only_touches_ip6tables_only() {
    let w = world();
    w.add(&fw(
        "cnixnet",
        "ctr1",
        &["fd00:99::2/64"],
        IngressPolicy::Open,
        "cnix0",
    ));
    assert_eq!(
        w.kernel.calls(),
        [
            "ip6tables-restore --noflush -w 30",
            "ip6tables-save -t filter",
            "ip6tables-restore --noflush -w 30"
        ]
    );
}

/// The second container of a bridge is one write and no read: the batch requires the shared
/// rules the first container created and appends the new container's two rules.
#[test]
fn second_add_changes_nothing_and_a_second_container_only_appends_without_reading() {
    let w = world();
    let c1 = fw(
        "cnixnet",
        "ctr1",
        &["10.99.0.2/24"],
        IngressPolicy::SameBridge,
        "cnix0",
    );
    w.add(&c1);
    w.kernel.take_calls();
    w.add(&c1);
    // A repeat also looks for this attachment's rules in the family it no longer has.
    assert_eq!(
        w.kernel.take_calls(),
        ["iptables-save -t filter", "ip6tables-save -t filter"],
        "no restore when in place"
    );
    w.kernel.take_batches();
    w.add(&fw(
        "cnixnet",
        "ctr2",
        &["10.99.0.3/24"],
        IngressPolicy::SameBridge,
        "cnix0",
    ));
    assert_eq!(w.kernel.take_calls(), ["iptables-restore --noflush -w 30"]);
    let tag = r#""name: \"cnixnet\" id: \"ctr2\" if: \"eth0\" same-bridge: \"cnix0\"""#;
    let shared = "\"CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)\"";
    assert_eq!(
        w.kernel.take_batches(),
        [format!(
            "*filter\n\
             -C FORWARD -m comment --comment \"CNI firewall plugin rules\" -j CNI-FORWARD\n\
             -C CNI-FORWARD -m comment --comment \"CNI firewall plugin admin overrides\" -j CNI-ADMIN\n\
             -C FORWARD -m comment --comment {shared} -j CNI-ISOLATION-STAGE-1\n\
             -C CNI-ISOLATION-STAGE-1 -i cnix0 ! -o cnix0 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge)\" -j CNI-ISOLATION-STAGE-2\n\
             -C CNI-ISOLATION-STAGE-1 -m comment --comment {shared} -j RETURN\n\
             -C CNI-ISOLATION-STAGE-2 -o cnix0 -m comment --comment {shared} -j DROP\n\
             -C CNI-ISOLATION-STAGE-2 -m comment --comment {shared} -j RETURN\n\
             -A CNI-FORWARD -d 10.99.0.3/32 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment {tag} -j ACCEPT\n\
             -A CNI-FORWARD -s 10.99.0.3/32 -m comment --comment {tag} -j ACCEPT\nCOMMIT\n"
        )]
    );
}

#[test]
fn re_add_with_new_address_replaces_the_old_rules() {
    let w = world();
    w.add(&fw(
        "cnixnet",
        "ctr1",
        &["10.99.0.2/24"],
        IngressPolicy::Open,
        "cnix0",
    ));
    w.add(&fw(
        "cnixnet",
        "ctr1",
        &["10.99.0.7/24"],
        IngressPolicy::Open,
        "cnix0",
    ));
    let state = w.kernel.state(IpFamily::V4).join("\n");
    assert!(!state.contains("10.99.0.2"), "{state}");
    assert_eq!(state.matches("10.99.0.7/32").count(), 2, "{state}");
}

#[test]
fn tampered_rules_are_repaired() {
    let w = world();
    let c1 = fw(
        "cnixnet",
        "ctr1",
        &["10.99.0.2/24"],
        IngressPolicy::Isolated,
        "cnix0",
    );
    w.add(&c1);
    let good = w.kernel.state(IpFamily::V4);
    let mut broken = good.clone();
    broken.retain(|l| !l.contains("-o cnix0 -m") && !l.contains("-s 10.99.0.2"));
    let text = format!(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n{}\nCOMMIT\n",
        broken.join("\n")
    );
    w.kernel.load(IpFamily::V4, &text);
    assert!(w.backend.check(&c1).is_err());
    w.add(&c1);
    w.backend.check(&c1).unwrap();
    let mut now = w.kernel.state(IpFamily::V4);
    let mut want = good;
    now.sort();
    want.sort();
    assert_eq!(now, want);
}

#[test]
fn chain_created_by_another_process_meanwhile_is_replanned_not_duplicated() {
    let w = world();
    let owner = Owner::new("cnixnet", "ctr1", "eth0");
    // Recorded as set up before: this ADD reads the table instead of probing.
    assert!(w.backend.ledger().record(&owner).unwrap());
    // Between our save and our restore another plugin creates the chains and its jump.
    w.kernel.before_next_restore(IpFamily::V4, |t| {
        let other = SavedTable::parse(
            "*filter\n:FORWARD ACCEPT [0:0]\n:CNI-FORWARD - [0:0]\n:CNI-ADMIN - [0:0]\n\
             -A FORWARD -m comment --comment \"CNI firewall plugin rules\" -j CNI-FORWARD\n\
             -A CNI-FORWARD -m comment --comment \"CNI firewall plugin admin overrides\" -j CNI-ADMIN\n\
             -A CNI-FORWARD -s 10.99.0.9/32 -j ACCEPT\nCOMMIT\n",
            "filter",
        )
        .unwrap();
        t.chains.extend(other.chains.into_iter().filter(|c| c.starts_with("CNI")));
        t.rules.extend(other.rules);
    });
    w.add(&fw(
        "cnixnet",
        "ctr1",
        &["10.99.0.2/24"],
        IngressPolicy::Open,
        "cnix0",
    ));
    assert_eq!(
        w.kernel.calls(),
        [
            "iptables-save -t filter",
            "iptables-restore --noflush -w 30",
            "iptables-save -t filter",
            "iptables-restore --noflush -w 30"
        ]
    );
    let state = w.kernel.state(IpFamily::V4).join("\n");
    assert_eq!(state.matches("-j CNI-FORWARD").count(), 1, "{state}");
    assert_eq!(state.matches("-j CNI-ADMIN").count(), 1, "{state}");
    assert!(
        state.contains("-s 10.99.0.9/32 -j ACCEPT"),
        "other process's rule kept: {state}"
    );
}

#[test]
fn failure_in_v6_undoes_v4() {
    let w = world();
    w.kernel.set_missing("ip6tables-save");
    let err = w
        .backend
        .add(&fw(
            "cnixnet",
            "ctr1",
            &["10.99.0.2/24", "fd00::2/64"],
            IngressPolicy::SameBridge,
            "cnix0",
        ))
        .unwrap_err();
    assert_eq!(err.to_string(), "ip6tables-save not found in PATH");
    assert_eq!(
        w.kernel.state(IpFamily::V4),
        Vec::<String>::new(),
        "v4 rolled back"
    );
}

#[test]
fn names_are_validated_before_anything_runs() {
    let w = world();
    let bad = Teardown {
        owner: Owner::new("n", "c\"x", "eth0"),
        ips: Vec::new(),
        bridge: None,
    };
    assert!(w.backend.del(&bad).is_err());
    assert!(w.backend.gc("a b", &[]).is_err());
    assert!(w.kernel.calls().is_empty());
}

#[test]
fn check_reports_the_first_missing_rule_like_the_reference() {
    let w = world();
    let c1 = fw(
        "cnixnet",
        "ctr1",
        &["10.99.0.2/24"],
        IngressPolicy::SameBridge,
        "cnix0",
    );
    let err = w.backend.check(&c1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "chain CNI-FORWARD in iptables table filter not found"
    );
    w.add(&c1);
    w.backend.check(&c1).unwrap();
    let state = w.kernel.save(IpFamily::V4).replace(
        "-A CNI-FORWARD -s 10.99.0.2/32",
        "-A CNI-FORWARD -s 10.99.0.3/32",
    );
    w.kernel.load(IpFamily::V4, &state);
    let err = w.backend.check(&c1).unwrap_err();
    assert!(err.is_rule_missing());
    assert_eq!(
        err.to_string(),
        "expected rule [-s 10.99.0.2/32 -j ACCEPT] not found"
    );
    w.add(&c1);
    let state = w.kernel.save(IpFamily::V4).replace(
        "-A CNI-ISOLATION-STAGE-2 -o cnix0",
        "-A CNI-ISOLATION-STAGE-2 -o cnix9",
    );
    w.kernel.load(IpFamily::V4, &state);
    let err = w.backend.check(&c1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "expected CNI-ISOLATION-STAGE-2 rule [-o cnix0 -m comment --comment CNI firewall plugin rules \
         (ingressPolicy: same-bridge|isolated) -j DROP] not found"
    );
}

use crate::iptables::SavedTable;

#[test]
fn gc_forgets_the_ledger_entries_of_stale_attachments() {
    let w = world();
    for cid in ["ctr1", "ctr2"] {
        w.add(&fw(
            "cnixnet",
            cid,
            &["10.99.0.2/24"],
            IngressPolicy::Open,
            "cnix0",
        ));
    }
    let dir = w.backend.lock.path().parent().unwrap().join("attachments");
    let entries = || std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(entries(), 2);
    w.backend.gc("cnixnet", &[("ctr2", "eth0")]).unwrap();
    assert_eq!(entries(), 1);
    // ctr2's entry makes its next ADD read the table: it is a repeat.
    w.kernel.take_calls();
    w.add(&fw(
        "cnixnet",
        "ctr2",
        &["10.99.0.2/24"],
        IngressPolicy::Open,
        "cnix0",
    ));
    assert!(w.kernel.take_calls()[0].starts_with("iptables-save"));
    w.backend.gc("cnixnet", &[]).unwrap();
    assert!(
        !dir.exists(),
        "the ledger directory goes with its last entry"
    );
}

/// A new container after someone removed a shared rule (here the FORWARD jump, as a flush of
/// FORWARD by another tool would): the no-read batch's precondition fails, nothing of it
/// applies, and the reading path puts the jump back along with the container's rules.
#[test]
fn a_new_container_restores_a_shared_rule_removed_by_someone_else() {
    let w = world();
    w.add(&fw(
        "cnixnet",
        "ctr1",
        &["10.99.0.2/24"],
        IngressPolicy::SameBridge,
        "cnix0",
    ));
    let good = w.kernel.state(IpFamily::V4);
    let mut broken = good.clone();
    broken.retain(|l| !(l.starts_with("-A FORWARD ") && l.ends_with("-j CNI-FORWARD")));
    assert_eq!(broken.len() + 1, good.len());
    let text = format!(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n{}\nCOMMIT\n",
        broken.join("\n")
    );
    w.kernel.load(IpFamily::V4, &text);
    w.kernel.take_calls();
    let c2 = fw(
        "cnixnet",
        "ctr2",
        &["10.99.0.3/24"],
        IngressPolicy::SameBridge,
        "cnix0",
    );
    w.add(&c2);
    assert_eq!(
        w.kernel.take_calls(),
        [
            "iptables-restore --noflush -w 30",
            "iptables-save -t filter",
            "iptables-restore --noflush -w 30"
        ]
    );
    w.backend.check(&c2).unwrap();
    let state = w.kernel.state(IpFamily::V4).join("\n");
    assert_eq!(state.matches("-j CNI-FORWARD").count(), 1, "{state}");
    assert_eq!(state.matches("10.99.0.3/32").count(), 2, "{state}");
}

use std::sync::Arc;

use super::*;
use crate::exec::FakeRunner;

/// Reference bridge v1.1.1 state for `ctr1` (10.99.0.2) and `ctr2` (10.99.0.3), iptables-nft 1.8.9.
const GO_V4: &str = include_str!("../../../testdata/go-bridge-v4.save");
/// Same for IPv6 (fd00:99::2, fd00:99::3).
const GO_V6: &str = include_str!("../../../testdata/go-bridge-v6.save");
/// IPv6 state after a reference DEL of `ctr1` failed half-way (its v4 chain was already gone) and
/// a new ADD gave it fd00:99::4: two jumps to the same chain, one stale.
const GO_V6_STALE: &str = include_str!("../../../testdata/go-bridge-v6-stale-jump.save");
/// Empty nat table as a fresh netns prints it.
const EMPTY: &str = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                     :POSTROUTING ACCEPT [0:0]\nCOMMIT\n";
const CHAIN1: &str = "CNI-89724df900daa5db77d08f33";
const CHAIN2: &str = "CNI-9f343930075763797ba11ce0";

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

fn backend() -> (Arc<FakeRunner>, IptablesMasquerade) {
    let fake = Arc::new(FakeRunner::new());
    (fake.clone(), IptablesMasquerade::new(fake))
}

const V4_BATCH: &str = r#"*nat
:CNI-89724df900daa5db77d08f33 - [0:0]
-A CNI-89724df900daa5db77d08f33 -d 10.99.0.0/24 -m comment --comment "name: \"cnixnet\" id: \"ctr1\"" -j ACCEPT
-A CNI-89724df900daa5db77d08f33 ! -d 224.0.0.0/4 -m comment --comment "name: \"cnixnet\" id: \"ctr1\"" -j MASQUERADE
-A POSTROUTING -s 10.99.0.2/32 -m comment --comment "name: \"cnixnet\" id: \"ctr1\"" -j CNI-89724df900daa5db77d08f33
COMMIT
"#;

const V6_BATCH: &str = r#"*nat
:CNI-89724df900daa5db77d08f33 - [0:0]
-A CNI-89724df900daa5db77d08f33 -d fd00:99::/64 -m comment --comment "name: \"cnixnet\" id: \"ctr1\"" -j ACCEPT
-A CNI-89724df900daa5db77d08f33 ! -d ff00::/8 -m comment --comment "name: \"cnixnet\" id: \"ctr1\"" -j MASQUERADE
-A POSTROUTING -s fd00:99::2/128 -m comment --comment "name: \"cnixnet\" id: \"ctr1\"" -j CNI-89724df900daa5db77d08f33
COMMIT
"#;

/// The same batch as a first ADD writes it: `-N` instead of the flushing declaration.
fn first(batch: &str) -> String {
    batch.replace(&format!(":{CHAIN1} - [0:0]"), &format!("-N {CHAIN1}"))
}

/// "Chain already exists" from the `-N` of a first-ADD batch.
const CHAIN_EXISTS: &str = "iptables-restore: line 2 failed: Chain already exists.";

#[test]
fn setup_v4_is_one_restore_without_reading_the_table() {
    let (fake, b) = backend();
    b.setup("cnixnet", "ctr1", "eth0", &[net("10.99.0.2/24")])
        .unwrap();
    assert_eq!(fake.command_lines(), ["iptables-restore --noflush -w 30"]);
    assert_eq!(
        fake.calls()[0].stdin.as_deref(),
        Some(first(V4_BATCH).as_str())
    );
}

#[test]
fn setup_reads_and_repairs_when_the_chain_exists() {
    let (fake, b) = backend();
    fake.fail("iptables-restore", 1, CHAIN_EXISTS)
        .ok("iptables-save", EMPTY);
    b.setup("cnixnet", "ctr1", "eth0", &[net("10.99.0.2/24")])
        .unwrap();
    assert_eq!(
        fake.command_lines(),
        [
            "iptables-restore --noflush -w 30",
            "iptables-save -t nat",
            "iptables-restore --noflush -w 30"
        ]
    );
    assert_eq!(fake.calls()[2].stdin.as_deref(), Some(V4_BATCH));
}

#[test]
fn setup_v6() {
    let (fake, b) = backend();
    b.setup("cnixnet", "ctr1", "eth0", &[net("fd00:99::2/64")])
        .unwrap();
    assert_eq!(fake.command_lines(), ["ip6tables-restore --noflush -w 30"]);
    assert_eq!(
        fake.calls()[0].stdin.as_deref(),
        Some(first(V6_BATCH).as_str())
    );
}

#[test]
fn setup_dual_stack_one_batch_per_family() {
    let (fake, b) = backend();
    // v6 listed first: families are still handled v4 then v6.
    b.setup(
        "cnixnet",
        "ctr1",
        "eth0",
        &[net("fd00:99::2/64"), net("10.99.0.2/24")],
    )
    .unwrap();
    assert_eq!(
        fake.command_lines(),
        [
            "iptables-restore --noflush -w 30",
            "ip6tables-restore --noflush -w 30"
        ]
    );
    assert_eq!(
        fake.calls()[0].stdin.as_deref(),
        Some(first(V4_BATCH).as_str())
    );
    assert_eq!(
        fake.calls()[1].stdin.as_deref(),
        Some(first(V6_BATCH).as_str())
    );
}

#[test]
fn setup_matches_reference_layout_so_rerun_is_a_no_op() {
    // The reference made exactly what we would make: nothing to write.
    let (fake, b) = backend();
    fake.fail("iptables-restore", 1, CHAIN_EXISTS)
        .ok("iptables-save", GO_V4)
        .fail("ip6tables-restore", 1, CHAIN_EXISTS)
        .ok("ip6tables-save", GO_V6);
    b.setup(
        "cnixnet",
        "ctr1",
        "eth0",
        &[net("10.99.0.2/24"), net("fd00:99::2/64")],
    )
    .unwrap();
    assert_eq!(
        fake.command_lines(),
        [
            "iptables-restore --noflush -w 30",
            "iptables-save -t nat",
            "ip6tables-restore --noflush -w 30",
            "ip6tables-save -t nat"
        ]
    );
}

#[test]
fn setup_removes_stale_and_duplicate_jumps_without_touching_a_correct_chain() {
    let (fake, b) = backend();
    fake.fail("ip6tables-restore", 1, CHAIN_EXISTS)
        .ok("ip6tables-save", GO_V6_STALE);
    b.setup("cnixnet", "ctr1", "eth0", &[net("fd00:99::4/64")])
        .unwrap();
    let expected = format!(
        "*nat\n-D POSTROUTING -s fd00:99::2/128 -m comment --comment \"name: \\\"cnixnet\\\" id: \\\"ctr1\\\"\" -j {CHAIN1}\nCOMMIT\n"
    );
    assert_eq!(fake.calls()[2].stdin.as_deref(), Some(expected.as_str()));
}

#[test]
fn setup_rewrites_a_chain_with_other_content() {
    let saved = SavedTable::parse(GO_V4, "nat").unwrap();
    // Two subnets: both ACCEPTs come before the MASQUERADE (the reference appends the second
    // ACCEPT after it, where it can never match).
    let ips = [net("10.99.0.2/24"), net("10.98.0.4/16")];
    let comment = names::comment("cnixnet", "ctr1");
    let batch = setup_batch(&saved, IpFamily::V4, CHAIN1, &comment, &ips)
        .unwrap()
        .render();
    let lines: Vec<&str> = batch.lines().collect();
    assert_eq!(lines[1], format!(":{CHAIN1} - [0:0]"));
    assert!(lines[2].contains("-d 10.99.0.0/24") && lines[2].ends_with("-j ACCEPT"));
    assert!(lines[3].contains("-d 10.98.0.0/16") && lines[3].ends_with("-j ACCEPT"));
    assert!(lines[4].ends_with("-j MASQUERADE"));
    assert!(lines[5].starts_with("-A POSTROUTING -s 10.98.0.4/32 "));
    assert_eq!(lines.len(), 7);
}

#[test]
fn setup_retries_once_after_a_lost_race() {
    let (fake, b) = backend();
    fake.fail("iptables-restore", 1, CHAIN_EXISTS)
        .ok("iptables-save", EMPTY)
        .fail("iptables-restore", 4, "iptables-restore: line 5 failed")
        .ok("iptables-save", EMPTY);
    b.setup("cnixnet", "ctr1", "eth0", &[net("10.99.0.2/24")])
        .unwrap();
    assert_eq!(fake.command_lines().len(), 5);
}

#[test]
fn setup_failure_in_v6_undoes_v4() {
    let (fake, b) = backend();
    let after_v4 = format!("{}{}", V4_BATCH.replace("COMMIT\n", ""), "COMMIT\n");
    fake.ok("iptables-restore", "")
        .fail(
            "ip6tables-restore",
            1,
            "ip6tables-restore: Permission denied",
        )
        .fail("ip6tables-save", 1, "ip6tables-save: Permission denied")
        .ok("iptables-save", &after_v4);
    let err = b.setup(
        "cnixnet",
        "ctr1",
        "eth0",
        &[net("10.99.0.2/24"), net("fd00:99::2/64")],
    );
    assert!(err.unwrap_err().to_string().contains("Permission denied"));
    let calls = fake.calls();
    assert_eq!(calls.len(), 5);
    assert_eq!(calls[4].program, "iptables-restore");
    let undo = calls[4].stdin.as_deref().unwrap_or_default();
    assert!(undo.contains(&format!("-X {CHAIN1}")), "{undo}");
}

#[test]
fn teardown_finds_reference_jump_without_knowing_ips() {
    let (fake, b) = backend();
    fake.ok("iptables-save", GO_V4)
        .ok("iptables-restore", "")
        .ok("ip6tables-save", GO_V6);
    b.teardown("cnixnet", "ctr1", "eth0").unwrap();
    // The families run in parallel: compare each family's calls in order.
    let lines = fake.command_lines();
    let (v6, v4): (Vec<&String>, Vec<&String>) = lines.iter().partition(|l| l.starts_with("ip6"));
    assert_eq!(
        v4,
        ["iptables-save -t nat", "iptables-restore --noflush -w 30"]
    );
    assert_eq!(
        v6,
        ["ip6tables-save -t nat", "ip6tables-restore --noflush -w 30"]
    );
    let c = r#""name: \"cnixnet\" id: \"ctr1\"""#;
    let calls = fake.calls();
    let v4_restore = calls
        .iter()
        .find(|c| c.program == "iptables-restore")
        .unwrap();
    assert_eq!(
        v4_restore.stdin.as_deref().unwrap(),
        format!(
            "*nat\n-D POSTROUTING -s 10.99.0.2/32 -m comment --comment {c} -j {CHAIN1}\n\
             -F {CHAIN1}\n-X {CHAIN1}\nCOMMIT\n"
        )
    );
    let v6_restore = calls
        .iter()
        .find(|c| c.program == "ip6tables-restore")
        .unwrap();
    assert_eq!(
        v6_restore.stdin.as_deref().unwrap(),
        format!(
            "*nat\n-D POSTROUTING -s fd00:99::2/128 -m comment --comment {c} -j {CHAIN1}\n\
             -F {CHAIN1}\n-X {CHAIN1}\nCOMMIT\n"
        )
    );
}

#[test]
fn teardown_removes_every_jump_including_stale_ones() {
    let saved = SavedTable::parse(GO_V6_STALE, "nat").unwrap();
    let c = r#""name: \"cnixnet\" id: \"ctr1\"""#;
    assert_eq!(
        teardown_batch(&saved, &[CHAIN1]).unwrap().render(),
        format!(
            "*nat\n-D POSTROUTING -s fd00:99::2/128 -m comment --comment {c} -j {CHAIN1}\n\
             -D POSTROUTING -s fd00:99::4/128 -m comment --comment {c} -j {CHAIN1}\n\
             -F {CHAIN1}\n-X {CHAIN1}\nCOMMIT\n"
        )
    );
}

#[test]
fn teardown_catches_legacy_prefix_jump() {
    let legacy = format!(
        "*nat\n:POSTROUTING ACCEPT [0:0]\n:{CHAIN1} - [0:0]\n\
         -A POSTROUTING -s 10.99.0.2/24 -m comment --comment \"name: \\\"cnixnet\\\" id: \\\"ctr1\\\"\" -j {CHAIN1}\nCOMMIT\n"
    );
    let saved = SavedTable::parse(&legacy, "nat").unwrap();
    let batch = teardown_batch(&saved, &[CHAIN1]).unwrap().render();
    assert!(batch.contains("-D POSTROUTING -s 10.99.0.2/24 "), "{batch}");
}

#[test]
fn teardown_of_nothing_is_two_saves_and_success() {
    let (fake, b) = backend();
    fake.ok("iptables-save", EMPTY).ok("ip6tables-save", "");
    b.teardown("cnixnet", "ctr9", "eth0").unwrap();
    let mut lines = fake.command_lines();
    lines.sort(); // the families run in parallel
    assert_eq!(lines, ["ip6tables-save -t nat", "iptables-save -t nat"]);
}

#[test]
fn teardown_without_ip6tables_or_nat_table_succeeds() {
    let (fake, b) = backend();
    fake.fail(
        "iptables-save",
        1,
        "iptables-save v1.8.9 (legacy): Cannot initialize: Table does not exist",
    )
    .set_missing("ip6tables-save");
    b.teardown("cnixnet", "ctr1", "eth0").unwrap();
}

#[test]
fn teardown_reports_every_family_error() {
    let (fake, b) = backend();
    fake.fail("iptables-save", 4, "Permission denied (you must be root)")
        .fail("ip6tables-save", 4, "Permission denied (you must be root)");
    let err = b.teardown("cnixnet", "ctr1", "eth0").unwrap_err();
    assert!(
        matches!(&err, NetfilterError::Multiple(v) if v.len() == 2),
        "{err}"
    );
}

#[test]
fn gc_selects_only_stale_chains_of_this_network() {
    let other = "CNI-0000000000000000000000aa";
    let text = GO_V4.replace(
        "COMMIT",
        &format!(
            ":{other} - [0:0]\n-A {other} -m comment --comment \"name: \\\"othernet\\\" id: \\\"ctr1\\\"\" -j ACCEPT\nCOMMIT"
        ),
    );
    let saved = SavedTable::parse(&text, "nat").unwrap();
    let keep: HashSet<&str> = ["ctr2"].into_iter().collect();
    assert_eq!(gc_chains(&saved, "cnixnet", &keep), [CHAIN1]);
    let keep: HashSet<&str> = HashSet::new();
    assert_eq!(
        gc_chains(&saved, "cnixnet", &keep),
        [CHAIN1, CHAIN2],
        "in iptables-save order"
    );
    assert!(
        gc_chains(&saved, "othernet", &keep).is_empty(),
        "name hash mismatch is not ours"
    );

    let (fake, b) = backend();
    fake.ok("iptables-save", &text)
        .ok("iptables-restore", "")
        .ok("ip6tables-save", EMPTY);
    b.gc("cnixnet", &[("ctr2", "eth0")]).unwrap();
    let batch = fake.calls()[1].stdin.clone().unwrap_or_default();
    assert!(
        batch.contains(&format!("-X {CHAIN1}")) && !batch.contains(CHAIN2),
        "{batch}"
    );
}

#[test]
fn check_passes_on_reference_state_and_names_missing_rule() {
    let (fake, b) = backend();
    fake.ok("iptables-save", GO_V4).ok("ip6tables-save", GO_V6);
    b.check(
        "cnixnet",
        "ctr1",
        "eth0",
        &[net("10.99.0.2/24"), net("fd00:99::2/64")],
    )
    .unwrap();

    let (fake, b) = backend();
    fake.ok("iptables-save", GO_V4);
    let err = b
        .check("cnixnet", "ctr1", "eth0", &[net("10.99.0.9/24")])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "rule `iptables -t nat -A POSTROUTING -s 10.99.0.9/32 -m comment --comment \
             \"name: \\\"cnixnet\\\" id: \\\"ctr1\\\"\" -j {CHAIN1}` not found"
        )
    );

    let (fake, b) = backend();
    fake.ok("ip6tables-save", EMPTY);
    let err = b
        .check("cnixnet", "ctr1", "eth0", &[net("fd00:99::2/64")])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("chain {CHAIN1} in ip6tables table nat not found")
    );
}

#[test]
fn bad_names_are_refused_before_any_exec() {
    let (fake, b) = backend();
    assert!(
        b.setup("net\"x", "ctr1", "eth0", &[net("10.0.0.2/24")])
            .is_err()
    );
    assert!(b.teardown("net", "a b", "eth0").is_err());
    assert!(b.gc("net\n", &[]).is_err());
    let long = "a".repeat(250);
    assert!(
        b.setup("net", &long, "eth0", &[net("10.0.0.2/24")])
            .is_err()
    );
    assert!(fake.calls().is_empty());
}

#[test]
fn status_probes_iptables() {
    let (fake, b) = backend();
    fake.set_missing("iptables");
    let err = b.status().unwrap_err();
    assert_eq!(err.to_string(), "iptables backend is not usable");
}

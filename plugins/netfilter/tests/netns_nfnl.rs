//! Root-only tests of the nf_tables netlink reader against rules iptables-nft really wrote,
//! each in a throwaway network namespace: what it reads back must be what `iptables-save`
//! prints, and what it deletes must be exactly the rules asked for. Run:
//! `cargo test -p cni-netfilter --test netns_nfnl -- --ignored`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::net::IpAddr;
use std::sync::Arc;

use cni_netfilter::firewall::{
    ContainerFirewall, FirewallBackend, HostLock, IngressPolicy, IptablesFirewall, Owner, Teardown,
};
use cni_netfilter::iptables::{IpFamily, SavedTable};
use cni_netfilter::nfnl::{NfRules, NfnlRules};
use common::{CountingRunner, Netns, require_root};

fn restore(ns: &Netns, tool: &str, lines: &[String]) {
    let batch = format!("*filter\n{}\nCOMMIT\n", lines.join("\n"));
    let path = std::env::temp_dir().join(format!("nfnl-{}-{}", ns.name, lines.len()));
    std::fs::write(&path, batch).unwrap();
    ns.exec(tool, &["--noflush", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(path);
}

/// Fills a new chain `BIG` with `count` accept rules for `10.<net>.x.y/32`, commented
/// `<label><i>`.
fn big_chain(ns: &Netns, count: usize, net: u8, label: &str) {
    let mut lines = vec![":BIG - [0:0]".to_owned()];
    lines.extend((0..count).map(|i| {
        format!(
            "-A BIG -s 10.{net}.{}.{}/32 -m comment --comment \"{label}{i}\" -j ACCEPT",
            i / 250,
            i % 250
        )
    }));
    restore(ns, "iptables-restore", &lines);
}

fn saved(ns: &Netns, tool: &str) -> SavedTable {
    SavedTable::parse(&ns.exec(tool, &["-t", "filter"]), "filter").unwrap()
}

/// Rules of every shape the firewall writes, plus some the reader must decline to interpret.
fn sample_rules(v6: bool) -> Vec<String> {
    let (a, b) = if v6 {
        ("fd00:99::2/128", "fd00:99::3/128")
    } else {
        ("10.99.0.2/32", "10.99.0.3/32")
    };
    let owner =
        r#"-m comment --comment "name: \"n\" id: \"c1\" if: \"eth0\" same-bridge: \"br0\"""#;
    [
        ":CNI-FORWARD - [0:0]".to_owned(),
        ":CNI-ADMIN - [0:0]".to_owned(),
        ":CNI-ISOLATION-STAGE-1 - [0:0]".to_owned(),
        ":CNI-ISOLATION-STAGE-2 - [0:0]".to_owned(),
        r#"-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD"#.to_owned(),
        "-A FORWARD -j CNI-ISOLATION-STAGE-1".to_owned(),
        r#"-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN"#.to_owned(),
        format!("-A CNI-FORWARD -d {a} -m conntrack --ctstate RELATED,ESTABLISHED {owner} -j ACCEPT"),
        format!("-A CNI-FORWARD -s {a} {owner} -j ACCEPT"),
        format!("-A CNI-FORWARD -s {b} -j ACCEPT"),
        r#"-A CNI-ISOLATION-STAGE-1 -i br0 ! -o br0 -m comment --comment "x (y)" -j CNI-ISOLATION-STAGE-2"#.to_owned(),
        "-A CNI-ISOLATION-STAGE-1 -i br1 -o br1 -j DROP".to_owned(),
        "-A CNI-ISOLATION-STAGE-1 ! -i veth+ -g CNI-ADMIN".to_owned(),
        "-A CNI-ISOLATION-STAGE-1 -j RETURN".to_owned(),
        "-A CNI-ISOLATION-STAGE-2 -o br0 -m comment --comment \"s\" -j DROP".to_owned(),
        "-A CNI-ISOLATION-STAGE-2 -p tcp -j REJECT".to_owned(),
    ]
    .into()
}

#[test]
#[ignore = "needs root; creates its own netns"]
fn what_netlink_reads_is_what_iptables_save_prints() {
    require_root();
    let ns = Netns::new("nfread");
    for (family, restore_tool, save_tool) in [
        (IpFamily::V4, "iptables-restore", "iptables-save"),
        (IpFamily::V6, "ip6tables-restore", "ip6tables-save"),
    ] {
        restore(&ns, restore_tool, &sample_rules(family == IpFamily::V6));
        let table = saved(&ns, save_tool);
        let _in = ns.enter();
        let mut interpreted = 0;
        for chain in [
            "FORWARD",
            "CNI-FORWARD",
            "CNI-ISOLATION-STAGE-1",
            "CNI-ISOLATION-STAGE-2",
        ] {
            let read = NfnlRules::default()
                .list(family, "filter", chain, None)
                .unwrap();
            let want: Vec<_> = table.rules_in(chain).collect();
            assert_eq!(read.len(), want.len(), "{family:?} {chain}");
            for (got, want) in read.iter().zip(&want) {
                assert_eq!(
                    got.comment().as_deref(),
                    want.comment(),
                    "{chain}: {want:?}"
                );
                if let Some(args) = got.iptables_args() {
                    assert_eq!(args, want.args, "{chain}");
                    interpreted += 1;
                }
            }
            let mut handles: Vec<u64> = read.iter().map(|r| r.handle).collect();
            handles.dedup();
            assert_eq!(handles.len(), read.len(), "handles are distinct");
        }
        // Everything but the three address rules and the protocol one.
        assert_eq!(interpreted, 8, "{family:?}");
    }
}

#[test]
#[ignore = "needs root; creates its own netns"]
fn a_limited_read_stops_early_and_a_missing_chain_or_table_is_empty() {
    require_root();
    let ns = Netns::new("nflimit");
    let _in = ns.enter();
    // No filter table in nf_tables yet at all.
    assert!(
        NfnlRules::default()
            .list(IpFamily::V4, "filter", "FORWARD", None)
            .unwrap()
            .is_empty()
    );
    drop(_in);
    big_chain(&ns, 600, 1, "rule ");
    let _in = ns.enter();
    let all = NfnlRules::default()
        .list(IpFamily::V4, "filter", "BIG", None)
        .unwrap();
    assert_eq!(all.len(), 600, "a dump over several datagrams");
    assert_eq!(all[599].comment().as_deref(), Some("rule 599"));
    let top = NfnlRules::default()
        .list(IpFamily::V4, "filter", "BIG", Some(3))
        .unwrap();
    assert_eq!(top, all[..3].to_vec());
    assert!(
        NfnlRules::default()
            .list(IpFamily::V4, "filter", "NOPE", None)
            .unwrap()
            .is_empty()
    );
    assert!(
        NfnlRules::default()
            .list(IpFamily::V6, "filter", "BIG", None)
            .unwrap()
            .is_empty()
    );
}

#[test]
#[ignore = "needs root; creates its own netns"]
fn delete_removes_exactly_the_handles_and_all_or_nothing() {
    require_root();
    let ns = Netns::new("nfdel");
    restore(&ns, "iptables-restore", &sample_rules(false));
    let before = saved(&ns, "iptables-save");
    let _in = ns.enter();
    let rules = NfnlRules::default()
        .list(IpFamily::V4, "filter", "CNI-FORWARD", None)
        .unwrap();
    let owned: Vec<u64> = rules
        .iter()
        .filter(|r| r.comment().is_some_and(|c| c.contains("\"c1\"")))
        .map(|r| r.handle)
        .collect();
    assert_eq!(owned.len(), 2);
    // One stale handle spoils the batch: nothing is deleted.
    let stale = rules.iter().map(|r| r.handle).max().unwrap() + 1000;
    let err = NfnlRules::default()
        .delete(IpFamily::V4, "filter", "CNI-FORWARD", &[owned[0], stale])
        .unwrap_err();
    assert!(err.to_string().contains("delete rules"), "{err}");
    drop(_in);
    assert_eq!(saved(&ns, "iptables-save").rules, before.rules);
    let _in = ns.enter();
    NfnlRules::default()
        .delete(IpFamily::V4, "filter", "CNI-FORWARD", &owned)
        .unwrap();
    drop(_in);
    let after = saved(&ns, "iptables-save");
    let mut want = before.rules.clone();
    want.retain(|r| !r.comment().is_some_and(|c| c.contains("\"c1\"")));
    assert_eq!(after.rules, want);
    assert_eq!(after.rules.len(), before.rules.len() - 2);
}

fn container(cid: &str, ip: &str) -> ContainerFirewall {
    let ips: Vec<IpAddr> = vec![ip.parse().unwrap()];
    let owner = Owner::new("n", cid, "eth0");
    ContainerFirewall::new(
        owner,
        &ips,
        IngressPolicy::SameBridge,
        Some("br0"),
        "CNI-ADMIN",
    )
    .unwrap()
}

/// The firewall over the real tools and the real netlink: every ADD is one exec,
/// every DEL (the last one's removal of the shared chains included) is none, and the table ends
/// as the tools alone would leave it.
#[test]
#[ignore = "needs root; creates its own netns"]
fn later_containers_cost_one_exec_to_add_and_every_del_none() {
    require_root();
    let (fast, plain) = (Netns::new("nffast"), Netns::new("nfplain"));
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let runner = Arc::new(CountingRunner::default());
    let with_nf = IptablesFirewall::new(runner.clone(), HostLock::in_dir(d1.path()))
        .with_nf_rules(Arc::new(NfnlRules::default()), true);
    let tools_only = IptablesFirewall::new(
        Arc::new(CountingRunner::default()),
        HostLock::in_dir(d2.path()),
    );
    let state = |ns: &Netns| {
        ns.exec("iptables-save", &["-t", "filter"])
            .lines()
            .filter(|l| l.starts_with('-') || l.starts_with(":CNI"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let cs = [
        container("c1", "10.99.0.2"),
        container("c2", "10.99.0.3"),
        container("c3", "10.99.0.4"),
    ];
    for c in &cs {
        {
            let _in = fast.enter();
            runner.take();
            with_nf.add(c).unwrap();
        }
        // The first one too: planned on the (empty) table read over netlink.
        assert_eq!(
            runner.total(),
            1,
            "ADD {}: one iptables-restore",
            c.owner.container_id
        );
        let _in = plain.enter();
        tools_only.add(c).unwrap();
        drop(_in);
        assert_eq!(state(&fast), state(&plain));
    }
    for cid in ["c2", "c1", "c3"] {
        let teardown = Teardown::new(Owner::new("n", cid, "eth0"), &[], None).unwrap();
        {
            let _in = fast.enter();
            runner.take();
            with_nf.del(&teardown).unwrap();
        }
        assert_eq!(
            runner.total(),
            0,
            "DEL {cid}: no exec, the last one included"
        );
        let _in = plain.enter();
        tools_only.del(&teardown).unwrap();
        drop(_in);
        assert_eq!(state(&fast), state(&plain), "after DEL {cid}");
    }
    assert!(
        !state(&fast).iter().any(|l| l.contains("CNI")),
        "{:?}",
        state(&fast)
    );
}

/// One reader serves many requests on its shared socket, and follows the thread into another
/// namespace instead of answering from the first one.
#[test]
#[ignore = "needs root; creates its own netns"]
fn one_reader_serves_many_requests_and_follows_the_namespace() {
    use cni_netfilter::nfnl::Deletion;
    require_root();
    let (a, b) = (Netns::new("nfsha"), Netns::new("nfshb"));
    restore(
        &a,
        "iptables-restore",
        &[
            ":ONLY-A - [0:0]".to_owned(),
            "-A ONLY-A -j RETURN".to_owned(),
        ],
    );
    restore(&b, "iptables-restore", &[":ONLY-B - [0:0]".to_owned()]);
    let nf = NfnlRules::default();
    {
        let _in = a.enter();
        for _ in 0..20 {
            assert!(nf.has_chain(IpFamily::V4, "filter", "ONLY-A").unwrap());
            assert!(!nf.has_chain(IpFamily::V4, "filter", "ONLY-B").unwrap());
            assert_eq!(
                nf.list(IpFamily::V4, "filter", "ONLY-A", None)
                    .unwrap()
                    .len(),
                1
            );
        }
        // A failed transaction leaves the reader usable.
        let gone = Deletion::Rule {
            chain: "ONLY-A",
            handle: u64::MAX,
        };
        assert!(nf.delete_all(IpFamily::V4, "filter", &[gone]).is_err());
        let flush = Deletion::Flush { chain: "ONLY-A" };
        let chain = Deletion::Chain { chain: "ONLY-A" };
        nf.delete_all(IpFamily::V4, "filter", &[flush, chain])
            .unwrap();
        assert!(!nf.has_chain(IpFamily::V4, "filter", "ONLY-A").unwrap());
    }
    let _in = b.enter();
    assert!(nf.has_chain(IpFamily::V4, "filter", "ONLY-B").unwrap());
    assert!(!nf.has_chain(IpFamily::V4, "filter", "ONLY-A").unwrap());
}

/// A dump the ruleset changes under (another process inserting and deleting at the top of the
/// chain being read) is started again, and in the end either complete and exact or an error —
/// never a listing with rules missed or repeated, which a teardown plan would act on.
#[test]
#[ignore = "needs root; creates its own netns"]
fn a_dump_raced_by_changes_is_exact_or_an_error() {
    require_root();
    let ns = Netns::new("nfrace");
    big_chain(&ns, 3000, 2, "r");
    let nf = NfnlRules::default();
    let initial: Vec<u64> = {
        let _in = ns.enter();
        let all = nf.list(IpFamily::V4, "filter", "BIG", None).unwrap();
        all.iter().map(|r| r.handle).collect()
    };
    assert_eq!(initial.len(), 3000);
    let churn = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.name, "sh", "-c"])
        .arg("while :; do iptables -I BIG 1 -j RETURN; iptables -D BIG -j RETURN; done")
        .spawn()
        .unwrap();
    let churn = Reaped(churn);
    let (mut exact, mut refused) = (0, 0);
    let _in = ns.enter();
    for _ in 0..100 {
        match nf.list(IpFamily::V4, "filter", "BIG", None) {
            Ok(rules) => {
                let ours: Vec<u64> = rules
                    .iter()
                    .filter(|r| r.comment().is_some())
                    .map(|r| r.handle)
                    .collect();
                // (Compared without printing 3000 handles on failure.)
                assert!(
                    ours == initial,
                    "a listing missed or repeated rules: {} listed, {} expected",
                    ours.len(),
                    initial.len()
                );
                exact += 1;
            }
            Err(e) => {
                assert!(e.to_string().contains("list rules"), "{e}");
                refused += 1;
            }
        }
    }
    drop(churn);
    eprintln!("{exact} exact listings, {refused} refused as interrupted");
    // Quiet again (the last iptables the loop started may still finish): the same reader
    // lists the chain exactly.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let settled = nf.list(IpFamily::V4, "filter", "BIG", None).unwrap();
    let ours: Vec<u64> = settled
        .iter()
        .filter(|r| r.comment().is_some())
        .map(|r| r.handle)
        .collect();
    assert!(ours == initial, "settled listing differs");
}

/// Kills the child on drop (a failed assertion must not leave the churn loop running).
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

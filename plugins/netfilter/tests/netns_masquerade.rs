//! Root-only tests on the real kernel, each inside throwaway network namespaces it creates and
//! deletes (also on failure). Run: `cargo test -p cni-netfilter --test netns_masquerade -- --ignored`.
//! The machine's own netns is never touched.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cni_netfilter::masquerade::{IptablesMasquerade, MasqueradeBackend, NftablesMasquerade};
use cni_netfilter::{CommandRunner, SystemRunner};
use common::{
    CountingRunner, LegacyRunner, Netns, bridge_conf, go_bridge, legacy_state, require_root,
};
use ipnetwork::IpNetwork;

fn nets(list: &[&str]) -> Vec<IpNetwork> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn iptables() -> IptablesMasquerade {
    IptablesMasquerade::new(Arc::new(SystemRunner))
}

const DUAL: [&str; 2] = ["10.99.0.2/24", "fd00:99::2/64"];

/// Setup, re-setup over a tampered chain, check and teardown on one iptables flavour.
fn iptables_round_trip(runner: Arc<dyn CommandRunner>, legacy: bool) {
    require_root();
    let host = Netns::new(if legacy { "leg" } else { "ipt" });
    let state = |ns: &Netns| {
        if legacy {
            (legacy_state(ns, false), legacy_state(ns, true))
        } else {
            (ns.iptables_state(false), ns.iptables_state(true))
        }
    };
    let base = state(&host);
    let _in = host.enter();
    let b = IptablesMasquerade::new(runner.clone());

    b.setup("cnixnet", "ctr1", "eth0", &nets(&DUAL)).unwrap();
    let after = state(&host);
    assert_eq!(after.0.len(), 4, "{after:?}"); // chain + jump + ACCEPT + MASQUERADE
    assert_eq!(after.1.len(), 4, "{after:?}");
    assert!(after.0.contains(
        &r#"-A POSTROUTING -s 10.99.0.2/32 -m comment --comment "name: \"cnixnet\" id: \"ctr1\"" -j CNI-89724df900daa5db77d08f33"#.to_owned()
    ));
    b.check("cnixnet", "ctr1", "eth0", &nets(&DUAL)).unwrap();

    // Re-setup is a no-op, and repairs a chain someone appended to (the `:CHAIN` declaration
    // in the --noflush batch flushes the existing chain before our rules are re-added).
    b.setup("cnixnet", "ctr1", "eth0", &nets(&DUAL)).unwrap();
    assert_eq!(state(&host), after, "re-setup changed state");
    // (The legacy runner maps `iptables` to `iptables-legacy`.)
    let out = runner
        .run(
            "iptables",
            &[
                "-w",
                "-t",
                "nat",
                "-A",
                "CNI-89724df900daa5db77d08f33",
                "-j",
                "RETURN",
            ],
            None,
        )
        .unwrap();
    assert!(out.success(), "{}", out.stderr);
    assert_ne!(state(&host), after);
    b.setup("cnixnet", "ctr1", "eth0", &nets(&DUAL)).unwrap();
    assert_eq!(state(&host), after, "tampered chain not repaired");

    let err = b
        .check("cnixnet", "ctr1", "eth0", &nets(&["10.99.0.7/24"]))
        .unwrap_err();
    assert!(err.to_string().contains("-s 10.99.0.7/32"), "{err}");

    b.teardown("cnixnet", "ctr1", "eth0").unwrap();
    assert_eq!(state(&host), base);
    b.teardown("cnixnet", "ctr1", "eth0").unwrap();
    assert!(b.check("cnixnet", "ctr1", "eth0", &nets(&DUAL)).is_err());
}

#[test]
#[ignore = "needs root; creates its own netns"]
fn iptables_nft_setup_check_teardown_is_idempotent() {
    iptables_round_trip(Arc::new(SystemRunner), false);
}

#[test]
#[ignore = "needs root; creates its own netns"]
fn iptables_legacy_setup_check_teardown_is_idempotent() {
    iptables_round_trip(Arc::new(LegacyRunner), true);
}

#[test]
#[ignore = "needs root; creates its own netns and runs /usr/lib/cni/bridge"]
fn reference_add_then_our_teardown() {
    require_root();
    let (host, ctr) = (Netns::new("goh"), Netns::new("goc"));
    let base = (host.iptables_state(false), host.iptables_state(true));
    let ipam = tempfile::tempdir().unwrap();
    let conf = bridge_conf(&ipam.path().display().to_string());
    go_bridge("ADD", &host, &ctr, "ctr1", &conf);
    assert_eq!(host.iptables_state(false).len(), 4);

    {
        let _in = host.enter();
        // No addresses needed: this is the DEL-after-netns-is-gone path.
        iptables().teardown("cnixnet", "ctr1", "eth0").unwrap();
    }
    assert_eq!(
        (host.iptables_state(false), host.iptables_state(true)),
        base
    );
}

#[test]
#[ignore = "needs root; creates its own netns and runs /usr/lib/cni/bridge"]
fn our_setup_matches_reference_and_reference_del_removes_it() {
    require_root();
    let (host, ctr) = (Netns::new("goh"), Netns::new("goc"));
    let base = (host.iptables_state(false), host.iptables_state(true));
    let ipam = tempfile::tempdir().unwrap();
    let conf = bridge_conf(&ipam.path().display().to_string());
    let out = go_bridge("ADD", &host, &ctr, "ctr1", &conf);
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ips: Vec<IpNetwork> = result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ip| ip["address"].as_str().unwrap().parse().unwrap())
        .collect();
    let go_state = (host.iptables_state(false), host.iptables_state(true));

    {
        let _in = host.enter();
        let b = iptables();
        b.check("cnixnet", "ctr1", "eth0", &ips).unwrap(); // our CHECK accepts the reference's rules
        b.teardown("cnixnet", "ctr1", "eth0").unwrap();
        b.setup("cnixnet", "ctr1", "eth0", &ips).unwrap();
    }
    assert_eq!(
        (host.iptables_state(false), host.iptables_state(true)),
        go_state,
        "layout differs"
    );

    go_bridge("DEL", &host, &ctr, "ctr1", &conf);
    assert_eq!(
        (host.iptables_state(false), host.iptables_state(true)),
        base
    );
}

#[test]
#[ignore = "needs root; creates its own netns"]
fn iptables_gc_removes_only_stale_attachments_of_the_network() {
    require_root();
    let host = Netns::new("gc");
    let _in = host.enter();
    let b = iptables();
    for (i, id) in ["ctr1", "ctr2", "ctr3"].iter().enumerate() {
        b.setup(
            "cnixnet",
            id,
            "eth0",
            &nets(&[&format!("10.99.0.{}/24", i + 2)]),
        )
        .unwrap();
    }
    b.setup(
        "othernet",
        "ctr1",
        "eth0",
        &nets(&["10.98.0.2/24", "fd00:98::2/64"]),
    )
    .unwrap();
    b.gc("cnixnet", &[("ctr2", "eth1")]).unwrap();
    let state = host.iptables_state(false).join("\n");
    assert!(
        state.contains(r#"name: \"cnixnet\" id: \"ctr2\""#),
        "{state}"
    );
    assert!(
        !state.contains(r#"name: \"cnixnet\" id: \"ctr1\""#),
        "{state}"
    );
    assert!(
        !state.contains(r#"name: \"cnixnet\" id: \"ctr3\""#),
        "{state}"
    );
    assert!(
        state.contains(r#"name: \"othernet\" id: \"ctr1\""#),
        "{state}"
    );
    assert_eq!(host.iptables_state(true).len(), 4, "othernet v6 untouched");
}

#[test]
#[ignore = "needs root; creates its own netns"]
fn nftables_setup_check_teardown_gc() {
    require_root();
    let host = Netns::new("nft");
    let _in = host.enter();
    let b = NftablesMasquerade::new(Arc::new(SystemRunner));
    b.status().unwrap();
    b.teardown("cnixnet", "ctr1", "eth0").unwrap(); // no table yet

    b.setup("cnixnet", "ctr1", "eth0", &nets(&DUAL)).unwrap();
    b.setup("cnixnet", "ctr2", "eth0", &nets(&["10.99.0.3/24"]))
        .unwrap();
    b.setup("cnixnet", "ctr1", "eth0", &nets(&DUAL)).unwrap();
    assert_eq!(
        host.nft_masq_rules().len(),
        3,
        "{:?}",
        host.nft_masq_rules()
    );
    b.check("cnixnet", "ctr1", "eth0", &nets(&DUAL)).unwrap();
    b.check("cnixnet", "ctr2", "eth0", &nets(&["10.99.0.3/24"]))
        .unwrap();
    assert!(b.check("cnixnet", "ctr1", "eth1", &nets(&DUAL)).is_err());

    b.teardown("cnixnet", "ctr1", "eth0").unwrap();
    let left = host.nft_masq_rules();
    assert_eq!(left.len(), 1);
    assert!(
        left[0].starts_with("ip saddr 10.99.0.3 ip daddr != 10.99.0.0/24 masquerade"),
        "{left:?}"
    );

    b.gc("cnixnet", &[]).unwrap();
    assert!(host.nft_masq_rules().is_empty());
    b.gc("cnixnet", &[]).unwrap();
}

/// Execs and wall time of setup + teardown (dual-stack), printed for the report.
#[test]
#[ignore = "needs root; creates its own netns"]
fn measure_execs_and_wall_time() {
    require_root();
    const RUNS: u32 = 20;
    let host = Netns::new("bench");
    let _in = host.enter();
    let runner = Arc::new(CountingRunner::default());
    let dyn_runner: Arc<dyn CommandRunner> = runner.clone();
    let backends: [(&str, Box<dyn MasqueradeBackend>); 2] = [
        (
            "iptables",
            Box::new(IptablesMasquerade::new(dyn_runner.clone())),
        ),
        ("nftables", Box::new(NftablesMasquerade::new(dyn_runner))),
    ];
    for (name, b) in &backends {
        for (label, ips) in [("v4", nets(&DUAL[..1])), ("dual", nets(&DUAL))] {
            b.setup("cnixnet", "ctr1", "eth0", &ips).unwrap();
            let setup = runner.take();
            b.setup("cnixnet", "ctr1", "eth0", &ips).unwrap();
            let resetup = runner.take();
            b.teardown("cnixnet", "ctr1", "eth0").unwrap();
            let teardown = runner.take();
            b.teardown("cnixnet", "ctr1", "eth0").unwrap();
            let noop = runner.take();
            eprintln!(
                "{name} {label}: setup {setup:?}, setup again {resetup:?}, teardown {teardown:?}, teardown of nothing {noop:?}"
            );
            let mut times: Vec<Duration> = (0..RUNS)
                .map(|_| {
                    let start = Instant::now();
                    b.setup("cnixnet", "ctr1", "eth0", &ips).unwrap();
                    b.teardown("cnixnet", "ctr1", "eth0").unwrap();
                    start.elapsed()
                })
                .collect();
            runner.take();
            times.sort();
            eprintln!(
                "{name} {label}: setup+teardown over {RUNS} runs: min {:?} median {:?} max {:?}",
                times[0],
                times[times.len() / 2],
                times[times.len() - 1]
            );
        }
    }
}

/// A runtime starting many pods at once: parallel setups and teardowns of different attachments
/// must neither fail nor lose each other's rules.
fn concurrent(backend: Arc<dyn MasqueradeBackend>, count: usize) -> Netns {
    require_root();
    let host = Netns::new("par");
    let path = host.name.clone();
    let run_all = |op: &'static str| {
        std::thread::scope(|scope| {
            for i in 0..count {
                let (b, path) = (backend.clone(), path.clone());
                scope.spawn(move || {
                    let ns = Netns { name: path };
                    let _in = ns.enter();
                    std::mem::forget(ns); // the outer handle owns deletion
                    let id = format!("ctr{i}");
                    let ips = nets(&[
                        &format!("10.99.{}.{}/16", i / 200, i % 200 + 2),
                        &format!("fd00:99::{:x}/64", i + 2),
                    ]);
                    match op {
                        "setup" => b.setup("cnixnet", &id, "eth0", &ips).unwrap(),
                        _ => b.teardown("cnixnet", &id, "eth0").unwrap(),
                    }
                });
            }
        });
    };
    run_all("setup");
    {
        let _in = host.enter();
        for i in 0..count {
            let id = format!("ctr{i}");
            let ips = nets(&[
                &format!("10.99.{}.{}/16", i / 200, i % 200 + 2),
                &format!("fd00:99::{:x}/64", i + 2),
            ]);
            backend.check("cnixnet", &id, "eth0", &ips).unwrap();
        }
    }
    run_all("teardown");
    host
}

#[test]
#[ignore = "needs root; creates its own netns"]
fn iptables_concurrent_attachments() {
    let runner = Arc::new(CountingRunner::default());
    let host = concurrent(Arc::new(IptablesMasquerade::new(runner.clone())), 24);
    assert!(host.iptables_state(false).is_empty() && host.iptables_state(true).is_empty());
    // 24 setups + 24 checks + 24 teardowns; more restores than 4 x 24 means retries happened.
    eprintln!("execs under contention: {:?}", runner.take());
}

#[test]
#[ignore = "needs root; creates its own netns"]
fn nftables_concurrent_attachments() {
    let host = concurrent(
        Arc::new(NftablesMasquerade::new(Arc::new(SystemRunner))),
        24,
    );
    assert!(host.nft_masq_rules().is_empty());
}

/// ADD with the chain made over netlink looks exactly like the tools' ADD; DEL over nf_tables
/// netlink: no exec, the other attachment untouched, both families back to their baseline, a
/// repeated DEL still clean; a jump from elsewhere keeps the chain busy and the tools take over.
#[test]
#[ignore = "needs root; creates its own netns"]
fn iptables_nft_teardown_over_netlink_runs_no_tool() {
    use cni_netfilter::nfnl::NfnlRules;
    require_root();
    let host = Netns::new("masqnl");
    let base = (host.iptables_state(false), host.iptables_state(true));
    let runner = Arc::new(CountingRunner::default());
    let b =
        IptablesMasquerade::new(runner.clone()).with_nf_rules(Arc::new(NfnlRules::default()), true);
    // The same setup by the tools alone, in a second netns, for comparison.
    let plain = Netns::new("masqplain");
    {
        let _in = plain.enter();
        iptables()
            .setup("cnixnet", "ctr1", "eth0", &nets(&DUAL))
            .unwrap();
    }
    let _in = host.enter();
    // Both families' tables exist before the netlink path can create a chain in them.
    b.setup("cnixnet", "ctr0", "eth0", &nets(&DUAL)).unwrap();
    b.teardown("cnixnet", "ctr0", "eth0").unwrap();
    runner.take();
    b.setup("cnixnet", "ctr1", "eth0", &nets(&DUAL)).unwrap();
    assert_eq!(
        runner.take().into_iter().collect::<Vec<_>>(),
        [
            ("ip6tables-restore".to_owned(), 1),
            ("iptables-restore".to_owned(), 1)
        ],
        "one batch per family, no read"
    );
    let with_one = (host.iptables_state(false), host.iptables_state(true));
    assert_eq!(
        with_one,
        (plain.iptables_state(false), plain.iptables_state(true)),
        "a chain made over netlink looks like one made by iptables"
    );
    b.setup("cnixnet", "ctr2", "eth0", &nets(&["10.99.0.3/24"]))
        .unwrap();
    runner.take();
    b.teardown("cnixnet", "ctr2", "eth0").unwrap();
    assert_eq!(runner.total(), 0, "teardown ran a tool");
    assert_eq!(
        (host.iptables_state(false), host.iptables_state(true)),
        with_one
    );
    b.teardown("cnixnet", "ctr2", "eth0").unwrap();
    assert_eq!(runner.total(), 0, "repeated teardown ran a tool");

    // Someone jumps to ctr1's chain from a chain of their own: the transaction fails as a
    // whole and the tools remove that jump with the rest, as before.
    host.exec("iptables", &["-t", "nat", "-N", "CUSTOM"]);
    host.exec(
        "iptables",
        &[
            "-t",
            "nat",
            "-A",
            "CUSTOM",
            "-j",
            "CNI-89724df900daa5db77d08f33",
        ],
    );
    b.teardown("cnixnet", "ctr1", "eth0").unwrap();
    assert!(runner.total() > 0, "the tools took over");
    assert_eq!(
        (host.iptables_state(false), host.iptables_state(true)),
        base
    );
}

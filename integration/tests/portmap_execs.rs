//! portmap cost against the Go reference: the netfilter tools each verb runs (wrapped by logging
//! scripts placed first on the plugin's `PATH`) and the wall time of ADD + DEL cycles. Ours
//! reads each table once and writes it at most once (nothing when nothing changes); the
//! reference runs one `iptables` per check, insert and delete. The numbers are printed for the
//! record (`--nocapture`); the exec counts are asserted.

use std::time::{Duration, Instant};

use integration_tests::firewall::tool_stand_ins;
use integration_tests::locate::CHILD_PATH;
use integration_tests::portmap::{Portmap, mappings, nat_state, nft_hostport};
use integration_tests::{Netns, PortmapNet, World};
use serde_json::{Value, json};

/// `<world>/wrapbin/<tool>`: log `<tool> <args>` to `<world>/tool.log`, exec the real tool.
fn wrap_tools(world: &World) -> String {
    let log = world.root().join("tool.log");
    let dir = tool_stand_ins(world, "wrapbin", |tool, real| {
        format!(
            "#!/bin/sh\necho \"{tool} $*\" >> '{}'\nexec {real} \"$@\"\n",
            log.display()
        )
    });
    format!("{dir}:{CHILD_PATH}")
}

fn take_log(world: &World) -> Vec<String> {
    let path = world.root().join("tool.log");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let _ = std::fs::remove_file(&path);
    text.lines().map(str::to_owned).collect()
}

fn writes(calls: &[String]) -> usize {
    calls
        .iter()
        .filter(|c| c.contains("-restore") || c.starts_with("nft -f"))
        .count()
}

fn prev(net: &PortmapNet<'_>, ctr: &Netns) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": net.bridge()}, {"name": "vethcost0"},
                       {"name": "eth0", "sandbox": ctr.path_str()}],
        "ips": [{"interface": 2, "address": "10.99.7.2/24", "gateway": "10.99.7.1"},
                {"interface": 2, "address": "fd99:7::2/64", "gateway": "fd99:7::1"}],
    })
}

fn maps() -> Value {
    mappings(&[
        (8080, 80, "tcp", None),
        (8443, 443, "tcp", None),
        (5353, 53, "udp", Some("127.0.0.1")),
    ])
}

/// Runs `verb` with `which` portmap; returns (tool calls, wall time).
fn run(net: &PortmapNet<'_>, which: Portmap, path: &str, verb: &str) -> (Vec<String>, Duration) {
    let ctr = &net.world().containers()[0];
    let conf = net.conf("1.0.0", Some(&prev(net, ctr)), Some(&maps()));
    let call = net.call(verb, &conf, "ctr-cost", ctr).env("PATH", path);
    let start = Instant::now();
    let out = net.exec(which, &call);
    let took = start.elapsed();
    // The reference's CHECK fails on dual-stack containers (plugins#819); counted anyway.
    assert!(
        out.success() || (which == Portmap::Go && verb == "CHECK"),
        "{}",
        out.describe()
    );
    (take_log(net.world()), took)
}

/// Exec counts per verb for `which` on `backend`: ADD, ADD again, CHECK, DEL, DEL again.
fn profile(which: Portmap, backend: &str) -> Vec<(String, Vec<String>)> {
    let world = World::new();
    let net = PortmapNet::new(
        &world,
        "pm-cost",
        "c",
        &["10.99.7.0/24"],
        json!({"backend": backend}),
    );
    world.container();
    let path = wrap_tools(&world);
    let verbs = ["ADD", "ADD", "CHECK", "DEL", "DEL"];
    let out: Vec<(String, Vec<String>)> = verbs
        .iter()
        .map(|verb| (verb.to_string(), run(&net, which, &path, verb).0))
        .collect();
    for (verb, calls) in &out {
        eprintln!(
            "{which:?}/{backend} {verb}: {} execs, {} writes",
            calls.len(),
            writes(calls)
        );
    }
    if which == Portmap::Ours {
        assert!(nat_state(world.host()).is_empty() && nft_hostport(world.host()).is_empty());
    }
    out
}

#[test]
fn iptables_reads_once_and_writes_at_most_once_per_family() {
    let ours = profile(Portmap::Ours, "iptables");
    let go = profile(Portmap::Go, "iptables");
    let total = |p: &[(String, Vec<String>)], i: usize| p[i].1.len();
    let mut sorted = ours[0].1.clone();
    sorted.sort();
    // `-w <seconds>`: the default lock timeout (the plugins run without the test hook here).
    let restore = cni_netfilter::exec::restore_args().join(" ");
    assert_eq!(
        sorted,
        [
            format!("ip6tables-restore {restore}"),
            "ip6tables-save -t nat".to_owned(),
            format!("iptables-restore {restore}"),
            "iptables-save -t nat".to_owned()
        ],
        "first ADD"
    );
    assert_eq!(
        writes(&ours[1].1),
        0,
        "repeated ADD writes nothing: {:?}",
        ours[1].1
    );
    assert_eq!(
        total(&ours, 2),
        2,
        "CHECK reads both families once: {:?}",
        ours[2].1
    );
    assert_eq!(
        writes(&ours[3].1),
        2,
        "DEL: one batch per family: {:?}",
        ours[3].1
    );
    assert_eq!(total(&ours, 3), 4);
    assert_eq!(
        ours[4].1.len(),
        2,
        "repeated DEL only reads: {:?}",
        ours[4].1
    );
    for i in 0..ours.len() {
        assert!(
            total(&ours, i) <= total(&go, i),
            "{}: ours {:?} vs Go {:?}",
            ours[i].0,
            ours[i].1,
            go[i].1
        );
    }
}

#[test]
fn nftables_lists_once_per_family_and_applies_one_transaction() {
    let ours = profile(Portmap::Ours, "nftables");
    let counts: Vec<(usize, usize)> = ours.iter().map(|(_, c)| (c.len(), writes(c))).collect();
    // ADD: 2 listings + 1 transaction; ADD again and CHECK: listings only; DEL: 2 listings +
    // 1 transaction (deleting both tables); DEL again: listings only.
    assert_eq!(counts, [(3, 1), (2, 0), (2, 0), (3, 1), (2, 0)], "{ours:?}");
}

#[test]
fn wall_time_of_add_and_del_against_the_reference() {
    let world = World::new();
    let net = PortmapNet::new(&world, "pm-time", "t", &["10.99.7.0/24"], json!({}));
    world.container();
    let mut report = Vec::new();
    for which in [Portmap::Go, Portmap::Ours] {
        let mut add = Vec::new();
        let mut del = Vec::new();
        for _ in 0..7 {
            add.push(run(&net, which, CHILD_PATH, "ADD").1);
            del.push(run(&net, which, CHILD_PATH, "DEL").1);
        }
        add.sort();
        del.sort();
        report.push(format!(
            "{which:?}: median ADD {:?}, median DEL {:?}",
            add[3], del[3]
        ));
        assert!(
            nat_state(world.host())
                .iter()
                .all(|l| !l.contains("CNI-DN-"))
        );
    }
    eprintln!("{}", report.join("\n"));
}

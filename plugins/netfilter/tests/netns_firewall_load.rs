//! Root-only load tests of the firewall backends: many attachments at once, and execs / wall time
//! per operation. Each test works inside throwaway network namespaces it creates and deletes.
//! Run: `cargo test -p cni-netfilter --test netns_firewall_load -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cni_netfilter::firewall::{
    ContainerFirewall, FirewallBackend, HostLock, IngressPolicy, IptablesFirewall,
    NftablesFirewall, Owner, Teardown,
};
use cni_netfilter::{CommandRunner, SystemRunner};
use common::{CountingRunner, Netns, require_root};

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter()
        .map(|s| s.split('/').next().unwrap().parse().unwrap())
        .collect()
}

fn fw(net: &str, cid: &str, addrs: &[&str], policy: IngressPolicy, br: &str) -> ContainerFirewall {
    let owner = Owner::new(net, cid, "eth0");
    ContainerFirewall::new(owner, &ips(addrs), policy, Some(br), "CNI-ADMIN").unwrap()
}

fn bare(net: &str, cid: &str) -> Teardown {
    Teardown::new(Owner::new(net, cid, "eth0"), &[], None).unwrap()
}

fn both(ns: &Netns) -> Vec<String> {
    ["iptables-save", "ip6tables-save"]
        .iter()
        .flat_map(|save| {
            ns.exec(save, &["-t", "filter"])
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|l| l.starts_with("-A") || l.starts_with(":CNI-"))
        .collect()
}

fn concurrent(backend: Arc<dyn FirewallBackend>, host: &Netns, count: usize) {
    let name = host.name.clone();
    let container = |i: usize| {
        fw(
            "cnixnet",
            &format!("ctr{i}"),
            &[
                &format!("10.99.{}.{}/16", i / 200, i % 200 + 2),
                &format!("fd00:99::{:x}/64", i + 2),
            ],
            IngressPolicy::SameBridge,
            &format!("cnix{}", i % 3),
        )
    };
    let run_all = |add: bool| {
        std::thread::scope(|scope| {
            for i in 0..count {
                let (b, name) = (backend.clone(), name.clone());
                scope.spawn(move || {
                    let ns = Netns { name };
                    let _in = ns.enter();
                    std::mem::forget(ns); // the outer handle owns deletion
                    if add {
                        b.add(&container(i)).unwrap();
                    } else {
                        b.del(&bare("cnixnet", &format!("ctr{i}"))).unwrap();
                    }
                });
            }
        });
    };
    run_all(true);
    {
        let _in = host.enter();
        for i in 0..count {
            backend.check(&container(i)).unwrap();
        }
    }
    run_all(false);
}

#[test]
#[ignore = "needs root; creates its own netns"]
fn iptables_concurrent_attachments_never_lose_or_duplicate() {
    require_root();
    let host = Netns::new("fwpar");
    let base = both(&host);
    let dir = tempfile::tempdir().unwrap();
    let runner = Arc::new(CountingRunner::default());
    let b = Arc::new(IptablesFirewall::new(
        runner.clone(),
        HostLock::in_dir(dir.path()),
    ));
    let start = Instant::now();
    concurrent(b.clone(), &host, 24);
    eprintln!(
        "iptables: 24 ADD + 24 CHECK + 24 DEL in {:?}, execs {:?}",
        start.elapsed(),
        runner.take()
    );
    assert_eq!(both(&host), base);
}

#[test]
#[ignore = "needs root; creates its own netns"]
fn nftables_concurrent_attachments() {
    require_root();
    let host = Netns::new("fwnpar");
    let dir = tempfile::tempdir().unwrap();
    let b = Arc::new(NftablesFirewall::new(
        Arc::new(SystemRunner),
        HostLock::in_dir(dir.path()),
    ));
    concurrent(b, &host, 24);
    assert_eq!(host.exec("nft", &["list", "ruleset"]), "");
}

/// Execs and wall time per ADD / DEL of one dual-stack same-bridge container, printed for the
/// report (the plugin binary adds its own start-up on top).
#[test]
#[ignore = "needs root; creates its own netns"]
fn measure_execs_and_wall_time() {
    require_root();
    const RUNS: u32 = 20;
    let host = Netns::new("fwbench");
    let dir = tempfile::tempdir().unwrap();
    let _in = host.enter();
    let runner = Arc::new(CountingRunner::default());
    let dyn_runner: Arc<dyn CommandRunner> = runner.clone();
    let lock = HostLock::in_dir(dir.path());
    let backends: [(&str, Box<dyn FirewallBackend>); 2] = [
        (
            "iptables",
            Box::new(IptablesFirewall::new(dyn_runner.clone(), lock.clone())),
        ),
        (
            "nftables",
            Box::new(NftablesFirewall::new(dyn_runner, lock)),
        ),
    ];
    let c = fw(
        "cnixnet",
        "ctr1",
        &["10.99.0.2/24", "fd00:99::2/64"],
        IngressPolicy::SameBridge,
        "cnix0",
    );
    let other = fw(
        "cnixnet",
        "other",
        &["10.99.0.3/24", "fd00:99::3/64"],
        IngressPolicy::SameBridge,
        "cnix0",
    );
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    for (name, b) in &backends {
        for last in [true, false] {
            if !last {
                b.add(&other).unwrap();
            }
            runner.take();
            b.add(&c).unwrap();
            let add = runner.take();
            b.del(&bare("cnixnet", "ctr1")).unwrap();
            let del = runner.take();
            let (mut adds, mut dels) = (Vec::new(), Vec::new());
            for _ in 0..RUNS {
                let t = Instant::now();
                b.add(&c).unwrap();
                adds.push(t.elapsed());
                let t = Instant::now();
                b.del(&bare("cnixnet", "ctr1")).unwrap();
                dels.push(t.elapsed());
            }
            let what = if last {
                "only container"
            } else {
                "another container stays"
            };
            eprintln!(
                "{name} ({what}): ADD {add:?} median {:?}; DEL {del:?} median {:?} ({RUNS} runs)",
                median(&mut adds),
                median(&mut dels)
            );
        }
        b.del(&bare("cnixnet", "other")).unwrap();
    }
}

//! doctor against a planted world: a temporary cache and IPAM store, a host snapshot, and
//! iptables tables given as `iptables-save` text; fixes through a recording fake runner.

use std::fs;
use std::sync::Arc;

use cni_netfilter::FakeRunner;
use cni_netfilter::iptables::{IpFamily, SavedTable};
use cni_netfilter::names;
use serde_json::json;

use super::*;
use crate::host::HostLink;
use crate::runtime::cache::{self, CachedAttachment};

struct World {
    tmp: tempfile::TempDir,
    rt: Runtime,
}

impl World {
    fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let rt = Runtime {
            cni_path: Vec::new(),
            cache_dir: tmp.path().join("cache"),
        };
        fs::create_dir_all(tmp.path().join("net.d")).unwrap();
        let data = tmp.path().join("ipam");
        let list = json!({"cniVersion": "1.0.0", "name": "web", "plugins": [
            {"type": "bridge", "bridge": "cni-web", "ipam": {"type": "host-local",
             "ranges": [[{"subnet": "10.89.0.0/24"}]], "dataDir": data}}]});
        fs::write(tmp.path().join("net.d/web.conflist"), list.to_string()).unwrap();
        World { tmp, rt }
    }

    fn dir(&self) -> ConfDir {
        ConfDir::read(&self.tmp.path().join("net.d"))
    }

    fn cache(&self, id: &str, netns: &str) {
        let entry = CachedAttachment {
            kind: cache::KIND_V1.into(),
            container_id: id.into(),
            config: Vec::new(),
            if_name: "eth0".into(),
            network_name: "web".into(),
            netns: netns.into(),
            cni_args: Vec::new(),
            capability_args: serde_json::Map::new(),
            result: None,
        };
        cache::write(&self.rt.cache_dir, &entry).unwrap();
    }

    fn reserve(&self, ip: &str, id: &str) {
        let dir = self.tmp.path().join("ipam/web");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(ip), format!("{id}\r\neth0")).unwrap();
    }
}

fn masq_chain(id: &str) -> String {
    let chain = names::chain_name("", "web", id);
    let comment = names::comment("web", id).replace('"', "\\\"");
    format!(
        ":{chain} - [0:0]\n-A POSTROUTING -s 10.89.0.9/32 -m comment --comment \"{comment}\" -j {chain}\n\
         -A {chain} -d 10.89.0.0/24 -m comment --comment \"{comment}\" -j ACCEPT\n"
    )
}

fn env(nat: &str, filter: &str, runner: Arc<FakeRunner>) -> Environment {
    let link = |index: u32, name: &str, kind: &str, master: Option<u32>| HostLink {
        index,
        name: name.into(),
        kind: kind.into(),
        master,
        addresses: Vec::new(),
    };
    Environment {
        host: HostSnapshot {
            links: vec![
                link(1, "lo", "", None),
                link(2, "cni-web", "bridge", None),
                link(3, "cni-podman9", "bridge", None),
                link(4, "cni-busy", "bridge", None),
                link(5, "veth1", "veth", Some(4)),
            ],
        },
        nat: vec![(
            IpFamily::V4,
            SavedTable::parse(
                &format!("*nat\n:POSTROUTING ACCEPT [0:0]\n{nat}COMMIT\n"),
                "nat",
            )
            .unwrap(),
        )],
        filter: vec![(
            IpFamily::V4,
            SavedTable::parse(&format!("*filter\n{filter}COMMIT\n"), "filter").unwrap(),
        )],
        runner,
    }
}

const ISOLATION: &str = ":CNI-ISOLATION-STAGE-1 - [0:0]\n:CNI-ISOLATION-STAGE-2 - [0:0]\n\
-A CNI-ISOLATION-STAGE-1 -i cni-gone ! -o cni-gone -j CNI-ISOLATION-STAGE-2\n\
-A CNI-ISOLATION-STAGE-1 -i cni-web ! -o cni-web -j CNI-ISOLATION-STAGE-2\n\
-A CNI-ISOLATION-STAGE-1 -j RETURN\n\
-A CNI-ISOLATION-STAGE-2 -o cni-gone -j DROP\n-A CNI-ISOLATION-STAGE-2 -j RETURN\n";

fn kinds(r: &Report) -> Vec<(Kind, String)> {
    r.problems
        .iter()
        .map(|p| (p.kind, p.subject.clone()))
        .collect()
}

#[test]
fn finds_each_kind_of_staleness() {
    let w = World::new();
    w.cache("alive", "/proc/self/ns/net");
    w.cache("gone", "/nonexistent/netns/gone");
    w.reserve("10.89.0.2", "alive");
    w.reserve("10.89.0.3", "gone");
    w.reserve("10.89.0.4", "orphan");
    let dir = cache::results_dir(&w.rt.cache_dir);
    fs::write(dir.join("web-broken-eth0"), "{").unwrap();
    let nat = format!(
        "{}{}{}",
        masq_chain("alive"),
        masq_chain("orphan"),
        masq_chain("ghost")
    );
    let e = env(&nat, ISOLATION, Arc::new(FakeRunner::new()));
    let report = diagnose(&w.dir(), &w.rt, &e, None);
    let found = kinds(&report);
    let has = |k: Kind, s: &str| found.iter().any(|(kk, ss)| *kk == k && ss.contains(s));
    assert!(has(Kind::CorruptCache, "web-broken-eth0"), "{found:?}");
    assert!(has(Kind::StaleCache, "gone/eth0"), "{found:?}");
    assert!(
        has(Kind::OrphanReservation, "10.89.0.4 (orphan/eth0)"),
        "{found:?}"
    );
    assert!(
        !has(Kind::OrphanReservation, "10.89.0.2"),
        "held by a live attachment: {found:?}"
    );
    assert!(
        !has(Kind::OrphanReservation, "10.89.0.3"),
        "its stale cache entry covers it: {found:?}"
    );
    let ghost_chain = names::chain_name("", "web", "ghost");
    assert!(has(Kind::OrphanMasquerade, &ghost_chain), "{found:?}");
    let reserved_chain = names::chain_name("", "web", "orphan");
    assert!(
        !has(Kind::OrphanMasquerade, &reserved_chain),
        "its reservation's DEL covers it: {found:?}"
    );
    assert!(
        !has(
            Kind::OrphanMasquerade,
            &names::chain_name("", "web", "alive")
        ),
        "{found:?}"
    );
    assert_eq!(
        found
            .iter()
            .filter(|(k, _)| *k == Kind::OrphanIsolation)
            .count(),
        2,
        "{found:?}"
    );
    assert!(has(Kind::OrphanBridge, "cni-podman9"));
    let busy = report
        .problems
        .iter()
        .find(|p| p.subject == "cni-busy")
        .unwrap();
    assert!(busy.fix.is_none() && busy.message.contains("1 ports"));
    assert!(has(Kind::PluginMissing, "bridge") && has(Kind::PluginMissing, "host-local"));
    assert!(!has(Kind::OrphanBridge, "cni-web"));
    assert!(report.problems_left());
    assert!(render(&report).contains("problem(s) found"));

    let only = diagnose(&w.dir(), &w.rt, &e, Some("other"));
    assert!(only.problems.is_empty());
}

#[test]
fn fix_removes_corrupt_cache_and_dead_isolation_rules() {
    let w = World::new();
    let dir = cache::results_dir(&w.rt.cache_dir);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("web-broken-eth0"), "{").unwrap();
    let runner = Arc::new(FakeRunner::new());
    let e = env("", ISOLATION, runner.clone());
    let mut report = diagnose(&w.dir(), &w.rt, &e, None);
    report
        .problems
        .retain(|p| matches!(p.kind, Kind::CorruptCache | Kind::OrphanIsolation));
    fix(&w.dir(), &w.rt, &e, &mut report);
    assert!(
        report.problems.iter().all(|p| p.status == Status::Fixed),
        "{report:#?}"
    );
    assert!(!dir.join("web-broken-eth0").exists());
    let calls = runner.calls();
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|c| c.program == "iptables-restore"));
    let stdin: Vec<String> = calls
        .iter()
        .map(|c| c.stdin.clone().unwrap_or_default())
        .collect();
    assert!(
        stdin[0].contains(
            "-D CNI-ISOLATION-STAGE-1 -i cni-gone ! -o cni-gone -j CNI-ISOLATION-STAGE-2"
        ),
        "{stdin:?}"
    );
    assert!(
        stdin[1].contains("-D CNI-ISOLATION-STAGE-2 -o cni-gone -j DROP"),
        "{stdin:?}"
    );
    assert!(!report.problems_left());
}

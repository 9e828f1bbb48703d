//! Root-only tests of the firewall backends on the real kernel, each inside throwaway network
//! namespaces it creates and deletes (also on failure). Run:
//! `cargo test -p cni-netfilter --test netns_firewall -- --ignored --test-threads=1`.
//! The machine's own netns is never touched.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;

use cni_netfilter::firewall::{
    ContainerFirewall, FirewallBackend, HostLock, IngressPolicy, IptablesFirewall,
    NftablesFirewall, Owner, Teardown,
};
use cni_netfilter::nfnl::{NfRules, NfnlRules};
use cni_netfilter::{CommandRunner, SystemRunner};
use common::{LegacyRunner, Netns, require_root};

const GO_FIREWALL: &str = "/usr/lib/cni/firewall";

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

/// User chains and rules of the filter table, as `<tool>-save` prints them.
fn filter_state(ns: &Netns, save: &str) -> Vec<String> {
    ns.exec(save, &["-t", "filter"])
        .lines()
        .filter(|l| l.starts_with("-A") || l.starts_with(":CNI-"))
        .map(str::to_owned)
        .collect()
}

fn both(ns: &Netns) -> (Vec<String>, Vec<String>) {
    (
        filter_state(ns, "iptables-save"),
        filter_state(ns, "ip6tables-save"),
    )
}

/// A bridge with the gateway addresses, so the host routes the containers' subnets through it.
fn bridge(ns: &Netns, name: &str, v4: &str, v6: &str) {
    ns.exec("ip", &["link", "add", name, "type", "bridge"]);
    ns.exec("ip", &["addr", "add", v4, "dev", name]);
    ns.exec("ip", &["-6", "addr", "add", v6, "dev", name, "nodad"]);
    ns.exec("ip", &["link", "set", name, "up"]);
}

/// Run the reference firewall plugin in `ns`.
fn go_firewall(command: &str, ns: &Netns, cid: &str, conf: &str) -> String {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name, GO_FIREWALL])
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", cid)
        .env("CNI_NETNS", ns.path())
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "reference firewall {command}: {stdout}"
    );
    stdout
}

fn go_conf(net: &str, policy: &str, br: &str, addrs: &[&str]) -> String {
    let ips: Vec<String> = addrs
        .iter()
        .map(|a| format!(r#"{{"address":"{a}","interface":2}}"#))
        .collect();
    format!(
        r#"{{"cniVersion":"1.0.0","name":"{net}","type":"firewall","backend":"iptables","ingressPolicy":"{policy}",
        "prevResult":{{"cniVersion":"1.0.0","interfaces":[{{"name":"{br}"}},{{"name":"veth0"}},{{"name":"eth0","sandbox":"/x"}}],
        "ips":[{}]}}}}"#,
        ips.join(",")
    )
}

/// Our layout with the owner comments taken out and the reference's comment versions unified.
fn normalized(lines: &[String]) -> Vec<String> {
    let mut out: Vec<String> = lines
        .iter()
        .map(|l| {
            let l = match l.find(" -m comment --comment \"name: ") {
                Some(at) => {
                    let end = l.rfind(" -j ").unwrap();
                    format!("{}{}", &l[..at], &l[end..])
                }
                None => l.clone(),
            };
            l.replace(
                "(ingressPolicy: same-bridge|isolated)",
                "(ingressPolicy: same-bridge)",
            )
        })
        .collect();
    out.sort();
    out
}

fn round_trip(runner: Arc<dyn CommandRunner>, legacy: bool, nf: Option<Arc<dyn NfRules>>) {
    require_root();
    let host = Netns::new(if legacy { "fwleg" } else { "fwipt" });
    let (save4, save6) = if legacy {
        ("iptables-legacy-save", "ip6tables-legacy-save")
    } else {
        ("iptables-save", "ip6tables-save")
    };
    let state = |ns: &Netns| (filter_state(ns, save4), filter_state(ns, save6));
    let base = state(&host);
    let dir = tempfile::tempdir().unwrap();
    let _in = host.enter();
    let mut b = IptablesFirewall::new(runner, HostLock::in_dir(dir.path()));
    if let Some(nf) = nf {
        // Known iptables-nft only when the tools are (a legacy runner keeps its rules elsewhere).
        b = b.with_nf_rules(nf, !legacy);
    }
    let dual = ["10.99.0.2/24", "fd00:99::2/64"];
    let c1 = fw("cnixnet", "ctr1", &dual, IngressPolicy::Isolated, "cnix0");
    let c2 = fw(
        "cnixnet",
        "ctr2",
        &["10.99.0.3/24"],
        IngressPolicy::Isolated,
        "cnix0",
    );
    let c3 = fw(
        "other",
        "ctr3",
        &["10.98.0.2/24"],
        IngressPolicy::SameBridge,
        "cnix1",
    );
    for c in [&c1, &c2, &c3] {
        b.add(c).unwrap();
    }
    let after = state(&host);
    assert_eq!(after.0.len(), 4 + 2 + 7 + 4 + 3, "{:#?}", after.0);
    for c in [&c1, &c2, &c3] {
        b.add(c).unwrap();
        b.check(c).unwrap();
    }
    assert_eq!(state(&host), after, "second ADD changed state");
    b.del(&bare("cnixnet", "ctr1")).unwrap();
    b.del(&bare("cnixnet", "ctr1")).unwrap();
    assert_eq!(state(&host).1, base.1, "v6 had only ctr1");
    b.gc("cnixnet", &[]).unwrap();
    let v4 = state(&host).0.join("\n");
    assert!(!v4.contains("cnix0") && v4.contains("cnix1"), "{v4}");
    b.del(&bare("other", "ctr3")).unwrap();
    assert_eq!(state(&host), base);
}

#[test]
#[ignore = "needs root; creates its own netns"]
fn iptables_nft_add_check_del_gc_return_to_baseline() {
    round_trip(Arc::new(SystemRunner), false, None);
}

#[test]
#[ignore = "needs root; creates its own netns"]
fn iptables_nft_with_netlink_reads_add_check_del_gc_return_to_baseline() {
    round_trip(
        Arc::new(SystemRunner),
        false,
        Some(Arc::new(NfnlRules::default())),
    );
}

#[test]
#[ignore = "needs root; creates its own netns"]
fn iptables_legacy_add_check_del_gc_return_to_baseline() {
    round_trip(Arc::new(LegacyRunner), true, None);
}

/// A netlink reader on a host whose tools are iptables-legacy sees none of the rules in
/// nf_tables, so every verb takes the tools' path and still ends where it should.
#[test]
#[ignore = "needs root; creates its own netns"]
fn iptables_legacy_with_a_netlink_reader_still_returns_to_baseline() {
    round_trip(
        Arc::new(LegacyRunner),
        true,
        Some(Arc::new(NfnlRules::default())),
    );
}

#[test]
#[ignore = "needs root; creates its own netns and runs /usr/lib/cni/firewall"]
fn layout_equals_the_reference_up_to_owner_comments() {
    require_root();
    let (go, ours) = (Netns::new("fwgo"), Netns::new("fwus"));
    let dual = ["10.99.0.2/24", "fd00:99::2/64"];
    go_firewall(
        "ADD",
        &go,
        "ctr1",
        &go_conf("cnixnet", "same-bridge", "cnix0", &dual),
    );
    go_firewall(
        "ADD",
        &go,
        "ctr2",
        &go_conf("net2", "same-bridge", "cnix1", &["10.98.0.2/24"]),
    );
    let dir = tempfile::tempdir().unwrap();
    {
        let _in = ours.enter();
        let b = IptablesFirewall::new(Arc::new(SystemRunner), HostLock::in_dir(dir.path()));
        b.add(&fw(
            "cnixnet",
            "ctr1",
            &dual,
            IngressPolicy::SameBridge,
            "cnix0",
        ))
        .unwrap();
        b.add(&fw(
            "net2",
            "ctr2",
            &["10.98.0.2/24"],
            IngressPolicy::SameBridge,
            "cnix1",
        ))
        .unwrap();
    }
    let (go4, go6) = both(&go);
    let (us4, us6) = both(&ours);
    assert_eq!(normalized(&us4), normalized(&go4));
    assert_eq!(normalized(&us6), normalized(&go6));
    // Same order in FORWARD and in the stage chains as well.
    let order = |l: &[String]| -> Vec<String> {
        normalized(l)
            .into_iter()
            .filter(|x| !x.starts_with("-A CNI-FORWARD"))
            .collect()
    };
    assert_eq!(order(&us4), order(&go4));
}

#[test]
#[ignore = "needs root; creates its own netns and runs /usr/lib/cni/firewall"]
fn mixed_host_each_del_removes_only_its_own_rules() {
    require_root();
    for go_deletes_first in [true, false] {
        let host = Netns::new("fwmix");
        bridge(&host, "cnix0", "10.99.0.1/24", "fd00:99::1/64");
        let base = both(&host);
        let dir = tempfile::tempdir().unwrap();
        let go_ctr = go_conf("cnixnet", "same-bridge", "cnix0", &["10.99.0.2/24"]);
        go_firewall("ADD", &host, "goctr", &go_ctr);
        let go_only = both(&host);
        let ours = fw(
            "cnixnet",
            "ourctr",
            &["10.99.0.3/24"],
            IngressPolicy::SameBridge,
            "cnix0",
        );
        let _in = host.enter();
        let b = IptablesFirewall::new(Arc::new(SystemRunner), HostLock::in_dir(dir.path()));
        b.add(&ours).unwrap();
        b.check(&ours).unwrap();
        // Our CHECK accepts the Go container too (binary swapped under a running container).
        b.check(&fw(
            "cnixnet",
            "goctr",
            &["10.99.0.2/24"],
            IngressPolicy::SameBridge,
            "cnix0",
        ))
        .unwrap();
        let isolation = |s: &(Vec<String>, Vec<String>)| {
            s.0.iter()
                .filter(|l| l.starts_with("-A CNI-ISOLATION") && l.contains("cnix0"))
                .count()
        };
        assert_eq!(isolation(&both(&host)), 2, "no duplicate isolation rules");
        if go_deletes_first {
            go_firewall("DEL", &host, "goctr", &go_ctr);
            b.del(&bare("cnixnet", "ourctr")).unwrap();
            assert_eq!(
                both(&host),
                base,
                "last DEL cleans the Go-made shared rules too"
            );
        } else {
            b.del(&bare("cnixnet", "ourctr")).unwrap();
            assert_eq!(both(&host), go_only, "the Go container keeps its isolation");
            go_firewall("DEL", &host, "goctr", &go_ctr);
        }
    }
}

#[test]
#[ignore = "needs root; creates its own netns"]
fn nftables_add_check_del_gc() {
    require_root();
    let host = Netns::new("fwnft");
    let dir = tempfile::tempdir().unwrap();
    let _in = host.enter();
    let b = NftablesFirewall::new(Arc::new(SystemRunner), HostLock::in_dir(dir.path()));
    b.status().unwrap();
    b.del(&bare("cnixnet", "ctr1")).unwrap(); // no table yet
    let c1 = fw(
        "cnixnet",
        "ctr1",
        &["10.99.0.2/24", "fd00:99::2/64"],
        IngressPolicy::Isolated,
        "cnix0",
    );
    let c2 = fw(
        "cnixnet",
        "ctr2",
        &["10.99.0.3/24"],
        IngressPolicy::SameBridge,
        "cnix0",
    );
    for c in [&c1, &c2, &c1] {
        b.add(c).unwrap();
    }
    b.check(&c1).unwrap();
    b.check(&c2).unwrap();
    let listing = host.exec("nft", &["list", "table", "inet", "cni_firewall"]);
    assert_eq!(listing.matches("accept comment").count(), 6, "{listing}");
    assert_eq!(listing.matches("drop comment").count(), 2, "{listing}");
    b.del(&bare("cnixnet", "ctr1")).unwrap();
    let listing = host.exec("nft", &["list", "table", "inet", "cni_firewall"]);
    assert!(
        !listing.contains("isolated: cnix0") && listing.contains("same-bridge: cnix0"),
        "{listing}"
    );
    assert!(b.check(&c1).is_err());
    b.gc("cnixnet", &[]).unwrap();
    assert_eq!(host.exec("nft", &["list", "ruleset"]), "");
}

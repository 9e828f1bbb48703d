//! portmap errors: a host port another container already publishes (ours or the Go plugin's)
//! is refused with code 152 and nothing changes; config errors are code 7 with the reference's
//! messages; CHECK reports drift with code 151 on both backends.

use integration_tests::portmap::{
    Portmap, dn_chain, mappings, nat_state, nft_hostport, nft_rule_handle,
};
use integration_tests::{Netns, PortmapNet, World};
use serde_json::{Value, json};

/// A `prevResult` for a container at `ip` on `net`'s bridge (for direct execs).
fn prev(net: &PortmapNet<'_>, ctr: &Netns, ip: &str) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": net.bridge()}, {"name": "vethx"},
                       {"name": "eth0", "sandbox": ctr.path_str()}],
        "ips": [{"interface": 2, "address": format!("{ip}/24")}],
    })
}

/// Direct ADD of `maps` for container `id` at `ip`; returns the output.
fn add(net: &PortmapNet<'_>, id: &str, ip: &str, maps: &Value) -> integration_tests::Output {
    let ctr = &net.world().containers()[0];
    let conf = net.conf("1.0.0", Some(&prev(net, ctr, ip)), Some(maps));
    net.exec(Portmap::Ours, &net.call("ADD", &conf, id, ctr))
}

fn state(world: &World) -> (Vec<String>, String) {
    (nat_state(world.host()), nft_hostport(world.host()))
}

fn conflicts(backend: &str) {
    let world = World::new();
    let net = PortmapNet::new(
        &world,
        "pm-clash",
        "x",
        &["10.97.1.0/24"],
        json!({"backend": backend}),
    );
    world.container();
    let first = mappings(&[
        (8080, 80, "tcp", None),
        (5353, 53, "udp", Some("127.0.0.1")),
    ]);
    add(&net, "ctr-1", "10.97.1.2", &first).expect_success();
    let before = state(&world);

    let clash = |maps: Value, text: &str| {
        let out = add(&net, "ctr-2", "10.97.1.3", &maps);
        let err = out.cni_error();
        assert_eq!(err.code, 152, "{}", out.describe());
        assert_eq!(err.msg, text);
        assert_eq!(
            state(&world),
            before,
            "{backend}: a refused ADD changed nothing"
        );
    };
    // tcp 9090 is free, but tcp 8080 makes the whole ADD fail.
    clash(
        mappings(&[(9090, 90, "tcp", None), (8080, 81, "tcp", None)]),
        r#"host port tcp *:8080 is already mapped to container "ctr-1" of network "pm-clash""#,
    );
    clash(
        mappings(&[(8080, 80, "tcp", Some("10.97.1.1"))]),
        r#"host port tcp 10.97.1.1:8080 is already mapped to container "ctr-1" of network "pm-clash""#,
    );
    clash(
        mappings(&[(5353, 53, "udp", None)]),
        r#"host port udp *:5353 is already mapped to container "ctr-1" of network "pm-clash""#,
    );
    // Another protocol, another host address, or the same container on another network: fine.
    let fine = mappings(&[
        (8080, 80, "udp", None),
        (5353, 53, "udp", Some("10.97.1.1")),
    ]);
    add(&net, "ctr-2", "10.97.1.3", &fine).expect_success();
    let other_net = PortmapNet::new(
        &world,
        "pm-clash2",
        "y",
        &["10.97.2.0/24"],
        json!({"backend": backend}),
    );
    let ctr = &world.containers()[0];
    let conf = other_net.conf(
        "1.0.0",
        Some(&prev(&other_net, ctr, "10.97.2.2")),
        Some(&first),
    );
    other_net
        .exec(Portmap::Ours, &other_net.call("ADD", &conf, "ctr-1", ctr))
        .expect_success();
}

#[test]
fn iptables_conflicting_host_ports_are_refused() {
    conflicts("iptables");
}

#[test]
fn nftables_conflicting_host_ports_are_refused() {
    conflicts("nftables");
}

#[test]
fn a_port_the_go_plugin_published_is_a_conflict_too() {
    let world = World::new();
    let net = PortmapNet::new(&world, "pm-mixed", "m", &["10.97.3.0/24"], json!({}));
    net.write();
    let (c1, c2) = (world.container(), world.container());
    let maps = mappings(&[(8080, 80, "tcp", None)]);
    net.add(Portmap::Go, &c1, "go-ctr", &maps);
    let out = net.try_add(Portmap::Ours, &c2, "our-ctr", &maps);
    assert!(!out.success(), "{}", out.describe());
    assert!(
        out.stderr_str().contains(
            r#"host port tcp *:8080 is already mapped to container "go-ctr" of network "pm-mixed""#
        ),
        "{}",
        out.describe()
    );
    // Our DEL of the refused container leaves the Go container's rules alone.
    net.del(Portmap::Ours, &c2, "our-ctr", &maps);
    assert!(
        nat_state(world.host())
            .iter()
            .any(|l| l.contains(&dn_chain("pm-mixed", "go-ctr")))
    );
    net.del(Portmap::Go, &c1, "go-ctr", &maps);
}

#[test]
fn config_errors_are_code_7_with_the_reference_messages() {
    let world = World::new();
    let net = PortmapNet::new(&world, "pm-conf", "c", &["10.97.4.0/24"], json!({}));
    let ctr = world.container();
    let cases = [
        (
            json!({}),
            mappings(&[(0, 80, "tcp", None)]),
            "Invalid host port number: 0",
        ),
        (
            json!({}),
            mappings(&[(80, 0, "tcp", None)]),
            "Invalid container port number: 0",
        ),
        (
            json!({"markMasqBit": 32}),
            mappings(&[(80, 80, "tcp", None)]),
            "MasqMarkBit must be between 0 and 31",
        ),
        (
            json!({"markMasqBit": 1, "externalSetMarkChain": "KUBE-MARK-MASQ"}),
            mappings(&[(80, 80, "tcp", None)]),
            "Cannot specify externalSetMarkChain and markMasqBit",
        ),
    ];
    for (keys, maps, text) in cases {
        let mut conf = net.conf("1.0.0", Some(&prev(&net, &ctr, "10.97.4.2")), Some(&maps));
        for (k, v) in keys.as_object().expect("object") {
            conf[k] = v.clone();
        }
        let ours = net.exec(Portmap::Ours, &net.call("ADD", &conf, "ctr", &ctr));
        let err = ours.cni_error();
        assert_eq!(
            (err.code, err.msg.as_str()),
            (7, text),
            "{}",
            ours.describe()
        );
        let go = net.exec(Portmap::Go, &net.call("ADD", &conf, "ctr", &ctr));
        let go_err = go.cni_error();
        assert!(
            go_err.msg.contains(text),
            "the reference says {:?}",
            go_err.msg
        );
    }
    assert!(nat_state(world.host()).is_empty(), "nothing was written");
}

fn drift(backend: &str) {
    let world = World::new();
    let net = PortmapNet::new(
        &world,
        "pm-drift",
        "d",
        &["10.97.5.0/24"],
        json!({"backend": backend}),
    );
    net.write();
    let ctr = world.container();
    let maps = mappings(&[(8080, 80, "tcp", None), (8443, 443, "tcp", None)]);
    net.add(Portmap::Ours, &ctr, "ctr-d", &maps);
    net.check(Portmap::Ours, &ctr, "ctr-d", &maps)
        .expect_silent_success();
    let host = world.host();
    let expected = if backend == "nftables" {
        let handle = nft_rule_handle(host, "ip", "hostports", "dport 8443");
        host.run_ok(&[
            "nft",
            "delete",
            "rule",
            "ip",
            "cni_hostport",
            "hostports",
            "handle",
            &handle,
        ]);
        "nftables rule `hostports tcp dport 8443 dnat to 10.97.5.2:443` in ip cni_hostport not found"
            .to_owned()
    } else {
        let chain = dn_chain("pm-drift", "ctr-d");
        let rule = [
            "-p",
            "tcp",
            "-m",
            "tcp",
            "--dport",
            "8443",
            "-j",
            "DNAT",
            "--to-destination",
            "10.97.5.2:443",
        ];
        let mut argv = vec!["iptables", "-w", "-t", "nat", "-D", chain.as_str()];
        argv.extend(rule);
        host.run_ok(&argv);
        format!(
            "rule [{}] in chain {chain} of iptables table nat not found",
            rule.join(" ")
        )
    };
    let ctr_prev = prev(&net, &ctr, "10.97.5.2");
    let conf = net.conf("1.0.0", Some(&ctr_prev), Some(&maps));
    let out = net.exec(Portmap::Ours, &net.call("CHECK", &conf, "ctr-d", &ctr));
    let err = out.cni_error();
    assert_eq!(
        (err.code, err.msg.as_str()),
        (151, expected.as_str()),
        "{}",
        out.describe()
    );
    let no_prev = net.conf("1.0.0", None, Some(&maps));
    let out = net.exec(Portmap::Ours, &net.call("CHECK", &no_prev, "ctr-d", &ctr));
    let err = out.cni_error();
    assert_eq!(
        (err.code, err.msg.as_str()),
        (7, "Required prevResult missing")
    );
    net.del(Portmap::Ours, &ctr, "ctr-d", &maps);
}

#[test]
fn iptables_check_reports_a_missing_rule() {
    drift("iptables");
}

#[test]
fn nftables_check_reports_a_missing_rule() {
    drift("nftables");
}

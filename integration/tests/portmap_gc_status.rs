//! portmap GC and STATUS (spec 1.1.0, direct exec: cnitool speaks 1.0.0 and the Go plugin has
//! neither verb). GC removes the mappings of every container of the network that is not in
//! `cni.dev/valid-attachments` — also those the Go plugin made — and nothing of other networks;
//! STATUS answers 50 when the backend's tools cannot work.

use integration_tests::firewall::tool_stand_ins;
use integration_tests::locate::CHILD_PATH;
use integration_tests::portmap::{Portmap, dn_chain, mappings, nat_state, nft_hostport, snapshot};
use integration_tests::{PluginCall, PortmapNet, World, assert_same};
use serde_json::{Value, json};

fn mentions(world: &World, backend: &str, net: &str, id: &str) -> bool {
    let needle = match backend {
        "nftables" => format!("net: {net}, id: {id}\""),
        _ => dn_chain(net, id),
    };
    nat_state(world.host()).iter().any(|l| l.contains(&needle))
        || nft_hostport(world.host()).contains(&needle)
}

fn gc_conf(net: &PortmapNet<'_>, key: &str, valid: &[&str]) -> Value {
    let mut conf = net.conf("1.1.0", None, None);
    let list: Vec<Value> = valid
        .iter()
        .map(|id| json!({"containerID": id, "ifname": "eth0"}))
        .collect();
    conf[key] = Value::Array(list);
    conf
}

fn gc(backend: &str) {
    let world = World::new();
    let keys = json!({ "backend": backend });
    let net = PortmapNet::new(&world, "pm-gc", "g", &["10.98.1.0/24"], keys.clone());
    let other = PortmapNet::new(&world, "pm-gc2", "h", &["10.98.2.0/24"], keys);
    net.write();
    other.write();
    let ctrs: Vec<_> = (0..4).map(|_| world.container()).collect();
    let baseline = snapshot(&world, &[&net, &other]);
    let ids = ["ctr-a", "ctr-b", "ctr-c"];
    for ((i, id), port) in ids.iter().enumerate().zip(8100u16..) {
        let which = if i == 2 && backend == "iptables" {
            Portmap::Go
        } else {
            Portmap::Ours
        };
        net.add(which, &ctrs[i], id, &mappings(&[(port, 80, "tcp", None)]));
    }
    let z = mappings(&[(8200, 80, "udp", None)]);
    other.add(Portmap::Ours, &ctrs[3], "ctr-z", &z);

    let out = net.exec(
        Portmap::Ours,
        &PluginCall::gc(&gc_conf(&net, "cni.dev/valid-attachments", &["ctr-a"])),
    );
    out.expect_silent_success();
    assert!(mentions(&world, backend, "pm-gc", "ctr-a"), "valid: kept");
    for id in ["ctr-b", "ctr-c"] {
        assert!(!mentions(&world, backend, "pm-gc", id), "{id}: collected");
    }
    assert!(
        mentions(&world, backend, "pm-gc2", "ctr-z"),
        "other network untouched"
    );

    // The older key works too; an empty list collects everything of the network.
    let out = net.exec(
        Portmap::Ours,
        &PluginCall::gc(&gc_conf(&net, "cni.dev/attachments", &[])),
    );
    out.expect_silent_success();
    assert!(!mentions(&world, backend, "pm-gc", "ctr-a"));
    assert!(mentions(&world, backend, "pm-gc2", "ctr-z"));

    // What is left is bridge state; DEL everything and the world is back at its baseline.
    for (i, id) in ids.iter().enumerate() {
        net.del(Portmap::Ours, &ctrs[i], id, &json!([]));
    }
    other.del(Portmap::Ours, &ctrs[3], "ctr-z", &z);
    assert_same!(baseline, snapshot(&world, &[&net, &other]), "{backend}");
}

#[test]
fn iptables_gc_collects_invalid_containers_also_the_go_plugins() {
    gc("iptables");
}

#[test]
fn nftables_gc_collects_invalid_containers() {
    gc("nftables");
}

#[test]
fn status_is_silent_when_ready_and_code_50_when_the_tools_fail() {
    let world = World::new();
    let broken = tool_stand_ins(&world, "broken", |_, _| {
        "#!/bin/sh\necho 'Permission denied (you must be root)' >&2\nexit 4\n".to_owned()
    });
    for backend in ["iptables", "nftables"] {
        let net = PortmapNet::new(
            &world,
            "pm-status",
            "s",
            &["10.98.3.0/24"],
            json!({"backend": backend}),
        );
        let conf = net.conf("1.1.0", None, None);
        net.exec(Portmap::Ours, &PluginCall::status(&conf))
            .expect_silent_success();
        let call = PluginCall::status(&conf).env("PATH", &format!("{broken}:{CHILD_PATH}"));
        let err = net.exec(Portmap::Ours, &call).cni_error();
        assert_eq!(err.code, 50, "{backend}: {err:?}");
        assert!(
            err.msg
                .starts_with(&format!("{backend} backend is not usable")),
            "{err:?}"
        );
    }
}

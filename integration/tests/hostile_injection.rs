//! Injection attempts: bridge names, sysctl keys, `CNI_ARGS` values, and anything that could
//! reach an iptables / nft command line or batch (interface names, chain names, conditions,
//! port mappings, `prevResult` names). Every hostile value is refused with the documented CNI
//! code before anything changes (the whole world is compared before and after), or — where the
//! value is legal — it ends up only as an opaque, quoted argument: the rules an interface
//! named `-jACCEPT` gets are exactly the rules `eth0` gets. No shell runs anywhere: shell
//! metacharacters in accepted values never execute.

// Test helpers stop the test loudly, as the harness does.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use integration_tests::firewall::prime_filter;
use integration_tests::{Plugin, PluginCall, Snapshot, World, config};
use serde_json::{Value, json};

/// Runs `call`, requires exit 1 with `code` and `msg_part`, and an unchanged world.
#[track_caller]
fn refused(world: &World, plugin: &Plugin, call: &PluginCall, code: u32, msg_part: &str) {
    let before = world.snapshot();
    let out = world.exec(plugin, call);
    out.expect_error(code, msg_part);
    if let Some(diff) = before.diff(&world.snapshot()) {
        panic!("the call changed the world:\n{diff}\n{}", out.describe());
    }
}

fn prev_result(bridge: &str) -> Value {
    json!({"cniVersion": "1.0.0",
        "interfaces": [{"name": bridge}, {"name": "eth0", "sandbox": "/run/netns/x"}],
        "ips": [{"address": "10.205.0.5/24", "gateway": "10.205.0.1", "interface": 1}]})
}

#[test]
fn hostile_bridge_names_are_refused() {
    let world = World::new();
    let ctr = world.container();
    let plugin = Plugin::ours("bridge");
    for name in [
        "br0; rm -rf /",
        "a b",
        "0123456789abcdef",
        "../x",
        "x/y",
        "br:0",
        "br0\n",
        "..",
    ] {
        let conf = json!({"cniVersion": "1.0.0", "name": "brnet", "type": "bridge",
            "bridge": name, "isGateway": true,
            "ipam": config::host_local_ipam(&world.data_dir(), &["10.206.0.0/24"])});
        for verb in ["ADD", "CHECK", "DEL"] {
            let call = PluginCall::new(verb, &conf)
                .id("c1")
                .ifname("eth0")
                .netns(&ctr);
            refused(&world, &plugin, &call, 7, "invalid bridge name");
        }
    }
    // A VLAN gateway interface `<bridge>.<vlan>` must be a valid name too.
    let conf = json!({"cniVersion": "1.0.0", "name": "brnet", "type": "bridge",
        "bridge": "brvlanabcdefgh", "vlan": 4000, "isGateway": true,
        "ipam": config::host_local_ipam(&world.data_dir(), &["10.206.0.0/24"])});
    let call = PluginCall::add(&conf).id("c1").ifname("eth0").netns(&ctr);
    refused(&world, &plugin, &call, 7, "is not a valid name");
}

#[test]
fn hostile_sysctl_keys_are_refused() {
    let world = World::new();
    let ctr = world.container();
    let plugin = Plugin::ours("tuning");
    let dir = world.state_dir().join("tuning");
    for key in [
        "kernel.hostname",
        "net/../kernel/hostname",
        "net/../../../../etc/passwd",
        "../net/ipv4/ip_forward",
        "/proc/sys/net/ipv4/ip_forward",
        "net.ipv4.conf.IFNAME.arp_filter/../../../../kernel.hostname",
        "net//ipv4/ip_forward",
        "net/ipv4/conf/a b/arp_filter",
        "net.ipv4.conf.eth0.arp_filter\nnet.core.somaxconn",
        "net",
        "",
    ] {
        for place in ["top", "args"] {
            let sysctl = json!({ key: "1" });
            let mut conf = json!({"cniVersion": "1.0.0", "name": "tunnet", "type": "tuning",
                "dataDir": dir.to_string_lossy(), "prevResult": prev_result("cnih0")});
            if place == "top" {
                conf["sysctl"] = sysctl;
            } else {
                conf["args"] = json!({"cni": {"sysctl": sysctl}});
            }
            let call = PluginCall::add(&conf).id("c1").ifname("eth0").netns(&ctr);
            refused(&world, &plugin, &call, 7, "invalid net sysctl key");
        }
    }
    // IFNAME substitution cannot smuggle a path either: the ifname is validated first.
    let conf = json!({"cniVersion": "1.0.0", "name": "tunnet", "type": "tuning",
        "dataDir": dir.to_string_lossy(), "prevResult": prev_result("cnih0"),
        "sysctl": {"net.ipv4.conf.IFNAME.arp_filter": "1"}});
    for ifname in ["..", "../../x", "a/b"] {
        let call = PluginCall::add(&conf).id("c1").ifname(ifname).netns(&ctr);
        refused(&world, &plugin, &call, 4, "interface name");
    }
}

#[test]
fn hostile_cni_args_values() {
    let world = World::new();
    let ctr = world.container();
    let host_local = Plugin::ours("host-local");
    let conf = config::host_local(
        "1.0.0",
        "argnet",
        &world.data_dir(),
        config::ranges(&["10.207.0.0/24"]),
    );
    let add = |args: &str| {
        PluginCall::add(&conf)
            .id("c1")
            .ifname("eth0")
            .netns(&ctr)
            .args(args)
    };
    let pwned = world.root().join("pwned");
    let cases: [(&str, u32, &str); 7] = [
        ("IP=../../../etc/passwd", 7, "../../../etc/passwd"),
        ("IP=10.207.0.9;IP=$(touch /tmp/x)", 7, "$(touch /tmp/x)"),
        ("IP=10.207.0.9\nFOO=bar", 4, "ARGS: invalid pair"),
        ("FOO=$(reboot)", 4, "ARGS: unknown args"),
        ("IP=10.207.0.9;K8S_POD_NAME", 4, "ARGS: invalid pair"),
        ("IgnoreUnknown=`id`", 4, "invalid boolean"),
        ("IP=10.207.0.9=x", 4, "ARGS: invalid pair"),
    ];
    for (args, code, msg) in cases {
        refused(&world, &host_local, &add(args), code, msg);
    }
    // Accepted values with shell syntax are just strings: nothing runs, nothing is created.
    let before = Snapshot::dir("world", world.root());
    let args = format!(
        "IgnoreUnknown=1;FOO=$(touch {p});BAR=`touch {p}`;K8S_POD_NAME=../../../../escape",
        p = pwned.display()
    );
    let result = world.exec(&host_local, &add(&args)).result();
    assert_eq!(result["ips"][0]["address"], "10.207.0.2/24");
    assert!(!pwned.exists(), "a CNI_ARGS value was executed");
    let diff = before
        .diff(&Snapshot::dir("world", world.root()))
        .unwrap_or_default();
    for line in diff.lines().filter(|l| l.starts_with(['+', '-'])) {
        assert!(line.contains("ipam/argnet"), "unexpected write: {line}");
    }
    // bridge reads MAC from CNI_ARGS.
    let bridge = json!({"cniVersion": "1.0.0", "name": "argnet2", "type": "bridge",
        "bridge": "cnibadmac0", "ipam": config::host_local_ipam(&world.data_dir(), &["10.208.0.0/24"])});
    for (mac, code, msg) in [
        ("aa:bb;reboot", 4, "ARGS: invalid pair \"reboot\""),
        ("$(reboot)", 7, "invalid MAC address"),
        ("c2:11:22:33:44:55:66", 7, "invalid MAC address"),
    ] {
        let call = PluginCall::add(&bridge)
            .id("c1")
            .ifname("eth0")
            .netns(&ctr)
            .args(&format!("MAC={mac}"));
        refused(&world, &Plugin::ours("bridge"), &call, code, msg);
    }
}

#[test]
fn firewall_refuses_names_that_could_break_a_rule() {
    let world = World::new();
    let ctr = world.container();
    prime_filter(world.host());
    let plugin = Plugin::ours("firewall");
    let lock = world.state_dir().join("fwlock");
    let base = |backend: &str| {
        json!({"cniVersion": "1.0.0", "name": "fwnet", "type": "firewall",
            "backend": backend, "dataDir": lock.to_string_lossy(), "ingressPolicy": "same-bridge",
            "prevResult": prev_result("cnifw0")})
    };
    for backend in ["iptables", "nftables"] {
        for bridge in [
            "br0\" -j ACCEPT",
            "br -j ACCEPT",
            "br0\n-A",
            "'br0'",
            "0123456789abcdef",
        ] {
            let mut conf = base(backend);
            conf["prevResult"] = prev_result(bridge);
            let call = PluginCall::add(&conf).id("c1").ifname("eth0").netns(&ctr);
            refused(&world, &plugin, &call, 7, "");
        }
        for chain in [
            "CNI-ADMIN -j ACCEPT",
            "X\"",
            "-j",
            "ACCEPT",
            "FORWARD",
            "a\nb",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123",
        ] {
            let mut conf = base(backend);
            conf["iptablesAdminChainName"] = json!(chain);
            let call = PluginCall::add(&conf).id("c1").ifname("eth0").netns(&ctr);
            refused(&world, &plugin, &call, 7, "iptablesAdminChainName");
        }
    }
}

/// The host's rules after an ADD, with the interface name replaced by a placeholder.
fn rules_after_add(world: &World, backend: &str, ifname: &str) -> String {
    let ctr = world.container();
    let plugin = Plugin::ours("firewall");
    let lock = world.state_dir().join("fwlock");
    let conf = json!({"cniVersion": "1.0.0", "name": "fwinj", "type": "firewall",
        "backend": backend, "dataDir": lock.to_string_lossy(), "prevResult": prev_result("cnifw0")});
    let call = |verb: &str| {
        PluginCall::new(verb, &conf)
            .id("c1")
            .ifname(ifname)
            .netns(&ctr)
    };
    let before = Snapshot::netns(world.host());
    world.exec(&plugin, &call("ADD")).result();
    world.exec(&plugin, &call("CHECK")).expect_silent_success();
    let diff = before
        .diff(&Snapshot::netns(world.host()))
        .unwrap_or_default();
    world.exec(&plugin, &call("DEL")).expect_silent_success();
    // Only the owner comments name the interface: `if: "<ifname>"` (iptables-save escapes the
    // quotes) and `if: <ifname>,` (nftables).
    // The nftables comment starts with a hash of network, ifname and container ID.
    let instance = cni_netfilter::firewall::Owner::new("fwinj", "c1", ifname).instance_hash();
    diff.replace(&format!("if: \\\"{ifname}\\\""), "if: \\\"IFNAME\\\"")
        .replace(&format!("if: {ifname},"), "if: IFNAME,")
        .replace(&instance, "INSTANCE")
}

#[test]
fn interface_names_with_option_syntax_stay_one_argument() {
    let world = World::new();
    prime_filter(world.host());
    for backend in ["iptables", "nftables"] {
        let normal = rules_after_add(&world, backend, "eth0");
        assert!(
            normal.contains("IFNAME"),
            "{backend}: no rule names the ifname\n{normal}"
        );
        for hostile in [
            "-jACCEPT",
            "--comment",
            "!",
            "-j",
            "a,b;c#d",
            "$(id)",
            "x,_id",
        ] {
            let got = rules_after_add(&world, backend, hostile);
            assert_eq!(
                got, normal,
                "{backend}: ifname {hostile:?} changed the rules"
            );
        }
    }
}

#[test]
fn portmap_refuses_values_that_could_break_a_rule() {
    let world = World::new();
    let ctr = world.container();
    let plugin = Plugin::ours("portmap");
    let lock = world.state_dir().join("pmlock");
    let base = || {
        json!({"cniVersion": "1.0.0", "name": "pmnet", "type": "portmap",
            "dataDir": lock.to_string_lossy(), "prevResult": prev_result("cnipm0"),
            "runtimeConfig": {"portMappings": [{"hostPort": 18081, "containerPort": 80, "protocol": "tcp"}]}})
    };
    let with = |key: &str, value: Value| {
        let mut c = base();
        c[key] = value;
        c
    };
    let mapping = |m: Value| {
        let mut c = base();
        c["runtimeConfig"]["portMappings"] = json!([m]);
        c
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            with(
                "conditionsV4",
                json!(["-s", "10.0.0.1\n-A INPUT -j ACCEPT"]),
            ),
            "invalid condition",
        ),
        (
            with(
                "conditionsV4",
                json!(["ip saddr 10.0.0.1; add rule ip filter input accept"]),
            ),
            "invalid condition",
        ),
        (
            with("conditionsV6", json!(["ip6 saddr ::1 # comment"])),
            "invalid condition",
        ),
        (
            with("externalSetMarkChain", json!("KUBE-MARK -j ACCEPT")),
            "externalSetMarkChain",
        ),
        (
            with("externalSetMarkChain", json!("KUBE\"MARK")),
            "externalSetMarkChain",
        ),
        (
            with("externalSetMarkChain", json!("-j")),
            "externalSetMarkChain",
        ),
        (
            mapping(json!({"hostPort": 18081, "containerPort": 80, "protocol": "tcp -j ACCEPT"})),
            "Invalid protocol",
        ),
        (
            mapping(json!({"hostPort": 18081, "containerPort": 80, "hostIP": "1.2.3.4 -j ACCEPT"})),
            "Invalid host IP",
        ),
        (
            mapping(json!({"hostPort": 0, "containerPort": 80})),
            "Invalid host port number",
        ),
        (
            mapping(json!({"hostPort": 70000, "containerPort": 80})),
            "Invalid host port number",
        ),
    ];
    for (conf, msg) in cases {
        let call = PluginCall::add(&conf).id("c1").ifname("eth0").netns(&ctr);
        refused(&world, &plugin, &call, 7, msg);
    }
    // One argv element holding a whole option string is passed as one quoted argument:
    // iptables-restore refuses it and nothing is left behind (or it is refused up front).
    let conf = with("conditionsV4", json!(["-s 10.0.0.1 -j ACCEPT"]));
    let conf = {
        let mut c = conf;
        c["backend"] = json!("iptables");
        c
    };
    let before = world.snapshot();
    let out = world.exec(
        &plugin,
        &PluginCall::add(&conf).id("c1").ifname("eth0").netns(&ctr),
    );
    let err = out.cni_error();
    assert!(err.code == 7 || err.code == 150, "{}", out.describe());
    // The host lock in the configured dataDir may have been created; nothing else changes.
    let in_lock_dir = |l: &str| l.starts_with("state/pmlock");
    integration_tests::assert_same!(
        before.without_lines(in_lock_dir),
        world.snapshot().without_lines(in_lock_dir),
        "after a refused ADD"
    );
}

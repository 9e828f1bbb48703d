//! firewall bad input: each bad ADD gets the right CNI error (code, message, exit code 1) and
//! changes nothing — not even the shared chains (the reference adds CNI-FORWARD rules before it
//! notices an unknown policy). A container is attached beforehand so there are rules a wrong
//! request could disturb; the whole world is compared before and after each request.

use integration_tests::firewall::{self, Firewall};
use integration_tests::{CniError, FirewallNet, Netns, World, config};
use serde_json::{Value, json};

struct Case {
    what: &'static str,
    conf: Value,
    code: u32,
    msg: String,
}

/// Runs every case as a direct ADD and panics listing all mismatches.
fn run_cases(net: &FirewallNet<'_>, ctr: &Netns, cases: Vec<Case>) {
    let world = net.world();
    let mut problems = Vec::new();
    for c in cases {
        let before = firewall::snapshot(world, &[net]);
        let out = net.exec(Firewall::Ours, &net.call("ADD", &c.conf, "ctr-bad", ctr));
        let mut fail =
            |why: String| problems.push(format!("[{}] {why}\n{}", c.what, out.describe()));
        if out.status != Some(1) {
            fail(format!("exit status {:?}, want 1", out.status));
        }
        match serde_json::from_slice::<CniError>(&out.stdout) {
            Err(e) => fail(format!("stdout is not a CNI error: {e}")),
            Ok(err) => {
                if err.code != c.code {
                    fail(format!("code {}, want {}", err.code, c.code));
                }
                if !err.text().contains(&c.msg) {
                    fail(format!(
                        "message {:?} does not contain {:?}",
                        err.text(),
                        c.msg
                    ));
                }
            }
        }
        if let Some(diff) = before.diff(&firewall::snapshot(world, &[net])) {
            fail(format!("state changed:\n{diff}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}

fn with(conf: &Value, extra: Value) -> Value {
    config::merge(conf.clone(), extra)
}

#[test]
fn bad_add_requests_get_the_right_errors_and_change_nothing() {
    let world = World::new();
    let fw = json!({"backend": "iptables", "ingressPolicy": "same-bridge"});
    let net = FirewallNet::new(&world, "fwbad", "a", &["10.99.1.0/24", "fd99:1::/64"], fw);
    net.write();
    let (attached, ctr) = (world.container(), world.container());
    let prev = net.add(&attached, "ctr-attached");
    net.settle(&prev);
    let good = net.conf("1.0.0", Some(&prev));
    let without = |v: &Value, key: &str| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove(key);
        }
        v
    };
    let no_ifaces = without(&prev, "interfaces");
    let no_prev = without(&good, "prevResult");

    let cases = vec![
        Case {
            what: "no prevResult",
            conf: no_prev.clone(),
            code: 7,
            msg: "missing prevResult from earlier plugin".to_owned(),
        },
        Case {
            what: "prevResult without interfaces, same-bridge",
            conf: with(&good, json!({"prevResult": no_ifaces})),
            code: 7,
            msg: "interface needs to be set for ingress policy \"same-bridge\", make sure to \
                  chain \"firewall\" plugin with \"bridge\""
                .to_owned(),
        },
        Case {
            what: "prevResult without interfaces, isolated",
            conf: with(
                &good,
                json!({"prevResult": no_ifaces, "ingressPolicy": "isolated"}),
            ),
            code: 7,
            msg: "interface needs to be set for ingress policy \"isolated\"".to_owned(),
        },
        Case {
            what: "unknown backend",
            conf: with(&good, json!({"backend": "ebpf"})),
            code: 7,
            msg: "unknown firewall backend \"ebpf\"".to_owned(),
        },
        Case {
            what: "firewalld backend",
            conf: with(&good, json!({"backend": "firewalld"})),
            code: 7,
            msg: "firewalld".to_owned(),
        },
        Case {
            what: "unknown ingressPolicy",
            conf: with(&good, json!({"ingressPolicy": "same-host"})),
            code: 7,
            msg: "unknown ingress policy: \"same-host\"".to_owned(),
        },
        Case {
            what: "admin chain naming a built-in target",
            conf: with(&good, json!({"iptablesAdminChainName": "ACCEPT"})),
            code: 7,
            msg: "iptablesAdminChainName".to_owned(),
        },
        Case {
            what: "cniVersion 0.3.1",
            conf: with(&good, json!({"cniVersion": "0.3.1"})),
            code: 1,
            msg: "incompatible CNI versions".to_owned(),
        },
        Case {
            what: "cniVersion 0.3.1 without prevResult",
            conf: with(&no_prev, json!({"cniVersion": "0.3.1"})),
            code: 1,
            msg: "incompatible CNI versions".to_owned(),
        },
    ];
    run_cases(&net, &ctr, cases);
}

#[test]
fn the_0_3_1_error_lists_the_supported_versions() {
    let world = World::new();
    let net = FirewallNet::new(&world, "fwver", "a", &["10.99.2.0/24"], json!({}));
    let ctr = world.container();
    let conf = net.conf("0.3.1", None);
    let err = net
        .exec(Firewall::Ours, &net.call("ADD", &conf, "ctr-v", &ctr))
        .expect_error(1, "incompatible CNI versions");
    assert_eq!(
        err.details.as_deref(),
        Some(r#"config is "0.3.1", plugin supports ["0.4.0" "1.0.0" "1.1.0"]"#)
    );
}

#[test]
fn del_with_a_config_add_refuses_succeeds_and_changes_nothing() {
    let world = World::new();
    let fw = json!({"backend": "iptables", "ingressPolicy": "same-bridge"});
    let net = FirewallNet::new(&world, "fwbaddel", "a", &["10.99.3.0/24"], fw);
    net.write();
    let ctr = world.container();
    let prev = net.add(&ctr, "ctr-keep");
    net.settle(&prev);
    let before = firewall::snapshot(&world, &[&net]);
    for extra in [
        json!({"ingressPolicy": "same-host"}),
        json!({"backend": "ebpf"}),
    ] {
        let conf = with(&net.conf("1.0.0", Some(&prev)), extra);
        net.exec(Firewall::Ours, &net.call("DEL", &conf, "ctr-keep", &ctr))
            .expect_silent_success();
        assert_eq!(before.diff(&firewall::snapshot(&world, &[&net])), None);
    }
}

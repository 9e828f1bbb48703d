//! Bad input gets the right CNI error (code, message, cniVersion, exit code 1) and changes
//! nothing: the whole world (namespaces and directory tree) is compared before and after.
//!
//! Each table runs every case and reports all mismatches together.

use integration_tests::{CniError, Plugin, PluginCall, World, config};
use serde_json::{Value, json};

/// One bad request and the error it must produce.
struct Case {
    what: &'static str,
    call: PluginCall,
    code: u32,
    msg: &'static str,
    /// The `cniVersion` the error must carry, when the config's version is known and valid.
    version: Option<&'static str>,
}

fn case(what: &'static str, call: PluginCall, code: u32, msg: &'static str) -> Case {
    Case {
        what,
        call,
        code,
        msg,
        version: Some("1.1.0"),
    }
}

/// Runs every case with `plugin` and panics listing all mismatches.
fn run_cases(world: &World, plugin: &Plugin, cases: Vec<Case>) {
    let mut problems = Vec::new();
    for c in cases {
        let before = world.snapshot();
        let out = world.exec(plugin, &c.call);
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
                if !err.text().contains(c.msg) {
                    fail(format!(
                        "message {:?} does not contain {:?}",
                        err.text(),
                        c.msg
                    ));
                }
                if err.details.as_deref() == Some("") {
                    fail("empty `details` must be omitted".to_owned());
                }
                if c.version.is_some() && err.cni_version.as_deref() != c.version {
                    fail(format!(
                        "cniVersion {:?}, want {:?}",
                        err.cni_version, c.version
                    ));
                }
            }
        }
        if let Some(diff) = before.diff(&world.snapshot()) {
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

fn host_local_conf(world: &World, ipam: Value) -> Value {
    config::host_local("1.1.0", "badnet", &world.data_dir(), ipam)
}

fn add(conf: &Value, ctr: &integration_tests::Netns) -> PluginCall {
    PluginCall::add(conf).id("c1").ifname("eth0").netns(ctr)
}

fn with(conf: &Value, key: &str, value: Value) -> Value {
    let mut conf = conf.clone();
    conf[key] = value;
    conf
}

fn without(conf: &Value, key: &str) -> Value {
    let mut conf = conf.clone();
    if let Some(map) = conf.as_object_mut() {
        map.remove(key);
    }
    conf
}

fn ipam_ranges(world: &World, ranges: Value) -> Value {
    host_local_conf(world, json!({ "ranges": ranges }))
}

#[test]
fn host_local_rejects_bad_requests_and_writes_nothing() {
    let world = World::new();
    let ctr = world.container();
    let good = host_local_conf(&world, config::ranges(&["10.77.0.0/24"]));
    let raw = |bytes: &[u8]| {
        PluginCall::raw("ADD", bytes.to_vec())
            .id("c1")
            .ifname("eth0")
            .netns(&ctr)
    };
    let mut cases = vec![
        Case {
            version: None,
            ..case(
                "malformed JSON",
                raw(br#"{"cniVersion":"1.1.0","name":"#),
                6,
                "error unmarshall network config",
            )
        },
        Case {
            version: None,
            ..case(
                "unknown cniVersion",
                add(&with(&good, "cniVersion", json!("9.9.9")), &ctr),
                1,
                "incompatible CNI versions",
            )
        },
        case(
            "missing name",
            add(&without(&good, "name"), &ctr),
            7,
            "missing network name",
        ),
        case(
            "missing ipam",
            add(&without(&good, "ipam"), &ctr),
            7,
            "IPAM config missing 'ipam' key",
        ),
        case(
            "traversal name ../../etc",
            add(&with(&good, "name", json!("../../etc")), &ctr),
            7,
            "invalid characters found in network name",
        ),
        case(
            "name a/b",
            add(&with(&good, "name", json!("a/b")), &ctr),
            7,
            "invalid characters found in network name",
        ),
        case(
            "name ..",
            add(&with(&good, "name", json!("..")), &ctr),
            7,
            "invalid characters found in network name",
        ),
        case(
            "CNI_ARGS unknown key",
            add(&good, &ctr).args("FOO=bar"),
            4,
            r#"ARGS: unknown args ["FOO=bar"]"#,
        ),
        case(
            "CNI_ARGS pair without =",
            add(&good, &ctr).args("novalue"),
            4,
            r#"ARGS: invalid pair "novalue""#,
        ),
        case(
            "container ID -bad",
            add(&good, &ctr).id("-bad"),
            4,
            "invalid characters in containerID",
        ),
        case(
            "container ID a/b",
            add(&good, &ctr).id("a/b"),
            4,
            "invalid characters in containerID",
        ),
        case(
            "missing container ID",
            add(&good, &ctr).unset("CNI_CONTAINERID"),
            4,
            "CNI_CONTAINERID",
        ),
        case(
            "ifname 16 bytes",
            add(&good, &ctr).ifname("eth0123456789abc"),
            4,
            "interface name is too long",
        ),
        case(
            "ifname with :",
            add(&good, &ctr).ifname("eth:1"),
            4,
            "interface name contains / or : or whitespace characters",
        ),
        case(
            "ifname ..",
            add(&good, &ctr).ifname(".."),
            4,
            "interface name is . or ..",
        ),
        case(
            "unknown CNI_COMMAND",
            add(&good, &ctr).env("CNI_COMMAND", "FOO"),
            4,
            "unknown CNI_COMMAND: FOO",
        ),
    ];
    let range_cases: [(&'static str, Value, &'static str); 10] = [
        ("no ranges", json!([]), "no IP ranges specified"),
        (
            "/31",
            json!([[{"subnet": "10.97.0.0/31"}]]),
            "Network 10.97.0.0/31 too small to allocate from",
        ),
        (
            "/128",
            json!([[{"subnet": "fd00:97::/128"}]]),
            "too small to allocate from",
        ),
        (
            "host bits",
            json!([[{"subnet": "10.97.0.5/24"}]]),
            "Network has host bits set. For a subnet mask of length 24 the network address is 10.97.0.0",
        ),
        (
            "rangeStart outside",
            json!([[{"subnet": "10.97.0.0/24", "rangeStart": "10.98.0.5"}]]),
            "RangeStart 10.98.0.5 not in network 10.97.0.0/24",
        ),
        (
            "rangeEnd outside",
            json!([[{"subnet": "10.97.0.0/24", "rangeEnd": "10.98.0.5"}]]),
            "RangeEnd 10.98.0.5 not in network 10.97.0.0/24",
        ),
        ("empty range set", json!([[]]), "empty range set"),
        (
            "mixed families in a set",
            json!([[{"subnet": "10.97.0.0/24"}, {"subnet": "fd00:97::/64"}]]),
            "mixed address families",
        ),
        (
            "overlap inside a set",
            json!([[{"subnet": "10.97.0.0/24"}, {"subnet": "10.97.0.0/25"}]]),
            "overlap",
        ),
        (
            "overlapping sets",
            json!([[{"subnet": "10.97.0.0/24"}], [{"subnet": "10.97.0.0/25"}]]),
            "range set 0 overlaps with 1",
        ),
    ];
    for (what, ranges, msg) in range_cases {
        cases.push(case(what, add(&ipam_ranges(&world, ranges), &ctr), 7, msg));
    }
    let two_v4 = config::host_local(
        "0.2.0",
        "badnet",
        &world.data_dir(),
        config::ranges(&["10.97.0.0/24", "10.96.0.0/24"]),
    );
    cases.push(Case {
        version: Some("0.2.0"),
        ..case(
            "0.2.0 with two IPv4 sets",
            add(&two_v4, &ctr),
            7,
            "CNI version 0.2.0 does not support more than 1 address per family",
        )
    });
    run_cases(&world, &Plugin::ours("host-local"), cases);
}

#[test]
fn loopback_rejects_bad_requests_and_changes_nothing() {
    let world = World::new();
    let ctr = world.container();
    let good = config::loopback("1.1.0", "lonet");
    let cases = vec![
        Case {
            version: None,
            ..case(
                "malformed JSON",
                PluginCall::raw("ADD", b"not json".to_vec())
                    .id("c1")
                    .ifname("eth0")
                    .netns(&ctr),
                6,
                "error unmarshall network config",
            )
        },
        Case {
            version: None,
            ..case(
                "unknown cniVersion",
                add(&with(&good, "cniVersion", json!("9.9.9")), &ctr),
                1,
                "incompatible CNI versions",
            )
        },
        case(
            "missing name",
            add(&without(&good, "name"), &ctr),
            7,
            "missing network name",
        ),
        case(
            "traversal name",
            add(&with(&good, "name", json!("../x")), &ctr),
            7,
            "invalid characters found in network name",
        ),
        case(
            "CNI_ARGS unknown key",
            add(&good, &ctr).args("FOO=bar"),
            4,
            r#"ARGS: unknown args ["FOO=bar"]"#,
        ),
        case(
            "container ID -bad",
            add(&good, &ctr).id("-bad"),
            4,
            "invalid characters in containerID",
        ),
        case(
            "ifname 16 bytes",
            add(&good, &ctr).ifname("eth0123456789abc"),
            4,
            "interface name is too long",
        ),
    ];
    run_cases(&world, &Plugin::ours("loopback"), cases);
    assert!(!ctr.lo_is_up(), "no bad request may bring lo up");
}

#[test]
fn env_errors_carry_the_config_version() {
    let world = World::new();
    let ctr = world.container();
    let confs = [
        (
            "host-local",
            host_local_conf(&world, config::ranges(&["10.77.0.0/24"])),
        ),
        ("loopback", config::loopback("1.1.0", "lonet")),
    ];
    for (plugin, conf) in confs {
        // A config version other than our highest, so a hard-coded "1.1.0" shows.
        let conf = with(&conf, "cniVersion", json!("0.4.0"));
        let cases = [
            (
                "container ID -bad",
                add(&conf, &ctr).id("-bad"),
                4,
                "invalid characters in containerID",
            ),
            (
                "ifname 16 bytes",
                add(&conf, &ctr).ifname("eth0123456789abc"),
                4,
                "interface name is too long",
            ),
            (
                "unknown CNI_COMMAND",
                add(&conf, &ctr).env("CNI_COMMAND", "FOO"),
                4,
                "unknown CNI_COMMAND: FOO",
            ),
            (
                "missing CNI_CONTAINERID",
                add(&conf, &ctr).unset("CNI_CONTAINERID"),
                4,
                "CNI_CONTAINERID",
            ),
            (
                "CNI_ARGS unknown key",
                add(&conf, &ctr).args("FOO=bar"),
                4,
                "ARGS: unknown args",
            ),
        ];
        let cases = cases
            .into_iter()
            .map(|(what, call, code, msg)| Case {
                version: Some("0.4.0"),
                ..case(what, call, code, msg)
            })
            .collect();
        run_cases(&world, &Plugin::ours(plugin), cases);
    }
}

#[test]
fn host_local_del_is_not_blocked_by_bad_cni_args() {
    // Teardown must always be possible: DEL parses CNI_ARGS leniently (facts §5).
    let world = World::new();
    let hl = integration_tests::HostLocal::ours(
        &world,
        host_local_conf(&world, config::ranges(&["10.77.0.0/24"])),
    );
    let baseline = hl.snapshot();
    hl.add("c1", "eth0").expect_success();
    hl.exec(&hl.call("DEL", "c1", "eth0").args("novalue;FOO=bar"))
        .expect_silent_success();
    hl.assert_at_baseline(&baseline);
}

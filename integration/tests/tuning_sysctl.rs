//! tuning sysctls: applied in the container netns only (with `IFNAME` substituted, also for
//! dotted ifnames such as `eth0.100`), recorded in the backup and restored on DEL (the
//! reference never restores them); bad keys, duplicates and keys refused by the allow-list fail
//! with a config error before anything is changed.

use integration_tests::tuning::ALLOWLIST_ENV;
use integration_tests::{Netns, PluginCall, TuningNet, World, assert_same, strip_empty};
use serde_json::{Value, json};

const ARP_FILTER: &str = "net/ipv4/conf/eth0/arp_filter";
const SOMAXCONN: &str = "net/core/somaxconn";
const PORT_START: &str = "net/ipv4/ip_unprivileged_port_start";

fn sysctl_conf() -> Value {
    json!({"sysctl": {
        "net.ipv4.conf.IFNAME.arp_filter": "1",
        "net.core.somaxconn": "512",
        "net/ipv4/ip_unprivileged_port_start": "80",
    }})
}

#[test]
fn sysctls_are_set_in_the_container_and_restored_on_del() {
    let world = World::new();
    let t = TuningNet::new(&world, "tunsys", "10.141.0.0/24");
    t.write("1.0.0", json!({}), sysctl_conf());
    let ctr = world.container();
    let keys = [SOMAXCONN, PORT_START];
    let ctr_before = TuningNet::sysctls(&ctr, &keys);
    let host_before = TuningNet::sysctls(world.host(), &keys);
    assert_ne!(
        ctr_before[SOMAXCONN], "512",
        "pick a value that changes something"
    );
    let baseline = t.snapshot();
    let id = t.tool().effective_container_id(&ctr);

    t.add(&ctr);
    let applied = TuningNet::sysctls(&ctr, &[ARP_FILTER, SOMAXCONN, PORT_START]);
    assert_eq!(applied[ARP_FILTER], "1");
    assert_eq!(applied[SOMAXCONN], "512");
    assert_eq!(applied[PORT_START], "80");
    assert_eq!(
        TuningNet::sysctls(world.host(), &keys),
        host_before,
        "host untouched"
    );

    // Tuning's own DEL puts every value back while eth0 still exists.
    let conf = t.direct_conf("1.0.0", sysctl_conf(), None);
    t.exec(&PluginCall::del(&conf).id(&id).ifname("eth0").netns(&ctr))
        .expect_silent_success();
    let restored = TuningNet::sysctls(&ctr, &[ARP_FILTER, SOMAXCONN, PORT_START]);
    assert_eq!(restored[ARP_FILTER], "0", "arp_filter restored");
    assert_eq!(
        restored[SOMAXCONN], ctr_before[SOMAXCONN],
        "somaxconn restored"
    );
    assert_eq!(
        restored[PORT_START], ctr_before[PORT_START],
        "port start restored"
    );
    assert_eq!(t.backup_files(), Vec::<String>::new());

    t.del(&ctr);
    assert_same!(baseline, t.snapshot(), "after the first DEL");

    // The whole chain again, through libcni alone.
    t.add(&ctr);
    assert_eq!(TuningNet::sysctls(&ctr, &[SOMAXCONN])[SOMAXCONN], "512");
    t.check(&ctr).expect_silent_success();
    t.del(&ctr);
    assert_eq!(
        TuningNet::sysctls(&ctr, &keys),
        ctr_before,
        "restored by cnitool del"
    );
    assert_eq!(t.backup_files(), Vec::<String>::new());
    assert_same!(baseline, t.snapshot(), "after DEL");
}

#[test]
fn dotted_ifname_gets_ifname_substituted_in_both_key_forms() {
    let world = World::new();
    let t = TuningNet::new(&world, "tundot", "10.142.0.0/24");
    t.write(
        "1.0.0",
        json!({}),
        json!({"sysctl": {
            "net.ipv4.conf.IFNAME.arp_filter": "1",
            "net/ipv4/conf/IFNAME/arp_ignore": "2",
        }}),
    );
    let ctr = world.container();
    let baseline = t.snapshot();
    let tool = t.tool().ifname("eth0.100");

    let result = tool.add(t.net(), &ctr).result();
    assert_eq!(
        result["interfaces"][2]["name"],
        json!("eth0.100"),
        "{result}"
    );
    let seen = TuningNet::sysctls(
        &ctr,
        &[
            "net/ipv4/conf/eth0.100/arp_filter",
            "net/ipv4/conf/eth0.100/arp_ignore",
        ],
    );
    assert_eq!(seen["net/ipv4/conf/eth0.100/arp_filter"], "1");
    assert_eq!(seen["net/ipv4/conf/eth0.100/arp_ignore"], "2");
    tool.check(t.net(), &ctr).expect_silent_success();

    tool.del(t.net(), &ctr).expect_silent_success();
    assert_eq!(t.backup_files(), Vec::<String>::new());
    assert_same!(baseline, t.snapshot(), "after DEL");
}

/// ADD of tuning with raw `stdin` after a bridge ADD; must fail with code 7 and `message`, and
/// change nothing (snapshot, sysctls, backups).
#[track_caller]
fn refused(
    t: &TuningNet<'_>,
    ctr: &Netns,
    id: &str,
    stdin: String,
    message: &str,
    env: &[(&str, &str)],
) {
    let keys = [SOMAXCONN, PORT_START, ARP_FILTER];
    t.settle(ctr);
    let before = (t.snapshot(), TuningNet::sysctls(ctr, &keys));
    let mut call = PluginCall::raw("ADD", stdin.clone().into_bytes())
        .id(id)
        .ifname("eth0")
        .netns(ctr);
    for (k, v) in env {
        call = call.env(k, v);
    }
    let out = t.exec(&call);
    let err = out.expect_error(7, message);
    eprintln!("refused: {}", err.text());
    assert_eq!(
        TuningNet::sysctls(ctr, &keys),
        before.1,
        "sysctls changed by {stdin}"
    );
    assert_eq!(
        t.backup_files(),
        Vec::<String>::new(),
        "backup written for {stdin}"
    );
    assert_same!(before.0, t.snapshot(), "after the refused ADD of {stdin}");
}

/// Tuning config text with `sysctl_body` spliced in verbatim (so keys can repeat).
fn raw_conf(t: &TuningNet<'_>, prev: &Value, sysctl_body: &str) -> String {
    format!(
        r#"{{"cniVersion":"1.0.0","name":"{}","type":"tuning","dataDir":"{}","mtu":1400,"sysctl":{{{sysctl_body}}},"prevResult":{prev}}}"#,
        t.net(),
        t.data_dir().display()
    )
}

#[test]
fn bad_and_duplicate_keys_are_refused_before_anything_changes() {
    let world = World::new();
    let t = TuningNet::new(&world, "tunbad", "10.143.0.0/24");
    t.write("1.0.0", json!({}), json!({}));
    let (ctr, c2) = (world.container(), world.container());
    let baseline = t.snapshot();
    let id = t.tool().effective_container_id(&ctr);
    let prev = t.add(&ctr);

    // A valid key first each time: it must not be applied either.
    let good = r#""net.core.somaxconn":"700""#;
    let cases: Vec<(String, &str)> = vec![
        (
            format!(r#"{good},"net/../../kernel/x":"1""#),
            "invalid net sysctl key",
        ),
        (
            format!(r#"{good},"net.ipv4.conf.IFNAME/../../../kernel.x":"1""#),
            "invalid net sysctl key",
        ),
        (
            format!(r#"{good},"kernel.hostname":"evil""#),
            "invalid net sysctl key: \"kernel.hostname\"",
        ),
        (
            format!(r#"{good},"net.core.somaxconn":"800""#),
            "duplicated sysctl keys are not allowed",
        ),
        (
            format!(r#"{good},"net/core/somaxconn":"800""#),
            "duplicated sysctl keys are not allowed",
        ),
    ];
    for (body, message) in cases {
        refused(&t, &ctr, &id, raw_conf(&t, &prev, &body), message, &[]);
    }
    // Through libcni: the list stops at tuning with the same message, after the bridge ADD.
    t.write(
        "1.0.0",
        json!({}),
        json!({"sysctl": {"net.core.somaxconn": "700", "kernel.hostname": "evil"}}),
    );
    let before = TuningNet::sysctls(&c2, &[SOMAXCONN]);
    let out = t.tool().add(t.net(), &c2);
    assert!(
        out.stderr_str()
            .contains(r#"plugin type="tuning" failed (add): invalid net sysctl key"#),
        "{}",
        out.describe()
    );
    assert_eq!(TuningNet::sysctls(&c2, &[SOMAXCONN]), before);
    t.del(&c2);
    t.del(&ctr);
    assert_eq!(t.backup_files(), Vec::<String>::new());
    let no_netconf =
        |s: integration_tests::Snapshot| s.without_lines(|l| l.starts_with("netconf/"));
    assert_same!(no_netconf(baseline), no_netconf(t.snapshot()), "after DEL");
}

#[test]
fn keys_outside_the_allowlist_are_refused_and_allowed_ones_applied() {
    let world = World::new();
    let t = TuningNet::new(&world, "tunallow", "10.144.0.0/24");
    t.write("1.0.0", json!({}), json!({}));
    let allow = t.allowlist_path();
    std::fs::write(
        &allow,
        "# comment\n^net\\.core\\.somaxconn$\n^net\\.ipv4\\.conf\\.IFNAME\\.arp_ignore$\n",
    )
    .expect("write allow-list");
    let allow = allow.to_string_lossy().into_owned();
    let env = [(ALLOWLIST_ENV, allow.as_str())];
    let ctr = world.container();
    let baseline = t.snapshot();
    let id = t.tool().effective_container_id(&ctr);
    let prev = t.add(&ctr);

    let body = r#""net.core.somaxconn":"700","net.ipv4.conf.IFNAME.arp_filter":"1""#;
    refused(
        &t,
        &ctr,
        &id,
        raw_conf(&t, &prev, body),
        "Sysctl net.ipv4.conf.IFNAME.arp_filter is not allowed. Only the following sysctls are \
         allowed: [^net\\.core\\.somaxconn$ ^net\\.ipv4\\.conf\\.IFNAME\\.arp_ignore$]",
        &env,
    );

    let ok = t.direct_conf(
        "1.0.0",
        json!({"sysctl": {"net.core.somaxconn": "700", "net.ipv4.conf.IFNAME.arp_ignore": "1"}}),
        Some(&prev),
    );
    let add = PluginCall::add(&ok)
        .id(&id)
        .ifname("eth0")
        .netns(&ctr)
        .env(ALLOWLIST_ENV, &allow);
    assert_eq!(
        strip_empty(t.exec(&add).result()),
        strip_empty(prev.clone()),
        "tuning passes the result through"
    );
    let seen = TuningNet::sysctls(&ctr, &[SOMAXCONN, "net/ipv4/conf/eth0/arp_ignore"]);
    assert_eq!(seen[SOMAXCONN], "700");
    assert_eq!(seen["net/ipv4/conf/eth0/arp_ignore"], "1");
    t.exec(&PluginCall::del(&ok).id(&id).ifname("eth0").netns(&ctr))
        .expect_silent_success();
    assert_ne!(
        TuningNet::sysctls(&ctr, &[SOMAXCONN])[SOMAXCONN],
        "700",
        "restored"
    );
    t.del(&ctr);
    assert_eq!(t.backup_files(), Vec::<String>::new());
    assert_same!(baseline, t.snapshot(), "after DEL");
}

//! macvlan config fields and failures: `mtu` (≤ the master's, else an error that leaves
//! nothing behind), `bcqueuelen`, L2-only networks, the MAC precedence (`mac` < CNI_ARGS `MAC`
//! < `runtimeConfig.mac`), IPAM-returned DNS kept in the result (the reference drops it), bad
//! configs, and a failed ADD that rolls back both the link and the IPAM reservation.

use integration_tests::inspect::{global_addrs, has_flag, has_link, link};
use integration_tests::{MacvlanBench, Netns, PluginCall, World, assert_same, config};
use serde_json::{Value, json};

const MAC_CONF: &str = "c2:00:00:00:00:01";
const MAC_ARGS: &str = "c2:00:00:00:00:02";
const MAC_RUNTIME: &str = "c2:00:00:00:00:03";

#[test]
fn mtu_and_bcqueuelen_are_applied_and_l2_networks_get_no_address() {
    let world = World::new();
    let b = MacvlanBench::new(&world, "mvattrs", "10.91.0.0/24");
    b.write("1.0.0", json!({"mtu": 1400, "bcqueuelen": 300}));
    let ctr = world.container();
    let baseline = b.snapshot();

    let result = b.add(&ctr);
    b.assert_result_matches_kernel(&result, &ctr, "eth0", "bridge");
    assert!(
        result.get("ips").is_none_or(|ips| ips == &json!([])),
        "L2: {result}"
    );
    let l = link(&ctr, "eth0");
    assert_eq!(l["mtu"], json!(1400), "{l}");
    assert_eq!(l["linkinfo"]["info_data"]["bcqueuelen"], json!(300), "{l}");
    assert!(has_flag(&l, "UP"), "{l}");
    assert_eq!(global_addrs(&ctr, "eth0"), Vec::<String>::new());

    b.del(&ctr);
    assert_same!(baseline, b.snapshot(), "after DEL");
}

#[test]
fn mtu_above_the_masters_fails_and_leaves_nothing() {
    let world = World::new();
    let b = MacvlanBench::new(&world, "mvbigmtu", "10.92.0.0/24");
    let extra = json!({"mtu": 9000, "ipam": b.ipam()});
    b.write("1.0.0", extra.clone());
    let ctr = world.container();
    let baseline = b.snapshot();

    let out = b.exec(
        &PluginCall::add(&b.conf("1.0.0", extra))
            .id("c1")
            .ifname("eth0")
            .netns(&ctr),
    );
    let err = out.cni_error();
    assert_eq!(
        err.msg,
        "invalid MTU 9000, must be [0, master MTU(1500)]",
        "{}",
        out.describe()
    );
    let via_tool = b.tool().add(&b.net, &ctr);
    assert!(
        via_tool.stderr_str().contains("invalid MTU 9000"),
        "{}",
        via_tool.describe()
    );
    assert!(b.reservations().is_empty(), "{:?}", b.reservations());
    assert_same!(baseline, b.snapshot(), "after the failed ADDs");
}

/// ADD through cnitool with `CNI_ARGS`/`CAP_ARGS` as given; returns (result MAC, link MAC).
fn mac_case(
    b: &MacvlanBench<'_>,
    ctr: &Netns,
    args: Option<&str>,
    caps: Option<Value>,
) -> (Value, Value) {
    let mut tool = b.tool();
    if let Some(a) = args {
        tool = tool.args(a);
    }
    if let Some(c) = &caps {
        tool = tool.cap_args(c);
    }
    let result = tool.add(&b.net, ctr).result();
    let seen = link(ctr, "eth0")["address"].clone();
    let reported = result["interfaces"][0]["mac"].clone();
    tool.del(&b.net, ctr).expect_silent_success();
    (reported, seen)
}

#[test]
fn mac_precedence_config_then_cni_args_then_runtime_config() {
    let world = World::new();
    let b = MacvlanBench::new(&world, "mvmac", "10.93.0.0/24");
    b.write(
        "1.0.0",
        json!({"mac": MAC_CONF, "capabilities": {"mac": true}, "ipam": b.ipam()}),
    );
    let ctrs: Vec<Netns> = (0..3).map(|_| world.container()).collect();
    let baseline = b.snapshot();

    let only_conf = mac_case(&b, &ctrs[0], None, None);
    assert_eq!(only_conf, (json!(MAC_CONF), json!(MAC_CONF)), "config mac");
    let args = format!("IgnoreUnknown=1;MAC={MAC_ARGS}");
    let with_args = mac_case(&b, &ctrs[1], Some(&args), None);
    assert_eq!(
        with_args,
        (json!(MAC_ARGS), json!(MAC_ARGS)),
        "CNI_ARGS MAC wins"
    );
    let all = mac_case(&b, &ctrs[2], Some(&args), Some(json!({"mac": MAC_RUNTIME})));
    assert_eq!(
        all,
        (json!(MAC_RUNTIME), json!(MAC_RUNTIME)),
        "runtimeConfig wins"
    );

    assert_same!(baseline, b.snapshot(), "after the DELs");
}

#[test]
fn dns_from_ipam_is_kept_and_config_dns_wins_over_it() {
    let world = World::new();
    let b = MacvlanBench::new(&world, "mvdns", "10.94.0.0/24");
    let resolv = world.write_file(
        "state/resolv.conf",
        b"nameserver 10.94.9.1\nnameserver 10.94.9.2\nsearch lan.test corp.test\noptions ndots:2\n",
    );
    let ipam = config::merge(b.ipam(), json!({"resolvConf": resolv.to_string_lossy()}));
    b.write("1.0.0", json!({"ipam": ipam}));
    let ctr = world.container();
    let baseline = b.snapshot();

    let result = b.add(&ctr);
    assert_eq!(
        result["dns"],
        json!({"nameservers": ["10.94.9.1", "10.94.9.2"],
               "search": ["lan.test", "corp.test"], "options": ["ndots:2"]}),
        "IPAM's DNS must reach the result: {result}"
    );
    b.del(&ctr);

    let config_dns = json!({"nameservers": ["10.94.8.8"], "domain": "mv.test"});
    b.write("1.0.0", json!({"ipam": ipam, "dns": config_dns}));
    let result = b.add(&ctr);
    assert_eq!(result["dns"], config_dns, "the config's dns wins: {result}");
    b.del(&ctr);

    // Rewriting the conflist changed the netconf file: compare the rest.
    let no_netconf =
        |s: integration_tests::Snapshot| s.without_lines(|l| l.starts_with("netconf/"));
    assert_same!(
        no_netconf(baseline),
        no_netconf(b.snapshot()),
        "after the DELs"
    );
}

#[test]
fn failed_add_after_ipam_rolls_back_link_and_reservation() {
    let world = World::new();
    let b = MacvlanBench::new(&world, "mvrollback", "10.95.0.0/24");
    // A route whose gateway is not on any link: the kernel refuses it after IPAM allocated.
    let ipam = config::merge(
        b.ipam(),
        json!({"routes": [{"dst": "10.196.0.0/16", "gw": "10.97.0.1"}]}),
    );
    b.write("1.0.0", json!({"ipam": ipam}));
    let ctr = world.container();
    let baseline = b.snapshot();

    let out = b.tool().add(&b.net, &ctr);
    assert!(!out.success(), "{}", out.describe());
    assert!(
        out.stderr_str().contains("10.196.0.0"),
        "the error names the route\n{}",
        out.describe()
    );
    assert!(!has_link(&ctr, "eth0"), "macvlan left behind");
    assert!(b.reservations().is_empty(), "{:?}", b.reservations());
    assert_same!(baseline, b.snapshot(), "after the failed ADD");
}

#[test]
fn bad_configs_and_an_existing_ifname_are_refused_without_changes() {
    let world = World::new();
    let b = MacvlanBench::new(&world, "mvbadconf", "10.96.0.0/24");
    let ctr = world.container();
    ctr.run_ok(&[
        "ip", "link", "add", "eth9", "type", "veth", "peer", "name", "eth8",
    ]);
    let baseline = b.snapshot();
    let cases: Vec<(Value, &str, u32, &str)> = vec![
        (json!({"mode": "hub"}), "eth0", 7, "unknown macvlan mode"),
        (json!({"master": "nope0"}), "eth0", 0, "Link not found"),
        (json!({}), "eth9", 0, "eth9"),
    ];
    for (extra, ifname, code, message) in cases {
        let conf = b.conf(
            "1.0.0",
            config::merge(json!({"ipam": b.ipam()}), extra.clone()),
        );
        let out = b.exec(&PluginCall::add(&conf).id("bad").ifname(ifname).netns(&ctr));
        let err = out.cni_error();
        eprintln!("{extra} on {ifname}: code {} {}", err.code, err.text());
        if code != 0 {
            assert_eq!(err.code, code, "{}", out.describe());
        }
        assert!(err.text().contains(message), "{}", out.describe());
        assert!(
            b.reservations().is_empty(),
            "{extra}: {:?}",
            b.reservations()
        );
        assert_same!(baseline, b.snapshot(), "after the failed ADD of {extra}");
    }
}

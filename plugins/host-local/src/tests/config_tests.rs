//! Decoding and validation of the `ipam` object, with the reference's exact messages.

use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::{ErrorKind, IpamConfig, RangeConfig, RangeSetConfig, parse_requested_ip};

fn normalize(
    ipam: Value,
    runtime: Value,
    version: &str,
) -> Result<crate::NormalizedConfig, String> {
    let ipam: IpamConfig = serde_json::from_value(ipam).map_err(|e| e.to_string())?;
    let runtime: Vec<RangeSetConfig> =
        serde_json::from_value(runtime).map_err(|e| e.to_string())?;
    ipam.normalize(&runtime, version).map_err(|e| {
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e:?}");
        e.message()
    })
}

fn err(ipam: Value) -> String {
    normalize(ipam, json!([]), "1.0.0").unwrap_err()
}

#[test]
fn validation_messages_match_the_reference() {
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "no IP ranges specified"),
        (json!({"ranges": []}), "no IP ranges specified"),
        (json!({"ranges": null}), "no IP ranges specified"),
        (
            json!({"ranges": [[]]}),
            "invalid range set 0: empty range set",
        ),
        (
            json!({"ranges": [null]}),
            "invalid range set 0: empty range set",
        ),
        (
            json!({"ranges": [[{}]]}),
            "invalid range set 0: IP <nil> not v4 nor v6",
        ),
        (
            json!({"ranges": [[null]]}),
            "invalid range set 0: IP <nil> not v4 nor v6",
        ),
        (
            json!({"ranges": [[{"subnet": "10.97.0.0/31"}]]}),
            "invalid range set 0: Network 10.97.0.0/31 too small to allocate from",
        ),
        (
            json!({"ranges": [[{"subnet": "10.97.0.1/32"}]]}),
            "invalid range set 0: Network 10.97.0.1/32 too small to allocate from",
        ),
        (
            json!({"ranges": [[{"subnet": "fd00::/127"}]]}),
            "invalid range set 0: Network fd00::/127 too small to allocate from",
        ),
        (
            json!({"ranges": [[{"subnet": "fd00::1/128"}]]}),
            "invalid range set 0: Network fd00::1/128 too small to allocate from",
        ),
        (
            json!({"ranges": [[{"subnet": "::ffff:10.0.0.0/127"}]]}),
            "invalid range set 0: Network 10.0.0.0/31 too small to allocate from",
        ),
        (
            json!({"ranges": [[{"subnet": "::ffff:10.0.0.0/120"}]]}),
            "invalid range set 0: IPNet IP and Mask version mismatch",
        ),
        (
            json!({"ranges": [[{"subnet": "10.97.0.5/24"}]]}),
            "invalid range set 0: Network has host bits set. For a subnet mask of length 24 the network address is 10.97.0.0",
        ),
        (
            json!({"ranges": [[{"subnet": "fd00:95::1/64"}]]}),
            "invalid range set 0: Network has host bits set. For a subnet mask of length 64 the network address is fd00:95::",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.1.1"}]]}),
            "invalid range set 0: RangeStart 10.0.1.1 not in network 10.0.0.0/24",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "fd00::1"}]]}),
            "invalid range set 0: RangeStart fd00::1 not in network 10.0.0.0/24",
        ),
        (
            json!({"ranges": [[{"subnet": "fd00:95::/120", "rangeStart": "fd00:95::0:fffe"}]]}),
            "invalid range set 0: RangeStart fd00:95::fffe not in network fd00:95::/120",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24", "rangeEnd": "10.0.1.1"}]]}),
            "invalid range set 0: RangeEnd 10.0.1.1 not in network 10.0.0.0/24",
        ),
        // start after end: the reference reports the start
        (
            json!({"ranges": [[{"subnet": "10.5.0.0/24", "rangeStart": "10.5.0.9", "rangeEnd": "10.5.0.5"}]]}),
            "invalid range set 0: RangeStart 10.5.0.9 not in network 10.5.0.0/24",
        ),
        // end before the default start (network + 1)
        (
            json!({"ranges": [[{"subnet": "10.5.0.0/24", "rangeEnd": "10.5.0.0"}]]}),
            "invalid range set 0: RangeEnd 10.5.0.0 not in network 10.5.0.0/24",
        ),
        // the broadcast address is inside the subnet and may be configured explicitly
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]]}),
            "invalid range set 0: mixed address families",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "10.0.0.0/25"}]]}),
            "invalid range set 0: subnets 10.0.0.1-10.0.0.254 and 10.0.0.1-10.0.0.126 overlap",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.128/25"}]]}),
            "range set 0 overlaps with 1",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}], [{"subnet": "fd00::/120"}]]}),
            "range set 1 overlaps with 2",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.1.0/24"}, {"subnet": "10.0.1.0/24"}]]}),
            "invalid range set 1: subnets 10.0.1.1-10.0.1.254 and 10.0.1.1-10.0.1.254 overlap",
        ),
        // legacy range is set 0, `ranges` follow
        (
            json!({"subnet": "10.0.0.0/24", "ranges": [[{"subnet": "10.1.5.0/16"}]]}),
            "invalid range set 1: Network has host bits set. For a subnet mask of length 16 the network address is 10.1.0.0",
        ),
        (
            json!({"subnet": "10.0.0.0/24", "ranges": [[{"subnet": "10.0.0.0/23"}]]}),
            "range set 0 overlaps with 1",
        ),
    ];
    for (ipam, expected) in cases {
        assert_eq!(err(ipam.clone()), expected, "{ipam}");
    }
}

#[test]
fn decode_errors_match_the_reference() {
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"ranges": [[{"subnet": "10.0.0.0"}]]}),
            "invalid CIDR address: 10.0.0.0",
        ),
        (
            json!({"ranges": [[{"subnet": ""}]]}),
            "invalid CIDR address: ",
        ),
        (
            json!({"ranges": [[{"subnet": null}]]}),
            "invalid CIDR address: ",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/33"}]]}),
            "invalid CIDR address: 10.0.0.0/33",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/+8"}]]}),
            "invalid CIDR address: 10.0.0.0/+8",
        ),
        (
            json!({"subnet": "bogus/8"}),
            "invalid CIDR address: bogus/8",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.300"}]]}),
            "invalid IP address: 10.0.0.300",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24", "gateway": "x"}]]}),
            "invalid IP address: x",
        ),
        (
            json!({"ranges": "nope"}),
            "json: cannot unmarshal string into ranges (expected array)",
        ),
        (
            json!({"ranges": [5]}),
            "json: cannot unmarshal number into range set (expected array)",
        ),
        (
            json!({"ranges": [[5]]}),
            "json: cannot unmarshal number into range (expected object)",
        ),
        (
            json!({"dataDir": 5}),
            "json: cannot unmarshal number into dataDir (expected string)",
        ),
    ];
    for (ipam, expected) in cases {
        let got = serde_json::from_value::<IpamConfig>(ipam.clone())
            .unwrap_err()
            .to_string();
        assert_eq!(got, expected, "{ipam}");
    }
    assert!(serde_json::from_value::<IpamConfig>(json!(5)).is_err());
    let routes = serde_json::from_value::<IpamConfig>(json!({"routes": [{"dst": "x"}]}));
    assert!(routes.unwrap_err().to_string().starts_with("routes: "));
}

#[test]
fn defaults_are_filled() {
    let cfg = normalize(
        json!({"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "fd00:95::/64"}]]}),
        json!([]),
        "1.0.0",
    )
    .unwrap();
    let v4 = &cfg.range_sets[0].ranges()[0];
    assert_eq!(v4.subnet().to_string(), "10.1.2.0/24");
    assert_eq!(v4.range_start().to_string(), "10.1.2.1");
    assert_eq!(v4.range_end().to_string(), "10.1.2.254");
    assert_eq!(v4.gateway().to_string(), "10.1.2.1");
    let v6 = &cfg.range_sets[1].ranges()[0];
    assert_eq!(v6.range_start().to_string(), "fd00:95::1");
    assert_eq!(v6.range_end().to_string(), "fd00:95::ffff:ffff:ffff:ffff");
    assert_eq!(v6.gateway().to_string(), "fd00:95::1");
    assert_eq!(cfg.data_dir, PathBuf::from("/var/lib/cni/networks"));
    assert_eq!(cfg.resolv_conf, None);
    assert!(cfg.routes.is_empty());
    assert_eq!(cfg.range_sets[0].to_string(), "10.1.2.1-10.1.2.254");
}

#[test]
fn explicit_values_are_canonicalised_and_the_gateway_is_not_checked() {
    let cfg = normalize(
        json!({"ranges": [[{"subnet": "10.1.2.0/24", "rangeStart": "::ffff:10.1.2.10",
            "rangeEnd": "10.1.2.20", "gateway": "192.168.0.1"}]],
            "dataDir": "", "resolvConf": ""}),
        json!([]),
        "1.0.0",
    )
    .unwrap();
    let r = &cfg.range_sets[0].ranges()[0];
    assert_eq!(r.range_start(), "10.1.2.10".parse::<IpAddr>().unwrap());
    assert_eq!(r.gateway(), "192.168.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(r.to_string(), "10.1.2.10-10.1.2.20");
    assert_eq!(cfg.data_dir, PathBuf::from(crate::DEFAULT_DATA_DIR));
    assert_eq!(cfg.resolv_conf, None);
    // the broadcast address may be configured explicitly
    let cfg = normalize(
        json!({"ranges": [[{"subnet": "10.1.2.0/30", "rangeEnd": "10.1.2.3"}]]}),
        json!([]),
        "1.0.0",
    )
    .unwrap();
    assert_eq!(cfg.range_sets[0].to_string(), "10.1.2.1-10.1.2.3");
}

#[test]
fn range_set_order_is_runtime_then_legacy_then_ranges() {
    let cfg = normalize(
        json!({"subnet": "10.2.0.0/24", "rangeStart": "10.2.0.10", "gateway": "10.2.0.254",
            "ranges": [[{"subnet": "10.3.0.0/24"}]]}),
        json!([[{"subnet": "10.1.0.0/24"}]]),
        "0.4.0",
    )
    .unwrap();
    let sets: Vec<String> = cfg.range_sets.iter().map(ToString::to_string).collect();
    assert_eq!(
        sets,
        [
            "10.1.0.1-10.1.0.254",
            "10.2.0.10-10.2.0.254",
            "10.3.0.1-10.3.0.254"
        ]
    );
    assert_eq!(
        cfg.range_sets[1].ranges()[0].gateway().to_string(),
        "10.2.0.254"
    );
}

#[test]
fn legacy_fields_without_subnet_are_ignored() {
    let e = err(json!({"rangeStart": "10.0.0.5"}));
    assert_eq!(e, "no IP ranges specified");
}

#[test]
fn old_versions_allow_one_address_per_family() {
    let two_v4 = json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.1.0.0/24"}]]});
    let dual = json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]});
    let msg = |v: &str| format!("CNI version {v} does not support more than 1 address per family");
    for version in ["0.1.0", "0.2.0", "", "0.2", "x.y.z", "0.3.0.1"] {
        assert_eq!(
            normalize(two_v4.clone(), json!([]), version).unwrap_err(),
            msg(version)
        );
        assert!(
            normalize(dual.clone(), json!([]), version).is_ok(),
            "{version}"
        );
    }
    for version in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0", "0.3", "1"] {
        assert!(
            normalize(two_v4.clone(), json!([]), version).is_ok(),
            "{version}"
        );
    }
    // runtime ranges count too
    let one = json!({"ranges": [[{"subnet": "10.0.0.0/24"}]]});
    assert_eq!(
        normalize(one, json!([[{"subnet": "10.1.0.0/24"}]]), "0.2.0").unwrap_err(),
        msg("0.2.0")
    );
}

#[test]
fn keys_match_case_insensitively_and_unknown_keys_are_ignored() {
    let ipam: IpamConfig = serde_json::from_value(json!({
        "TYPE": "host-local", "Ranges": [[{"SUBNET": "10.0.0.0/24", "rangestart": "10.0.0.5"}]],
        "datadir": "/x", "dataDir": "/y", "ResolvConf": "/etc/resolv.conf",
        "routes": [{"dst": "0.0.0.0/0"}], "unknown": {"nested": true}, "name": "ignored",
    }))
    .unwrap();
    assert_eq!(ipam.plugin_type, "host-local");
    assert_eq!(ipam.data_dir, Some(PathBuf::from("/y")), "exact key wins");
    assert_eq!(ipam.resolv_conf, Some(PathBuf::from("/etc/resolv.conf")));
    assert_eq!(
        ipam.ranges[0][0].range_start,
        Some("10.0.0.5".parse().unwrap())
    );
    assert_eq!(ipam.routes.len(), 1);
    assert_eq!(ipam.routes[0].dst.to_string(), "0.0.0.0/0");
}

#[test]
fn runtime_ranges_deserialise_from_runtime_config() {
    let sets: Vec<RangeSetConfig> =
        serde_json::from_value(json!([[{"subnet": "10.9.0.0/16", "gateway": "10.9.0.254"}]]))
            .unwrap();
    assert_eq!(
        sets[0][0],
        RangeConfig {
            subnet: Some("10.9.0.0/16".parse().unwrap()),
            gateway: Some("10.9.0.254".parse().unwrap()),
            ..RangeConfig::default()
        }
    );
}

#[test]
fn requested_ips_parse_like_the_reference() {
    let ok = [
        ("10.0.0.5", "10.0.0.5"),
        ("10.0.0.5/24", "10.0.0.5"),
        ("fd00::5", "fd00::5"),
        ("fd00::5/64", "fd00::5"),
        ("::ffff:10.0.0.5", "10.0.0.5"),
    ];
    for (text, want) in ok {
        assert_eq!(
            parse_requested_ip(text).unwrap().to_string(),
            want,
            "{text}"
        );
    }
    for bad in ["", "10.0.0", "10.0.0.5/33", "x/24", "10.0.0.5/"] {
        let e = parse_requested_ip(bad).unwrap_err();
        assert_eq!(e.message(), format!("invalid IP address: {bad}"));
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    }
}

#[test]
fn dns_comes_from_resolv_conf() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resolv.conf");
    std::fs::write(&path, "nameserver 192.0.2.53\nsearch example.com\n").unwrap();
    let cfg = normalize(
        json!({"ranges": [[{"subnet": "10.0.0.0/24"}]], "resolvConf": path.to_str().unwrap()}),
        json!([]),
        "1.0.0",
    )
    .unwrap();
    let dns = cfg.dns().unwrap();
    assert_eq!(dns.nameservers, ["192.0.2.53"]);
    assert_eq!(dns.search, ["example.com"]);
    let none = normalize(
        json!({"ranges": [[{"subnet": "10.0.0.0/24"}]]}),
        json!([]),
        "1.0.0",
    );
    assert!(none.unwrap().dns().unwrap().is_empty());
}

//! Sysctl key resolution, duplicates, merging and the allow-list.

use std::path::Path;

use cni_core::ErrorCode;
use serde_json::json;

use crate::allowlist::{self, AllowList};
use crate::sysctls::{entries, resolve_key, same_value};

#[test]
fn key_forms_resolve_to_slash_keys() {
    let cases = [
        // (key as written, ifname, resolved, dotted form)
        (
            "net.core.somaxconn",
            "eth0",
            "net/core/somaxconn",
            "net.core.somaxconn",
        ),
        (
            "net/core/somaxconn",
            "eth0",
            "net/core/somaxconn",
            "net.core.somaxconn",
        ),
        (
            "net.ipv4.conf.IFNAME.arp_filter",
            "eth0",
            "net/ipv4/conf/eth0/arp_filter",
            "net.ipv4.conf.IFNAME.arp_filter",
        ),
        // IFNAME is replaced after the dots became slashes: dotted ifnames survive (PR #779).
        (
            "net.ipv4.conf.IFNAME.arp_filter",
            "eth0.100",
            "net/ipv4/conf/eth0.100/arp_filter",
            "net.ipv4.conf.IFNAME.arp_filter",
        ),
        (
            "net/ipv4/conf/IFNAME/arp_filter",
            "eth0.100",
            "net/ipv4/conf/eth0.100/arp_filter",
            "net.ipv4.conf.IFNAME.arp_filter",
        ),
        // Slash form keeps literal dots; sysctl(8)'s dotted form writes them as '/'.
        (
            "net/ipv4/conf/eth0.100/arp_filter",
            "eth0",
            "net/ipv4/conf/eth0.100/arp_filter",
            "net.ipv4.conf.eth0/100.arp_filter",
        ),
        (
            "net.ipv4.conf.eth0/100.arp_filter",
            "eth0",
            "net/ipv4/conf/eth0.100/arp_filter",
            "net.ipv4.conf.eth0/100.arp_filter",
        ),
        // Only whole components are the token.
        (
            "net.ipv4.conf.IFNAMEX.arp_filter",
            "eth0",
            "net/ipv4/conf/IFNAMEX/arp_filter",
            "net.ipv4.conf.IFNAMEX.arp_filter",
        ),
    ];
    for (raw, ifname, key, canonical) in cases {
        let (c, k) = resolve_key(raw, ifname).unwrap_or_else(|e| panic!("{raw}: {e}"));
        assert_eq!(k, key, "{raw} / {ifname}");
        assert_eq!(c, canonical, "{raw}");
    }
}

#[test]
fn keys_outside_net_are_refused() {
    for raw in [
        "kernel.hostname",
        "kernel/hostname",
        "net/../../kernel/x",
        "net.ipv4/../../kernel",
        "net/ipv4/../../../kernel/core_pattern",
        "net..ipv4.ip_forward",
        "net/./ipv4/ip_forward",
        "/net/ipv4/ip_forward",
        ".net.ipv4.ip_forward",
        "net.ipv4.ip_forward.",
        "net",
        "",
        "netx.core.somaxconn",
        "net/core/some key",
    ] {
        let e = resolve_key(raw, "eth0").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidNetworkConfig, "{raw:?}");
        assert_eq!(e.msg, format!("invalid net sysctl key: {raw:?}"), "{raw:?}");
    }
    let e = resolve_key("net.ipv4.conf.IFNAME.x", "a/b").unwrap_err();
    assert_eq!(
        e.msg,
        "Interface name (a/b) contains an invalid character /"
    );
}

#[test]
fn duplicates_are_refused() {
    let dup_raw = br#"{"sysctl":{"net.core.somaxconn":"1","net.core.somaxconn":"2"}}"#;
    let same_file = br#"{"sysctl":{"net.core.somaxconn":"1","net/core/somaxconn":"2"}}"#;
    let ifname_alias =
        br#"{"sysctl":{"net.ipv4.conf.IFNAME.arp_filter":"1","net.ipv4.conf.eth0.arp_filter":"1"}}"#;
    let in_args =
        br#"{"args":{"cni":{"sysctl":{"net.core.somaxconn":"1","net.core.somaxconn":"2"}}}}"#;
    let twice = br#"{"sysctl":{"net.core.somaxconn":"1"},"sysctl":{"net.core.rmem_max":"2"}}"#;
    for raw in [&dup_raw[..], same_file, ifname_alias, in_args, twice] {
        let e = entries(raw, "eth0").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidNetworkConfig);
        assert_eq!(
            e.msg,
            "duplicated sysctl keys are not allowed",
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
}

#[test]
fn args_cni_overrides_and_extends_in_order() {
    let raw = json!({
        "sysctl": {"net.core.somaxconn": "500", "net.ipv4.conf.IFNAME.arp_filter": "1"},
        "args": {"cni": {"sysctl": {"net/core/somaxconn": "600", "net.ipv4.ip_forward": "1"}}}
    });
    let got = entries(&serde_json::to_vec(&raw).unwrap(), "eth0").unwrap();
    let pairs: Vec<(&str, &str)> = got
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("net/core/somaxconn", "600"),
            ("net/ipv4/conf/eth0/arp_filter", "1"),
            ("net/ipv4/ip_forward", "1"),
        ]
    );
    assert_eq!(got[0].raw, "net/core/somaxconn");
}

#[test]
fn document_order_is_kept() {
    let raw = br#"{"sysctl":{"net.ipv6.conf.all.disable_ipv6":"0","net.core.somaxconn":"5",
        "net.ipv4.ip_forward":"1"}}"#;
    let keys: Vec<String> = entries(raw, "eth0")
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(
        keys,
        [
            "net/ipv6/conf/all/disable_ipv6",
            "net/core/somaxconn",
            "net/ipv4/ip_forward"
        ]
    );
}

#[test]
fn values_must_be_strings_and_maps_objects() {
    let e = entries(br#"{"sysctl":{"net.core.somaxconn":500}}"#, "eth0").unwrap_err();
    assert_eq!(
        e.msg,
        "invalid value for sysctl \"net.core.somaxconn\": expected a string, got 500"
    );
    let e = entries(br#"{"sysctl":"net.core.somaxconn=5"}"#, "eth0").unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidNetworkConfig);
    assert!(e.msg.starts_with("invalid sysctl: "), "{}", e.msg);
    // No sysctl at all, null, and args that are not objects are fine.
    for raw in [
        &br#"{}"#[..],
        br#"{"sysctl":null}"#,
        br#"{"args":"x"}"#,
        br#"{"args":{"cni":5}}"#,
    ] {
        assert!(entries(raw, "eth0").unwrap().is_empty());
    }
}

#[test]
fn whitespace_runs_compare_equal() {
    assert!(same_value("0 2147483647", "0\t2147483647"));
    assert!(same_value("500", "500"));
    assert!(!same_value("500", "5000"));
}

fn entry(raw: &str) -> crate::sysctls::SysctlEntry {
    let (canonical, key) = resolve_key(raw, "eth0").unwrap();
    crate::sysctls::SysctlEntry {
        raw: raw.into(),
        canonical,
        key,
        value: "1".into(),
    }
}

#[test]
fn allow_list_matches_written_or_dotted_form() {
    let text =
        "# sysctls pods may set\n^net\\.core\\.somaxconn$\n\n  ^net.ipv4.conf.IFNAME.[a-z_]*$  \n";
    let list = AllowList::parse(text, Path::new("/x")).unwrap();
    let table = [
        ("net.core.somaxconn", true),
        ("net/core/somaxconn", true),
        ("net.ipv4.conf.IFNAME.arp_filter", true),
        ("net/ipv4/conf/IFNAME/arp_filter", true),
        ("net.ipv4.conf.eth0.arp_filter", false),
        ("net.core.rmem_max", false),
    ];
    for (raw, allowed) in table {
        assert_eq!(list.allows(&entry(raw)), allowed, "{raw}");
    }
    let e = list
        .check(&[entry("net.core.somaxconn"), entry("net.core.rmem_max")])
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidNetworkConfig);
    assert_eq!(
        e.msg,
        "Sysctl net.core.rmem_max is not allowed. Only the following sysctls are allowed: \
         [^net\\.core\\.somaxconn$ ^net.ipv4.conf.IFNAME.[a-z_]*$]"
    );
    // An empty (existing) list allows nothing; Go's ASCII classes.
    let empty = AllowList::parse("\n", Path::new("/x")).unwrap();
    assert!(empty.check(&[entry("net.core.somaxconn")]).is_err());
    assert!(empty.check(&[]).is_ok());
    let ascii = AllowList::parse(r"^net\.core\.\w+$", Path::new("/x")).unwrap();
    assert!(ascii.allows(&entry("net.core.somaxconn")));
}

#[test]
fn allow_list_file_handling() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("allowlist.conf");
    assert!(AllowList::load(&path).unwrap().is_none());
    std::fs::write(&path, "^net.core.somaxconn$\n(unclosed\n").unwrap();
    let e = AllowList::load(&path).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidNetworkConfig);
    assert!(
        e.msg
            .starts_with("invalid pattern on line 2 of the sysctl allow-list ")
    );
    std::fs::write(&path, "^net.core.somaxconn$\n").unwrap();
    assert!(AllowList::load(&path).unwrap().is_some());
    let from_env = allowlist::path(&|k| (k == allowlist::PATH_ENV).then(|| "/t/a.conf".into()));
    assert_eq!(from_env, Path::new("/t/a.conf"));
    assert_eq!(
        allowlist::path(&|_| None),
        Path::new(allowlist::DEFAULT_PATH)
    );
    assert_eq!(
        allowlist::path(&|_| Some(String::new())),
        Path::new(allowlist::DEFAULT_PATH)
    );
}

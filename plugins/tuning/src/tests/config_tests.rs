//! Config validation: MAC precedence, per-attachment overrides, numbers.

use std::path::PathBuf;

use cni_core::ErrorCode;
use serde_json::{Value, json};

use super::{attachment, invocation};
use crate::config::{DEFAULT_DATA_DIR, LinkSettings, TuningConfig};
use crate::plugin::validate;

fn load(conf: Value, cni_args: &str) -> Result<TuningConfig, cni_core::CniError> {
    let mut conf = conf;
    conf["name"] = json!("tnet");
    conf["type"] = json!("tuning");
    validate(&invocation(&conf), &attachment("eth0", cni_args), None)
}

const CONF: &str = "c2:00:00:00:00:01";
const ENV: &str = "c2:00:00:00:00:02";
const RUNTIME: &str = "c2:00:00:00:00:03";
const ARGS: &str = "c2:00:00:00:00:04";

#[test]
fn mac_precedence_follows_the_reference() {
    // (mac, CNI_ARGS MAC, runtimeConfig.mac, args.cni.mac) → chosen
    type Mac = Option<&'static str>;
    let cases: [(Mac, Mac, Mac, Mac, Mac); 9] = [
        (None, None, None, None, None),
        (Some(CONF), None, None, None, Some(CONF)),
        (Some(CONF), Some(ENV), None, None, Some(ENV)),
        (Some(CONF), Some(ENV), Some(RUNTIME), None, Some(RUNTIME)),
        (Some(CONF), Some(ENV), Some(RUNTIME), Some(ARGS), Some(ARGS)),
        (None, Some(ENV), None, Some(ARGS), Some(ARGS)),
        (Some(CONF), None, Some(RUNTIME), None, Some(RUNTIME)),
        // Empty strings do not override ...
        (Some(CONF), Some(""), Some(""), None, Some(CONF)),
        // ... except in args.cni, which cancels the MAC for this attachment.
        (Some(CONF), Some(ENV), Some(RUNTIME), Some(""), None),
    ];
    for (conf_mac, env, runtime, args, want) in cases {
        let mut conf = json!({"cniVersion": "1.0.0"});
        if let Some(m) = conf_mac {
            conf["mac"] = json!(m);
        }
        if let Some(m) = runtime {
            conf["runtimeConfig"] = json!({"mac": m});
        }
        if let Some(m) = args {
            conf["args"] = json!({"cni": {"mac": m}});
        }
        let cni_args = env.map(|m| format!("MAC={m}")).unwrap_or_default();
        let cfg = load(conf, &cni_args).unwrap();
        let want = want.map(|m| cni_kernel::netlink::parse_mac(m).unwrap());
        assert_eq!(
            cfg.link.mac, want,
            "{conf_mac:?} {env:?} {runtime:?} {args:?}"
        );
    }
}

#[test]
fn args_cni_overrides_link_settings() {
    let conf = json!({"cniVersion": "1.0.0", "mtu": 1400, "promisc": true, "allmulti": false,
        "txQLen": 500, "dataDir": "/tmp/t",
        "args": {"cni": {"mtu": 9000, "promisc": false, "allmulti": true, "txQLen": 0}}});
    let cfg = load(conf, "").unwrap();
    assert_eq!(
        cfg.link,
        LinkSettings {
            mac: None,
            promisc: false,
            mtu: Some(9000),
            allmulti: Some(true),
            txqlen: Some(0),
        }
    );
    assert_eq!(cfg.data_dir, PathBuf::from("/tmp/t"));
    let cfg = load(json!({"cniVersion": "0.3.1", "mtu": 0, "dataDir": ""}), "").unwrap();
    assert!(cfg.link.is_empty());
    assert_eq!(cfg.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
}

#[test]
fn bad_values_are_config_errors() {
    let cases = [
        (
            json!({"mac": "nonsense"}),
            "invalid MAC address \"nonsense\"",
        ),
        (
            json!({"mac": "01:00:5e:00:00:01"}),
            "invalid MAC address \"01:00:5e:00:00:01\"",
        ),
        (
            json!({"mac": "00:00:00:00:00:00"}),
            "invalid MAC address \"00:00:00:00:00:00\"",
        ),
        (
            json!({"runtimeConfig": {"mac": "zz"}}),
            "invalid MAC address \"zz\"",
        ),
        (
            json!({"mtu": -1}),
            "invalid MTU -1: must be between 0 and 2147483647",
        ),
        (
            json!({"mtu": 4294967296_i64}),
            "invalid MTU 4294967296: must be between 0 and 2147483647",
        ),
        (
            json!({"txQLen": -5}),
            "invalid txQLen -5: must be between 0 and 2147483647",
        ),
        (
            json!({"args": {"cni": {"mtu": -2}}}),
            "invalid MTU -2: must be between 0 and 2147483647",
        ),
        (json!({"args": {"cni": {"sysctl": "x"}}}), ""),
        (
            json!({"sysctl": {"kernel.hostname": "x"}}),
            "invalid net sysctl key: \"kernel.hostname\"",
        ),
    ];
    for (mut conf, msg) in cases {
        conf["cniVersion"] = json!("1.0.0");
        let e = load(conf.clone(), "").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidNetworkConfig, "{conf}");
        if !msg.is_empty() {
            assert_eq!(e.msg, msg, "{conf}");
        }
    }
    let e = load(json!({"cniVersion": "1.0.0"}), "MAC=bad").unwrap_err();
    assert_eq!(e.msg, "invalid MAC address \"bad\"");
}

#[test]
fn allow_list_applies_to_config_and_args() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("allowlist.conf");
    std::fs::write(&list, "^net.core.somaxconn$\n").unwrap();
    let conf = json!({"cniVersion": "1.0.0", "name": "n", "type": "tuning",
        "sysctl": {"net.core.somaxconn": "500"}});
    validate(&invocation(&conf), &attachment("eth0", ""), Some(&list)).unwrap();
    let conf = json!({"cniVersion": "1.0.0", "name": "n", "type": "tuning",
        "sysctl": {"net.core.somaxconn": "500"},
        "args": {"cni": {"sysctl": {"net.ipv4.ip_forward": "1"}}}});
    let e = validate(&invocation(&conf), &attachment("eth0", ""), Some(&list)).unwrap_err();
    assert_eq!(
        e.msg,
        "Sysctl net.ipv4.ip_forward is not allowed. Only the following sysctls are allowed: \
         [^net.core.somaxconn$]"
    );
    // No file: no restriction.
    let missing = dir.path().join("none.conf");
    validate(&invocation(&conf), &attachment("eth0", ""), Some(&missing)).unwrap();
}

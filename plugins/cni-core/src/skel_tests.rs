//! Table-driven tests of the dispatcher with a recording fake plugin.

use std::cell::RefCell;
use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use crate::result::types::IpConfig;

#[derive(Debug, Deserialize)]
struct FakeConf {
    #[serde(default)]
    fail: bool,
}

#[derive(Default)]
struct Fake {
    calls: RefCell<Vec<String>>,
    versions: Option<&'static [CniVersion]>,
}

impl Plugin for Fake {
    type Conf = FakeConf;
    const NAME: &'static str = "fake";
    const CNI_ARGS_KEYS: &'static [&'static str] = &["IP"];

    fn supported_versions(&self) -> &'static [CniVersion] {
        self.versions.unwrap_or(&CniVersion::ALL)
    }

    fn add(&self, inv: &Invocation<FakeConf>, att: &Attachment) -> Result<CniResult, CniError> {
        self.calls.borrow_mut().push(format!(
            "add {} {} {:?}",
            att.container_id,
            att.ifname,
            att.args.get("IP")
        ));
        if inv.conf.plugin.fail {
            return Err(CniError::plugin(120, "asked to fail"));
        }
        Ok(CniResult {
            ips: vec![IpConfig {
                address: "10.0.0.2/24".parse().unwrap(),
                gateway: None,
                interface: None,
            }],
            ..CniResult::default()
        })
    }

    fn del(&self, _inv: &Invocation<FakeConf>, att: &Attachment) -> Result<(), CniError> {
        self.calls
            .borrow_mut()
            .push(format!("del {} {:?}", att.container_id, att.netns));
        Ok(())
    }

    fn check(&self, _inv: &Invocation<FakeConf>, _att: &Attachment) -> Result<(), CniError> {
        self.calls.borrow_mut().push("check".into());
        Ok(())
    }

    fn gc(&self, _inv: &Invocation<FakeConf>, valid: &[AttachmentKey]) -> Result<(), CniError> {
        self.calls.borrow_mut().push(format!("gc {}", valid.len()));
        Ok(())
    }
}

fn run_with(plugin: &Fake, cmd: &str, extra: &[(&str, &str)], stdin: &str) -> Outcome {
    let mut map: HashMap<String, String> = [
        ("CNI_COMMAND", cmd),
        ("CNI_CONTAINERID", "ctr1"),
        ("CNI_NETNS", "/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        map.insert(k.to_string(), v.to_string());
    }
    dispatch(plugin, &move |k| map.get(k).cloned(), &mut stdin.as_bytes())
}

fn error_of(o: &Outcome) -> Value {
    assert_eq!(o.exit_code, 1, "expected failure, got {o:?}");
    serde_json::from_str(&o.stdout).unwrap()
}

#[test]
fn add_prints_result_in_config_version() {
    for (ver, key) in [
        ("1.1.0", "ips"),
        ("1.0.0", "ips"),
        ("0.4.0", "ips"),
        ("0.3.1", "ips"),
        ("0.2.0", "ip4"),
        ("0.1.0", "ip4"),
    ] {
        let f = Fake::default();
        let o = run_with(
            &f,
            "ADD",
            &[],
            &format!(r#"{{"cniVersion":"{ver}","name":"n"}}"#),
        );
        assert_eq!(o.exit_code, 0, "{o:?}");
        let v: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(v["cniVersion"], ver);
        assert!(v.get(key).is_some(), "{ver}: {v}");
        assert!(o.stdout.starts_with("{\n    \""), "4-space indent like Go");
    }
}

#[test]
fn missing_version_is_0_1_0() {
    let f = Fake::default();
    let o = run_with(&f, "ADD", &[], r#"{"name":"n"}"#);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["cniVersion"], "0.1.0");
    assert_eq!(v["ip4"]["ip"], "10.0.0.2/24");
}

#[test]
fn error_table() {
    let only_1_0: &'static [CniVersion] = &[CniVersion::V1_0_0];
    struct Case {
        cmd: &'static str,
        env: &'static [(&'static str, &'static str)],
        stdin: &'static str,
        code: u32,
        msg: &'static str,
        version: &'static str,
    }
    let cases = [
        Case {
            cmd: "ADD",
            env: &[],
            stdin: "{",
            code: 6,
            msg: "error unmarshall network config: ",
            version: "1.1.0",
        },
        Case {
            cmd: "ADD",
            env: &[],
            stdin: r#"{"cniVersion":"9.9.9","name":"n"}"#,
            code: 1,
            msg: "incompatible CNI versions",
            version: "1.1.0",
        },
        Case {
            cmd: "ADD",
            env: &[],
            stdin: r#"{"cniVersion":"1.0.0"}"#,
            code: 7,
            msg: "missing network name",
            version: "1.0.0",
        },
        Case {
            cmd: "ADD",
            env: &[],
            stdin: r#"{"cniVersion":"1.0.0","name":"../x"}"#,
            code: 7,
            msg: "invalid characters found in network name",
            version: "1.0.0",
        },
        Case {
            cmd: "ADD",
            env: &[],
            stdin: r#"{"cniVersion":"1.0.0","name":"n","fail":"yes"}"#,
            code: 6,
            msg: "error unmarshall network config: ",
            version: "1.0.0",
        },
        Case {
            cmd: "ADD",
            env: &[],
            stdin: r#"{"cniVersion":"1.0.0","name":"n","fail":true}"#,
            code: 120,
            msg: "asked to fail",
            version: "1.0.0",
        },
        Case {
            cmd: "ADD",
            env: &[("CNI_ARGS", "FOO=bar")],
            stdin: r#"{"cniVersion":"1.0.0","name":"n"}"#,
            code: 4,
            msg: "ARGS: unknown args [\"FOO=bar\"]",
            version: "1.0.0",
        },
        Case {
            cmd: "ADD",
            env: &[("CNI_ARGS", "novalue")],
            stdin: r#"{"cniVersion":"1.0.0","name":"n"}"#,
            code: 4,
            msg: "ARGS: invalid pair \"novalue\"",
            version: "1.0.0",
        },
        Case {
            cmd: "ADD",
            env: &[("CNI_CONTAINERID", "")],
            stdin: "{}",
            code: 4,
            msg: "required env variables [CNI_CONTAINERID] missing",
            version: "0.1.0",
        },
        Case {
            cmd: "ADD",
            env: &[("CNI_IFNAME", "a-very-long-ifname")],
            stdin: r#"{"cniVersion":"0.4.0"}"#,
            code: 4,
            msg: "interface name is too long",
            version: "0.4.0",
        },
        Case {
            cmd: "DEL",
            env: &[("CNI_CONTAINERID", "-x")],
            stdin: r#"{"cniVersion":"0.3.1"}"#,
            code: 4,
            msg: "invalid characters in containerID",
            version: "0.3.1",
        },
        Case {
            cmd: "ADD",
            env: &[("CNI_NETNS", "")],
            stdin: "not json",
            code: 4,
            msg: "required env variables [CNI_NETNS] missing",
            version: "1.1.0",
        },
        Case {
            cmd: "CHECK",
            env: &[],
            stdin: r#"{"cniVersion":"0.3.1","name":"n"}"#,
            code: 1,
            msg: "config version does not allow CHECK",
            version: "0.3.1",
        },
        Case {
            cmd: "GC",
            env: &[],
            stdin: r#"{"cniVersion":"1.0.0","name":"n"}"#,
            code: 1,
            msg: "config version does not allow GC",
            version: "1.0.0",
        },
        Case {
            cmd: "STATUS",
            env: &[],
            stdin: r#"{"cniVersion":"0.4.0","name":"n"}"#,
            code: 1,
            msg: "config version does not allow STATUS",
            version: "0.4.0",
        },
        Case {
            cmd: "BOGUS",
            env: &[],
            stdin: r#"{"cniVersion":"1.0.0"}"#,
            code: 4,
            msg: "unknown CNI_COMMAND: BOGUS",
            version: "1.0.0",
        },
    ];
    for c in cases {
        let f = Fake::default();
        let e = error_of(&run_with(&f, c.cmd, c.env, c.stdin));
        assert_eq!(e["code"], c.code, "{} {:?} {}: {e}", c.cmd, c.env, c.stdin);
        assert!(e["msg"].as_str().unwrap().starts_with(c.msg), "{e}");
        assert_eq!(e["cniVersion"], c.version, "{e}");
    }
    let f = Fake {
        versions: Some(only_1_0),
        ..Fake::default()
    };
    let e = error_of(&run_with(
        &f,
        "ADD",
        &[],
        r#"{"cniVersion":"1.1.0","name":"n"}"#,
    ));
    assert_eq!(
        e["details"],
        r#"config is "1.1.0", plugin supports ["1.0.0"]"#
    );
}

#[test]
fn del_is_lenient_about_args_and_netns() {
    let f = Fake::default();
    let o = run_with(
        &f,
        "DEL",
        &[("CNI_ARGS", "garbage;FOO=bar"), ("CNI_NETNS", "")],
        r#"{"cniVersion":"1.0.0","name":"n"}"#,
    );
    assert_eq!(
        o,
        Outcome {
            stdout: String::new(),
            stderr: String::new(),
            exit_code: 0
        }
    );
    assert_eq!(f.calls.borrow().as_slice(), ["del ctr1 None"]);
}

#[test]
fn gc_receives_valid_attachments() {
    let f = Fake::default();
    let stdin = r#"{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"},{"containerID":"b","ifname":"eth0"}]}"#;
    let o = run_with(
        &f,
        "GC",
        &[("CNI_CONTAINERID", ""), ("CNI_IFNAME", "")],
        stdin,
    );
    assert_eq!(o.exit_code, 0, "{o:?}");
    assert_eq!(f.calls.borrow().as_slice(), ["gc 2"]);
}

#[test]
fn status_needs_only_command() {
    let f = Fake::default();
    let o = run_with(
        &f,
        "STATUS",
        &[
            ("CNI_CONTAINERID", ""),
            ("CNI_IFNAME", ""),
            ("CNI_NETNS", ""),
            ("CNI_PATH", ""),
        ],
        r#"{"cniVersion":"1.1.0","name":"n"}"#,
    );
    assert_eq!(o.exit_code, 0);
    assert!(o.stdout.is_empty());
}

#[test]
fn version_echoes_supported_request() {
    let f = Fake::default();
    let o = run_with(&f, "VERSION", &[], r#"{"cniVersion":"0.4.0"}"#);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(
        v,
        json!({"cniVersion":"0.4.0","supportedVersions":["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]})
    );
    for garbage in ["", "nonsense", r#"{"cniVersion":"7.7.7"}"#] {
        let o = run_with(&f, "VERSION", &[], garbage);
        let v: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(v["cniVersion"], "1.1.0");
    }
}

#[test]
fn about_when_no_command() {
    let f = Fake::default();
    let o = run_with(&f, "", &[], "");
    assert_eq!(o.exit_code, 0);
    assert!(o.stdout.is_empty());
    assert!(o.stderr.starts_with("CNI fake plugin "), "{}", o.stderr);
    assert!(f.calls.borrow().is_empty());
}

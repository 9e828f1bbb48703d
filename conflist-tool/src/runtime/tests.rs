//! The runtime against scripted fake plugins: order, chaining, injected keys, environment,
//! cache format, CHECK / DEL / GC / STATUS semantics.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::*;
use crate::model::parse_conflist;

struct Bench {
    tmp: tempfile::TempDir,
    rt: Runtime,
}

const IFACE_RESULT: &str = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}],"ips":[{"address":"10.1.0.2/24","interface":0}]}"#;
const CHAINED_RESULT: &str = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}],"ips":[{"address":"10.1.0.2/24","interface":0}],"dns":{"nameservers":["10.1.0.1"]}}"#;

impl Bench {
    fn new() -> Bench {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        fs::create_dir(&bin).unwrap();
        let log = tmp.path().join("log");
        fs::create_dir(&log).unwrap();
        let plugin = |name: &str, add: &str| {
            let body = format!(
                "#!/bin/sh\ninput=$(cat)\n\
                 echo \"$CNI_COMMAND {name} id=$CNI_CONTAINERID if=$CNI_IFNAME netns=$CNI_NETNS args=$CNI_ARGS\" >> {log}/calls\n\
                 printf '%s' \"$input\" > {log}/{name}.$CNI_COMMAND\n\
                 if [ \"$CNI_COMMAND\" = ADD ]; then {add}; fi\n\
                 if [ \"$CNI_COMMAND\" = VERSION ]; then echo '{{\"supportedVersions\":[\"0.4.0\",\"1.0.0\",\"1.1.0\"]}}'; fi\n",
                log = log.display()
            );
            let path = bin.join(name);
            fs::write(&path, body).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        };
        plugin("iface", &format!("echo '{IFACE_RESULT}'"));
        plugin("chained", &format!("echo '{CHAINED_RESULT}'"));
        plugin(
            "broken",
            "echo '{\"code\":7,\"msg\":\"bad config\",\"details\":\"vlan\"}'; exit 1",
        );
        let rt = Runtime {
            cni_path: vec![tmp.path().join("nope"), bin],
            cache_dir: tmp.path().join("cache"),
        };
        Bench { tmp, rt }
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.tmp.path().join("log/calls"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split(" id=").next().unwrap().to_owned())
            .collect()
    }

    fn stdin(&self, plugin: &str, verb: &str) -> Value {
        let text =
            fs::read_to_string(self.tmp.path().join(format!("log/{plugin}.{verb}"))).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn log(&self) -> String {
        fs::read_to_string(self.tmp.path().join("log/calls")).unwrap_or_default()
    }
}

fn list(version: &str, extra: Value) -> ConfList {
    let mut doc = json!({"cniVersion": version, "name": "net1", "plugins": [
        {"type": "iface", "capabilities": {"mac": true, "portMappings": false}},
        {"type": "chained", "capabilities": {"portMappings": true}}
    ]});
    if let (Value::Object(d), Value::Object(e)) = (&mut doc, extra) {
        d.extend(e);
    }
    parse_conflist(serde_json::to_string_pretty(&doc).unwrap().as_bytes(), &[]).unwrap()
}

fn conf() -> RuntimeConf {
    RuntimeConf {
        container_id: "ctr1".into(),
        netns: "/run/netns/x".into(),
        ifname: "eth0".into(),
        args: vec![["IgnoreUnknown".into(), "1".into()]],
        capability_args: json!({"mac": "c2:00:00:00:00:01", "portMappings": [{"hostPort": 8080}]})
            .as_object()
            .unwrap()
            .clone(),
    }
}

#[test]
fn add_chains_results_injects_keys_and_caches() {
    let b = Bench::new();
    let l = list("1.0.0", json!({}));
    let result = b.rt.add(&l, &conf()).unwrap();
    assert_eq!(
        result,
        serde_json::from_str::<Value>(CHAINED_RESULT).unwrap()
    );
    assert_eq!(b.calls(), ["ADD iface", "ADD chained"]);
    assert!(
        b.log()
            .contains("id=ctr1 if=eth0 netns=/run/netns/x args=IgnoreUnknown=1"),
        "{}",
        b.log()
    );

    let first = b.stdin("iface", "ADD");
    assert_eq!(
        (first["name"].as_str(), first["cniVersion"].as_str()),
        (Some("net1"), Some("1.0.0"))
    );
    assert!(first.get("prevResult").is_none());
    assert_eq!(first["runtimeConfig"], json!({"mac": "c2:00:00:00:00:01"}));
    let second = b.stdin("chained", "ADD");
    assert_eq!(
        second["prevResult"],
        serde_json::from_str::<Value>(IFACE_RESULT).unwrap()
    );
    assert_eq!(
        second["runtimeConfig"],
        json!({"portMappings": [{"hostPort": 8080}]})
    );

    let file = cache::path(&b.rt.cache_dir, "net1", "ctr1", "eth0");
    let meta = fs::metadata(&file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let dir_mode = fs::metadata(file.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    let raw = fs::read_to_string(&file).unwrap();
    assert!(
        raw.starts_with(r#"{"kind":"cniCacheV1","containerId":"ctr1","config":""#),
        "{raw}"
    );
    let cached: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        cache::base64_decode(cached["config"].as_str().unwrap()).unwrap(),
        l.bytes
    );
    assert_eq!(cached["ifName"], "eth0");
    assert_eq!(cached["networkName"], "net1");
    assert_eq!(cached["netns"], "/run/netns/x");
    assert_eq!(cached["cniArgs"], json!([["IgnoreUnknown", "1"]]));
    assert_eq!(cached["capabilityArgs"]["mac"], "c2:00:00:00:00:01");
    assert_eq!(cached["result"], result);
}

#[test]
fn check_and_del_use_the_cached_result_del_in_reverse() {
    let b = Bench::new();
    let l = list("0.4.0", json!({}));
    let result = b.rt.add(&l, &conf()).unwrap();
    b.rt.check(&l, &conf()).unwrap();
    let check = b.stdin("iface", "CHECK");
    // The cached 1.0.0 result is handed over converted to the list's 0.4.0.
    assert_eq!(check["prevResult"]["cniVersion"], "0.4.0");
    assert_eq!(check["prevResult"]["ips"][0]["version"], "4");
    assert_eq!(result["cniVersion"], "1.0.0");
    b.rt.del(&l, &conf()).unwrap();
    assert_eq!(
        b.calls(),
        [
            "ADD iface",
            "ADD chained",
            "CHECK iface",
            "CHECK chained",
            "DEL chained",
            "DEL iface"
        ]
    );
    assert!(b.stdin("iface", "DEL").get("prevResult").is_some());
    assert!(!cache::path(&b.rt.cache_dir, "net1", "ctr1", "eth0").exists());
    // A second DEL works without a cache entry and passes no prevResult.
    b.rt.del(&l, &conf()).unwrap();
    assert!(b.stdin("iface", "DEL").get("prevResult").is_none());
}

#[test]
fn check_needs_0_4_0_and_honours_disable_check() {
    let b = Bench::new();
    let e = b.rt.check(&list("0.3.1", json!({})), &conf()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "configuration version \"0.3.1\" does not support the CHECK command"
    );
    b.rt.check(&list("1.0.0", json!({"disableCheck": true})), &conf())
        .unwrap();
    assert!(b.calls().is_empty());
}

#[test]
fn plugin_errors_read_like_libcni() {
    let b = Bench::new();
    let doc = json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "iface"}, {"type": "broken"}, {"type": "missing"}]});
    let l = parse_conflist(doc.to_string().as_bytes(), &[]).unwrap();
    let e = b.rt.add(&l, &conf()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "plugin type=\"broken\" failed (add): bad config; vlan"
    );
    assert!(!cache::path(&b.rt.cache_dir, "n", "ctr1", "eth0").exists());
    let e = b.rt.del(&l, &conf()).unwrap_err().to_string();
    assert!(
        e.starts_with(
            "plugin type=\"missing\" failed (delete): failed to find plugin \"missing\" in path ["
        ),
        "{e}"
    );
    let bad = RuntimeConf {
        container_id: "-bad".into(),
        ..conf()
    };
    assert_eq!(
        b.rt.add(&l, &bad).unwrap_err().to_string(),
        "invalid characters in containerID"
    );
}

#[test]
fn corrupt_cache_is_removed_and_del_goes_on() {
    let b = Bench::new();
    let l = list("1.0.0", json!({}));
    let file = cache::path(&b.rt.cache_dir, "net1", "ctr1", "eth0");
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(&file, "{not json").unwrap();
    b.rt.del(&l, &conf()).unwrap();
    assert!(!file.exists());
    assert_eq!(b.calls(), ["DEL chained", "DEL iface"]);
}

#[test]
fn gc_deletes_invalid_attachments_then_runs_gc() {
    let b = Bench::new();
    let l = list("1.1.0", json!({}));
    b.rt.add(&l, &conf()).unwrap();
    let other = RuntimeConf {
        container_id: "ctr2".into(),
        ..conf()
    };
    b.rt.add(&l, &other).unwrap();
    b.rt.gc(&l, &[("ctr1".into(), "eth0".into())]).unwrap();
    let calls = b.calls();
    assert_eq!(
        &calls[4..],
        ["DEL chained", "DEL iface", "GC iface", "GC chained"]
    );
    assert!(b.log().contains("DEL chained id=ctr2"));
    let gc = b.stdin("iface", "GC");
    assert_eq!(
        gc["cni.dev/valid-attachments"],
        json!([{"containerID": "ctr1", "ifname": "eth0"}])
    );
    assert_eq!(gc["cni.dev/attachments"], gc["cni.dev/valid-attachments"]);
    assert_eq!(b.rt.attachments(&l).len(), 1);
    b.rt.status(&l).unwrap();
    assert!(
        b.calls()
            .ends_with(&["STATUS iface".to_owned(), "STATUS chained".to_owned()])
    );
    // disableGC: nothing at all.
    let before = b.calls().len();
    b.rt.gc(&list("1.1.0", json!({"disableGC": true})), &[])
        .unwrap();
    assert_eq!(b.calls().len(), before);
}

#[test]
fn gc_and_status_before_1_1_0_only_delete() {
    let b = Bench::new();
    let l = list("1.0.0", json!({}));
    b.rt.add(&l, &conf()).unwrap();
    b.rt.gc(&l, &[]).unwrap();
    b.rt.status(&l).unwrap();
    assert_eq!(
        b.calls(),
        ["ADD iface", "ADD chained", "DEL chained", "DEL iface"]
    );
}

#[test]
fn binaries_are_found_in_path_order() {
    let b = Bench::new();
    let found = invoke::find("iface", &b.rt.cni_path).unwrap();
    assert_eq!(found, b.tmp.path().join("bin/iface"));
    assert!(matches!(
        invoke::find("../iface", &b.rt.cni_path),
        Err(invoke::InvokeError::InvalidName(_))
    ));
    let versions = invoke::versions(&found, "1.0.0").unwrap();
    assert_eq!(versions, ["0.4.0", "1.0.0", "1.1.0"]);
    let _: &Path = &b.rt.cache_dir;
    let _: PathBuf = b.rt.cache_dir.clone();
}

use serde_json::json;

use super::*;

#[test]
fn base64_round_trips_like_go() {
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("{\"a\":1}\n", "eyJhIjoxfQo="),
    ] {
        assert_eq!(base64_encode(plain.as_bytes()), encoded);
        assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
    }
    assert_eq!(base64_decode("Zg").unwrap(), b"f");
    assert!(base64_decode("Z").is_none());
    assert!(base64_decode("Zm9v!").is_none());
}

/// An entry exactly as libcni 1.1 (Debian's cnitool) writes it: no `netns` field, the result a
/// Go map (keys sorted).
const LIBCNI_1_1: &str = r#"{"kind":"cniCacheV1","containerId":"cnitool-f09c7c96cd7b16d5da00","config":"eyJjbmlWZXJzaW9uIjoiMS4wLjAiLCJuYW1lIjoibmV0MSIsInBsdWdpbnMiOlt7InR5cGUiOiJsb29wYmFjayJ9XX0=","ifName":"eth0","networkName":"net1","cniArgs":[["IgnoreUnknown","1"]],"result":{"cniVersion":"1.0.0","interfaces":[{"mac":"00:00:00:00:00:00","name":"lo","sandbox":"/run/netns/refA"}],"ips":[{"address":"127.0.0.1/8","interface":0}]}}"#;

#[test]
fn reads_libcni_entries_and_writes_them_back_identically() {
    let entry = match parse("net1", LIBCNI_1_1.as_bytes()).unwrap() {
        CacheEntry::V1(a) => *a,
        other => panic!("{other:?}"),
    };
    assert_eq!(entry.container_id, "cnitool-f09c7c96cd7b16d5da00");
    assert_eq!(
        String::from_utf8(entry.config.clone()).unwrap(),
        r#"{"cniVersion":"1.0.0","name":"net1","plugins":[{"type":"loopback"}]}"#
    );
    assert!(entry.netns.is_empty() && entry.capability_args.is_empty());
    assert_eq!(serde_json::to_string(&entry).unwrap(), LIBCNI_1_1);
}

#[test]
fn legacy_entries_are_raw_results() {
    let legacy = json!({"cniVersion": "0.4.0", "ips": []}).to_string();
    let entry = parse("n", legacy.as_bytes()).unwrap();
    assert!(matches!(entry, CacheEntry::Legacy(_)));
    assert_eq!(entry.result().unwrap()["cniVersion"], "0.4.0");
    assert!(parse("n", b"{").is_err());
}

#[test]
fn list_keeps_complete_v1_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = results_dir(tmp.path());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("net1-cnitool-f09c7c96cd7b16d5da00-eth0"),
        LIBCNI_1_1,
    )
    .unwrap();
    std::fs::write(dir.join("legacy-x-eth0"), "{\"cniVersion\":\"0.4.0\"}").unwrap();
    std::fs::write(dir.join("broken-x-eth0"), "{").unwrap();
    let listed = list(tmp.path());
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .any(|(_, e)| e.as_ref().is_ok_and(|a| a.network_name == "net1"))
    );
    assert!(
        listed
            .iter()
            .any(|(p, e)| e.is_err() && p.ends_with("broken-x-eth0"))
    );
    delete(tmp.path(), "net1", "cnitool-f09c7c96cd7b16d5da00", "eth0").unwrap();
    delete(tmp.path(), "net1", "cnitool-f09c7c96cd7b16d5da00", "eth0").unwrap();
    assert_eq!(list(tmp.path()).len(), 1);
}

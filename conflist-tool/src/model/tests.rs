use std::fs;

use serde_json::json;

use super::*;

fn parse(v: serde_json::Value) -> Result<ConfList, LoadError> {
    parse_conflist(v.to_string().as_bytes(), &[])
}

fn lo() -> serde_json::Value {
    json!([{"type": "loopback"}])
}

#[test]
fn libcni_messages() {
    let cases = [
        (
            json!({"plugins": lo()}),
            "error parsing configuration list: no name",
        ),
        (
            json!({"name": 1, "plugins": lo()}),
            "error parsing configuration list: invalid name type float64",
        ),
        (
            json!({"name": "n", "cniVersion": true, "plugins": lo()}),
            "error parsing configuration list: invalid cniVersion type bool",
        ),
        (
            json!({"name": "n", "cniVersions": "1.0.0", "plugins": lo()}),
            "error parsing configuration list: invalid type for cniVersions: string",
        ),
        (
            json!({"name": "n", "cniVersions": ["1.0.0", 2], "plugins": lo()}),
            "error parsing configuration list: invalid cniVersions entry 2 at index 1",
        ),
        (
            json!({"name": "n", "disableCheck": "yes", "plugins": lo()}),
            "error parsing configuration list: invalid value \"yes\" for disableCheck",
        ),
        (
            json!({"name": "n", "plugins": {}}),
            "error parsing configuration list: invalid 'plugins' type map[string]interface {}",
        ),
        (
            json!({"name": "n", "plugins": []}),
            "error parsing configuration list: no plugins in list",
        ),
        (
            json!({"name": "n"}),
            "error parsing configuration list: no plugins in list",
        ),
        (
            json!({"name": "n", "loadOnlyInlinedPlugins": true}),
            "error parsing configuration list: `loadOnlyInlinedPlugins` is true, and no 'plugins' key",
        ),
        (
            json!({"name": "n", "plugins": [{"bridge": "x"}]}),
            "failed to parse plugin config 0: error parsing configuration: missing 'type'",
        ),
        (
            json!({"name": "n", "plugins": [{"type": 5}]}),
            "failed to parse plugin config 0: error parsing configuration: json: cannot unmarshal number into Go struct field NetConf.type of type string",
        ),
        (
            json!({"name": "n", "plugins": [{"type": "x", "capabilities": {"mac": 1}}]}),
            "failed to parse plugin config 0: error parsing configuration: json: cannot unmarshal object into Go struct field NetConf.capabilities of type map[string]bool",
        ),
        (
            json!([]),
            "error parsing configuration list: json: cannot unmarshal array into Go value of type map[string]interface {}",
        ),
    ];
    for (doc, msg) in cases {
        assert_eq!(parse(doc.clone()).unwrap_err().to_string(), msg, "{doc}");
    }
}

#[test]
fn flags_and_versions() {
    let l = parse(
        json!({"name": "n", "cniVersion": "0.4.0", "cniVersions": ["1.0.0", "1.1.0", "9.0.0"],
        "disableCheck": "TRUE", "disableGC": true, "plugins": lo()}),
    )
    .unwrap();
    assert!(l.disable_check && l.disable_gc && !l.load_only_inlined);
    assert_eq!(select_version(&l.cni_version, &l.cni_versions), "1.1.0");
    assert_eq!(select_version("0.4.0", &[]), "0.4.0");
    assert_eq!(select_version("", &[]), "");
    let e = parse_json(b"{\n  \"a\": 1,\n}").unwrap_err();
    assert!(
        matches!(
            e,
            LoadError::Syntax {
                line: 3,
                col: 1,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn directory_lookup_follows_libcni() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| fs::write(tmp.path().join(name), text).unwrap();
    write(
        "20-a.conflist",
        &json!({"cniVersion": "1.0.0", "name": "a", "plugins": lo()}).to_string(),
    );
    write(
        "30-a.conflist",
        &json!({"cniVersion": "1.0.0", "name": "a", "plugins": [{"type": "bridge"}]}).to_string(),
    );
    write(
        "40-b.conflist",
        &json!({"cniVersion": "1.0.0", "name": "b", "plugins": lo()}).to_string(),
    );
    write(
        "10-single.conf",
        &json!({"cniVersion": "1.0.0", "name": "s", "type": "loopback"}).to_string(),
    );
    write("ignored.txt", "not a config");
    let dir = ConfDir::read(tmp.path());
    let names: Vec<String> = dir.files.iter().map(ConfFile::file_name).collect();
    assert_eq!(
        names,
        [
            "20-a.conflist",
            "30-a.conflist",
            "40-b.conflist",
            "10-single.conf"
        ]
    );
    match dir.lookup("a") {
        Lookup::Found(f) => assert_eq!(f.file_name(), "20-a.conflist"),
        other => panic!("{other:?}"),
    }
    match dir.lookup("s") {
        Lookup::Found(f) => assert_eq!(f.list.as_ref().unwrap().plugin_types(), ["loopback"]),
        other => panic!("{other:?}"),
    }
    assert!(matches!(dir.lookup("zzz"), Lookup::NotFound));
    assert_eq!(dir.effective().len(), 3);

    write("35-broken.conflist", "{");
    let dir = ConfDir::read(tmp.path());
    assert!(matches!(dir.lookup("a"), Lookup::Found(_)));
    match dir.lookup("b") {
        Lookup::Aborted(f, LoadError::Syntax { .. }) => {
            assert_eq!(f.file_name(), "35-broken.conflist")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn sibling_directory_plugins_are_aggregated() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("agg")).unwrap();
    fs::write(
        tmp.path().join("agg/20-tuning.conf"),
        r#"{"type": "tuning"}"#,
    )
    .unwrap();
    fs::write(tmp.path().join("agg/10-fw.conf"), r#"{"type": "firewall"}"#).unwrap();
    let list = json!({"cniVersion": "1.1.0", "name": "agg", "plugins": [{"type": "bridge"}]});
    fs::write(tmp.path().join("agg.conflist"), list.to_string()).unwrap();
    let file = ConfFile::load(&tmp.path().join("agg.conflist"));
    assert_eq!(
        file.list.unwrap().plugin_types(),
        ["bridge", "firewall", "tuning"]
    );
    let inlined = json!({"cniVersion": "1.1.0", "name": "agg", "loadOnlyInlinedPlugins": true, "plugins": [{"type": "bridge"}]});
    fs::write(tmp.path().join("agg.conflist"), inlined.to_string()).unwrap();
    let file = ConfFile::load(&tmp.path().join("agg.conflist"));
    assert_eq!(file.list.unwrap().plugin_types(), ["bridge"]);
}

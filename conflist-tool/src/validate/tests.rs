//! The broken corpus (`testdata/broken/`) drives a table test: every `<name>.conflist` must
//! produce the finding its `<name>.expect` describes, every `<name>.d/` directory the
//! cross-file finding in its `expect`. Valid podman-written files must produce no error.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

#[derive(Debug, Default)]
struct Expect {
    severity: String,
    rule: String,
    path: String,
    at: Option<String>,
    message: String,
    file: Option<String>,
}

fn parse_expect(text: &str) -> Expect {
    let mut e = Expect::default();
    for line in text.lines() {
        let (k, v) = line.split_once(": ").unwrap_or((line, ""));
        let v = v.to_owned();
        match k {
            "severity" => e.severity = v,
            "rule" => e.rule = v,
            "path" => e.path = v,
            "at" => e.at = Some(v),
            "message" => e.message = v,
            "file" => e.file = Some(v),
            other => panic!("unknown expect key {other:?}"),
        }
    }
    e
}

fn matches(f: &Finding, e: &Expect) -> bool {
    f.severity.to_string() == e.severity
        && f.rule == e.rule
        && f.path == e.path
        && f.message.contains(&e.message)
        && e.at.as_ref().is_none_or(|at| {
            f.line.zip(f.col).map(|(l, c)| format!("{l}:{c}")).as_ref() == Some(at)
        })
        && e.file
            .as_ref()
            .is_none_or(|name| f.file.file_name().is_some_and(|n| n == name.as_str()))
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    entries
}

#[test]
fn broken_corpus_produces_each_expected_finding() {
    let dir = testdata().join("broken");
    let mut failures = Vec::new();
    let mut cases = 0;
    for path in sorted_entries(&dir) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (findings, expect) = if name.ends_with(".conflist") {
            let expect = path.with_extension("expect");
            let text = fs::read_to_string(&expect)
                .unwrap_or_else(|_| panic!("{name} has no {}", expect.display()));
            (
                validate_file(&ConfFile::load(&path), &Options::default()),
                parse_expect(&text),
            )
        } else if name.ends_with(".d") {
            let text = fs::read_to_string(path.join("expect")).unwrap();
            (
                validate_dir(&ConfDir::read(&path), &Options::default()),
                parse_expect(&text),
            )
        } else {
            continue;
        };
        cases += 1;
        if !findings.iter().any(|f| matches(f, &expect)) {
            let got: Vec<String> = findings.iter().map(ToString::to_string).collect();
            failures.push(format!(
                "{name}: expected {expect:?}\n  got:\n    {}",
                got.join("\n    ")
            ));
        }
    }
    assert!(cases >= 60, "corpus too small: {cases}");
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_expect_has_a_file() {
    for path in sorted_entries(&testdata().join("broken")) {
        if path.extension().is_some_and(|e| e == "expect") {
            assert!(
                path.with_extension("conflist").is_file(),
                "{}",
                path.display()
            );
        }
    }
}

#[test]
fn podman_written_files_have_no_errors() {
    let mut files = vec![testdata().join("87-podman-bridge.conflist")];
    files.extend(
        sorted_entries(&testdata().join("podman"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "conflist")),
    );
    for path in files {
        let findings = validate_file(&ConfFile::load(&path), &Options::default());
        let errors: Vec<String> = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .map(ToString::to_string)
            .collect();
        assert!(
            errors.is_empty(),
            "{}:\n{}",
            path.display(),
            errors.join("\n")
        );
    }
}

#[test]
fn clean_files_have_no_findings_at_all() {
    for name in ["loopback.conflist", "host-local-dual-stack.conflist"] {
        let findings = validate_file(&ConfFile::load(&testdata().join(name)), &Options::default());
        assert!(findings.is_empty(), "{name}: {findings:#?}");
    }
}

fn script(dir: &Path, name: &str, versions: &str) {
    let path = dir.join(name);
    let body = format!(
        "#!/bin/sh\necho '{{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[{versions}]}}'\n"
    );
    fs::write(&path, body).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn binaries_must_exist_and_support_the_version() {
    let tmp = tempfile::tempdir().unwrap();
    script(tmp.path(), "bridge", r#""0.3.1","0.4.0","1.0.0""#);
    script(tmp.path(), "host-local", r#""0.3.1","0.4.0""#);
    let conf = tmp.path().join("net.conflist");
    fs::write(
        &conf,
        r#"{"cniVersion":"1.0.0","name":"n","plugins":[
            {"type":"bridge","bridge":"cni-t0","ipam":{"type":"host-local","ranges":[[{"subnet":"10.89.0.0/24"}]]}},
            {"type":"tuning"}]}"#,
    )
    .unwrap();
    let opts = Options {
        cni_path: vec![tmp.path().to_owned()],
        host: None,
    };
    let findings = validate_file(&ConfFile::load(&conf), &opts);
    let find = |rule: &str, path: &str| {
        findings
            .iter()
            .find(|f| f.rule == rule && f.path == path)
            .unwrap_or_else(|| panic!("no {rule} at {path}: {findings:#?}"))
    };
    assert!(
        find("plugin-missing", ".plugins[1].type")
            .message
            .starts_with("failed to find plugin \"tuning\" in path [")
    );
    assert_eq!(
        find("plugin-version", ".plugins[0].ipam.type").message,
        "plugin host-local does not support config version \"1.0.0\""
    );
    assert!(
        !findings.iter().any(|f| f.path == ".plugins[0].type"),
        "{findings:#?}"
    );
}

#[test]
fn host_checks_use_the_snapshot() {
    use crate::host::{HostLink, HostSnapshot};
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("net.conflist");
    fs::write(
        &conf,
        r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"macvlan","master":"eth9"}]}"#,
    )
    .unwrap();
    let host = HostSnapshot {
        links: vec![HostLink {
            index: 1,
            name: "lo".into(),
            ..HostLink::default()
        }],
    };
    let opts = Options {
        cni_path: Vec::new(),
        host: Some(host),
    };
    let findings = validate_file(&ConfFile::load(&conf), &opts);
    assert!(
        findings
            .iter()
            .any(|f| f.rule == "host-link" && f.path == ".plugins[0].master"),
        "{findings:#?}"
    );
}

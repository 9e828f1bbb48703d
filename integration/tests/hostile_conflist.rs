//! `cni-conflist create` / `rm` / `inspect` / `validate` / `exec` with hostile network names
//! (and a hostile `--interface-name` for create): every one is refused with a clear message and
//! a failing exit status, and neither the configuration directory nor anything around it
//! changes — in particular `rm ../<x>` never deletes a file outside `--dir`. Files `create`
//! writes are 0644.

// Test helpers stop the test loudly, as the harness does.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;

use integration_tests::{Snapshot, World};

const HOSTILE: [&str; 10] = [
    "../outside",
    "../../etc/passwd",
    "a/b",
    "..",
    ".",
    "a b",
    "x;rm -rf /",
    "-x",
    "$(reboot)",
    "web\n",
];

#[test]
fn hostile_names_are_refused_everywhere() {
    let world = World::new();
    let tool = world.conflist_tool();
    // A real network, and a file right outside the configuration directory that a traversal
    // would reach.
    tool.ok(&["create", "--subnet", "10.209.0.0/24", "good"]);
    let outside = world.root().join("outside.conflist");
    std::fs::write(
        &outside,
        br#"{"cniVersion":"1.0.0","name":"outside","plugins":[]}"#,
    )
    .unwrap();
    let ctr = world.container();
    let netns = ctr.path_str();
    let before = Snapshot::dir("world", world.root());
    for name in HOSTILE {
        let attempts: [&[&str]; 6] = [
            &["create", "--subnet", "10.210.0.0/24", name],
            &["rm", name],
            &["rm", "--force", name],
            &["inspect", name],
            &["validate", name],
            &["exec", "add", name, &netns],
        ];
        for args in attempts {
            let out = tool.run(args);
            assert!(
                !out.success(),
                "cni-conflist {args:?} succeeded\n{}",
                out.describe()
            );
            let text = format!("{}{}", out.stdout_str(), out.stderr_str());
            assert!(
                text.contains("invalid network name")
                    || text.contains("no network")
                    || text.contains("no such file")
                    || text.contains("unexpected argument"),
                "cni-conflist {args:?}: unclear message\n{}",
                out.describe()
            );
        }
    }
    // A hostile bridge name for create.
    for iface in ["br0; rm -rf /", "../x", "0123456789abcdef", "a b"] {
        let out = tool.run(&["create", "--interface-name", iface, "brtest"]);
        assert!(
            !out.success(),
            "--interface-name {iface:?} accepted\n{}",
            out.describe()
        );
        assert!(
            out.stderr_str().contains("invalid bridge name"),
            "{}",
            out.describe()
        );
    }
    integration_tests::assert_same!(
        before,
        Snapshot::dir("world", world.root()),
        "hostile names changed files"
    );
    assert!(outside.exists());
}

#[test]
fn created_conflists_are_0644_and_rm_removes_only_its_own_file() {
    let world = World::new();
    let tool = world.conflist_tool();
    for (i, name) in ["web", "db", "cache"].iter().enumerate() {
        tool.ok(&["create", "--subnet", &format!("10.21{i}.0.0/24"), name]);
        let file = world.netconf_dir().join(format!("{name}.conflist"));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{name}.conflist has mode {mode:o}");
    }
    tool.ok(&["rm", "db"]);
    let mut left: Vec<String> = std::fs::read_dir(world.netconf_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["cache.conflist", "web.conflist"]);
}

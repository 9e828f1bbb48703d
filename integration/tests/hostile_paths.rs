//! Path traversal through everything that becomes a path: network name, container ID, ifname
//! and `dataDir`, against every plugin that keeps files (host-local, tuning, firewall, portmap).
//!
//! Each hostile request must fail with the documented CNI code, and the whole world (every
//! namespace and the directory tree, which holds the `dataDir`s four levels deep so that any
//! `..` escape lands inside the snapshot) must be unchanged. Decisions tested here:
//!
//! - names: refused before any file is touched (code 7 network name, code 4 container ID and
//!   ifname), on every verb;
//! - relative `dataDir`: refused by firewall and portmap (code 7); host-local keeps the Go
//!   reference's behaviour (relative to the plugin's working directory) and writes nowhere else;
//! - a `dataDir` that is itself a symlink is the operator's choice and followed; symlinks
//!   planted *inside* a store are never written through (reservation files are created with
//!   `O_EXCL`, cursor and backup files are replaced by rename);
//! - the files written have owner-only modes: reservations, cursors and lock 0600, tuning
//!   backups 0600 in a 0700 directory.

// Test helpers stop the test loudly, as the harness does.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use integration_tests::{Netns, Plugin, PluginCall, Snapshot, TuningNet, World, config};
use serde_json::{Value, json};

/// `<world>/state/a/b/c/d/<leaf>`: four levels below the snapshot root.
fn deep_dir(world: &World, leaf: &str) -> PathBuf {
    world.state_dir().join("a/b/c/d").join(leaf)
}

/// A config for `plugin` with its state under `dir` (and a `prevResult` for chained plugins).
fn conf_for(plugin: &str, net: &str, dir: &Path) -> Value {
    let dir = dir.to_string_lossy();
    let prev = json!({"cniVersion": "1.0.0",
        "interfaces": [{"name": "cnih0"}, {"name": "eth0", "sandbox": "/run/netns/x"}],
        "ips": [{"address": "10.201.0.5/24", "gateway": "10.201.0.1", "interface": 1}]});
    let mut c = match plugin {
        "host-local" => json!({"type": "host-local",
            "ipam": {"type": "host-local", "dataDir": dir, "ranges": [[{"subnet": "10.201.0.0/24"}]]}}),
        "tuning" => json!({"type": "tuning", "dataDir": dir, "mtu": 1400}),
        "firewall" => json!({"type": "firewall", "dataDir": dir}),
        "portmap" => json!({"type": "portmap", "dataDir": dir,
            "runtimeConfig": {"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]}}),
        other => panic!("no config for {other}"),
    };
    c["cniVersion"] = json!("1.0.0");
    c["name"] = json!(net);
    if plugin != "host-local" {
        c["prevResult"] = prev;
    }
    c
}

/// Runs `call`, requires exit 1 with `code` and `msg_part`, and an unchanged world.
#[track_caller]
fn refused(world: &World, plugin: &Plugin, call: &PluginCall, code: u32, msg_part: &str) {
    let before = world.snapshot();
    let out = world.exec(plugin, call);
    out.expect_error(code, msg_part);
    if let Some(diff) = before.diff(&world.snapshot()) {
        panic!(
            "{} changed the world:\n{diff}\n{}",
            call.command(),
            out.describe()
        );
    }
}

#[test]
fn hostile_names_are_refused_on_every_verb_and_write_nothing() {
    let world = World::new();
    let ctr = world.container();
    let bad_nets = [
        "../../../../escape",
        "..",
        ".",
        "a/b",
        "/abs",
        "a b",
        "x;touch y",
        "-x",
        "nul\u{0}x",
    ];
    let bad_ids = ["../../../../escape", "..", "a/b", "-x", "a b", "x\ny", "ä"];
    let bad_ifnames = [
        "../x",
        "..",
        ".",
        "a/b",
        "x:y",
        "a b",
        "eth0\n",
        "0123456789abcdef",
    ];
    for name in ["host-local", "tuning", "firewall", "portmap"] {
        let plugin = Plugin::ours(name);
        let dir = deep_dir(&world, name);
        let good = conf_for(name, "hostnet", &dir);
        for verb in ["ADD", "CHECK", "DEL"] {
            let call = |conf: &Value| {
                PluginCall::new(verb, conf)
                    .id("c1")
                    .ifname("eth0")
                    .netns(&ctr)
            };
            for net in bad_nets {
                let mut conf = good.clone();
                conf["name"] = json!(net);
                refused(
                    &world,
                    &plugin,
                    &call(&conf),
                    7,
                    "invalid characters found in network name",
                );
            }
            for id in bad_ids {
                refused(
                    &world,
                    &plugin,
                    &call(&good).id(id),
                    4,
                    "invalid characters in containerID",
                );
            }
            for ifname in bad_ifnames {
                refused(
                    &world,
                    &plugin,
                    &call(&good).ifname(ifname),
                    4,
                    "interface name",
                );
            }
        }
    }
}

#[test]
fn gc_with_hostile_attachment_keys_touches_only_its_own_store() {
    let world = World::new();
    let plugin = Plugin::ours("host-local");
    let dir = deep_dir(&world, "ipam");
    let conf = conf_for("host-local", "gcnet", &dir);
    let add = PluginCall::add(&conf)
        .id("keep")
        .ifname("eth0")
        .netns_path("/x");
    world.exec(&plugin, &add).result();
    let before = world.snapshot();
    let mut gc = conf.clone();
    gc["cniVersion"] = json!("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([
        {"containerID": "keep", "ifname": "eth0"},
        {"containerID": "../../../../escape", "ifname": "../x"},
        {"containerID": "a/b", "ifname": "eth0"}
    ]);
    world
        .exec(&plugin, &PluginCall::gc(&gc))
        .expect_silent_success();
    integration_tests::assert_same!(before, world.snapshot(), "GC kept the live reservation");
}

/// Runs host-local directly (it needs no namespace) with `cwd` as its working directory.
fn host_local_in(cwd: &Path, conf: &Value, id: &str) -> integration_tests::Output {
    let plugin = Plugin::ours("host-local");
    let mut cmd = Command::new(&plugin.path);
    cmd.current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", id)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_NETNS", "/run/netns/none")
        .env("CNI_PATH", plugin.path.parent().unwrap_or(Path::new("/")));
    integration_tests::process::run(&mut cmd, &serde_json::to_vec(conf).unwrap())
}

#[test]
fn relative_data_dir() {
    let world = World::new();
    let ctr = world.container();
    // firewall and portmap refuse it before anything happens.
    for name in ["firewall", "portmap"] {
        let conf = conf_for(name, "relnet", Path::new("relative/dir"));
        for verb in ["ADD", "CHECK", "STATUS"] {
            let mut conf = conf.clone();
            conf["cniVersion"] = json!("1.1.0");
            let call = PluginCall::new(verb, &conf)
                .id("c1")
                .ifname("eth0")
                .netns(&ctr);
            refused(
                &world,
                &Plugin::ours(name),
                &call,
                7,
                "dataDir must be an absolute path",
            );
        }
    }
    // host-local (as the Go reference) resolves it against its working directory and writes
    // nowhere else.
    let cwd = world.state_dir().join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let before = Snapshot::dir("world", world.root());
    let conf = conf_for("host-local", "relnet", Path::new("rel/ipam"));
    host_local_in(&cwd, &conf, "c1").result();
    let after = Snapshot::dir("world", world.root());
    let diff = before.diff(&after).unwrap_or_default();
    for line in diff.lines().filter(|l| l.starts_with(['+', '-'])) {
        assert!(
            line.contains("state/cwd/rel"),
            "host-local wrote outside its relative dataDir: {line}\n{diff}"
        );
    }
    assert!(cwd.join("rel/ipam/relnet/10.201.0.2").is_file(), "{diff}");
}

#[test]
fn dot_dot_in_data_dir_stays_inside_the_configured_area() {
    let world = World::new();
    let ctr = world.container();
    let area = world.state_dir().join("area");
    std::fs::create_dir_all(&area).unwrap();
    let dir = area.join("x/../dd");
    let before = Snapshot::dir("world", world.root());
    let plugin = Plugin::ours("host-local");
    let conf = conf_for("host-local", "dotnet", &dir);
    world
        .exec(
            &plugin,
            &PluginCall::add(&conf).id("c1").ifname("eth0").netns(&ctr),
        )
        .result();
    assert!(area.join("dd/dotnet/10.201.0.2").is_file());
    // firewall and portmap keep only their lock file there.
    for name in ["firewall", "portmap"] {
        let mut conf = conf_for(name, "dotnet", &area.join(format!("y/../{name}")));
        conf["cniVersion"] = json!("1.1.0");
        world
            .exec(&Plugin::ours(name), &PluginCall::status(&conf))
            .expect_silent_success();
    }
    let diff = before
        .diff(&Snapshot::dir("world", world.root()))
        .unwrap_or_default();
    for line in diff.lines().filter(|l| l.starts_with(['+', '-'])) {
        assert!(
            line.contains("state/area/"),
            "write outside state/area: {line}"
        );
    }
}

#[test]
fn symlinked_data_dir_is_followed_planted_symlinks_are_not_written_through() {
    let world = World::new();
    let outside = world.root().join("outside");
    std::fs::create_dir_all(outside.join("real")).unwrap();
    let victim = outside.join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();

    // dataDir itself a symlink: the operator's choice, followed.
    let link = world.state_dir().join("ipam-link");
    symlink(outside.join("real"), &link).unwrap();
    let plugin = Plugin::ours("host-local");
    let conf = conf_for("host-local", "linknet", &link);
    let add = |id: &str| {
        world
            .exec(
                &plugin,
                &PluginCall::add(&conf)
                    .id(id)
                    .ifname("eth0")
                    .netns_path("/x"),
            )
            .result()
    };
    add("c1");
    assert!(outside.join("real/linknet/10.201.0.2").is_file());

    // Planted inside the store: the next address's reservation file and the cursor.
    let store = outside.join("real/linknet");
    symlink(&victim, store.join("10.201.0.3")).unwrap();
    std::fs::remove_file(store.join("last_reserved_ip.0")).unwrap();
    symlink(&victim, store.join("last_reserved_ip.0")).unwrap();
    let result = add("c2");
    let ip = result["ips"][0]["address"].as_str().unwrap_or_default();
    assert_ne!(ip, "10.201.0.3/24", "allocated through a planted symlink");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(
        !store
            .join("last_reserved_ip.0")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink(),
        "the cursor symlink was written through instead of replaced"
    );

    // tuning: a backup file planted as a symlink is replaced, never written through.
    let t = TuningNet::new(&world, "tunlink", "10.202.0.0/24");
    t.write("1.0.0", json!({}), json!({}));
    let ctr: Netns = world.container();
    let id = t.tool().effective_container_id(&ctr);
    let prev = t.add(&ctr);
    let planted = t.backup_path(&id, "eth0");
    symlink(&victim, &planted).unwrap();
    let conf = t.direct_conf("1.0.0", json!({"mtu": 1420}), Some(&prev));
    t.exec(&PluginCall::add(&conf).id(&id).ifname("eth0").netns(&ctr))
        .result();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    let meta = planted.symlink_metadata().unwrap();
    assert!(meta.is_file(), "backup still a symlink");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    t.exec(&PluginCall::del(&conf).id(&id).ifname("eth0").netns(&ctr))
        .expect_silent_success();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    t.del(&ctr);
}

#[test]
fn files_we_write_have_owner_only_modes() {
    let world = World::new();
    let plugin = Plugin::ours("host-local");
    let dir = world.data_dir();
    let conf = config::host_local(
        "1.0.0",
        "modenet",
        &dir,
        config::ranges(&["10.203.0.0/24", "fd00:203::/64"]),
    );
    world
        .exec(
            &plugin,
            &PluginCall::add(&conf)
                .id("c1")
                .ifname("eth0")
                .netns_path("/x"),
        )
        .result();
    let store = dir.join("modenet");
    let mut seen = 0;
    for entry in std::fs::read_dir(&store).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name} has mode {mode:o}");
        seen += 1;
    }
    // lock, two reservations, two cursors, the owner cache.
    assert_eq!(seen, 6);

    let t = TuningNet::new(&world, "tunmode", "10.204.0.0/24");
    t.write("1.0.0", json!({}), json!({"mtu": 1450}));
    let ctr = world.container();
    let id = t.tool().effective_container_id(&ctr);
    t.add(&ctr);
    let backup = t.backup_path(&id, "eth0");
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "tuning backup mode {mode:o}");
    let dir_mode = std::fs::metadata(t.data_dir())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700, "tuning dataDir mode {dir_mode:o}");
    t.del(&ctr);
}

/// Known bug (see the helper's report): host-local opens `<dataDir>/<net>/lock` with `O_CREAT`
/// and without `O_NOFOLLOW`, so a dangling `lock` symlink planted in the store makes ADD create
/// an empty file at the link's target, outside `dataDir`. Ignored until `Store::open_lock`
/// refuses symlinks.
#[test]
fn planted_lock_symlink_is_not_followed() {
    let world = World::new();
    let dir = world.state_dir().join("ipam");
    std::fs::create_dir_all(dir.join("locknet")).unwrap();
    let target = world.root().join("outside-lock");
    symlink(&target, dir.join("locknet/lock")).unwrap();
    let conf = conf_for("host-local", "locknet", &dir);
    let _ = world.exec(
        &Plugin::ours("host-local"),
        &PluginCall::add(&conf)
            .id("c1")
            .ifname("eth0")
            .netns_path("/x"),
    );
    assert!(
        !target.exists(),
        "ADD created {} through the lock symlink",
        target.display()
    );
}

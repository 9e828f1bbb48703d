//! The result cache under faults: an empty, corrupt or wrongly shaped cache file (a crash of the
//! runtime while writing it, a full disk, an operator's edit) must not block DEL through
//! `cni-conflist exec del` — libcni fails DEL on such a file (containernetworking/cni#1055),
//! stranding every resource of the attachment. DEL then runs without `prevResult`, succeeds,
//! removes the file and leaves the world at its baseline.

use integration_tests::conflist::ConflistTool;
use integration_tests::faults::{ChainNet, Tmpfs, seed_dir, snapshot};
use integration_tests::{Netns, World, assert_same, cnitool_container_id};
use serde_json::json;

/// Bytes a cache file may be left with.
const DAMAGED: [(&str, &[u8]); 6] = [
    ("empty", b""),
    ("truncated", b"{\"kind\":\"cniCacheV1\",\"containerId\":\"x"),
    ("garbage", b"\x00\xff not json at all"),
    ("null", b"null"),
    ("wrong kind", b"{\"kind\":\"somethingElse\",\"result\":42}"),
    (
        "bad result",
        b"{\"kind\":\"cniCacheV1\",\"result\":{\"cniVersion\":\"1.0.0\",\"ips\":\"nope\"}}",
    ),
];

fn tool<'w>(world: &'w World, id: &str) -> ConflistTool<'w> {
    let caps =
        json!({"portMappings": [{"hostPort": 18120, "containerPort": 80, "protocol": "tcp"}]});
    world
        .conflist_tool()
        .env("CNI_CONTAINERID", id)
        .env("CAP_ARGS", &caps.to_string())
}

fn damage(world: &World, net: &str, id: &str, bytes: &[u8]) {
    let file = world.cache_file(net, id, "eth0");
    assert!(file.is_file(), "no cache file {}", file.display());
    world.write_file(&format!("cache/results/{net}-{id}-eth0"), bytes);
}

fn rig<'w>(world: &'w World, backend: &str, subnet: &str) -> (ChainNet<'w>, Netns) {
    let net = ChainNet::new(world, "cachenet", "", subnet, backend, true);
    net.write("1.0.0");
    world.conflist_tool(); // links cni-bin before the baseline
    (net, world.container())
}

fn damaged_cache_does_not_block_del(backend: &str, subnet: &str) {
    let world = World::new();
    let (net, ctr) = rig(&world, backend, subnet);
    let base = snapshot(&world, &[net.bridge()]);
    for (i, (what, bytes)) in DAMAGED.iter().enumerate() {
        let id = format!("cache-{i}");
        let t = tool(&world, &id);
        t.exec("add", net.net(), &ctr).expect_success();
        damage(&world, net.net(), &id, bytes);
        // CHECK has nothing to check against: a clear failure, never a pass or a crash.
        let check = t.exec("check", net.net(), &ctr);
        assert_eq!(check.status, Some(1), "{what}: {}", check.describe());
        for round in ["first", "second"] {
            t.exec("del", net.net(), &ctr).expect_silent_success();
            assert!(
                world.read_cache(net.net(), &id, "eth0").is_none(),
                "{what}: cache file kept"
            );
            assert_same!(
                base,
                snapshot(&world, &[net.bridge()]),
                "{what}: {round} DEL"
            );
        }
    }
}

#[test]
fn iptables_chain_damaged_cache_file_does_not_block_del() {
    damaged_cache_does_not_block_del("iptables", "10.154.1.0/24");
}

#[test]
fn nftables_chain_damaged_cache_file_does_not_block_del() {
    damaged_cache_does_not_block_del("nftables", "10.154.2.0/24");
}

/// The same file handed to libcni (cnitool): record what it does, then prove `exec del` still
/// cleans up after it. (libcni v1.x fails DEL on an empty file — cni#1055 — so nothing of the
/// attachment is removed; whatever libcni does, ours must finish the job.)
#[test]
fn exec_del_cleans_up_where_libcni_may_give_up() {
    let world = World::new();
    let (net, ctr) = rig(&world, "iptables", "10.154.3.0/24");
    let base = snapshot(&world, &[net.bridge()]);
    let id = cnitool_container_id(&ctr.path());
    let t = world.conflist_tool().env(
        "CAP_ARGS",
        &json!({"portMappings": [{"hostPort": 18121, "containerPort": 80, "protocol": "tcp"}]})
            .to_string(),
    );
    t.exec("add", net.net(), &ctr).expect_success();
    damage(&world, net.net(), &id, b"");
    let libcni = world
        .cnitool()
        .plugin_dir(t.cni_path())
        .del(net.net(), &ctr);
    eprintln!(
        "cnitool del with an empty cache file:\n{}",
        libcni.describe()
    );
    t.exec("del", net.net(), &ctr).expect_silent_success();
    assert_same!(base, snapshot(&world, &[net.bridge()]), "after exec del");
}

/// The cache directory full when ADD ends: every plugin succeeded, but the result cannot be
/// cached, so `exec add` fails (as libcni does) with a clear error and writes no partial file;
/// the runtime's DEL — without a cache — removes the live attachment completely.
#[test]
fn full_cache_directory_fails_add_cleanly_and_del_cleans_up() {
    let world = World::new();
    let (net, ctr) = rig(&world, "iptables", "10.154.4.0/24");
    let cache = Tmpfs::mount(&world, "cache", "64k");
    seed_dir(&cache.path().join("results"), &[]);
    std::fs::set_permissions(
        cache.path().join("results"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod results");
    let base = snapshot(&world, &[net.bridge()]);
    cache.fill();
    let t = tool(&world, "fullcache");
    let out = t.exec("add", net.net(), &ctr);
    eprintln!("exec add with a full cache directory:\n{}", out.describe());
    assert_eq!(out.status, Some(1), "{}", out.describe());
    assert!(
        out.stderr_str().contains("cached result"),
        "{}",
        out.describe()
    );
    assert!(
        world.read_cache(net.net(), "fullcache", "eth0").is_none(),
        "a partial cache file was left"
    );
    for round in ["first", "second"] {
        t.exec("del", net.net(), &ctr).expect_silent_success();
        let now = snapshot(&world, &[net.bridge()]);
        assert_same!(
            base.without_lines(|l| l.starts_with("cache/filler")),
            now.without_lines(|l| l.starts_with("cache/filler")),
            "{round} DEL after the failed ADD"
        );
    }
    cache.drain();
}

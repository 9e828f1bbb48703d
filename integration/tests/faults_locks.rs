//! Locks held by another process during ADD and DEL of podman's chain: the plugins wait and
//! succeed once the lock is free, and finish within a bound.
//!
//! The xtables lock: `iptables-nft` (this machine's `iptables`) does not take
//! `/run/xtables.lock` at all, so the plugins are given the legacy tools instead (first on
//! their `PATH`: `iptables*` → `xtables-legacy-multi`), which take it on every change (the
//! plugins pass `-w <seconds>`). The lock is per mount namespace, not per netns — holding it stalls every
//! legacy iptables user on the machine — so it is held for [`HOLD`] only. The legacy tables of
//! the world's host netns are compared with their baseline as well.
//!
//! The plugins' own locks: host-local's `<dataDir>/<net>/lock`, the firewall's and portmap's
//! `<dataDir>/lock`, each held in turn by another process. A lock that is never released ends
//! in code 11 after the (test-shortened) lock timeout, with nothing changed.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::time::{Duration, Instant};

use integration_tests::faults::{ChainNet, LockHolder, legacy_iptables_path, snapshot};
use integration_tests::{Netns, Plugin, PluginCall, World, assert_same, config};

/// How long a foreign process holds the xtables lock.
const HOLD: Duration = Duration::from_millis(2500);
/// How long an operation may take beyond the hold.
const BOUND: Duration = Duration::from_secs(20);

/// The legacy tables of `ns` (both families), comments and counters dropped.
fn legacy_rules(ns: &Netns) -> String {
    let mut out = String::new();
    for tool in ["iptables-legacy-save", "ip6tables-legacy-save"] {
        for line in ns.run_ok(&[tool]).lines() {
            if line.starts_with('#') {
                continue;
            }
            let line = match line.rsplit_once(" [") {
                Some((head, _)) if line.starts_with(':') => head,
                _ => line,
            };
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Runs `op` while another process holds `lock` for `hold`; the operation must succeed, must
/// have waited for the lock when it changes state (ended after its release; CHECK only reads)
/// and must end within [`BOUND`] of the release.
fn under_lock(
    what: &str,
    lock: &std::path::Path,
    hold: Duration,
    op: impl FnOnce() -> integration_tests::Output,
) {
    let holder = LockHolder::hold(lock, hold);
    let released = holder.since + hold;
    let out = op();
    let end = Instant::now();
    out.expect_success();
    assert!(
        what.starts_with("CHECK") || end + Duration::from_millis(50) >= released,
        "{what} finished {:?} before {} was released: it did not wait",
        released - end,
        lock.display()
    );
    assert!(
        end < released + BOUND,
        "{what} took {:?} after the lock was released",
        end - released
    );
    drop(holder);
}

#[test]
fn xtables_lock_held_during_add_and_del_the_plugins_wait_and_succeed() {
    let world = World::new();
    let net = ChainNet::new(&world, "xtlock", "", "10.152.1.0/24", "iptables", true);
    net.write("1.0.0");
    let ctr = world.container();
    let path = legacy_iptables_path(&world);
    instantiate_legacy_tables(&world);
    let base = snapshot(&world, &[net.bridge()]);
    let base_legacy = legacy_rules(world.host());
    let rt = net.runtime("xtlock", 18110).env("PATH", &path);
    let xtables = std::path::Path::new("/run/xtables.lock");

    under_lock("ADD", xtables, HOLD, || rt.add(net.net(), &ctr));
    let legacy = legacy_rules(world.host());
    for needle in [
        "MASQUERADE",
        "CNI-FORWARD",
        "CNI-HOSTPORT-DNAT",
        "--dport 18110",
    ] {
        assert!(
            legacy.contains(needle),
            "no {needle} in the legacy tables:\n{legacy}"
        );
    }
    let nft_view = snapshot(&world, &[net.bridge()]);
    for section in nft_view.section_names() {
        if section.ends_with("tables-save") || section.ends_with(": nft") {
            assert_eq!(
                nft_view.section(section),
                base.section(section),
                "the plugins used iptables-nft: {section}"
            );
        }
    }
    under_lock("CHECK", xtables, HOLD, || rt.check(net.net(), &ctr));
    under_lock("DEL", xtables, HOLD, || rt.del(net.net(), &ctr));
    assert_eq!(legacy_rules(world.host()), base_legacy, "legacy rules left");
    assert_same!(base, snapshot(&world, &[net.bridge()]), "after DEL");
}

#[test]
fn the_plugins_own_locks_held_during_add_and_del_they_wait_and_succeed() {
    let world = World::new();
    let net = ChainNet::new(&world, "ownlock", "", "10.152.2.0/24", "nftables", true);
    net.write("1.0.0");
    let ctr = world.container();
    let state = world.state_dir();
    for dir in [state.join("firewall"), state.join("portmap")] {
        fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .expect("create a lock directory");
    }
    let store = world.data_dir().join(net.net());
    fs::create_dir_all(&store).expect("create the host-local store");
    let base = snapshot(&world, &[net.bridge()]);
    let locks = [
        store.join("lock"),
        state.join("firewall/lock"),
        state.join("portmap/lock"),
    ];
    for (i, lock) in locks.iter().enumerate() {
        let id = format!("ownlock-{i}");
        let rt = net.runtime(&id, 18111);
        let what = lock.display().to_string();
        let hold = Duration::from_millis(1200);
        under_lock(&format!("ADD under {what}"), lock, hold, || {
            rt.add(net.net(), &ctr)
        });
        under_lock(&format!("DEL under {what}"), lock, hold, || {
            rt.del(net.net(), &ctr)
        });
        assert_same!(base, snapshot(&world, &[net.bridge()]), "{what}");
    }
}

/// The lock timeout the plugins get in [`a_lock_never_released_ends_in_code_11_within_a_bound`]
/// (`CNI_TEST_LOCK_TIMEOUT`, the test hook of `cni_core::lock`; the default is 30 s).
const STUCK_TIMEOUT_SECS: u64 = 3;

/// A lock that is never released (a stuck process holding it): the plugin must give up after
/// the lock timeout (shortened to [`STUCK_TIMEOUT_SECS`] by the test hook) with code 11 ("try
/// again later") and a message naming the lock, instead of hanging until the runtime kills it,
/// and must leave everything as it was. The xtables lock is a private file here
/// (`XTABLES_LOCKFILE`, which the legacy tools honour), so nothing else on the machine waits; it
/// stalls bridge's ADD in its masquerade step (after IPAM and the veth, which it rolls back).
/// host-local's lock stalls its ADD; the firewall's and portmap's stall their DEL (which needs
/// neither `prevResult` nor the netns).
#[test]
fn a_lock_never_released_ends_in_code_11_within_a_bound() {
    let world = World::new();
    let net = ChainNet::new(&world, "stuck", "", "10.152.3.0/24", "iptables", true);
    let ctr = world.container();
    let private = world.root().join("xtables.lock");
    fs::write(&private, b"").expect("create the private xtables lock");
    let store = world.data_dir().join(net.net());
    fs::create_dir_all(&store).expect("create the host-local store");
    let state = world.state_dir();
    for dir in [state.join("firewall"), state.join("portmap")] {
        fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .expect("create a lock directory");
    }
    let path = legacy_iptables_path_once(&world);
    instantiate_legacy_tables(&world);
    let base = snapshot(&world, &[net.bridge()]);
    let base_legacy = legacy_rules(world.host());
    let cases = [
        ("xtables lock", private.clone(), "bridge", "ADD"),
        ("host-local lock", store.join("lock"), "host-local", "ADD"),
        (
            "firewall lock",
            state.join("firewall/lock"),
            "firewall",
            "DEL",
        ),
        ("portmap lock", state.join("portmap/lock"), "portmap", "DEL"),
    ];
    for (what, lock, plugin, verb) in cases {
        let conf = if plugin == "host-local" {
            config::host_local(
                "1.0.0",
                net.net(),
                &world.data_dir(),
                config::ranges(&[&net.subnet]),
            )
        } else {
            net.direct_conf("1.0.0", plugin, 18112)
        };
        let call = if verb == "ADD" {
            PluginCall::add(&conf)
        } else {
            PluginCall::del(&conf)
        };
        let call = call
            .id("stuck")
            .ifname("eth0")
            .netns(&ctr)
            .env("PATH", &path)
            .env("XTABLES_LOCKFILE", &private.to_string_lossy())
            .env("CNI_TEST_LOCK_TIMEOUT", &STUCK_TIMEOUT_SECS.to_string());
        let holder = LockHolder::hold(&lock, Duration::from_secs(75));
        let start = Instant::now();
        let out = world.exec(&Plugin::ours(plugin), &call);
        let took = start.elapsed();
        drop(holder);
        let err = out.cni_error();
        eprintln!("{what}: {verb} gave up after {took:?}: {}", err.msg);
        assert_eq!(err.code, 11, "{what}: {err:?}");
        assert!(
            took >= Duration::from_secs(STUCK_TIMEOUT_SECS),
            "{what}: gave up after {took:?}, before the timeout"
        );
        // Exactly one wait (a retry would wait the whole timeout again), plus what the plugin
        // does around it (bridge: veth, IPAM, rollback).
        assert!(
            took < Duration::from_secs(2 * STUCK_TIMEOUT_SECS),
            "{what}: {verb} waited {took:?} for a stuck lock"
        );
        let named = if plugin == "bridge" {
            "xtables lock".to_owned()
        } else {
            lock.display().to_string()
        };
        assert!(err.msg.contains(&named), "{what}: {err:?}");
        assert_eq!(
            legacy_rules(world.host()),
            base_legacy,
            "{what}: legacy rules"
        );
        assert_same!(base, snapshot(&world, &[net.bridge()]), "{what}");
    }
}

/// [`legacy_iptables_path`], created on first use.
fn legacy_iptables_path_once(world: &World) -> String {
    if world.root().join("bin/legacy").is_dir() {
        format!(
            "{}:{}",
            world.root().join("bin/legacy").display(),
            integration_tests::locate::CHILD_PATH
        )
    } else {
        legacy_iptables_path(world)
    }
}

/// Instantiates the legacy nat and filter tables of the host netns (both families), so that a
/// baseline taken next already contains them.
fn instantiate_legacy_tables(world: &World) {
    for table in ["nat", "filter"] {
        for tool in ["iptables-legacy", "ip6tables-legacy"] {
            world.host().run_ok(&[tool, "-w", "-t", table, "-S"]);
        }
    }
}

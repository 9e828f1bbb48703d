//! Crashes during ADD of podman's chain (bridge + host-local, portmap, firewall, tuning): the
//! plugin dies at a step of its ADD — through the crash hook (`CNI_TEST_ABORT_AT`, an abort
//! with no rollback and no output) or a real SIGKILL at a random moment — and the runtime, which
//! has no cached result after a failed ADD, runs DEL. DEL must succeed and leave the world at
//! its baseline: links, addresses, routes, iptables/nft, reservations, backups, the cache.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use integration_tests::faults::{
    BRIDGE_POINTS, ChainNet, HOST_LOCAL_POINTS, Rng, kill_plugin, snapshot, wait_for_orphans,
};
use integration_tests::{Netns, Snapshot, World, assert_same};

/// A chain network with one (not yet attached) container and the baseline.
fn rig<'w>(world: &'w World, net: &str, subnet: &str, backend: &str) -> (ChainNet<'w>, Netns) {
    let n = ChainNet::new(world, net, "", subnet, backend, true);
    n.write("1.0.0");
    let ctr = world.container();
    (n, ctr)
}

fn baseline(net: &ChainNet<'_>) -> Snapshot {
    snapshot(net.world(), &[net.bridge()])
}

/// Aborts ADD at `label`, proves the crash left state behind, then DELs through cnitool
/// (twice, as runtimes retry) and compares with `baseline`.
fn crash_then_cnitool_del(net: &ChainNet<'_>, ctr: &Netns, base: &Snapshot, label: &str, id: &str) {
    let world = net.world();
    let rt = net.runtime(id, 18080);
    let out = rt.clone().abort_at(label).add(net.net(), ctr);
    assert!(!out.success(), "ADD survived {label}:\n{}", out.describe());
    assert!(
        world.read_cache(net.net(), id, &net.ifname).is_none(),
        "libcni cached a failed ADD"
    );
    assert!(
        base.diff(&baseline(net)).is_some(),
        "the crash at {label} left nothing behind: the hook did not fire"
    );
    for round in ["first", "second"] {
        rt.del(net.net(), ctr).expect_silent_success();
        assert_same!(*base, baseline(net), "{round} DEL after a crash at {label}");
    }
}

fn abort_at_every_step(backend: &str, subnet: &str) {
    let world = World::new();
    let (net, ctr) = rig(&world, &format!("crash-{backend}"), subnet, backend);
    let base = baseline(&net);
    // The bridge is created by the first ADD and survives DEL (as in the reference): crash the
    // first ADD right after the veth, so that creation is crashed through as well.
    for (i, label) in BRIDGE_POINTS.iter().enumerate() {
        crash_then_cnitool_del(&net, &ctr, &base, label, &format!("crash-b{i}"));
    }
    // host-local after writing the reservation, before last_reserved_ip.
    crash_then_cnitool_del(&net, &ctr, &base, HOST_LOCAL_POINTS[1], "crash-h1");
    // And the attachment still works normally afterwards.
    let rt = net.runtime("after", 18080);
    rt.add(net.net(), &ctr).expect_success();
    rt.check(net.net(), &ctr).expect_silent_success();
    rt.del(net.net(), &ctr).expect_silent_success();
    assert_same!(
        base,
        baseline(&net),
        "after a normal ADD/DEL following the crashes"
    );
}

#[test]
fn iptables_chain_abort_at_every_step_then_del_returns_to_the_baseline() {
    abort_at_every_step("iptables", "10.150.1.0/24");
}

#[test]
fn nftables_chain_abort_at_every_step_then_del_returns_to_the_baseline() {
    abort_at_every_step("nftables", "10.150.2.0/24");
}

/// host-local killed after writing the owner and before the reservation takes the address's
/// name (it used to be created empty and then written, and a crash in between left an empty
/// file no DEL could attribute): what is left is the staging file, which DEL removes.
#[test]
fn abort_between_creating_and_writing_a_reservation_then_del_releases_it() {
    let world = World::new();
    let (net, ctr) = rig(&world, "crash-empty", "10.150.3.0/24", "iptables");
    let base = baseline(&net);
    crash_then_cnitool_del(&net, &ctr, &base, HOST_LOCAL_POINTS[0], "crash-h0");
}

/// After a crash at the end of bridge ADD (everything of bridge done, nothing of the later
/// plugins), DEL by direct exec of each plugin in reverse chain order without `prevResult`
/// and without the cache — what a runtime without cnitool's cache does.
#[test]
fn crash_after_bridge_then_direct_del_without_prev_result() {
    let world = World::new();
    let (net, ctr) = rig(&world, "crash-direct", "10.150.4.0/24", "iptables");
    let base = baseline(&net);
    for (label, id) in [
        ("bridge:done", "direct-1"),
        ("bridge:masquerade", "direct-2"),
    ] {
        let out = net.runtime(id, 18081).abort_at(label).add(net.net(), &ctr);
        assert!(!out.success(), "{}", out.describe());
        net.del_directly(id, Some(&ctr), 18081);
        assert_same!(
            base,
            baseline(&net),
            "after direct DELs following a crash at {label}"
        );
    }
}

/// The plugins the random kills aim at. tuning is left out until its DEL removes a crashed
/// ADD's backup temp file (see `tuning_crash_before_renaming_its_backup_then_del_removes_it`):
/// a kill in that window fails the comparison, at random.
const KILL_TARGETS: [&str; 4] = ["bridge", "host-local", "portmap", "firewall"];

/// Real SIGKILLs at random moments of ADD: a random plugin of the chain is killed (with the
/// IPAM plugin it delegated to) a random moment of its typical run time after it started; then DEL. Repeats
/// `CNI_FAULT_KILLS` times (default 16) per backend; `CNI_FAULT_SEED` repeats a run.
fn sigkill_at_random_moments(backend: &str, subnet: &str) {
    let world = World::new();
    let (net, ctr) = rig(&world, &format!("kill9-{backend}"), subnet, backend);
    let base = baseline(&net);
    let rounds: usize = std::env::var("CNI_FAULT_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let mut rng = Rng::from_env();
    let mut killed_any = 0;
    for round in 0..rounds {
        // Unique on the machine: the killer finds its victims by this ID in their environment.
        let id = format!("kill9-{}-{round}", world.host().name());
        let target = KILL_TARGETS[rng.below(KILL_TARGETS.len())];
        // How long each plugin runs here, roughly: bridge waits for its port (~30 ms), the
        // netfilter plugins run their tools (~5 ms), host-local and tuning take ~1 ms.
        let span = match target {
            "bridge" => 30_000,
            "firewall" | "portmap" => 6_000,
            _ => 1_200,
        };
        let delay = Duration::from_micros(rng.below(span) as u64);
        let rt = net.runtime(&id, 18082);
        let stop = AtomicBool::new(false);
        let (out, killed) = std::thread::scope(|s| {
            let killer = s.spawn(|| kill_plugin(&id, target, delay, &stop));
            let out = rt.add(net.net(), &ctr);
            stop.store(true, Ordering::SeqCst);
            (
                out,
                killer
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e)),
            )
        });
        wait_for_orphans(&id);
        let context = format!("round {round}: {target} after {delay:?}, killed {killed:?}");
        eprintln!("{context}: ADD exit {:?}", out.status);
        if !killed.is_empty() {
            killed_any += 1;
        }
        // A kill that lands after the plugin wrote its result may still let ADD succeed; DEL
        // must work either way (with the cached result, or without one).
        let _ = out;
        rt.del(net.net(), &ctr).expect_silent_success();
        assert_same!(base, baseline(&net), "after DEL ({context})");
        assert!(
            world.read_cache(net.net(), &id, "eth0").is_none(),
            "cache left ({context})"
        );
    }
    assert!(
        killed_any * 4 >= rounds,
        "only {killed_any} of {rounds} rounds killed a plugin"
    );
}

#[test]
fn iptables_chain_sigkill_at_random_moments_of_add_then_del() {
    sigkill_at_random_moments("iptables", "10.150.5.0/24");
}

#[test]
fn nftables_chain_sigkill_at_random_moments_of_add_then_del() {
    sigkill_at_random_moments("nftables", "10.150.6.0/24");
}

/// tuning killed after writing its backup's temporary file and before renaming it: ADD fails
/// before tuning changed anything, and DEL must remove the orphaned `.<id>_<ifname>.json.tmp`
/// (today it removes `<id>_<ifname>.json` only). The crash's leftover is put in place by hand
/// (tuning has no crash hook): a copy of the backup under the temporary name.
#[test]
fn tuning_crash_before_renaming_its_backup_then_del_removes_it() {
    let world = World::new();
    let (net, ctr) = rig(&world, "crash-tuning", "10.150.7.0/24", "iptables");
    let base = baseline(&net);
    let rt = net.runtime("crash-tuning", 18083);
    rt.add(net.net(), &ctr).expect_success();
    let dir = world.state_dir().join("tuning");
    let backup = std::fs::read(dir.join("crash-tuning_eth0.json")).expect("tuning's backup");
    world.write_file("state/tuning/.crash-tuning_eth0.json.tmp", &backup);
    rt.del(net.net(), &ctr).expect_silent_success();
    assert_same!(base, baseline(&net), "after DEL");
}

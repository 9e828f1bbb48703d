//! DEL of podman's chain (bridge + host-local, portmap, firewall, tuning) when the world changed
//! under the attachment: the netns deleted, the container interface deleted, the bridge deleted
//! under live containers, a macvlan master deleted; DEL repeated; DEL of every plugin without
//! `prevResult`; DEL with a config whose IPAM section is broken. DEL succeeds (or, for the
//! broken IPAM section, fails naming it and leaks nothing but the reservation it cannot find)
//! and the world is back at its baseline.

use integration_tests::faults::{ChainNet, eventually_same, host_snapshot, snapshot};
use integration_tests::inspect::has_link;
use integration_tests::macvlan::without_ipam_bookkeeping;
use integration_tests::{MacvlanBench, Snapshot, World, assert_same, config};
use serde_json::json;

fn chain<'w>(world: &'w World, net: &str, subnet: &str, backend: &str) -> ChainNet<'w> {
    let n = ChainNet::new(world, net, "", subnet, backend, true);
    n.write("1.0.0");
    n
}

#[test]
fn del_after_the_netns_is_gone_direct_and_through_cnitool() {
    let world = World::new();
    let net = chain(&world, "gone", "10.151.1.0/24", "iptables");
    let (c1, c2) = (world.container(), world.container());
    let base = host_snapshot(&world, &[net.bridge()]);
    for (ctr, id) in [(c1, "gone-1"), (c2, "gone-2")] {
        let rt = net.runtime(id, 18090);
        rt.add(net.net(), &ctr).expect_success();
        let path = ctr.path_str();
        world.delete_netns(&ctr);
        if id == "gone-1" {
            rt.del_path(net.net(), &path).expect_silent_success();
        } else {
            // A runtime without a cache: every plugin directly, no prevResult, no CNI_NETNS.
            net.del_directly(id, None, 18090);
            assert!(net.reservations().is_empty(), "{:?}", net.reservations());
            eventually_same(
                &base.without_lines(|l| l.starts_with("cache/results/")),
                || {
                    host_snapshot(&world, &[net.bridge()])
                        .without_lines(|l| l.starts_with("cache/results/"))
                },
                "after direct DELs without the netns",
            );
            // The runtime's own DEL (with its cached result) still succeeds afterwards.
            rt.del_path(net.net(), &path).expect_silent_success();
        }
        assert!(net.reservations().is_empty(), "{:?}", net.reservations());
        eventually_same(
            &base,
            || host_snapshot(&world, &[net.bridge()]),
            &format!("{id}: after DEL without the netns"),
        );
        rt.del_path(net.net(), &path).expect_silent_success();
    }
}

#[test]
fn del_after_the_container_interface_was_deleted() {
    let world = World::new();
    let net = chain(&world, "noif", "10.151.2.0/24", "nftables");
    let ctr = world.container();
    let base = snapshot(&world, &[net.bridge()]);
    let rt = net.runtime("noif", 18091);
    rt.add(net.net(), &ctr).expect_success();
    ctr.run_ok(&["ip", "link", "del", "eth0"]);
    for round in ["first", "second"] {
        rt.del(net.net(), &ctr).expect_silent_success();
        assert_same!(base, snapshot(&world, &[net.bridge()]), "{round} DEL");
    }
}

#[test]
fn bridge_deleted_under_three_live_containers_then_del_of_each() {
    let world = World::new();
    let net = chain(&world, "nobr", "10.151.3.0/24", "iptables");
    let ctrs = [world.container(), world.container(), world.container()];
    let late = world.container();
    let base = snapshot(&world, &[net.bridge()]);
    let ids = ["nobr-0", "nobr-1", "nobr-2"];
    for (i, (ctr, id)) in ctrs.iter().zip(ids).enumerate() {
        let port = 18100 + u16::try_from(i).expect("small index");
        net.runtime(id, port).add(net.net(), ctr).expect_success();
    }
    world.host().run_ok(&["ip", "link", "del", net.bridge()]);
    // CHECK notices; DEL of each container must not.
    let check = net.runtime(ids[0], 18100).check(net.net(), &ctrs[0]);
    assert!(
        !check.success(),
        "CHECK passed without the bridge\n{}",
        check.describe()
    );
    // A new container meanwhile recreates the bridge; it works next to the stale ones.
    let rt = net.runtime("nobr-late", 18103);
    rt.add(net.net(), &late).expect_success();
    rt.check(net.net(), &late).expect_silent_success();
    for (i, (ctr, id)) in ctrs.iter().zip(ids).enumerate() {
        let port = 18100 + u16::try_from(i).expect("small index");
        net.runtime(id, port)
            .del(net.net(), ctr)
            .expect_silent_success();
        assert!(!has_link(ctr, "eth0"), "{id}: eth0 left");
    }
    rt.check(net.net(), &late).expect_silent_success();
    rt.del(net.net(), &late).expect_silent_success();
    assert_same!(
        base,
        snapshot(&world, &[net.bridge()]),
        "after DEL of all three"
    );
    net.runtime(ids[1], 18101)
        .del(net.net(), &ctrs[1])
        .expect_silent_success();
}

#[test]
fn del_of_every_plugin_without_prev_result_then_the_runtime_del() {
    for backend in ["iptables", "nftables"] {
        let world = World::new();
        let net = chain(&world, "noprev", "10.151.4.0/24", backend);
        let ctr = world.container();
        let base = snapshot(&world, &[net.bridge()]);
        let rt = net.runtime("noprev", 18092);
        rt.add(net.net(), &ctr).expect_success();
        net.del_directly("noprev", Some(&ctr), 18092);
        net.del_directly("noprev", Some(&ctr), 18092);
        // Everything but the runtime's own cache entry is gone already.
        let no_cache = |s: &Snapshot| s.without_lines(|l| l.starts_with("cache/results/"));
        assert_same!(
            base,
            no_cache(&snapshot(&world, &[net.bridge()])),
            "{backend}: after direct DELs"
        );
        rt.del(net.net(), &ctr).expect_silent_success();
        assert_same!(
            base,
            snapshot(&world, &[net.bridge()]),
            "{backend}: runtime DEL"
        );
    }
}

/// DEL with the IPAM section broken after ADD (config must not change between ADD and DEL,
/// but operators edit files). What happens: libcni runs DEL in reverse order; tuning, firewall
/// and portmap succeed; bridge removes the interface and the masquerade rules, then reports
/// host-local's error (code 7 naming the bad key, or "failed to find plugin" for an unknown
/// IPAM type), so DEL fails and libcni keeps its cache entry. The only thing left is the
/// reservation, which cannot be found without a valid IPAM section; DEL with the repaired
/// config releases it and the world is at its baseline.
#[test]
fn del_with_a_broken_ipam_section_leaks_only_the_reservation() {
    let world = World::new();
    let net = chain(&world, "badipam", "10.151.5.0/24", "iptables");
    let ctr = world.container();
    let base = snapshot(&world, &[net.bridge()]);
    let broken = [
        (
            json!({"ranges": [[{"subnet": "not-a-subnet"}]]}),
            "not-a-subnet",
        ),
        (json!({"ranges": "garbage"}), "ranges"),
        (json!({"type": "no-such-ipam"}), "no-such-ipam"),
    ];
    for (i, (bad, needle)) in broken.iter().enumerate() {
        let id = format!("badipam-{i}");
        let rt = net.runtime(&id, 18093);
        let result = rt.add(net.net(), &ctr).result();
        let ip = result["ips"][0]["address"]
            .as_str()
            .and_then(|a| a.split('/').next())
            .expect("an address")
            .to_owned();
        let mut plugins = net.plugins();
        plugins[0]["ipam"] = config::merge(plugins[0]["ipam"].clone(), bad.clone());
        world.write_conflist("10-badipam", &config::conflist("1.0.0", "badipam", plugins));

        let out = rt.del(net.net(), &ctr);
        eprintln!("DEL with broken IPAM {bad}:\n{}", out.describe());
        assert!(!out.success(), "{}", out.describe());
        let text = format!("{}{}", out.stdout_str(), out.stderr_str());
        assert!(
            text.contains(needle),
            "error must name {needle}:\n{}",
            out.describe()
        );
        // Everything but the reservation (and libcni's cache entry, DEL having failed) is gone.
        let left = snapshot(&world, &[net.bridge()]).without_lines(|l| {
            l.starts_with("cache/results/")
                || l.starts_with(&format!("ipam/badipam/{ip} "))
                || l.starts_with("netconf/")
        });
        assert_same!(
            base.without_lines(|l| l.starts_with("netconf/")),
            left,
            "after DEL with broken IPAM {bad}"
        );
        assert_eq!(
            net.reservations().keys().cloned().collect::<Vec<_>>(),
            vec![ip]
        );

        net.write("1.0.0");
        for _ in 0..2 {
            rt.del(net.net(), &ctr).expect_silent_success();
        }
        assert_same!(
            base,
            snapshot(&world, &[net.bridge()]),
            "after the repaired DEL"
        );
    }
}

#[test]
fn macvlan_master_deleted_under_a_chain_then_del() {
    let world = World::new();
    let b = MacvlanBench::new(&world, "mvchain", "10.151.6.0/24");
    integration_tests::firewall::prime_filter(world.host());
    let state = world.state_dir();
    std::fs::create_dir(state.join("tuning")).expect("tuning dataDir");
    let plugins = vec![
        b.plugin_conf(json!({"ipam": b.ipam()})),
        config::firewall(json!({"backend": "iptables",
            "dataDir": state.join("firewall").to_string_lossy()})),
        config::tuning(json!({"dataDir": state.join("tuning").to_string_lossy(), "mtu": 1400})),
    ];
    world.write_conflist("10-mvchain", &config::conflist("1.0.0", "mvchain", plugins));
    let ctr = world.container();
    // The master (and the LAN link behind it) goes away for good: compare the container, the
    // host's rules and the files only.
    let view = || {
        let host = Snapshot::netns(world.host()).map_sections(|name, text| {
            if name.ends_with("tables-save") || name.ends_with(": nft") {
                text.to_owned()
            } else {
                String::new()
            }
        });
        let snap = Snapshot::netns(&ctr)
            .merge(host)
            .merge(Snapshot::dir("world", world.root()));
        without_ipam_bookkeeping(&snap).without_lines(|l| l.starts_with("state/firewall"))
    };
    let base = view();
    let rt = integration_tests::faults::Runtime::new(&world).env("CNI_CONTAINERID", "mv");
    rt.add("mvchain", &ctr).expect_success();
    world
        .host()
        .run_ok(&["ip", "link", "del", MacvlanBench::MASTER]);
    assert!(!has_link(&ctr, "eth0"), "the macvlan went with its master");
    for round in ["first", "second"] {
        rt.del("mvchain", &ctr).expect_silent_success();
        assert_same!(base, view(), "{round} DEL without the master");
    }
}

/// The runtime's netns path survived as a plain file (the bind mount is gone, the mount point
/// was never unlinked — a crash between `umount` and `unlink`): the namespace is gone, so DEL
/// must succeed and release everything, as for a path that does not exist.
#[test]
fn bridge_chain_del_with_a_stale_netns_path_that_is_a_plain_file() {
    let world = World::new();
    let net = chain(&world, "stale", "10.151.7.0/24", "iptables");
    let ctr = world.container();
    let stale = world.write_file("stale-netns", b"");
    let base = host_snapshot(&world, &[net.bridge()]);
    let rt = net.runtime("stale", 18094);
    rt.add(net.net(), &ctr).expect_success();
    world.delete_netns(&ctr);
    let path = stale.to_string_lossy().into_owned();
    for round in ["first", "second"] {
        rt.del_path(net.net(), &path).expect_silent_success();
        assert!(net.reservations().is_empty(), "{:?}", net.reservations());
        eventually_same(
            &base,
            || host_snapshot(&world, &[net.bridge()]),
            &format!("{round} DEL with a stale netns path"),
        );
    }
}

/// The same for macvlan alone.
#[test]
fn macvlan_del_with_a_stale_netns_path_that_is_a_plain_file() {
    let world = World::new();
    let b = MacvlanBench::new(&world, "mvstale", "10.151.8.0/24");
    b.write("1.0.0", json!({"ipam": b.ipam()}));
    let ctr = world.container();
    let stale = world.write_file("stale-netns", b"");
    let rt = integration_tests::faults::Runtime::new(&world).env("CNI_CONTAINERID", "mvstale");
    rt.add("mvstale", &ctr).expect_success();
    world.delete_netns(&ctr);
    rt.del_path("mvstale", &stale.to_string_lossy())
        .expect_silent_success();
    assert!(b.reservations().is_empty(), "{:?}", b.reservations());
}

//! Byte-compatibility with the Go reference host-local (`/usr/lib/cni`, spec ≤ 1.0.0) in both
//! directions on one shared store, plus differential runs of identical requests.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use integration_tests::hostlocal::is_bookkeeping;
use integration_tests::{
    Differential, HostLocal, Plugin, PluginCall, Side, World, assert_same, config,
};
use serde_json::{Value, json};

/// Go's host-local only speaks up to 1.0.0.
const V: &str = "1.0.0";

fn dual_conf(world: &World, name: &str) -> Value {
    config::host_local(
        V,
        name,
        &world.data_dir(),
        config::ranges(&["10.88.0.0/24", "fd00:88::/64"]),
    )
}

/// A Go bench and an our bench on the same config, store and container.
fn pair<'w>(world: &'w World, conf: &Value) -> (HostLocal<'w>, HostLocal<'w>) {
    let go = HostLocal::new(world, Plugin::reference("host-local"), conf.clone());
    let mut ours = HostLocal::ours(world, conf.clone());
    ours.ctr = go.ctr.clone();
    (go, ours)
}

fn files(hl: &HostLocal<'_>) -> Vec<(String, String)> {
    hl.reservations()
        .into_iter()
        .map(|(ip, c)| (ip, String::from_utf8_lossy(&c).into_owned()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[test]
fn go_allocations_are_continued_checked_and_released_by_ours() {
    let world = World::new();
    let (go, ours) = pair(&world, &dual_conf(&world, "compat1"));
    let baseline = go.snapshot();

    assert_eq!(go.add_ok("c1", "eth0"), ["10.88.0.2/24", "fd00:88::2/64"]);
    assert_eq!(go.add_ok("c2", "eth0"), ["10.88.0.3/24", "fd00:88::3/64"]);
    assert_eq!(
        ours.add_ok("c3", "eth0"),
        ["10.88.0.4/24", "fd00:88::4/64"],
        "round robin continues"
    );
    ours.add("c1", "eth0")
        .expect_error(112, "10.88.0.2 has been allocated to c1");
    ours.check("c2", "eth0", None).expect_silent_success();

    assert_eq!(
        files(&ours),
        pairs(&[
            ("10.88.0.2", "c1\r\neth0"),
            ("10.88.0.3", "c2\r\neth0"),
            ("10.88.0.4", "c3\r\neth0"),
            ("fd00:88::2", "c1\r\neth0"),
            ("fd00:88::3", "c2\r\neth0"),
            ("fd00:88::4", "c3\r\neth0"),
        ])
    );
    let store = ours.store();
    assert_eq!(store["last_reserved_ip.0"].content(), b"10.88.0.4");
    assert_eq!(store["last_reserved_ip.1"].content(), b"fd00:88::4");

    for id in ["c1", "c2", "c3"] {
        ours.del(id, "eth0").expect_silent_success();
    }
    ours.assert_at_baseline(&baseline);
}

#[test]
fn our_allocations_are_continued_checked_and_released_by_go() {
    let world = World::new();
    let (go, ours) = pair(&world, &dual_conf(&world, "compat2"));
    let baseline = go.snapshot();

    assert_eq!(ours.add_ok("c1", "eth0"), ["10.88.0.2/24", "fd00:88::2/64"]);
    go.check("c1", "eth0", None).expect_silent_success();
    assert_eq!(
        go.add_ok("c2", "eth0"),
        ["10.88.0.3/24", "fd00:88::3/64"],
        "Go continues our round robin"
    );
    let dup = go.add("c1", "eth0").cni_error();
    assert!(
        dup.msg.contains("duplicate allocation is not allowed"),
        "Go must see our file: {dup:?}"
    );

    assert_eq!(
        files(&go),
        pairs(&[
            ("10.88.0.2", "c1\r\neth0"),
            ("10.88.0.3", "c2\r\neth0"),
            ("fd00:88::2", "c1\r\neth0"),
            ("fd00:88::3", "c2\r\neth0"),
        ])
    );
    go.del("c1", "eth0").expect_silent_success();
    go.del("c2", "eth0").expect_silent_success();
    go.assert_at_baseline(&baseline);
}

/// Our owner cache (`.reservation-owners`) between Go's writes: Go creates and removes
/// reservations without touching it, and every verb of ours still sees exactly the files.
#[test]
fn our_owner_cache_follows_what_go_writes_in_between() {
    let world = World::new();
    let (go, ours) = pair(&world, &dual_conf(&world, "compat4"));
    let baseline = go.snapshot();
    ours.add_ok("a", "eth0");
    ours.add_ok("b", "eth0");
    assert!(ours.store().contains_key(".reservation-owners"));
    assert_eq!(go.add_ok("c", "eth0"), ["10.88.0.4/24", "fd00:88::4/64"]);
    go.del("a", "eth0").expect_silent_success();

    ours.add("c", "eth0")
        .expect_error(112, "10.88.0.4 has been allocated to c");
    ours.check("a", "eth0", None).cni_error();
    ours.check("c", "eth0", None).expect_silent_success();
    ours.del("c", "eth0").expect_silent_success();
    assert_eq!(ours.add_ok("d", "eth0"), ["10.88.0.5/24", "fd00:88::5/64"]);
    assert_eq!(
        files(&ours),
        pairs(&[
            ("10.88.0.3", "b\r\neth0"),
            ("10.88.0.5", "d\r\neth0"),
            ("fd00:88::3", "b\r\neth0"),
            ("fd00:88::5", "d\r\neth0"),
        ])
    );
    assert_eq!(go.add_ok("e", "eth0"), ["10.88.0.6/24", "fd00:88::6/64"]);
    ours.del("b", "eth0").expect_silent_success();
    ours.del("d", "eth0").expect_silent_success();
    ours.del("e", "eth0").expect_silent_success();
    assert!(
        !ours.store().contains_key(".reservation-owners"),
        "the cache goes with the last reservation"
    );
    ours.assert_at_baseline(&baseline);
}

#[test]
fn legacy_id_only_reservations_are_honoured() {
    let world = World::new();
    let conf = config::host_local(
        V,
        "legacy",
        &world.data_dir(),
        config::ranges(&["10.88.0.0/24"]),
    );
    let ours = HostLocal::ours(&world, conf);
    let baseline = ours.snapshot();
    // What host-local before v0.7 wrote: the container ID alone.
    fs::create_dir_all(ours.store_dir()).unwrap();
    let file = ours.store_dir().join("10.88.0.9");
    fs::write(&file, b"old1").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();

    ours.check("old1", "eth0", None).expect_silent_success();
    ours.del("old1", "eth0").expect_silent_success();
    assert!(
        !file.exists(),
        "DEL must release a legacy reservation by container ID"
    );
    ours.assert_at_baseline(&baseline);
}

#[test]
fn results_match_the_reference_in_every_shared_version() {
    let world = World::new();
    let ctr = world.container();
    let resolv = world.write_file(
        "state/resolv.conf",
        b"nameserver 10.0.0.53\nsearch a.test\n",
    );
    // Each side gets its own store; the store directories and their bookkeeping files
    // legitimately stay after DEL.
    let sides = |line: &str| {
        let path = line.split(' ').next().unwrap_or("");
        let in_store = path.starts_with("state/ours") || path.starts_with("state/go");
        let name = path.rsplit('/').next().unwrap_or("");
        in_store && (line.contains(" dir ") || is_bookkeeping(name))
    };
    let baseline = world.snapshot().without_lines(sides);
    for version in ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"] {
        let request = |verb: &str, side: Side| {
            let dir = world.state_dir().join(match side {
                Side::Ours => "ours",
                Side::Reference => "go",
            });
            let mut ipam = config::ranges(&["10.88.0.0/24", "fd00:88::/64"]);
            ipam["routes"] = json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd00:88::fe"}]);
            ipam["resolvConf"] = json!(resolv.to_string_lossy());
            let conf = config::host_local(version, &format!("diff-{version}"), &dir, ipam);
            PluginCall::new(verb, &conf)
                .id("c1")
                .ifname("eth0")
                .netns(&ctr)
        };
        let diff = Differential::run(&world, "host-local", |side| request("ADD", side));
        let (ours, go) = diff.results();
        assert_eq!(ours, go, "cniVersion {version}\n{}", diff.describe());
        let del = Differential::run(&world, "host-local", |side| request("DEL", side));
        del.ours.expect_silent_success();
        del.reference.expect_silent_success();
    }
    assert_same!(
        baseline,
        world.snapshot().without_lines(sides),
        "after DEL on both sides"
    );
}

#[test]
fn skel_level_errors_agree_with_the_reference() {
    let world = World::new();
    let ctr = world.container();
    let good = config::host_local(
        V,
        "errnet",
        &world.data_dir(),
        config::ranges(&["10.88.0.0/24"]),
    );
    let mut nameless = good.clone();
    nameless.as_object_mut().unwrap().remove("name");
    let calls = [
        (
            "missing name",
            PluginCall::add(&nameless)
                .id("c1")
                .ifname("eth0")
                .netns(&ctr),
        ),
        (
            "bad JSON",
            PluginCall::raw("ADD", b"{".to_vec())
                .id("c1")
                .ifname("eth0")
                .netns(&ctr),
        ),
        (
            "bad container ID",
            PluginCall::add(&good).id("-x").ifname("eth0").netns(&ctr),
        ),
        (
            "long ifname",
            PluginCall::add(&good)
                .id("c1")
                .ifname("eth0123456789abc")
                .netns(&ctr),
        ),
        (
            "unknown command",
            PluginCall::add(&good)
                .id("c1")
                .ifname("eth0")
                .netns(&ctr)
                .env("CNI_COMMAND", "FOO"),
        ),
    ];
    for (what, call) in calls {
        let diff = Differential::same(&world, "host-local", &call);
        let (ours, go) = (diff.ours.cni_error(), diff.reference.cni_error());
        // After a colon comes the parser's own wording (serde vs Go), which may differ.
        let head = |msg: &str| msg.split(':').next().unwrap_or("").to_owned();
        assert_eq!(
            (ours.code, head(&ours.msg)),
            (go.code, head(&go.msg)),
            "{what}\n{}",
            diff.describe()
        );
    }
}

use std::fs;
use std::path::Path;

use serde_json::{Value, json};

use super::*;
use crate::host::HostLink;
use crate::model::ConfDir;
use crate::podman;

fn dir_with(files: &[(&str, Value)]) -> (tempfile::TempDir, ConfDir) {
    let tmp = tempfile::tempdir().unwrap();
    for (name, v) in files {
        fs::write(tmp.path().join(name), v.to_string()).unwrap();
    }
    let dir = ConfDir::read(tmp.path());
    (tmp, dir)
}

fn host(links: &[(&str, &str, &[&str])]) -> HostSnapshot {
    HostSnapshot {
        links: links
            .iter()
            .enumerate()
            .map(|(i, (name, kind, addrs))| HostLink {
                index: u32::try_from(i).unwrap() + 1,
                name: (*name).to_owned(),
                kind: (*kind).to_owned(),
                master: None,
                addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            })
            .collect(),
    }
}

fn req(args: &[&str]) -> CreateRequest {
    let mut r = CreateRequest {
        driver: "bridge".into(),
        cni_version: "0.4.0".into(),
        ..CreateRequest::default()
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || (*it.next().unwrap()).to_owned();
        match *a {
            "--driver" => r.driver = val(),
            "--subnet" => r.subnets.push(val()),
            "--gateway" => r.gateways.push(val()),
            "--ip-range" => r.ip_ranges.push(val()),
            "--internal" => r.internal = true,
            "--ipv6" => r.ipv6 = true,
            "--ipam-driver" => r.ipam_driver = Some(val()),
            "--interface-name" => r.interface_name = Some(val()),
            "--opt" => r.opts.push(val()),
            "--label" => r.labels.push(val()),
            "--cni-version" => r.cni_version = val(),
            "--disable-dns" => r.disable_dns = true,
            name => r.name = Some(name.to_owned()),
        }
    }
    r
}

fn plan_with(
    r: &CreateRequest,
    dir: &ConfDir,
    h: &HostSnapshot,
    dns: bool,
) -> Result<Network, CreateError> {
    let mut random = || [0x12, 0x34, 0x56, 0x78, 0x9a];
    let mut ctx = CreateContext {
        dir,
        host: h,
        dnsname_available: dns,
        random: &mut random,
    };
    plan(r, &mut ctx)
}

fn plan_empty(args: &[&str]) -> Result<Network, CreateError> {
    let (_tmp, dir) = dir_with(&[]);
    plan_with(
        &req(args),
        &dir,
        &host(&[("lo", "", &["127.0.0.1/8"]), ("eth0", "", &[])]),
        false,
    )
}

fn rendered(net: &Network) -> Value {
    serde_json::from_slice(&podman::render(net).unwrap()).unwrap()
}

#[test]
fn defaults_like_podman() {
    let net = plan_empty(&[]).unwrap();
    assert_eq!(
        (net.name.as_str(), net.network_interface.as_str()),
        ("cni-podman1", "cni-podman1")
    );
    let v = rendered(&net);
    assert_eq!(v["cniVersion"], "0.4.0");
    assert!(v.get("args").is_none());
    let types: Vec<&str> = v["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["bridge", "portmap", "firewall", "tuning"]);
    let bridge = &v["plugins"][0];
    assert_eq!(bridge["isGateway"], true);
    assert_eq!(bridge["ipMasq"], true);
    assert_eq!(bridge["hairpinMode"], true);
    assert_eq!(bridge["capabilities"], json!({"ips": true}));
    assert_eq!(bridge["ipam"]["routes"], json!([{"dst": "0.0.0.0/0"}]));
    assert_eq!(
        bridge["ipam"]["ranges"],
        json!([[{"subnet": "10.89.0.0/24", "gateway": "10.89.0.1"}]])
    );
    assert_eq!(v["plugins"][2], json!({"type": "firewall", "backend": ""}));
}

#[test]
fn the_documented_podman_example_renders_byte_for_byte() {
    let net = plan_empty(&[
        "--subnet",
        "10.89.5.0/24",
        "--gateway",
        "10.89.5.1",
        "--ip-range",
        "10.89.5.128/25",
        "--opt",
        "isolate=true",
        "--opt",
        "mtu=1400",
        "--label",
        "app=web",
        "--interface-name",
        "cni-podman1",
        "mynet",
    ])
    .unwrap();
    let ours = String::from_utf8(podman::render(&net).unwrap()).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/podman/mynet.conflist");
    // podman writes the range's broadcast address as rangeEnd; create stops one short.
    let podmans = fs::read_to_string(path)
        .unwrap()
        .replace("10.89.5.255", "10.89.5.254");
    assert_eq!(ours, podmans);
}

#[test]
fn free_name_bridge_and_subnet_avoid_networks_and_host() {
    let existing = json!({"cniVersion": "0.4.0", "name": "cni-podman1", "plugins": [
        {"type": "bridge", "bridge": "cni-podman3", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.89.0.0/24"}]]}}]});
    let legacy = json!({"cniVersion": "0.4.0", "name": "old", "plugins": [
        {"type": "bridge", "ipam": {"type": "host-local", "subnet": "10.89.2.0/23"}}]});
    let (_tmp, dir) = dir_with(&[("a.conflist", existing), ("b.conflist", legacy)]);
    let h = host(&[
        ("lo", "", &["127.0.0.1/8"]),
        ("cni-podman2", "bridge", &[]),
        ("eth0", "", &["10.89.1.7/24"]),
    ]);
    let net = plan_with(&req(&[]), &dir, &h, false).unwrap();
    assert_eq!(net.name, "cni-podman4");
    assert_eq!(net.subnets[0].subnet.to_string(), "10.89.4.0/24");
    let named = plan_with(&req(&["web"]), &dir, &h, false).unwrap();
    assert_eq!(named.network_interface, "cni-podman4");
}

#[test]
fn internal_has_no_gateway_masquerade_or_routes() {
    let v = rendered(&plan_empty(&["--internal", "--subnet", "10.89.7.0/24", "backend"]).unwrap());
    let bridge = &v["plugins"][0];
    assert_eq!(bridge["isGateway"], false);
    assert!(bridge.get("ipMasq").is_none());
    assert!(bridge["ipam"].get("routes").is_none());
    assert_eq!(
        bridge["ipam"]["ranges"],
        json!([[{"subnet": "10.89.7.0/24"}]])
    );
}

#[test]
fn ipv6_adds_a_ula_and_a_v4_subnet() {
    let net = plan_empty(&["--ipv6"]).unwrap();
    let subnets: Vec<String> = net.subnets.iter().map(|s| s.subnet.to_string()).collect();
    assert_eq!(subnets, ["10.89.0.0/24", "fd12:3456:789a::/64"]);
    let v = rendered(&net);
    assert_eq!(
        v["plugins"][0]["ipam"]["routes"],
        json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}])
    );
    let only_v6 = plan_empty(&["--subnet", "fd00:1::/64"]).unwrap();
    assert_eq!(only_v6.subnets.len(), 1);
    assert!(only_v6.ipv6_enabled);
}

#[test]
fn ip_ranges_cidr_and_start_end() {
    let net = plan_empty(&["--subnet", "10.89.5.0/24", "--ip-range", "10.89.5.128/25"]).unwrap();
    let s = &net.subnets[0];
    assert_eq!(
        (
            s.range_start.unwrap().to_string(),
            s.range_end.unwrap().to_string()
        ),
        ("10.89.5.129".into(), "10.89.5.254".into())
    );
    let net = plan_empty(&[
        "--subnet",
        "10.89.5.0/24",
        "--ip-range",
        "10.89.5.10-10.89.5.20",
    ])
    .unwrap();
    assert_eq!(net.subnets[0].range_end.unwrap().to_string(), "10.89.5.20");
}

#[test]
fn macvlan_defaults_to_dhcp_and_needs_an_existing_parent() {
    let net = plan_empty(&[
        "--driver",
        "macvlan",
        "--opt",
        "parent=eth0",
        "--opt",
        "mode=vepa",
        "lan",
    ])
    .unwrap();
    let v = rendered(&net);
    assert_eq!(
        v["plugins"],
        json!([{"type": "macvlan", "master": "eth0", "ipam": {"type": "dhcp"}, "mode": "vepa"}])
    );
    assert_eq!(v["args"], json!({"podman_options": {"mode": "vepa"}}));
    let e = plan_empty(&["--driver", "macvlan", "--opt", "parent=eth7"]).unwrap_err();
    assert_eq!(e.to_string(), "parent interface eth7 does not exist");
    let v = rendered(
        &plan_empty(&[
            "--driver",
            "macvlan",
            "--interface-name",
            "eth0",
            "--subnet",
            "192.168.5.0/24",
        ])
        .unwrap(),
    );
    assert_eq!(v["plugins"][0]["capabilities"], json!({"ips": true}));
    assert_eq!(v["plugins"][0]["ipam"]["type"], "host-local");
}

#[test]
fn dnsname_only_when_installed_enabled_and_not_internal() {
    let (_tmp, dir) = dir_with(&[]);
    let h = host(&[]);
    let with = plan_with(&req(&[]), &dir, &h, true).unwrap();
    let v = rendered(&with);
    assert_eq!(
        v["plugins"][4],
        json!({"type": "dnsname", "domainName": "dns.podman", "capabilities": {"aliases": true}})
    );
    assert!(
        !plan_with(&req(&["--disable-dns"]), &dir, &h, true)
            .unwrap()
            .dns_enabled
    );
    assert!(
        !plan_with(&req(&["--internal"]), &dir, &h, true)
            .unwrap()
            .dns_enabled
    );
}

#[test]
fn refusals_say_why() {
    let existing = json!({"cniVersion": "0.4.0", "name": "web", "plugins": [
        {"type": "bridge", "bridge": "cni-web", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.89.5.0/24"}]]}}]});
    let (_tmp, dir) = dir_with(&[("web.conflist", existing)]);
    let h = host(&[("eth0", "", &["192.168.1.10/24"]), ("dummy0", "dummy", &[])]);
    let cases: &[(&[&str], &str)] = &[
        (&["web"], "network name \"web\" is already used by"),
        (
            &["--subnet", "10.89.5.128/25", "x"],
            "subnet 10.89.5.128/25 overlaps with network \"web\"",
        ),
        (
            &["--subnet", "192.168.0.0/16", "x"],
            "overlaps with address 192.168.1.10/24 on eth0",
        ),
        (
            &["--subnet", "10.90.0.0/24", "--gateway", "10.91.0.1", "x"],
            "gateway 10.91.0.1 is not a usable address of subnet 10.90.0.0/24",
        ),
        (
            &["--subnet", "10.90.0.0/24", "--gateway", "10.90.0.255", "x"],
            "not a usable address",
        ),
        (
            &[
                "--subnet",
                "10.90.0.0/24",
                "--ip-range",
                "10.90.1.0/25",
                "x",
            ],
            "ip range 10.90.1.0/25 is not inside subnet 10.90.0.0/24",
        ),
        (
            &[
                "--subnet",
                "10.90.0.0/24",
                "--ip-range",
                "10.90.0.50-10.90.0.10",
                "x",
            ],
            "start 10.90.0.50 is after end 10.90.0.10",
        ),
        (
            &["--opt", "mode=vepa", "x"],
            "option \"mode\" is not supported with driver \"bridge\"",
        ),
        (
            &["--driver", "macvlan", "--opt", "isolate=true", "x"],
            "option \"isolate\" is not supported with driver \"macvlan\"",
        ),
        (
            &["--opt", "parent=eth0", "x"],
            "option \"parent\" is not supported",
        ),
        (
            &["--opt", "color=blue", "x"],
            "unsupported network option color",
        ),
        (
            &["--opt", "mtu=20", "x"],
            "mtu \"20\" must be between 68 and 65535",
        ),
        (
            &["--opt", "vlan=5000", "x"],
            "vlan ID \"5000\" must be between 0 and 4094",
        ),
        (&["--opt", "isolate=maybe", "x"], "isolate value"),
        (
            &["--subnet", "10.90.0.1/24", "x"],
            "has host bits set: the network address for prefix 24 is 10.90.0.0",
        ),
        (&["--subnet", "10.90.0.0/31", "x"], "too small"),
        (
            &["--subnet", "10.90.0.0", "x"],
            "not in address/prefix form",
        ),
        (
            &["--subnet", "10.90.0.0/24", "--subnet", "10.90.0.0/16", "x"],
            "overlaps with --subnet 10.90.0.0/24",
        ),
        (
            &["--ipam-driver", "dhcp", "--subnet", "10.90.0.0/24", "x"],
            "dhcp ipam driver is set but subnets are given",
        ),
        (
            &["--gateway", "10.90.0.1", "x"],
            "cannot set more gateways than subnets",
        ),
        (&["../x"], "invalid network name \"../x\""),
        (
            &["--interface-name", "cni-web", "x"],
            "bridge name cni-web is already used by network web",
        ),
        (
            &["--interface-name", "dummy0", "x"],
            "dummy0 already exists and is not a bridge",
        ),
        (&["--interface-name", "a/b", "x"], "invalid bridge name"),
        (&["--cni-version", "9.9.9", "x"], "unknown CNI version"),
        (
            &["--driver", "ipvlan", "x"],
            "driver \"ipvlan\" is not supported",
        ),
        (
            &["--driver", "macvlan", "--internal", "x"],
            "internal is not supported with the macvlan driver and the dhcp ipam driver",
        ),
        (
            &["--driver", "macvlan", "--ipam-driver", "host-local", "x"],
            "needs --subnet",
        ),
    ];
    let mut failures = Vec::new();
    for (args, want) in cases {
        match plan_with(&req(args), &dir, &h, false) {
            Ok(n) => failures.push(format!("{args:?}: accepted as {n:?}")),
            Err(e) if !e.to_string().contains(want) => {
                failures.push(format!("{args:?}: {e} (wanted {want:?})"));
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

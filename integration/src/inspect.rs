//! Reading kernel state the way an operator does (`ip -j`, `bridge -j`, `iptables-save`,
//! `/proc/sys`), returned as plain values for assertions.

use serde_json::Value;

use crate::netns::Netns;

fn json(ns: &Netns, argv: &[&str]) -> Value {
    let text = ns.run_ok(argv);
    if text.trim().is_empty() {
        return Value::Array(Vec::new());
    }
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("`{}` printed invalid JSON ({e}): {text}", argv.join(" ")))
}

fn array(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        other => panic!("expected a JSON array, got {other}"),
    }
}

/// `ip -j -d link show` in `ns`: every link with details.
pub fn links(ns: &Netns) -> Vec<Value> {
    array(json(ns, &["ip", "-j", "-d", "link", "show"]))
}

/// True when `ns` has a link called `name`.
pub fn has_link(ns: &Netns, name: &str) -> bool {
    links(ns).iter().any(|l| l["ifname"] == name)
}

/// `ip -j -d link show dev <name>`; panics (listing what exists) when there is no such link.
#[track_caller]
pub fn link(ns: &Netns, name: &str) -> Value {
    let all = links(ns);
    let names: Vec<String> = all.iter().map(|l| l["ifname"].to_string()).collect();
    all.into_iter()
        .find(|l| l["ifname"] == name)
        .unwrap_or_else(|| panic!("no link {name} in {}; links: {names:?}", ns.name()))
}

/// Names of the links in `ns` whose master is `bridge` (its ports), sorted.
pub fn ports_of(ns: &Netns, bridge: &str) -> Vec<String> {
    let mut names: Vec<String> = links(ns)
        .iter()
        .filter(|l| l["master"] == bridge)
        .map(|l| l["ifname"].as_str().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    names
}

/// `linkinfo.info_kind` of a link from [`link`] (`"bridge"`, `"veth"`, …), `""` if none.
pub fn kind(link: &Value) -> &str {
    link["linkinfo"]["info_kind"].as_str().unwrap_or("")
}

/// True when the link from [`link`] carries `flag` (e.g. `"UP"`, `"PROMISC"`).
pub fn has_flag(link: &Value, flag: &str) -> bool {
    link["flags"]
        .as_array()
        .is_some_and(|flags| flags.iter().any(|f| f == flag))
}

/// Addresses on `dev` in `ns` as `addr/prefix`, with their scope: `("10.1.0.2/24", "global")`.
pub fn addrs_with_scope(ns: &Netns, dev: &str) -> Vec<(String, String)> {
    let out = json(ns, &["ip", "-j", "addr", "show", "dev", dev]);
    array(out)
        .iter()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .map(|a| {
            (
                format!(
                    "{}/{}",
                    a["local"].as_str().unwrap_or_default(),
                    a["prefixlen"]
                ),
                a["scope"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Global-scope addresses on `dev` (IPv4 and IPv6), as `addr/prefix`, in kernel order.
pub fn global_addrs(ns: &Netns, dev: &str) -> Vec<String> {
    addrs_with_scope(ns, dev)
        .into_iter()
        .filter(|(_, scope)| scope == "global")
        .map(|(a, _)| a)
        .collect()
}

/// Routes of the main table for `family` (`"-4"` or `"-6"`), as `ip -j route` objects.
pub fn routes(ns: &Netns, family: &str) -> Vec<Value> {
    array(json(ns, &["ip", "-j", family, "route", "show"]))
}

/// The main-table default route of `family` (`"-4"`/`"-6"`), if any.
pub fn default_route(ns: &Netns, family: &str) -> Option<Value> {
    routes(ns, family)
        .into_iter()
        .find(|r| r["dst"] == "default")
}

/// Bridge-port attributes of `dev` (`bridge -j -d link show dev <dev>`): `hairpin`,
/// `isolated`, `state`, `master`, …
#[track_caller]
pub fn port(ns: &Netns, dev: &str) -> Value {
    let out = array(json(
        ns,
        &["bridge", "-j", "-d", "link", "show", "dev", dev],
    ));
    out.into_iter()
        .next()
        .unwrap_or_else(|| panic!("{dev} in {} is not a bridge port", ns.name()))
}

/// VLANs of bridge port `dev` (`bridge -j vlan show dev <dev>`) as `(vid, flags)`, e.g.
/// `(10, ["PVID", "Egress Untagged"])`, sorted by VLAN ID.
pub fn port_vlans(ns: &Netns, dev: &str) -> Vec<(u64, Vec<String>)> {
    let out = array(json(ns, &["bridge", "-j", "vlan", "show", "dev", dev]));
    let mut vlans: Vec<(u64, Vec<String>)> = out
        .iter()
        .flat_map(|p| p["vlans"].as_array().cloned().unwrap_or_default())
        .flat_map(|v| {
            let flags: Vec<String> = v["flags"]
                .as_array()
                .map(|f| {
                    f.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let first = v["vlan"].as_u64().unwrap_or_default();
            // A range is printed as {"vlan": a, "vlanEnd": b}.
            let last = v["vlanEnd"].as_u64().unwrap_or(first);
            (first..=last).map(move |vid| (vid, flags.clone()))
        })
        .collect();
    vlans.sort();
    vlans
}

/// The value of `/proc/sys/<key>` (slash form, e.g. `net/ipv4/ip_forward`) seen from `ns`.
pub fn sysctl(ns: &Netns, key: &str) -> String {
    ns.run_ok(&["cat", &format!("/proc/sys/{key}")])
        .trim()
        .to_owned()
}

/// The rule lines (`-A …`) of the `nat` table of `iptables-save` (or `ip6tables-save`).
pub fn nat_rules(ns: &Netns, v6: bool) -> Vec<String> {
    let tool = if v6 {
        "ip6tables-save"
    } else {
        "iptables-save"
    };
    ns.run_ok(&[tool, "-t", "nat"])
        .lines()
        .filter(|l| l.starts_with("-A "))
        .map(str::to_owned)
        .collect()
}

/// The user chains (`:NAME -` lines, without counters) of the `nat` table.
pub fn nat_chains(ns: &Netns, v6: bool) -> Vec<String> {
    let tool = if v6 {
        "ip6tables-save"
    } else {
        "iptables-save"
    };
    ns.run_ok(&[tool, "-t", "nat"])
        .lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| !["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"].contains(c))
        .map(str::to_owned)
        .collect()
}

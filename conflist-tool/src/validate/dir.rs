//! Cross-file rules: a broken file that sorts first and breaks libcni's lookup of later
//! networks, duplicate names (and which file wins), overlapping subnets between networks, two
//! networks on one bridge.

use ipnetwork::IpNetwork;
use serde_json::Value;

use super::{Finding, Options, Report, Severity};
use crate::model::{ConfDir, ConfFile, ConfList};
use crate::span::JsonPath;
use crate::subnets;

/// Every subnet of the list's inline plugins with the JSON path of its `subnet` value.
pub(crate) fn subnet_paths(list: &ConfList) -> Vec<(IpNetwork, JsonPath)> {
    let inline = list
        .raw
        .get("plugins")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut out = Vec::new();
    for (i, p) in list.plugins.iter().enumerate().take(inline) {
        let Some(ipam) = p.get("ipam").and_then(Value::as_object) else {
            continue;
        };
        let base = JsonPath::root().key("plugins").index(i).key("ipam");
        let parse = |v: Option<&Value>| -> Option<IpNetwork> {
            let n: IpNetwork = v?.as_str()?.parse().ok()?;
            IpNetwork::new(n.network(), n.prefix()).ok()
        };
        if let Some(n) = parse(ipam.get("subnet")) {
            out.push((n, base.key("subnet")));
        }
        let sets = ipam.get("ranges").and_then(Value::as_array);
        for (s, set) in sets.into_iter().flatten().enumerate() {
            for (r, range) in set.as_array().into_iter().flatten().enumerate() {
                if let Some(n) = parse(range.get("subnet")) {
                    out.push((n, base.key("ranges").index(s).index(r).key("subnet")));
                }
            }
        }
    }
    out
}

fn has_ipam(list: &ConfList) -> bool {
    list.plugins.first().is_some_and(|p| {
        p.get("ipam")
            .and_then(|i| i.get("type"))
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty())
    })
}

/// Runs the cross-file rules.
pub(crate) fn check(dir: &ConfDir, _opts: &Options) -> Vec<Finding> {
    let mut findings = Vec::new();
    broken_first(dir, &mut findings);
    let mut first_by_name: Vec<(&ConfFile, &ConfList)> = Vec::new();
    for (file, list) in dir.lists() {
        match first_by_name.iter().find(|(_, l)| l.name == list.name) {
            Some((winner, _)) => {
                let mut r = Report::new(file);
                r.add(Severity::Warning, "dir-duplicate-name", &JsonPath::root().key("name"), format!(
                    "network {:?} is also defined by {}, which sorts first: libcni and podman use that file and never this one",
                    list.name, winner.file_name()
                ))
                .hint("rename one of the networks, or remove the file that is not wanted");
                findings.extend(r.into_findings());
            }
            None => first_by_name.push((file, list)),
        }
    }
    for (i, (file_b, b)) in first_by_name.iter().enumerate() {
        let mut r = Report::new(file_b);
        for (file_a, a) in &first_by_name[..i] {
            pair(file_a, a, b, &mut r);
        }
        findings.extend(r.into_findings());
    }
    findings
}

fn pair(file_a: &ConfFile, a: &ConfList, b: &ConfList, r: &mut Report<'_>) {
    let bridge_a = subnets::list_bridge(a);
    let bridge_b = subnets::list_bridge(b);
    if bridge_a.is_some() && bridge_a == bridge_b {
        let bridge = bridge_b.unwrap_or_default();
        let path = JsonPath::root().key("plugins").index(0).key("bridge");
        let both_l3 = has_ipam(a) && has_ipam(b);
        let shared = subnets::list_subnets(a).iter().any(|sa| {
            subnets::list_subnets(b)
                .iter()
                .any(|sb| subnets::overlap(sa, sb))
        });
        let why = if !both_l3 {
            "containers of both networks share one L2 segment"
        } else if shared {
            "each network has its own host-local store, so both hand out the same addresses"
        } else {
            "the bridge gets the gateways of both subnets and containers of both networks share one L2 segment"
        };
        r.add(
            if both_l3 {
                Severity::Error
            } else {
                Severity::Warning
            },
            "dir-shared-bridge",
            &path,
            format!(
                "network {:?} uses bridge {bridge:?} like network {:?} ({}): {why}",
                b.name,
                a.name,
                file_a.file_name()
            ),
        )
        .hint("give each network its own bridge");
        return;
    }
    let subnets_a = subnets::list_subnets(a);
    for (sb, path) in subnet_paths(b) {
        if let Some(sa) = subnets_a.iter().find(|sa| subnets::overlap(sa, &sb)) {
            r.add(Severity::Error, "dir-subnet-overlap", &path, format!(
                "subnet {sb} overlaps subnet {sa} of network {:?} ({}): routes to one network's containers capture the other's",
                a.name, file_a.file_name()
            ))
            .hint("pick a subnet no other network uses (cni-conflist create picks a free one)");
        }
    }
}

fn broken_first(dir: &ConfDir, findings: &mut Vec<Finding>) {
    for (k, file) in dir.files.iter().enumerate() {
        let Err(error) = &file.list else { continue };
        let earlier: Vec<&str> = dir.files[..k]
            .iter()
            .filter_map(|f| f.list.as_ref().ok().map(|l| l.name.as_str()))
            .collect();
        let mut hidden: Vec<&str> = dir.files[k + 1..]
            .iter()
            .filter_map(|f| f.list.as_ref().ok().map(|l| l.name.as_str()))
            .filter(|n| !earlier.contains(n))
            .collect();
        hidden.dedup();
        if hidden.is_empty() {
            continue;
        }
        let mut r = Report::new(file);
        r.add(Severity::Error, "dir-broken-first", &JsonPath::root(), format!(
            "libcni reads this file before the files defining {} and stops there: looking up those networks fails with \"{error}\"",
            hidden.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
        ))
        .hint("fix or remove this file (libcni reads files in name order and aborts at the first broken one)");
        findings.extend(r.into_findings());
    }
}

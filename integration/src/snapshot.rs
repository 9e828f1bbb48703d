//! Operator-visible state captured as text, and readable diffs between two captures.
//!
//! A namespace snapshot holds `ip -j -d link`, `ip -j addr`, IPv4 and IPv6 routes of all
//! tables, `iptables-save`, `ip6tables-save` and `nft list ruleset`. Only fields that change on
//! their own are normalised: address/route lifetimes that count down, the IPv6 `tentative`
//! flag (DAD finishing in the background) and packet/byte counters. Everything a leak would
//! change — including `ifindex`, which grows when a link is recreated — is kept.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::netns::Netns;
use crate::textdiff::diff_lines;
use crate::tree::read_tree;

/// Named sections of normalised text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    sections: BTreeMap<String, String>,
}

/// `ip` JSON fields whose value is replaced because it changes with time alone.
const COUNTDOWN_FIELDS: &[&str] = &["valid_life_time", "preferred_life_time", "expires"];
/// `ip` JSON fields dropped because they change with time alone.
const DROPPED_FIELDS: &[&str] = &["tentative", "stats", "stats64"];
/// What `ip` prints for an infinite lifetime.
const FOREVER: u64 = 4_294_967_295;

impl Snapshot {
    /// Captures the kernel state of `ns`.
    pub fn netns(ns: &Netns) -> Snapshot {
        let mut snap = Snapshot::default();
        let ip_json = [
            ("link", vec!["ip", "-j", "-d", "link", "show"]),
            ("addr", vec!["ip", "-j", "addr", "show"]),
            (
                "route4",
                vec!["ip", "-j", "-4", "route", "show", "table", "all"],
            ),
            (
                "route6",
                vec!["ip", "-j", "-6", "route", "show", "table", "all"],
            ),
        ];
        for (what, argv) in ip_json {
            let text = ns.run_ok(&argv);
            snap.insert(
                &format!("netns {}: {what}", ns.name()),
                normalise_ip_json(&text),
            );
        }
        for tool in ["iptables-save", "ip6tables-save"] {
            let text = ns.run_ok(&[tool]);
            snap.insert(
                &format!("netns {}: {tool}", ns.name()),
                normalise_iptables(&text),
            );
        }
        let nft = ns.run_ok(&["nft", "list", "ruleset"]);
        snap.insert(&format!("netns {}: nft", ns.name()), nft);
        snap
    }

    /// Captures the tree below `root` (paths, types, modes, exact bytes) as section `dir <label>`.
    pub fn dir(label: &str, root: &Path) -> Snapshot {
        let text: String = read_tree(root)
            .iter()
            .map(|(path, entry)| format!("{path} {entry}\n"))
            .collect();
        let mut snap = Snapshot::default();
        snap.insert(&format!("dir {label}"), text);
        snap
    }

    /// Both snapshots' sections together (`other` wins on a name clash).
    pub fn merge(mut self, other: Snapshot) -> Snapshot {
        self.sections.extend(other.sections);
        self
    }

    /// A copy with every line for which `drop` is true removed from every section (for state
    /// that legitimately survives teardown, such as host-local's `lock` file).
    pub fn without_lines(&self, drop: impl Fn(&str) -> bool) -> Snapshot {
        let sections = self
            .sections
            .iter()
            .map(|(name, text)| {
                let kept: String = text
                    .lines()
                    .filter(|l| !drop(l))
                    .map(|l| format!("{l}\n"))
                    .collect();
                (name.clone(), kept)
            })
            .collect();
        Snapshot { sections }
    }

    /// A copy with every section's text replaced by `f(name, text)` (for normalisations that
    /// need the structure of a section, e.g. dropping one link from `ip -j` output).
    pub fn map_sections(&self, f: impl Fn(&str, &str) -> String) -> Snapshot {
        let sections = self
            .sections
            .iter()
            .map(|(name, text)| (name.clone(), f(name, text)))
            .collect();
        Snapshot { sections }
    }

    /// The text of one section, if captured.
    pub fn section(&self, name: &str) -> Option<&str> {
        self.sections.get(name).map(String::as_str)
    }

    /// Names of all sections.
    pub fn section_names(&self) -> Vec<&str> {
        self.sections.keys().map(String::as_str).collect()
    }

    /// A readable description of what changed from `self` to `other`; `None` when identical.
    pub fn diff(&self, other: &Snapshot) -> Option<String> {
        let mut out = String::new();
        let names: std::collections::BTreeSet<&String> =
            self.sections.keys().chain(other.sections.keys()).collect();
        for name in names {
            match (self.sections.get(name), other.sections.get(name)) {
                (Some(a), Some(b)) => {
                    if let Some(d) = diff_lines(a, b) {
                        out.push_str(&format!("=== {name}\n{d}"));
                    }
                }
                (Some(_), None) => out.push_str(&format!("=== {name}: only in the first\n")),
                (None, Some(_)) => out.push_str(&format!("=== {name}: only in the second\n")),
                (None, None) => {}
            }
        }
        (!out.is_empty()).then_some(out)
    }

    fn insert(&mut self, name: &str, text: String) {
        self.sections.insert(name.to_owned(), text);
    }
}

/// Fails the test with the snapshot diff when two snapshots differ.
///
/// `assert_same!(before, after)` or `assert_same!(before, after, "after DEL of {}", id)`.
#[macro_export]
macro_rules! assert_same {
    ($before:expr, $after:expr $(,)?) => {
        if let Some(diff) = $crate::snapshot::Snapshot::diff(&$before, &$after) {
            panic!("state differs from the baseline:\n{diff}");
        }
    };
    ($before:expr, $after:expr, $($context:tt)+) => {
        if let Some(diff) = $crate::snapshot::Snapshot::diff(&$before, &$after) {
            panic!("state differs from the baseline ({}):\n{diff}", format!($($context)+));
        }
    };
}

fn normalise_ip_json(text: &str) -> String {
    let value: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("`ip -j` printed invalid JSON ({e}): {text}"));
    let value = normalise_value(value);
    let mut out = serde_json::to_string_pretty(&value).expect("serialise JSON");
    out.push('\n');
    out
}

fn normalise_value(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| !DROPPED_FIELDS.contains(&k.as_str()))
                .map(|(k, v)| {
                    let v = if COUNTDOWN_FIELDS.contains(&k.as_str()) {
                        countdown(v)
                    } else {
                        normalise_value(v)
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(normalise_value).collect()),
        other => other,
    }
}

fn countdown(v: Value) -> Value {
    if v.as_u64() == Some(FOREVER) {
        v
    } else {
        Value::String("<counting down>".to_owned())
    }
}

/// Drops `#` comment lines and `[packets:bytes]` counters on chain lines.
fn normalise_iptables(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            if l.starts_with(':') && l.ends_with(']') {
                l.rsplit_once(" [").map_or(l, |(head, _)| head)
            } else {
                l
            }
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iptables_counters_and_comments_are_dropped() {
        let text = "# Generated by iptables-save v1.8.9\n*nat\n:PREROUTING ACCEPT [3:180]\n\
                    :CNI-X - [0:0]\n-A CNI-X -j MASQUERADE\nCOMMIT\n# Completed\n";
        assert_eq!(
            normalise_iptables(text),
            "*nat\n:PREROUTING ACCEPT\n:CNI-X -\n-A CNI-X -j MASQUERADE\nCOMMIT\n"
        );
    }

    #[test]
    fn lifetimes_count_down_but_forever_stays() {
        let text = r#"[{"addr_info":[{"local":"fd00::2","valid_life_time":3599,
            "preferred_life_time":4294967295,"tentative":true}]}]"#;
        let out = normalise_ip_json(text);
        assert!(
            out.contains("\"valid_life_time\": \"<counting down>\""),
            "{out}"
        );
        assert!(out.contains("\"preferred_life_time\": 4294967295"), "{out}");
        assert!(!out.contains("tentative"), "{out}");
    }

    #[test]
    fn diff_names_the_section() {
        let mut a = Snapshot::default();
        a.insert("dir x", "f file 0600 \"a\"\n".to_owned());
        let mut b = a.clone();
        assert_eq!(a.diff(&b), None);
        b.insert("dir x", "f file 0644 \"a\"\n".to_owned());
        let d = a.diff(&b).expect("differs");
        assert!(d.starts_with("=== dir x\n"), "{d}");
        assert!(d.contains("- f file 0600"), "{d}");
        assert!(d.contains("+ f file 0644"), "{d}");
    }
}

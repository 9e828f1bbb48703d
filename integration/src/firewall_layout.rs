//! What the firewall plugin's rules look like, and reading/editing them in a namespace.
//!
//! iptables: the lines `iptables-save` prints for the reference layout (HEAD comments) plus the
//! owner comment our plugin adds to per-container rules,
//! `name: "<net>" id: "<id>" if: "<ifname>"[ same-bridge: "<br>" | isolated: "<br>"]`.
//! nftables: our table `inet cni_firewall`, its per-container comments
//! `<16hex(net)>-<16hex(ifname:id)>[ <policy>: <br>], net: …, if: …, id: …`.

use crate::netns::Netns;

/// Our nftables backend's table (`nft list table inet cni_firewall`).
pub const NFT_TABLE: &str = "inet cni_firewall";

/// The `-A …` lines of `iptables-save -t filter` (or ip6tables), in saved order.
pub fn filter_rules(ns: &Netns, v6: bool) -> Vec<String> {
    save_filter(ns, v6)
        .lines()
        .filter(|l| l.starts_with("-A "))
        .map(str::to_owned)
        .collect()
}

/// The user chains of the `filter` table, sorted.
pub fn filter_chains(ns: &Netns, v6: bool) -> Vec<String> {
    let mut chains: Vec<String> = save_filter(ns, v6)
        .lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| !["INPUT", "FORWARD", "OUTPUT"].contains(c))
        .map(str::to_owned)
        .collect();
    chains.sort();
    chains
}

fn save_filter(ns: &Netns, v6: bool) -> String {
    let tool = if v6 {
        "ip6tables-save"
    } else {
        "iptables-save"
    };
    ns.run_ok(&[tool, "-t", "filter"])
}

/// The rules of `chain` among `rules` (as from [`filter_rules`]), in order.
pub fn in_chain(rules: &[String], chain: &str) -> Vec<String> {
    let prefix = format!("-A {chain} ");
    rules
        .iter()
        .filter(|r| r.starts_with(&prefix))
        .cloned()
        .collect()
}

/// `-m comment --comment "<text>"` as iptables-save prints it (quoted, `"` and `\` escaped).
pub fn comment_match(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
    format!("-m comment --comment \"{escaped}\"")
}

/// Our owner comment: `name: "<net>" id: "<id>" if: "<ifname>"` plus ` <policy>: "<bridge>"`
/// for `isolation = Some((policy, bridge))`.
pub fn owner_comment(net: &str, id: &str, ifname: &str, isolation: Option<(&str, &str)>) -> String {
    let mut text = format!("name: \"{net}\" id: \"{id}\" if: \"{ifname}\"");
    if let Some((policy, bridge)) = isolation {
        text.push_str(&format!(" {policy}: \"{bridge}\""));
    }
    text
}

/// `-A FORWARD … -j CNI-FORWARD`.
pub fn forward_jump() -> String {
    format!(
        "-A FORWARD {} -j CNI-FORWARD",
        comment_match("CNI firewall plugin rules")
    )
}

/// `-A CNI-FORWARD … -j <admin>`.
pub fn admin_jump(admin: &str) -> String {
    format!(
        "-A CNI-FORWARD {} -j {admin}",
        comment_match("CNI firewall plugin admin overrides")
    )
}

/// The two per-address rules in `CNI-FORWARD` (`ip` without prefix), with `comment` (ours) or
/// without (the reference).
pub fn address_rules(ip: &str, comment: Option<&str>) -> Vec<String> {
    let host = if ip.contains(':') {
        format!("{ip}/128")
    } else {
        format!("{ip}/32")
    };
    let c = comment
        .map(|t| format!(" {}", comment_match(t)))
        .unwrap_or_default();
    vec![
        format!("-A CNI-FORWARD -d {host} -m conntrack --ctstate RELATED,ESTABLISHED{c} -j ACCEPT"),
        format!("-A CNI-FORWARD -s {host}{c} -j ACCEPT"),
    ]
}

/// HEAD's comment on a bridge's stage-1 rules: `… (ingressPolicy: <policy>)`.
pub fn policy_comment(policy: &str) -> String {
    format!("CNI firewall plugin rules (ingressPolicy: {policy})")
}

/// HEAD's comment on the shared isolation rules.
pub const SHARED_ISOLATION_COMMENT: &str =
    "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)";

/// `-A FORWARD … -j CNI-ISOLATION-STAGE-1`.
pub fn stage1_jump() -> String {
    format!(
        "-A FORWARD {} -j CNI-ISOLATION-STAGE-1",
        comment_match(SHARED_ISOLATION_COMMENT)
    )
}

/// A bridge's stage-1 rules for `policy` (`same-bridge` / `isolated`), top to bottom.
pub fn stage1_rules(bridge: &str, policy: &str) -> Vec<String> {
    let c = comment_match(&policy_comment(policy));
    let mut rules = Vec::new();
    if policy == "isolated" {
        rules.push(format!(
            "-A CNI-ISOLATION-STAGE-1 -i {bridge} -o {bridge} {c} -j DROP"
        ));
    }
    rules.push(format!(
        "-A CNI-ISOLATION-STAGE-1 -i {bridge} ! -o {bridge} {c} -j CNI-ISOLATION-STAGE-2"
    ));
    rules
}

/// A bridge's stage-2 rule.
pub fn stage2_rule(bridge: &str) -> String {
    format!(
        "-A CNI-ISOLATION-STAGE-2 -o {bridge} {} -j DROP",
        comment_match(SHARED_ISOLATION_COMMENT)
    )
}

/// The closing `RETURN` of `chain` (a stage chain).
pub fn stage_return(chain: &str) -> String {
    format!(
        "-A {chain} {} -j RETURN",
        comment_match(SHARED_ISOLATION_COMMENT)
    )
}

/// `line` with every `(ingressPolicy: …)` comment replaced by `(ingressPolicy: *)`: the
/// reference versions word them differently (v1.1.1: `same-bridge` everywhere).
pub fn any_policy_comment(line: &str) -> String {
    let mut out = line.to_owned();
    for policy in ["same-bridge|isolated", "same-bridge", "isolated"] {
        out = out.replace(&format!("(ingressPolicy: {policy})"), "(ingressPolicy: *)");
    }
    out
}

/// `line` without our owner comment (` -m comment --comment "name: \"…\" …"`), if any.
pub fn without_owner_comment(line: &str) -> String {
    let marker = " -m comment --comment \"name: \\\"";
    let Some(start) = line.find(marker) else {
        return line.to_owned();
    };
    let body = &line[start + " -m comment --comment \"".len()..];
    let mut escaped = false;
    for (i, ch) in body.char_indices() {
        match ch {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => {
                let end = start + " -m comment --comment \"".len() + i + 1;
                return format!("{}{}", &line[..start], &line[end..]);
            }
            _ => escaped = false,
        }
    }
    line.to_owned()
}

/// Deletes the rule `line` (exactly as [`filter_rules`] shows it) from the filter table of `ns`
/// with `iptables -D` (`ip6tables` for `v6`); panics when it is not there.
#[track_caller]
pub fn delete_rule(ns: &Netns, v6: bool, line: &str) {
    assert!(
        filter_rules(ns, v6).iter().any(|l| l == line),
        "no rule {line:?} to delete"
    );
    let mut words = save_words(line);
    assert_eq!(words.first().map(String::as_str), Some("-A"), "{line}");
    words[0] = "-D".to_owned();
    let tool = if v6 { "ip6tables" } else { "iptables" };
    let mut argv = vec![tool, "-w", "-t", "filter"];
    argv.extend(words.iter().map(String::as_str));
    ns.run_ok(&argv);
}

/// Splits an `iptables-save` rule line into arguments: whitespace separates, double quotes
/// group, `\"` and `\\` inside quotes are escapes.
pub fn save_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut escaped, mut started) = (false, false, false);
    for ch in line.chars() {
        if escaped {
            cur.push(ch);
            escaped = false;
        } else if quoted && ch == '\\' {
            escaped = true;
        } else if ch == '"' {
            quoted = !quoted;
            started = true;
        } else if ch.is_whitespace() && !quoted {
            if started {
                words.push(std::mem::take(&mut cur));
                started = false;
            }
        } else {
            cur.push(ch);
            started = true;
        }
    }
    if started {
        words.push(cur);
    }
    words
}

// ---------------------------------------------------------------------------------------------
// nftables

/// `nft list table inet cni_firewall` in `ns` with counters and handles normalised; `None`
/// when the table does not exist.
pub fn nft_table(ns: &Netns) -> Option<String> {
    let mut argv = vec!["nft", "list", "table"];
    argv.extend(NFT_TABLE.split(' '));
    let out = ns.run(&argv);
    if !out.success() {
        assert!(
            out.stderr_str().contains("No such file or directory"),
            "nft list table failed unexpectedly\n{}",
            out.describe()
        );
        return None;
    }
    Some(
        out.stdout_str()
            .lines()
            .map(|l| {
                let l = strip_counter(l);
                let l = l.split(" # handle").next().unwrap_or_default().to_owned();
                format!("{l}\n")
            })
            .collect(),
    )
}

fn strip_counter(line: &str) -> String {
    match line.find("counter packets ") {
        None => line.to_owned(),
        Some(at) => {
            let tail = &line[at + "counter packets ".len()..];
            let rest = tail.splitn(4, ' ').nth(3).unwrap_or_default();
            format!("{}counter {}", &line[..at], rest)
                .trim_end()
                .to_owned()
        }
    }
}

/// Deletes the one rule of our nft table whose listing contains `needle` (by handle); panics
/// unless exactly one rule matches. Returns the rule as listed.
#[track_caller]
pub fn nft_delete_rule(ns: &Netns, needle: &str) -> String {
    let mut argv = vec!["nft", "-a", "list", "table"];
    argv.extend(NFT_TABLE.split(' '));
    let listing = ns.run_ok(&argv);
    let mut chain = String::new();
    let mut found = Vec::new();
    for line in listing.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("chain ") {
            chain = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        } else if t.contains(needle)
            && let Some((rule, handle)) = t.rsplit_once(" # handle ")
        {
            found.push((chain.clone(), rule.to_owned(), handle.trim().to_owned()));
        }
    }
    assert_eq!(
        found.len(),
        1,
        "rules matching {needle:?}: {found:?}\n{listing}"
    );
    let (chain, rule, handle) = found.remove(0);
    let mut del = vec!["nft", "delete", "rule"];
    del.extend(NFT_TABLE.split(' '));
    del.extend([chain.as_str(), "handle", handle.as_str()]);
    ns.run_ok(&del);
    rule
}

/// Our nftables owner comment: `<16 hex of SHA-512(net)>-<16 hex of SHA-512(ifname:id)>`, then
/// ` <policy>: <bridge>` for `isolation`, then `, net: <net>, if: <ifname>, id: <id>`, cut to
/// 128 bytes.
pub fn nft_owner_comment(
    net: &str,
    id: &str,
    ifname: &str,
    isolation: Option<(&str, &str)>,
) -> String {
    use sha2::{Digest, Sha512};
    let hex16 = |text: &str| -> String {
        Sha512::digest(text.as_bytes())[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let mut text = format!("{}-{}", hex16(net), hex16(&format!("{ifname}:{id}")));
    if let Some((policy, bridge)) = isolation {
        text.push_str(&format!(" {policy}: {bridge}"));
    }
    text.push_str(&format!(", net: {net}, if: {ifname}, id: {id}"));
    text.truncate(128);
    text
}

/// The per-address rules of our nft table's `forward` chain as listed (no indentation).
pub fn nft_address_rules(ip: &str, comment: &str) -> Vec<String> {
    let proto = if ip.contains(':') { "ip6" } else { "ip" };
    vec![
        format!("{proto} daddr {ip} ct state established,related accept comment \"{comment}\""),
        format!("{proto} saddr {ip} accept comment \"{comment}\""),
    ]
}

/// Every line of the nft table that carries `comment "<text>"`.
pub fn nft_lines_with_comment(table: &str, text: &str) -> Vec<String> {
    let needle = format!("comment \"{text}\"");
    table
        .lines()
        .filter(|l| l.contains(&needle))
        .map(|l| l.trim().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_comment_is_stripped() {
        let c = owner_comment("n", "c1", "eth0", Some(("same-bridge", "br0")));
        let rules = address_rules("10.0.0.2", Some(&c));
        assert_eq!(
            rules[1],
            "-A CNI-FORWARD -s 10.0.0.2/32 -m comment --comment \
             \"name: \\\"n\\\" id: \\\"c1\\\" if: \\\"eth0\\\" same-bridge: \\\"br0\\\"\" -j ACCEPT"
        );
        let plain = address_rules("10.0.0.2", None);
        assert_eq!(without_owner_comment(&rules[0]), plain[0]);
        assert_eq!(without_owner_comment(&rules[1]), plain[1]);
        assert_eq!(without_owner_comment(&forward_jump()), forward_jump());
    }

    #[test]
    fn policy_comments_compare_across_versions() {
        let v111 =
            stage_return("CNI-ISOLATION-STAGE-1").replace("same-bridge|isolated", "same-bridge");
        assert_eq!(
            any_policy_comment(&v111),
            any_policy_comment(&stage_return("CNI-ISOLATION-STAGE-1"))
        );
    }

    #[test]
    fn save_lines_split_into_arguments() {
        let c = owner_comment("n", "c1", "eth0", None);
        let rule = &address_rules("10.0.0.2", Some(&c))[1];
        assert_eq!(
            save_words(rule),
            [
                "-A",
                "CNI-FORWARD",
                "-s",
                "10.0.0.2/32",
                "-m",
                "comment",
                "--comment",
                c.as_str(),
                "-j",
                "ACCEPT"
            ]
        );
        assert_eq!(
            save_words("-A X -m comment --comment plain"),
            ["-A", "X", "-m", "comment", "--comment", "plain"]
        );
    }

    #[test]
    fn nft_owner_comment_matches_the_plugin() {
        // Observed from our plugin: net "probe", container "c1", eth0, isolated on cnixbr.
        assert_eq!(
            nft_owner_comment("probe", "c1", "eth0", Some(("isolated", "cnixbr"))),
            "01be4e8c20d93b46-f4d01f2ef4b92245 isolated: cnixbr, net: probe, if: eth0, id: c1"
        );
        assert_eq!(
            nft_owner_comment("n", &"c".repeat(200), "eth0", None).len(),
            128
        );
    }

    #[test]
    fn counters_are_stripped() {
        assert_eq!(
            strip_counter("\t\tip saddr 10.0.0.2 counter packets 3 bytes 9 accept comment \"x\""),
            "\t\tip saddr 10.0.0.2 counter accept comment \"x\""
        );
        assert_eq!(strip_counter("a counter packets 0 bytes 0"), "a counter");
    }
}

//! The reference's iptables rules, as argument vectors in the exact form `iptables-save` prints
//! them (so a planned rule compares equal to a saved one).

use std::net::IpAddr;

use crate::iptables::{IpFamily, SavedRule};

/// The table everything lives in.
pub(crate) const FILTER: &str = "filter";
/// The built-in chain the plugin's jumps are inserted into.
pub(crate) const FORWARD: &str = "FORWARD";
/// The plugin's per-container chain.
pub(crate) const PRIV_CHAIN: &str = "CNI-FORWARD";
/// Isolation, stage 1: traffic leaving an isolated bridge for another interface.
pub(crate) const STAGE1: &str = "CNI-ISOLATION-STAGE-1";
/// Isolation, stage 2: … that enters another isolated bridge.
pub(crate) const STAGE2: &str = "CNI-ISOLATION-STAGE-2";

/// Comment of the `FORWARD → CNI-FORWARD` jump.
pub(crate) const FORWARD_COMMENT: &str = "CNI firewall plugin rules";
/// Comment of the `CNI-FORWARD → admin chain` jump.
pub(crate) const ADMIN_COMMENT: &str = "CNI firewall plugin admin overrides";
/// Comment of the shared isolation rules (reference HEAD).
pub(crate) const SHARED_ISOLATION_COMMENT: &str =
    "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)";
const ISOLATION_PREFIX: &str = "CNI firewall plugin rules (ingressPolicy: ";

/// A rule's arguments after `-A CHAIN`.
pub(crate) type Args = Vec<String>;

fn args(list: &[&str]) -> Args {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn commented(mut head: Args, comment: Option<&str>, target: &str) -> Args {
    if let Some(comment) = comment {
        head.extend(args(&["-m", "comment", "--comment", comment]));
    }
    head.extend(args(&["-j", target]));
    head
}

/// The per-policy isolation comment: `… (ingressPolicy: same-bridge)` / `… (ingressPolicy: isolated)`.
pub(crate) fn policy_comment(policy: &str) -> String {
    format!("{ISOLATION_PREFIX}{policy})")
}

/// Whether `text` is a comment the reference (v1.1.1 or HEAD) puts on isolation rules.
fn is_isolation_comment(text: &str) -> bool {
    text.strip_prefix(ISOLATION_PREFIX)
        .and_then(|rest| rest.strip_suffix(')'))
        .is_some_and(|p| matches!(p, "same-bridge" | "isolated" | "same-bridge|isolated"))
}

/// `host/32` or `host/128`.
pub(crate) fn host(ip: IpAddr) -> String {
    format!("{ip}/{}", IpFamily::of(&ip).host_prefix())
}

/// `-m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD` (in `FORWARD`).
pub(crate) fn forward_jump() -> Args {
    commented(Vec::new(), Some(FORWARD_COMMENT), PRIV_CHAIN)
}

/// `-m comment --comment "CNI firewall plugin admin overrides" -j <admin>` (in `CNI-FORWARD`).
pub(crate) fn admin_jump(admin: &str) -> Args {
    commented(Vec::new(), Some(ADMIN_COMMENT), admin)
}

/// `-d ip/32 -m conntrack --ctstate RELATED,ESTABLISHED [-m comment --comment tag] -j ACCEPT`.
pub(crate) fn inbound(ip: IpAddr, tag: Option<&str>) -> Args {
    let head = args(&[
        "-d",
        &host(ip),
        "-m",
        "conntrack",
        "--ctstate",
        "RELATED,ESTABLISHED",
    ]);
    commented(head, tag, "ACCEPT")
}

/// `-s ip/32 [-m comment --comment tag] -j ACCEPT`.
pub(crate) fn outbound(ip: IpAddr, tag: Option<&str>) -> Args {
    commented(args(&["-s", &host(ip)]), tag, "ACCEPT")
}

/// `-m comment --comment C -j CNI-ISOLATION-STAGE-1` (in `FORWARD`).
pub(crate) fn stage1_jump() -> Args {
    commented(Vec::new(), Some(SHARED_ISOLATION_COMMENT), STAGE1)
}

/// `-i br ! -o br -m comment --comment C -j CNI-ISOLATION-STAGE-2` (in stage 1).
pub(crate) fn stage1_bridge(bridge: &str, comment: &str) -> Args {
    commented(
        args(&["-i", bridge, "!", "-o", bridge]),
        Some(comment),
        STAGE2,
    )
}

/// `-i br -o br -m comment --comment C -j DROP` (in stage 1, policy `isolated`).
pub(crate) fn isolated_drop(bridge: &str, comment: &str) -> Args {
    commented(args(&["-i", bridge, "-o", bridge]), Some(comment), "DROP")
}

/// `-o br -m comment --comment C -j DROP` (in stage 2).
pub(crate) fn stage2_drop(bridge: &str) -> Args {
    commented(
        args(&["-o", bridge]),
        Some(SHARED_ISOLATION_COMMENT),
        "DROP",
    )
}

/// `-m comment --comment C -j RETURN` (last in each stage).
pub(crate) fn stage_return() -> Args {
    commented(Vec::new(), Some(SHARED_ISOLATION_COMMENT), "RETURN")
}

/// Equal up to the isolation comment: the reference versions comment the same rule differently
/// (v1.1.1 says `same-bridge` everywhere), and one copy of a rule is enough.
pub(crate) fn same_isolation_rule(have: &[String], want: &[String]) -> bool {
    have.len() == want.len()
        && have.iter().zip(want).enumerate().all(|(i, (h, w))| {
            h == w
                || (i > 0
                    && have[i - 1] == "--comment"
                    && is_isolation_comment(h)
                    && is_isolation_comment(w))
        })
}

/// The address of a rule the Go plugin made for a container (no comment):
/// `-d ip/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT` or `-s ip/32 -j ACCEPT`.
pub(crate) fn untagged_address(rule: &SavedRule) -> Option<IpAddr> {
    let (flag, value) = match rule.args.as_slice() {
        [flag, value, m, conntrack, ctstate, state, j, accept]
            if m == "-m"
                && conntrack == "conntrack"
                && ctstate == "--ctstate"
                && state == "RELATED,ESTABLISHED"
                && j == "-j"
                && accept == "ACCEPT" =>
        {
            (flag, value)
        }
        [flag, value, j, accept] if j == "-j" && accept == "ACCEPT" => (flag, value),
        _ => return None,
    };
    let expected = match rule.args.len() {
        8 => "-d",
        _ => "-s",
    };
    if flag != expected {
        return None;
    }
    let (ip, prefix) = value.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    (prefix == IpFamily::of(&ip).host_prefix().to_string()).then_some(ip)
}

/// `[-s 10.99.0.2/32 -j ACCEPT]`: a rule as the reference's CHECK errors print it (Go's `%v` of
/// the argument list).
pub(crate) fn go_list(rule: &[String]) -> String {
    format!("[{}]", rule.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(args: Args) -> SavedRule {
        SavedRule {
            chain: PRIV_CHAIN.to_owned(),
            args,
        }
    }

    #[test]
    fn reference_forms() {
        let ip: IpAddr = "10.99.0.2".parse().unwrap();
        assert_eq!(
            go_list(&inbound(ip, None)),
            "[-d 10.99.0.2/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT]"
        );
        assert_eq!(go_list(&outbound(ip, None)), "[-s 10.99.0.2/32 -j ACCEPT]");
        let v6: IpAddr = "fd00:99::2".parse().unwrap();
        assert_eq!(host(v6), "fd00:99::2/128");
        assert_eq!(
            go_list(&stage1_bridge("cnix0", &policy_comment("same-bridge"))),
            "[-i cnix0 ! -o cnix0 -m comment --comment CNI firewall plugin rules \
             (ingressPolicy: same-bridge) -j CNI-ISOLATION-STAGE-2]"
        );
    }

    #[test]
    fn isolation_rules_match_across_reference_versions() {
        let v111 = stage2_drop("cnix0")
            .into_iter()
            .map(|a| a.replace("same-bridge|isolated", "same-bridge"))
            .collect::<Args>();
        assert_ne!(v111, stage2_drop("cnix0"));
        assert!(same_isolation_rule(&v111, &stage2_drop("cnix0")));
        assert!(!same_isolation_rule(
            &stage2_drop("cnix1"),
            &stage2_drop("cnix0")
        ));
        let mut user = stage2_drop("cnix0");
        user[4] = "mine".to_owned();
        assert!(!same_isolation_rule(&user, &stage2_drop("cnix0")));
    }

    #[test]
    fn untagged_addresses() {
        let ip: IpAddr = "10.99.0.2".parse().unwrap();
        let v6: IpAddr = "fd00::2".parse().unwrap();
        assert_eq!(untagged_address(&saved(inbound(ip, None))), Some(ip));
        assert_eq!(untagged_address(&saved(outbound(v6, None))), Some(v6));
        assert_eq!(untagged_address(&saved(outbound(ip, Some("x")))), None);
        let mut wrong = outbound(ip, None);
        wrong[0] = "-d".to_owned();
        assert_eq!(untagged_address(&saved(wrong)), None);
        let mut subnet = outbound(ip, None);
        subnet[1] = "10.99.0.0/24".to_owned();
        assert_eq!(untagged_address(&saved(subnet)), None);
    }
}

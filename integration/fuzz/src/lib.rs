//! Fuzz entry points for the CNI plugin suite, one public function per cargo-fuzz target.
//!
//! Each function takes the fuzzer's bytes, drives one family of parsers or validators and
//! asserts the invariants that must hold for *every* input: no panic, errors in the protocol's
//! terms, results that read back in their own version, names that round-trip through rule
//! comments. A failed assertion is a crash for libFuzzer.
//!
//! Only code paths without side effects are driven: `dispatch` runs "probe" plugins that carry
//! each real plugin's config type, supported versions and `CNI_ARGS` keys but call only the
//! plugin's validation functions (never netlink, iptables or the file system), and the real
//! plugins only for `VERSION` and the about text.
//!
//! The same file is compiled into `integration/tests/hostile_fuzz_replay.rs`, which replays
//! every saved crash (`testdata/fuzz-crashes/<target>/*`) with a plain `cargo test`.

use std::collections::HashMap;
use std::net::IpAddr;

use cni_core::args::{COMMON_KEYS, CniArgs};
use cni_core::config::{AttachmentKey, NetConf, NoFields};
use cni_core::result::convert;
use cni_core::skel::{Attachment, Invocation, Outcome, Plugin, dispatch};
use cni_core::version::{CniVersion, ResultShape};
use cni_core::{CniError, CniResult};
use serde_json::{Map, Value};

/// A target's entry point.
pub type Entry = fn(&[u8]);

/// Every target: its name (as in `Cargo.toml` and `testdata/fuzz-crashes/<name>/`) and entry.
pub const TARGETS: &[(&str, Entry)] = &[
    ("netconf", netconf),
    ("dispatch_env", dispatch_env),
    ("result_convert", result_convert),
    ("cni_args", cni_args),
    ("conflist", conflist),
    ("host_local_ipam", host_local_ipam),
    ("tuning_sysctl", tuning_sysctl),
    ("netfilter_names", netfilter_names),
];

// ---------------------------------------------------------------------------------------------
// Probe plugins: each real plugin's config type and validation, no side effects.
// ---------------------------------------------------------------------------------------------

/// The result a probe's ADD returns when the config has no `prevResult`: something every
/// version can express, so the conversion to the config's version is exercised.
fn canned_result(att: &Attachment) -> CniResult {
    let mut r = CniResult::default();
    r.interfaces.push(cni_core::result::types::Interface {
        name: att.ifname.clone(),
        sandbox: "/run/netns/fuzz".into(),
        ..Default::default()
    });
    for addr in ["10.88.0.2/16", "fd00::2/64"] {
        if let Ok(address) = addr.parse() {
            r.ips.push(cni_core::result::types::IpConfig {
                address,
                gateway: None,
                interface: Some(0),
            });
        }
    }
    r
}

/// ADD's result: the previous plugin's, else the canned one.
fn pass_on<C>(inv: &Invocation<C>, att: &Attachment) -> Result<CniResult, CniError> {
    Ok(inv
        .conf
        .prev_result(inv.version)?
        .unwrap_or_else(|| canned_result(att)))
}

macro_rules! probe {
    ($(#[$doc:meta])* $ty:ident, $conf:ty, $name:literal, $real:expr, $validate:expr) => {
        $(#[$doc])*
        struct $ty;

        impl Plugin for $ty {
            type Conf = $conf;
            const NAME: &'static str = $name;
            const CNI_ARGS_KEYS: &'static [&'static str] = &["IP", "MAC"];

            fn supported_versions(&self) -> &'static [CniVersion] {
                Plugin::supported_versions(&$real)
            }

            fn add(&self, inv: &Invocation<$conf>, att: &Attachment) -> Result<CniResult, CniError> {
                let validate: fn(&Invocation<$conf>, Option<&Attachment>) -> Result<(), CniError> =
                    $validate;
                validate(inv, Some(att))?;
                pass_on(inv, att)
            }

            fn del(&self, inv: &Invocation<$conf>, att: &Attachment) -> Result<(), CniError> {
                let validate: fn(&Invocation<$conf>, Option<&Attachment>) -> Result<(), CniError> =
                    $validate;
                // DEL is lenient in every real plugin; what matters is that it does not panic.
                let _ = (validate(inv, None), att);
                Ok(())
            }

            fn check(&self, inv: &Invocation<$conf>, att: &Attachment) -> Result<(), CniError> {
                let validate: fn(&Invocation<$conf>, Option<&Attachment>) -> Result<(), CniError> =
                    $validate;
                validate(inv, Some(att))?;
                inv.conf.prev_result(inv.version).map(drop)
            }

            fn gc(&self, inv: &Invocation<$conf>, valid: &[AttachmentKey]) -> Result<(), CniError> {
                let validate: fn(&Invocation<$conf>, Option<&Attachment>) -> Result<(), CniError> =
                    $validate;
                for key in valid {
                    let _ = cni_core::validate::container_id(&key.container_id);
                    let _ = cni_core::validate::interface_name(&key.ifname);
                }
                validate(inv, None)
            }
        }
    };
}

probe!(
    /// bridge: `bridge::config::load` (VLANs, trunk, bridge name, MAC precedence).
    BridgeProbe,
    bridge::config::BridgeFields,
    "bridge",
    bridge::Bridge,
    |inv, att| bridge::config::load(&inv.conf, att).map(drop)
);

probe!(
    /// macvlan: `macvlan::config::load` (mode, MTU, master name, MAC precedence).
    MacvlanProbe,
    macvlan::config::MacvlanFields,
    "macvlan",
    macvlan::Macvlan,
    |inv, att| macvlan::config::load(&inv.conf, att).map(drop)
);

probe!(
    /// firewall: `firewall::config::load` plus the rule owner built from `prevResult` and its
    /// comments (which must read back to the same owner).
    FirewallProbe,
    firewall::config::FirewallFields,
    "firewall",
    firewall::Firewall,
    firewall_validate
);

probe!(
    /// tuning: `tuning::plugin::validate` (sysctl keys, MAC, numbers), `prevResult` and the
    /// backup file name.
    TuningProbe,
    tuning::config::TuningFields,
    "tuning",
    tuning::Tuning,
    tuning_validate
);

probe!(
    /// portmap: `portmap::config::load` (with a fake runner: no exec), the port mappings and
    /// the container addresses picked from `prevResult`.
    PortmapProbe,
    portmap::config::PortmapFields,
    "portmap",
    portmap::Portmap,
    portmap_validate
);

probe!(
    /// host-local: the `ipam` object (`IpamConfig::try_from` + `normalize`, with
    /// `runtimeConfig.ipRanges`) and the requested addresses.
    HostLocalProbe,
    NoFields,
    "host-local",
    host_local::plugin::HostLocal,
    host_local_validate
);

probe!(
    /// loopback: nothing of its own beyond `prevResult`.
    LoopbackProbe,
    NoFields,
    "loopback",
    loopback::Loopback,
    |inv, _att| inv.conf.prev_result(inv.version).map(drop)
);

fn firewall_validate(
    inv: &Invocation<firewall::config::FirewallFields>,
    att: Option<&Attachment>,
) -> Result<(), CniError> {
    use cni_netfilter::firewall::{ContainerFirewall, NftTag, Owner, OwnerTag};
    let cfg = firewall::config::load(&inv.conf.plugin)?;
    let (Some(att), Some(prev)) = (att, inv.conf.prev_result(inv.version)?) else {
        return Ok(());
    };
    let ips: Vec<IpAddr> = prev.ips.iter().map(|ip| ip.address.ip()).collect();
    let bridge = prev.interfaces.first().map(|i| i.name.as_str());
    let owner = Owner::new(&inv.conf.name, &att.container_id, &att.ifname);
    let Ok(fw) = ContainerFirewall::new(owner, &ips, cfg.policy, bridge, &cfg.admin_chain) else {
        return Err(CniError::invalid_config("names cannot go into a rule"));
    };
    let tag: OwnerTag = fw.tag();
    if let Ok(text) = tag.iptables_comment() {
        assert_eq!(
            OwnerTag::parse_iptables(&text).as_ref(),
            Some(&tag),
            "iptables owner comment {text:?} does not read back"
        );
    }
    let nft = tag.nft_comment();
    let parsed = NftTag::parse(&nft);
    assert_eq!(
        parsed.as_ref().map(|t| t.instance.as_str()),
        Some(tag.owner.instance_hash().as_str()),
        "nft owner comment {nft:?} does not read back"
    );
    Ok(())
}

fn tuning_validate(
    inv: &Invocation<tuning::config::TuningFields>,
    att: Option<&Attachment>,
) -> Result<(), CniError> {
    let Some(att) = att else {
        let _ = tuning::config::data_dir(&inv.conf.plugin);
        return Ok(());
    };
    let cfg = tuning::plugin::validate(inv, att, None)?;
    for entry in &cfg.sysctls {
        assert_sysctl_key_confined(&entry.key);
    }
    tuning::plugin::prev_result(inv)?;
    let file = tuning::backup::BackupFile::new(&cfg.data_dir, &att.container_id, &att.ifname)?;
    assert_eq!(
        file.path().parent(),
        Some(cfg.data_dir.as_path()),
        "backup file {} escapes dataDir",
        file.path().display()
    );
    Ok(())
}

fn portmap_validate(
    inv: &Invocation<portmap::config::PortmapFields>,
    att: Option<&Attachment>,
) -> Result<(), CniError> {
    let runner = cni_netfilter::FakeRunner::new();
    let _cfg = portmap::config::load(&inv.conf.plugin, &runner)?;
    let mappings = portmap::config::mappings(inv.conf.runtime_config.port_mappings.as_ref())?;
    for m in &mappings {
        assert!(m.host_port > 0 && m.container_port > 0, "port 0 accepted");
    }
    if let (Some(att), Some(prev)) = (att, inv.conf.prev_result(inv.version)?) {
        let [v4, v6] = portmap::container_addresses(&prev, &att.ifname);
        assert!(
            v4.is_none_or(|a| a.is_ipv4()),
            "IPv6 address in the v4 slot"
        );
        assert!(
            v6.is_none_or(|a| a.is_ipv6()),
            "IPv4 address in the v6 slot"
        );
    }
    let owner = cni_netfilter::portmap::PortmapOwner::new(
        &inv.conf.name,
        att.map_or("ctr", |a| &a.container_id),
    );
    if owner.validate().is_ok() {
        assert_eq!(owner.dnat_chain().len(), 28);
        let comment = owner.iptables_comment();
        assert!(comment.len() <= 255, "comment longer than iptables allows");
        assert!(!comment.contains(['\n', '\r']), "line break in a comment");
    }
    Ok(())
}

fn host_local_validate(
    inv: &Invocation<NoFields>,
    att: Option<&Attachment>,
) -> Result<(), CniError> {
    use host_local::{IpamConfig, RangeSetConfig, parse_requested_ip, plugin::cni_error};
    let raw = inv
        .conf
        .ipam
        .clone()
        .ok_or_else(|| CniError::invalid_config("IPAM config missing 'ipam' key"))?;
    let ipam = IpamConfig::try_from(raw).map_err(|e| cni_error(&e))?;
    let runtime: Vec<RangeSetConfig> = match &inv.conf.runtime_config.ip_ranges {
        None => Vec::new(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            CniError::invalid_config(format!("invalid runtimeConfig.ipRanges: {e}"))
        })?,
    };
    let cfg = ipam
        .normalize(&runtime, &inv.conf.cni_version)
        .map_err(|e| cni_error(&e))?;
    check_range_sets(&cfg.range_sets);
    if let Some(att) = att {
        if let Some(ip) = att.args.get("IP") {
            parse_requested_ip(ip).map_err(|e| cni_error(&e))?;
        }
        for text in &inv.conf.runtime_config.ips {
            parse_requested_ip(text).map_err(|e| cni_error(&e))?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Shared invariants.
// ---------------------------------------------------------------------------------------------

/// A resolved sysctl key stays under `/proc/sys/net`.
fn assert_sysctl_key_confined(key: &str) {
    assert!(key.starts_with("net/"), "sysctl key {key:?} leaves net/");
    for part in key.split('/') {
        assert!(
            !part.is_empty() && part != "." && part != "..",
            "sysctl key {key:?} has an empty, . or .. component"
        );
    }
    assert!(
        cni_kernel::sysctl::key_path(key).is_ok_and(|p| p.starts_with("/proc/sys/net")),
        "resolved sysctl key {key:?} fails the kernel layer's check"
    );
}

/// Invariants of validated range sets, and of their round-robin order on the first addresses.
fn check_range_sets(sets: &[host_local::RangeSet]) {
    for set in sets {
        for r in set.ranges() {
            let subnet = r.subnet();
            assert!(
                subnet.contains(r.range_start()) && subnet.contains(r.range_end()),
                "range {r} outside its subnet {subnet}"
            );
            assert!(
                ip_value(r.range_start()) <= ip_value(r.range_end()),
                "range {r} ends before it starts"
            );
            assert_eq!(r.is_ipv4(), set.is_ipv4(), "mixed families in {set}");
        }
        let mut seen = Vec::new();
        for (ip, range) in set.round_robin(None).take(64) {
            assert!(
                range.contains(ip),
                "{ip} handed out from {range} which does not hold it"
            );
            assert!(
                ip != range.gateway(),
                "round robin handed out the gateway {ip}"
            );
            assert!(!seen.contains(&ip), "round robin handed out {ip} twice");
            seen.push(ip);
        }
        if set.capacity() <= 64 {
            assert_eq!(
                u128::try_from(seen.len()).unwrap_or(u128::MAX),
                set.capacity(),
                "round robin over {set} does not visit every free address once"
            );
        }
    }
}

fn ip_value(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// What every dispatch outcome must look like.
fn check_outcome(o: &Outcome, command: &str) {
    assert!(
        o.exit_code == 0 || o.exit_code == 1,
        "exit code {}",
        o.exit_code
    );
    if command.is_empty() {
        assert!(o.stdout.is_empty() && o.stderr.starts_with("CNI "), "{o:?}");
        return;
    }
    if o.exit_code == 1 {
        let err: Value = match serde_json::from_str(&o.stdout) {
            Ok(v) => v,
            Err(e) => unreachable!("error output is not JSON ({e}): {:?}", o.stdout),
        };
        let code = err["code"].as_u64().unwrap_or(0);
        assert!(
            matches!(code, 1..=7 | 11 | 50 | 51) || code >= 100,
            "error code {code} in {err}"
        );
        assert!(err["msg"].is_string(), "no msg in {err}");
        let stamp = err["cniVersion"].as_str().unwrap_or("");
        assert!(
            CniVersion::parse(stamp).is_some(),
            "error stamped {stamp:?}"
        );
        return;
    }
    match command {
        "ADD" => {
            let v: Value = match serde_json::from_str(&o.stdout) {
                Ok(v) => v,
                Err(e) => unreachable!("ADD printed no JSON ({e}): {:?}", o.stdout),
            };
            let version = v["cniVersion"].as_str().and_then(CniVersion::parse);
            let Some(version) = version else {
                unreachable!("ADD result without a known cniVersion: {v}")
            };
            // Our own output must read back in its own version and print the same again.
            let back = convert::parse(&v, CniVersion::V0_1_0);
            let again = back.and_then(|r| convert::to_json(&r, version));
            assert_eq!(
                again.ok().as_ref(),
                Some(&v),
                "ADD result does not round-trip"
            );
        }
        "VERSION" => {
            let v: Value = serde_json::from_str(&o.stdout).unwrap_or(Value::Null);
            assert!(
                v["supportedVersions"].is_array(),
                "VERSION printed {:?}",
                o.stdout
            );
        }
        _ => assert!(o.stdout.is_empty(), "{command} printed {:?}", o.stdout),
    }
}

/// One dispatch with an environment map.
fn run<P: Plugin>(plugin: &P, env: &HashMap<&str, String>, stdin: &[u8]) -> Outcome {
    let mut input = stdin;
    dispatch(plugin, &|k| env.get(k).cloned(), &mut input)
}

/// Runs `stdin` through every probe (or only `only`) for `command` and checks the outcome.
fn every_probe(env: &HashMap<&str, String>, stdin: &[u8], only: Option<&str>) {
    let command = env.get("CNI_COMMAND").map_or("", String::as_str);
    let wanted = |name: &str| only.is_none_or(|o| o == name);
    macro_rules! each {
        ($($name:literal => $probe:expr),* $(,)?) => {
            $(if wanted($name) {
                check_outcome(&run(&$probe, env, stdin), command);
            })*
        };
    }
    each!(
        "bridge" => BridgeProbe,
        "macvlan" => MacvlanProbe,
        "firewall" => FirewallProbe,
        "tuning" => TuningProbe,
        "portmap" => PortmapProbe,
        "host-local" => HostLocalProbe,
        "loopback" => LoopbackProbe,
    );
    if command == "VERSION" || command.is_empty() {
        // The real plugins: VERSION and the about text have no side effects.
        macro_rules! real {
            ($($name:literal => $plugin:expr),* $(,)?) => {
                $(if wanted($name) {
                    check_outcome(&run(&$plugin, env, stdin), command);
                })*
            };
        }
        real!(
            "bridge" => bridge::Bridge,
            "macvlan" => macvlan::Macvlan,
            "firewall" => firewall::Firewall,
            "tuning" => tuning::Tuning,
            "portmap" => portmap::Portmap,
            "host-local" => host_local::plugin::HostLocal,
            "loopback" => loopback::Loopback,
        );
    }
}

fn standard_env(command: &str) -> HashMap<&'static str, String> {
    let mut env = HashMap::new();
    env.insert("CNI_COMMAND", command.to_owned());
    env.insert("CNI_CONTAINERID", "fuzzctr".to_owned());
    env.insert("CNI_NETNS", "/run/netns/fuzz".to_owned());
    env.insert("CNI_IFNAME", "eth0".to_owned());
    env.insert("CNI_PATH", "/nonexistent/cni/bin".to_owned());
    env
}

// ---------------------------------------------------------------------------------------------
// Targets.
// ---------------------------------------------------------------------------------------------

/// Network config parsing of every plugin: the bytes are a plugin config (each probe gets it
/// for every verb) or a conflist (each plugin object gets the list's `name` and `cniVersion`,
/// as libcni injects them, and goes to the probe of its `type`).
pub fn netconf(data: &[u8]) {
    let _ = cni_core::config::peek_version(data);
    let _ = NetConf::<Map<String, Value>>::parse(data);
    let mut configs: Vec<(Vec<u8>, Option<String>)> = vec![(data.to_vec(), None)];
    if let Ok(list) = cni_conflist::model::parse_conflist(data, &[]) {
        for plugin in &list.plugins {
            let mut obj = plugin.clone();
            obj.insert("name".into(), Value::String(list.name.clone()));
            obj.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
            let kind = obj.get("type").and_then(Value::as_str).map(str::to_owned);
            configs.push((Value::Object(obj).to_string().into_bytes(), kind));
        }
    }
    for (bytes, kind) in &configs {
        for command in ["ADD", "CHECK", "DEL", "GC", "STATUS", "VERSION"] {
            every_probe(&standard_env(command), bytes, kind.as_deref());
        }
    }
}

/// The whole dispatcher with a fuzzed environment. Input: one header line
/// `plugin|CNI_COMMAND|CNI_CONTAINERID|CNI_IFNAME|CNI_NETNS|CNI_ARGS|CNI_PATH` (a missing
/// field is an unset variable), then the stdin bytes.
pub fn dispatch_env(data: &[u8]) {
    let (header, stdin) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let header = String::from_utf8_lossy(header);
    let mut fields = header.split('|');
    let plugin = fields.next().unwrap_or_default().to_owned();
    let mut env = HashMap::new();
    for key in [
        "CNI_COMMAND",
        "CNI_CONTAINERID",
        "CNI_IFNAME",
        "CNI_NETNS",
        "CNI_ARGS",
        "CNI_PATH",
    ] {
        if let Some(v) = fields.next() {
            env.insert(key, v.to_owned());
        }
    }
    let only = [
        "bridge",
        "macvlan",
        "firewall",
        "tuning",
        "portmap",
        "host-local",
        "loopback",
    ]
    .into_iter()
    .find(|p| *p == plugin);
    let command = env.get("CNI_COMMAND").cloned().unwrap_or_default();
    let known = ["ADD", "CHECK", "DEL", "GC", "STATUS", "VERSION", ""];
    if !known.contains(&command.as_str()) {
        // An unknown verb must be refused with code 4, whatever else is wrong.
        let o = run(&LoopbackProbe, &env, stdin);
        assert_eq!(o.exit_code, 1, "unknown verb {command:?} accepted");
        let v: Value = serde_json::from_str(&o.stdout).unwrap_or(Value::Null);
        assert_eq!(v["code"], 4, "unknown verb {command:?}: {}", o.stdout);
        return;
    }
    every_probe(&env, stdin, only);
}

/// Result conversion: the bytes are a result in some version; it is parsed with every default
/// version and rendered in every version. Whatever we print must read back to the same text.
pub fn result_convert(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for default in CniVersion::ALL {
        let Ok(result) = convert::parse(&value, default) else {
            continue;
        };
        for to in CniVersion::ALL {
            let Ok(wire) = convert::to_json(&result, to) else {
                assert_eq!(
                    to.result_shape(),
                    ResultShape::Legacy,
                    "{to} refused {result:?}"
                );
                assert!(
                    result.ips.is_empty(),
                    "legacy refused a result with addresses"
                );
                continue;
            };
            assert_eq!(wire["cniVersion"], to.as_str());
            let back = match convert::parse(&wire, CniVersion::V0_1_0) {
                Ok(r) => r,
                Err(e) => unreachable!("our {to} output does not parse ({e}): {wire}"),
            };
            let again = convert::to_json(&back, to).ok();
            assert_eq!(again.as_ref(), Some(&wire), "{to} output is not stable");
            if to.result_shape() == ResultShape::Current {
                assert_eq!(back, result, "{to} lost information");
            }
            if to.result_shape() == ResultShape::Versioned
                && let Some(ips) = wire["ips"].as_array()
            {
                for ip in ips {
                    let v6 = ip["address"].as_str().is_some_and(|a| a.contains(':'));
                    assert_eq!(ip["version"], if v6 { "6" } else { "4" }, "{ip}");
                }
            }
        }
    }
}

/// `CNI_ARGS`: strict and lenient parsing agree, keys are refused or accepted as the rules say.
/// Input: first byte picks the plugin's known-key set, the rest is the `CNI_ARGS` value.
pub fn cni_args(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(raw) = std::str::from_utf8(rest) else {
        return;
    };
    let known: &[&str] = match selector % 3 {
        0 => &[],
        1 => &["IP"],
        _ => &["IP", "MAC"],
    };
    let lenient = CniArgs::parse_lenient(raw);
    for (k, v) in lenient.pairs() {
        assert!(
            !k.contains(';') && !v.contains([';', '=']),
            "lenient pair {k:?}={v:?}"
        );
    }
    match CniArgs::parse(raw, known) {
        Ok(strict) => {
            assert_eq!(
                strict.pairs(),
                lenient.pairs(),
                "strict and lenient disagree"
            );
            let ignore = strict
                .get("IgnoreUnknown")
                .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true"));
            for (k, v) in strict.pairs() {
                assert!(!k.contains(['=', ';']) && !v.contains(['=', ';']));
                assert!(
                    ignore || known.contains(&k.as_str()) || COMMON_KEYS.contains(&k.as_str()),
                    "unknown key {k:?} accepted"
                );
                let last = strict.pairs().iter().rev().find(|(key, _)| key == k);
                assert_eq!(strict.get(k), last.map(|(_, v)| v.as_str()));
                let _ = v;
            }
        }
        Err(e) => assert_eq!(e.code, cni_core::ErrorCode::InvalidEnvironment, "{e}"),
    }
}

/// Conflist loading and validation (`cni-conflist validate`'s rules on one file, a directory of
/// two copies, the podman view, inspect).
pub fn conflist(data: &[u8]) {
    use cni_conflist::model::{self, ConfDir, ConfFile, FileKind};
    use cni_conflist::validate::{Options, validate_dir, validate_file};
    let _ = model::parse_json(data);
    let text = String::from_utf8_lossy(data);
    let spans = cni_conflist::span::SpanIndex::build(&text);
    let _ = spans.duplicates();
    let lines = text.lines().count() + 1;
    let dir = std::path::Path::new("/nonexistent/cni-fuzz");
    let mut files = Vec::new();
    for (kind, name) in [(FileKind::List, "a.conflist"), (FileKind::Single, "b.conf")] {
        let list = match kind {
            FileKind::List => model::parse_conflist(data, &[]),
            FileKind::Single => model::parse_single_conf(data),
        };
        files.push(ConfFile {
            path: dir.join(name),
            kind,
            bytes: data.to_vec(),
            list,
        });
    }
    let opts = Options::default();
    for file in &files {
        for f in validate_file(file, &opts) {
            if let Some(line) = f.line {
                assert!(
                    line >= 1 && line <= lines,
                    "finding at line {line} of {lines}: {f}"
                );
            }
            let _ = f.to_string();
        }
        if let Ok(list) = &file.list {
            let _ = list.plugin_types();
            let net = cni_conflist::podman::network_from_list(list);
            let _ = cni_conflist::podman::render(&net);
            let view = cni_conflist::inspect::view(file, list);
            let _ = cni_conflist::inspect::render_text(&view);
        }
    }
    let conf_dir = ConfDir {
        dir: dir.to_owned(),
        files,
    };
    let _ = validate_dir(&conf_dir, &opts);
    let _ = conf_dir.effective();
    let rows = cni_conflist::inspect::rows(&conf_dir);
    let _ = cni_conflist::inspect::render_rows(&rows);
}

/// host-local's `ipam` object: decode, normalise with several versions, range-set invariants,
/// and requested-address parsing of every string in the object.
pub fn host_local_ipam(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let ipam = value.get("ipam").cloned().unwrap_or_else(|| value.clone());
    if let Ok(cfg) = host_local::IpamConfig::try_from(ipam) {
        let runtime: Vec<host_local::RangeSetConfig> = value
            .get("runtimeConfig")
            .and_then(|r| r.get("ipRanges"))
            .and_then(|r| serde_json::from_value(r.clone()).ok())
            .unwrap_or_default();
        for version in ["", "0.2.0", "0.3.1", "1.1.0", "x.y"] {
            if let Ok(norm) = cfg.normalize(&runtime, version) {
                check_range_sets(&norm.range_sets);
                assert!(!norm.range_sets.is_empty());
                for (i, a) in norm.range_sets.iter().enumerate() {
                    for b in &norm.range_sets[i + 1..] {
                        assert!(!a.overlaps(b), "overlapping sets {a} and {b} accepted");
                    }
                }
            }
        }
    }
    let mut strings = Vec::new();
    collect_strings(&value, &mut strings);
    for s in strings {
        if let Ok(ip) = host_local::parse_requested_ip(&s) {
            assert_eq!(ip, ip.to_canonical(), "requested {s:?} not canonical");
        }
        let _ = host_local::validate_network_name(&s);
        let _ = host_local::validate_container_id(&s);
    }
}

fn collect_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        Value::Object(m) => {
            for (k, x) in m {
                out.push(k.clone());
                collect_strings(x, out);
            }
        }
        _ => {}
    }
}

/// tuning's sysctl keys: the bytes are a tuning config; the first line may name the interface
/// (`ifname=<name>`). Every key that validates resolves under `net/`, never with `..`.
pub fn tuning_sysctl(data: &[u8]) {
    let (ifname, conf) = match data.strip_prefix(b"ifname=") {
        Some(rest) => match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (
                String::from_utf8_lossy(&rest[..i]).into_owned(),
                &rest[i + 1..],
            ),
            None => (String::from_utf8_lossy(rest).into_owned(), &[][..]),
        },
        None => ("eth0".to_owned(), data),
    };
    if let Ok(entries) = tuning::sysctls::entries(conf, &ifname) {
        for e in &entries {
            assert_sysctl_key_confined(&e.key);
        }
    }
    if let Ok(v) = serde_json::from_slice::<Value>(conf) {
        let mut keys = Vec::new();
        collect_strings(&v, &mut keys);
        for k in keys {
            if let Ok((_, key)) = tuning::sysctls::resolve_key(&k, &ifname) {
                assert_sysctl_key_confined(&key);
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(conf)
        && let Ok((_, key)) = tuning::sysctls::resolve_key(text, &ifname)
    {
        assert_sysctl_key_confined(&key);
    }
    if let Ok(conf_parsed) = NetConf::<tuning::config::TuningFields>::parse(conf) {
        let _ = tuning::config::load(
            &conf_parsed,
            conf,
            tuning::config::Overrides {
                ifname: &ifname,
                cni_args_mac: None,
            },
        );
    }
}

/// Netfilter names and rule text: comments of validated names read back exactly, rendered
/// iptables arguments tokenize back to themselves, nothing validated can carry a line break
/// into a restore batch, and the parsers of tool output never panic. Input: NUL-separated
/// strings.
pub fn netfilter_names(data: &[u8]) {
    use cni_netfilter::firewall::{IngressPolicy, Isolation, NftTag, Owner, OwnerTag};
    use cni_netfilter::iptables::{SavedTable, render_args};
    use cni_netfilter::names;
    let text = String::from_utf8_lossy(data);
    let parts: Vec<&str> = text.split('\0').collect();
    let at = |i: usize| parts.get(i).copied().unwrap_or("x");

    // Tool output parsers.
    let _ = SavedTable::parse(&text, "filter");
    let _ = SavedTable::parse(&text, "nat");
    let _ = cni_netfilter::nft::NftTable::parse(&text);
    let _ = names::parse_comment(&text);
    let _ = OwnerTag::parse_iptables(&text);
    let _ = NftTag::parse(&text);

    // Reference comments of validated names.
    let (net, cid, ifname, bridge) = (at(0), at(1), at(2), at(3));
    let valid = |s: &str| names::validate_name("name", s).is_ok();
    if valid(net) && valid(cid) {
        assert_eq!(
            names::parse_comment(&names::comment(net, cid)),
            Some((net.to_owned(), cid.to_owned())),
            "reference comment does not read back"
        );
    }
    for prefix in ["", "DN-", "SN-"] {
        assert_eq!(names::chain_name(prefix, net, cid).chars().count(), 28);
    }

    // Owner comments (firewall).
    let owner = Owner::new(net, cid, ifname);
    if owner.validate().is_ok() {
        for isolation in [
            None,
            Some(IngressPolicy::SameBridge),
            Some(IngressPolicy::Isolated),
        ] {
            let tag = OwnerTag {
                owner: owner.clone(),
                isolation: isolation.map(|policy| Isolation {
                    bridge: bridge.to_owned(),
                    policy,
                }),
            };
            let bridge_ok = isolation.is_none()
                || (valid(bridge) && bridge.len() <= 15 && !bridge.contains(['/', ':']));
            if !bridge_ok {
                continue;
            }
            if let Ok(comment) = tag.iptables_comment() {
                assert!(comment.len() <= 255);
                assert_eq!(OwnerTag::parse_iptables(&comment), Some(tag.clone()));
            }
            let nft = tag.nft_comment();
            assert!(nft.len() <= 128);
            let parsed = NftTag::parse(&nft);
            assert_eq!(
                parsed.as_ref().map(|t| t.instance.clone()),
                Some(owner.instance_hash())
            );
        }
    }

    // iptables-restore quoting: whatever we render tokenizes back to the same arguments.
    let args: Vec<String> = parts.iter().map(|s| (*s).to_owned()).collect();
    if !args.iter().any(|a| a.contains(['\n', '\r'])) {
        let line = render_args(&args);
        let batch = format!("*filter\n:CNI-FUZZ - [0:0]\n-A CNI-FUZZ {line}\nCOMMIT\n");
        let saved = SavedTable::parse(&batch, "filter");
        let rules = saved.map(|t| t.rules).unwrap_or_default();
        assert_eq!(rules.len(), 1, "rendered {line:?} is not one rule");
        assert_eq!(
            rules[0].args, args,
            "rendered {line:?} does not tokenize back"
        );
    }

    // Validation gates: nothing that passes can break a line-based batch.
    for s in &parts {
        if names::validate_name("name", s).is_ok()
            || cni_netfilter::portmap::validate_condition(s).is_ok()
            || cni_netfilter::firewall::validate_chain_name(s).is_ok()
        {
            assert!(
                !s.contains(['\n', '\r']),
                "{s:?} validated with a line break"
            );
        }
        if let Ok(q) = cni_netfilter::nft::quote(s) {
            assert!(!q.contains(['\n', '\r']));
            assert_eq!(q.matches('"').count(), 2, "nft string {q:?} breaks out");
        }
        if cni_netfilter::portmap::validate_condition(s).is_ok() {
            assert!(!s.contains([';', '#']), "nft separator in condition {s:?}");
        }
    }
}

//! The CNI face of host-local: decodes the request, gathers requested addresses from every
//! source the reference reads, runs the library verbs and maps errors to CNI codes.

use std::net::IpAddr;

use cni_core::config::{AttachmentKey, NetConf, NoFields};
use cni_core::result::types::IpConfig;
use cni_core::skel::{Attachment, Invocation, Plugin};
use cni_core::{CniError, CniResult, ErrorCode};
use serde::Deserialize;

use crate::{
    ErrorKind, HostLocalError, IpamConfig, NormalizedConfig, RangeSetConfig, parse_requested_ip,
};

/// The plugin.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostLocal;

/// Maps a library error to the CNI error the runtime sees.
pub fn cni_error(e: &HostLocalError) -> CniError {
    let code = match e.kind() {
        ErrorKind::InvalidConfig => ErrorCode::InvalidNetworkConfig,
        ErrorKind::AddressUnavailable => ErrorCode::Plugin(110),
        ErrorKind::RangeExhausted => ErrorCode::Plugin(111),
        ErrorKind::DuplicateAllocation => ErrorCode::Plugin(112),
        ErrorKind::Store => ErrorCode::Plugin(113),
        ErrorKind::NotFound => ErrorCode::Plugin(114),
        ErrorKind::LockTimeout => ErrorCode::TryAgainLater,
    };
    CniError::new(code, e.message())
}

/// `args.cni` as host-local reads it.
#[derive(Debug, Default, Deserialize)]
struct ArgsCni {
    #[serde(default)]
    ips: Vec<String>,
}

/// The normalised IPAM config of a request (`runtimeConfig.ipRanges` prepended, validated).
fn ipam_config(conf: &NetConf<NoFields>) -> Result<NormalizedConfig, CniError> {
    let raw = conf
        .ipam
        .clone()
        .ok_or_else(|| CniError::invalid_config("IPAM config missing 'ipam' key"))?;
    let ipam = IpamConfig::try_from(raw).map_err(|e| cni_error(&e))?;
    let runtime_ranges: Vec<RangeSetConfig> = match &conf.runtime_config.ip_ranges {
        None => Vec::new(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            CniError::invalid_config(format!("invalid runtimeConfig.ipRanges: {e}"))
        })?,
    };
    ipam.normalize(&runtime_ranges, &conf.cni_version)
        .map_err(|e| cni_error(&e))
}

/// Requested addresses, in the reference's order: CNI_ARGS `IP`, `args.cni.ips`, `runtimeConfig.ips`.
fn requested_ips(inv: &Invocation<NoFields>, att: &Attachment) -> Result<Vec<IpAddr>, CniError> {
    let args_cni: ArgsCni = inv.conf.args_cni()?.unwrap_or_default();
    let texts = att
        .args
        .get("IP")
        .into_iter()
        .map(str::to_string)
        .chain(args_cni.ips)
        .chain(inv.conf.runtime_config.ips.iter().cloned());
    texts
        .map(|t| parse_requested_ip(&t).map_err(|e| cni_error(&e)))
        .collect()
}

impl Plugin for HostLocal {
    type Conf = NoFields;
    const NAME: &'static str = "host-local";
    const CNI_ARGS_KEYS: &'static [&'static str] = &["IP"];

    fn add(&self, inv: &Invocation<NoFields>, att: &Attachment) -> Result<CniResult, CniError> {
        let cfg = ipam_config(&inv.conf)?;
        let requested = requested_ips(inv, att)?;
        let dns = cfg.dns().map_err(|e| cni_error(&e))?;
        let allocations = crate::allocate(
            &cfg,
            &inv.conf.name,
            &att.container_id,
            &att.ifname,
            &requested,
        )
        .map_err(|e| cni_error(&e))?;
        Ok(CniResult {
            ips: allocations
                .iter()
                .map(|a| IpConfig {
                    address: a.address,
                    gateway: a.gateway,
                    interface: None,
                })
                .collect(),
            routes: cfg.routes.clone(),
            dns,
            ..CniResult::default()
        })
    }

    fn del(&self, inv: &Invocation<NoFields>, att: &Attachment) -> Result<(), CniError> {
        let cfg = ipam_config(&inv.conf)?;
        crate::release(&cfg, &inv.conf.name, &att.container_id, &att.ifname)
            .map(drop)
            .map_err(|e| cni_error(&e))
    }

    fn check(&self, inv: &Invocation<NoFields>, att: &Attachment) -> Result<(), CniError> {
        let cfg = ipam_config(&inv.conf)?;
        crate::check(&cfg, &inv.conf.name, &att.container_id, &att.ifname)
            .map_err(|e| cni_error(&e))
    }

    fn status(&self, inv: &Invocation<NoFields>) -> Result<(), CniError> {
        let cfg = ipam_config(&inv.conf)?;
        crate::status(&cfg, &inv.conf.name).map_err(|e| match e.kind() {
            ErrorKind::InvalidConfig => cni_error(&e),
            _ => CniError::new(ErrorCode::NotAvailable, e.message()),
        })
    }

    fn gc(&self, inv: &Invocation<NoFields>, valid: &[AttachmentKey]) -> Result<(), CniError> {
        let cfg = ipam_config(&inv.conf)?;
        let valid: Vec<(String, String)> = valid
            .iter()
            .map(|k| (k.container_id.clone(), k.ifname.clone()))
            .collect();
        crate::gc(&cfg, &inv.conf.name, &valid)
            .map(drop)
            .map_err(|e| cni_error(&e))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use cni_core::skel::{Outcome, dispatch};
    use serde_json::{Value, json};

    use super::*;

    fn call(cmd: &str, id: &str, cni_args: &str, conf: &Value) -> Outcome {
        let env: HashMap<&str, String> = [
            ("CNI_COMMAND", cmd.to_string()),
            ("CNI_CONTAINERID", id.to_string()),
            ("CNI_NETNS", "/run/netns/x".to_string()),
            ("CNI_IFNAME", "eth0".to_string()),
            ("CNI_PATH", "/opt/cni/bin".to_string()),
            ("CNI_ARGS", cni_args.to_string()),
        ]
        .into_iter()
        .collect();
        let stdin = conf.to_string();
        dispatch(
            &HostLocal,
            &move |k| env.get(k).cloned(),
            &mut stdin.as_bytes(),
        )
    }

    fn conf(dir: &std::path::Path, extra: Value) -> Value {
        let mut c = json!({"cniVersion": "1.1.0", "name": "net1", "type": "host-local",
            "ipam": {"type": "host-local", "dataDir": dir, "ranges": [[{"subnet": "10.1.0.0/24"}]],
                     "routes": [{"dst": "0.0.0.0/0"}]}});
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(extra.clone());
        }
        c
    }

    fn ips(o: &Outcome) -> Vec<String> {
        assert_eq!(o.exit_code, 0, "{}", o.stdout);
        let v: Value = serde_json::from_str(&o.stdout).unwrap();
        v["ips"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["address"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn requested_addresses_from_every_source() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            ips(&call(
                "ADD",
                "a",
                "IP=10.1.0.50",
                &conf(d.path(), json!({}))
            )),
            ["10.1.0.50/24"]
        );
        let c = conf(d.path(), json!({"args": {"cni": {"ips": ["10.1.0.60"]}}}));
        assert_eq!(ips(&call("ADD", "b", "", &c)), ["10.1.0.60/24"]);
        let c = conf(
            d.path(),
            json!({"runtimeConfig": {"ips": ["10.1.0.70/24"]}}),
        );
        assert_eq!(ips(&call("ADD", "c", "", &c)), ["10.1.0.70/24"]);
        let o = call("ADD", "d", "IP=10.1.0.50", &conf(d.path(), json!({})));
        let e: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(e["code"], 110, "{e}");
    }

    #[test]
    fn runtime_ip_ranges_are_prepended() {
        let d = tempfile::tempdir().unwrap();
        let c = conf(
            d.path(),
            json!({"runtimeConfig": {"ipRanges": [[{"subnet": "10.2.0.0/24"}]]}}),
        );
        assert_eq!(
            ips(&call("ADD", "a", "", &c)),
            ["10.2.0.2/24", "10.1.0.2/24"]
        );
    }

    #[test]
    fn missing_ipam_and_bad_ranges_are_config_errors() {
        let o = call("ADD", "a", "", &json!({"cniVersion": "1.0.0", "name": "n"}));
        let e: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(
            (e["code"].as_u64(), e["msg"].as_str()),
            (Some(7), Some("IPAM config missing 'ipam' key"))
        );
        let d = tempfile::tempdir().unwrap();
        let mut c = conf(d.path(), json!({}));
        c["ipam"]["ranges"] = json!([[{"subnet": "10.1.0.1/24"}]]);
        let e: Value = serde_json::from_str(&call("ADD", "a", "", &c).stdout).unwrap();
        assert_eq!(e["code"], 7);
        assert!(e["msg"].as_str().unwrap().contains("host bits set"), "{e}");
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            0,
            "nothing written"
        );
    }

    #[test]
    fn gc_and_status() {
        let d = tempfile::tempdir().unwrap();
        let c = conf(d.path(), json!({}));
        ips(&call("ADD", "keep", "", &c));
        ips(&call("ADD", "drop", "", &c));
        let mut gc = c.clone();
        gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
        assert_eq!(call("GC", "", "", &gc).exit_code, 0);
        assert!(d.path().join("net1/10.1.0.2").exists());
        assert!(!d.path().join("net1/10.1.0.3").exists());
        assert_eq!(call("STATUS", "", "", &c).exit_code, 0);
        let file = d.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let o = call("STATUS", "", "", &conf(&file, json!({})));
        let e: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(e["code"], 50, "{e}");
    }

    /// Mutated configs and CNI_ARGS never panic and always answer with a result or an error
    /// object; nothing is written outside the temp dir. (A deterministic stand-in for a fuzzer.)
    #[test]
    fn mutated_input_never_panics() {
        let d = tempfile::tempdir().unwrap();
        let base = conf(d.path(), json!({"runtimeConfig": {"ips": ["10.1.0.9"], "ipRanges": [[{"subnet": "10.3.0.0/30"}]]},
            "args": {"cni": {"ips": ["10.1.0.8"]}}}))
        .to_string()
        .into_bytes();
        let alphabet = b"{}[]\",:0123456789./-abcfx\\ \n\0";
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // The ipam object (and so dataDir) is never mutated: a lost dataDir would mean the
        // default /var/lib/cni/networks, outside this test's temp dir.
        let ipam = serde_json::to_string(&conf(d.path(), json!({}))["ipam"]).unwrap();
        let ipam_at = base
            .windows(ipam.len())
            .position(|w| w == ipam.as_bytes())
            .unwrap();
        let (mut ok, mut failed) = (0, 0);
        for round in 0..1500 {
            let mut input = base.clone();
            let (mut lo, mut hi) = (ipam_at, ipam_at + ipam.len());
            for _ in 0..=(next() % 4) {
                let pos = (next() as usize) % input.len();
                if (lo..hi).contains(&pos) {
                    continue;
                }
                let byte = alphabet[(next() as usize) % alphabet.len()];
                let shift_by = |lo: &mut usize, hi: &mut usize, grow: bool| {
                    if pos < *lo {
                        if grow {
                            (*lo += 1, *hi += 1)
                        } else {
                            (*lo -= 1, *hi -= 1)
                        };
                    }
                };
                match next() % 3 {
                    0 => input[pos] = byte,
                    1 => {
                        input.insert(pos, byte);
                        shift_by(&mut lo, &mut hi, true);
                    }
                    _ => {
                        input.remove(pos);
                        shift_by(&mut lo, &mut hi, false);
                    }
                }
            }
            let cmd = ["ADD", "DEL", "CHECK", "GC", "STATUS"][round % 5];
            let args = [
                "",
                "IP=10.1.0.7",
                "IP=garbage",
                "a=b=c",
                "IgnoreUnknown=1;X=y",
            ][(next() % 5) as usize];
            let env: HashMap<&str, String> = [
                ("CNI_COMMAND", cmd.to_string()),
                ("CNI_CONTAINERID", format!("c{round}")),
                ("CNI_NETNS", "/run/netns/x".to_string()),
                ("CNI_IFNAME", "eth0".to_string()),
                ("CNI_PATH", "/opt/cni/bin".to_string()),
                ("CNI_ARGS", args.to_string()),
            ]
            .into_iter()
            .collect();
            let o = dispatch(
                &HostLocal,
                &move |k| env.get(k).cloned(),
                &mut input.as_slice(),
            );
            assert!(o.exit_code == 0 || o.exit_code == 1);
            if o.exit_code == 0 {
                ok += 1
            } else {
                failed += 1
            }
            if !o.stdout.is_empty() {
                let v: Value = serde_json::from_str(&o.stdout).unwrap();
                if o.exit_code == 1 {
                    assert!(v["code"].as_u64().is_some() && v["msg"].is_string(), "{v}");
                }
            }
        }
        assert!(
            ok > 100 && failed > 100,
            "mutations should both pass and fail: {ok} ok, {failed} failed"
        );
        // Whatever the mutations did to names, every reservation on disk is well-formed.
        for net in std::fs::read_dir(d.path()).unwrap() {
            for f in std::fs::read_dir(net.unwrap().path()).unwrap() {
                let f = f.unwrap();
                let name = f.file_name().into_string().unwrap();
                if name.parse::<IpAddr>().is_ok() {
                    let content = std::fs::read_to_string(f.path()).unwrap();
                    let (id, ifname) = content.split_once("\r\n").unwrap();
                    cni_core::validate::container_id(id).unwrap();
                    assert_eq!(ifname, "eth0");
                } else if name == crate::store::owner_cache::CACHE_FILE {
                    let text = std::fs::read_to_string(f.path()).unwrap();
                    assert!(
                        crate::store::owner_cache::OwnerCache::decode(&text).is_some(),
                        "{text}"
                    );
                } else {
                    assert!(
                        name == "lock" || name.starts_with("last_reserved_ip."),
                        "{name}"
                    );
                }
            }
        }
    }
}

//! Conversion between the canonical result and each version's wire shape.
//!
//! Output goes through [`to_json`] in the config's version; input (IPAM results, `prevResult`)
//! through [`parse`] in the result's own version. Every direction the spec's libcni supports is
//! real: 0.1/0.2 `ip4`/`ip6`, 0.3/0.4 `ips[].version`, 1.x.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::types::{CniResult, Dns, Interface, IpConfig, Route};
use crate::error::{CniError, codes};
use crate::version::{CniVersion, ResultShape};

#[derive(Serialize, Deserialize)]
struct VersionedInterface {
    name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    mac: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    sandbox: String,
}

#[derive(Serialize, Deserialize)]
struct VersionedIp {
    #[serde(default)]
    version: String,
    address: IpNetwork,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
}

#[derive(Serialize, Deserialize)]
struct VersionedResult {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<VersionedInterface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ips: Vec<VersionedIp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    dns: Dns,
}

#[derive(Serialize, Deserialize)]
struct LegacyRoute {
    dst: IpNetwork,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gw: Option<IpAddr>,
}

#[derive(Serialize, Deserialize)]
struct LegacyIp {
    ip: IpNetwork,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<LegacyRoute>,
}

#[derive(Serialize, Deserialize)]
struct LegacyResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip4: Option<LegacyIp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip6: Option<LegacyIp>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    dns: Dns,
}

fn conversion_error(msg: impl Into<String>) -> CniError {
    CniError::plugin(codes::RESULT_CONVERSION, msg)
}

fn to_value<S: Serialize>(s: &S) -> Result<Value, CniError> {
    serde_json::to_value(s).map_err(|e| conversion_error(format!("failed to encode result: {e}")))
}

/// Renders `result` in `version`'s shape, with `cniVersion` set.
pub fn to_json(result: &CniResult, version: CniVersion) -> Result<Value, CniError> {
    let mut value = match version.result_shape() {
        ResultShape::Current => to_value(result)?,
        ResultShape::Versioned => to_value(&to_versioned(result))?,
        ResultShape::Legacy => to_value(&to_legacy(result)?)?,
    };
    if let Value::Object(map) = &mut value {
        map.insert("cniVersion".into(), Value::String(version.as_str().into()));
    }
    Ok(value)
}

fn family(addr: &IpNetwork) -> &'static str {
    if addr.is_ipv4() { "4" } else { "6" }
}

fn to_versioned(r: &CniResult) -> VersionedResult {
    VersionedResult {
        interfaces: r
            .interfaces
            .iter()
            .map(|i| VersionedInterface {
                name: i.name.clone(),
                mac: i.mac.clone(),
                sandbox: i.sandbox.clone(),
            })
            .collect(),
        ips: r
            .ips
            .iter()
            .map(|ip| VersionedIp {
                version: family(&ip.address).into(),
                address: ip.address,
                gateway: ip.gateway,
                interface: ip.interface,
            })
            .collect(),
        routes: r.routes.clone(),
        dns: r.dns.clone(),
    }
}

fn to_legacy(r: &CniResult) -> Result<LegacyResult, CniError> {
    let pick = |v4: bool| {
        r.ips
            .iter()
            .find(|ip| ip.address.is_ipv4() == v4)
            .map(|ip| LegacyIp {
                ip: ip.address,
                gateway: ip.gateway,
                routes: r
                    .routes
                    .iter()
                    .filter(|route| route.dst.is_ipv4() == v4)
                    .map(|route| LegacyRoute {
                        dst: route.dst,
                        gw: route.gw,
                    })
                    .collect(),
            })
    };
    let legacy = LegacyResult {
        ip4: pick(true),
        ip6: pick(false),
        dns: r.dns.clone(),
    };
    if legacy.ip4.is_none() && legacy.ip6.is_none() {
        return Err(conversion_error("cannot convert: no valid IP addresses"));
    }
    Ok(legacy)
}

/// Parses a result printed in its own `cniVersion` (or `default_version` when it has none).
pub fn parse(value: &Value, default_version: CniVersion) -> Result<CniResult, CniError> {
    let version = match value.get("cniVersion").and_then(Value::as_str) {
        None | Some("") => default_version,
        Some(v) => CniVersion::parse(v)
            .ok_or_else(|| conversion_error(format!("unsupported CNI result version \"{v}\"")))?,
    };
    let bad =
        |e: serde_json::Error| conversion_error(format!("failed to parse {version} result: {e}"));
    match version.result_shape() {
        ResultShape::Current => serde_json::from_value(value.clone()).map_err(bad),
        ResultShape::Versioned => {
            let v: VersionedResult = serde_json::from_value(value.clone()).map_err(bad)?;
            Ok(from_versioned(v))
        }
        ResultShape::Legacy => {
            let v: LegacyResult = serde_json::from_value(value.clone()).map_err(bad)?;
            Ok(from_legacy(v))
        }
    }
}

fn from_versioned(v: VersionedResult) -> CniResult {
    CniResult {
        interfaces: v
            .interfaces
            .into_iter()
            .map(|i| Interface {
                name: i.name,
                mac: i.mac,
                sandbox: i.sandbox,
                ..Interface::default()
            })
            .collect(),
        ips: v
            .ips
            .into_iter()
            .map(|ip| IpConfig {
                address: ip.address,
                gateway: ip.gateway,
                interface: ip.interface,
            })
            .collect(),
        routes: v.routes,
        dns: v.dns,
    }
}

fn from_legacy(v: LegacyResult) -> CniResult {
    let mut out = CniResult {
        dns: v.dns,
        ..CniResult::default()
    };
    for ip in [v.ip4, v.ip6].into_iter().flatten() {
        out.ips.push(IpConfig {
            address: ip.ip,
            gateway: ip.gateway,
            interface: None,
        });
        out.routes
            .extend(ip.routes.into_iter().map(|r| Route::new(r.dst, r.gw)));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn dual_stack() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface {
                    name: "cni0".into(),
                    mac: "aa:bb:cc:dd:ee:ff".into(),
                    mtu: Some(1500),
                    ..Default::default()
                },
                Interface {
                    name: "eth0".into(),
                    mac: "c2:11:22:33:44:55".into(),
                    sandbox: "/run/netns/c1".into(),
                    pci_id: "0000:00:01.0".into(),
                    ..Default::default()
                },
            ],
            ips: vec![
                IpConfig {
                    address: "10.1.0.5/16".parse().unwrap(),
                    gateway: Some("10.1.0.1".parse().unwrap()),
                    interface: Some(1),
                },
                IpConfig {
                    address: "fd00::5/64".parse().unwrap(),
                    gateway: Some("fd00::1".parse().unwrap()),
                    interface: Some(1),
                },
            ],
            routes: vec![
                Route {
                    priority: 10,
                    table: Some(0),
                    ..Route::new("0.0.0.0/0".parse().unwrap(), None)
                },
                Route::new("::/0".parse().unwrap(), Some("fd00::1".parse().unwrap())),
            ],
            dns: Dns {
                nameservers: vec!["10.1.0.1".into()],
                ..Default::default()
            },
        }
    }

    #[test]
    fn current_shape() {
        let v = to_json(&dual_stack(), CniVersion::V1_1_0).unwrap();
        assert_eq!(v["cniVersion"], "1.1.0");
        assert_eq!(v["interfaces"][0]["mtu"], 1500);
        assert_eq!(v["interfaces"][1]["pciID"], "0000:00:01.0");
        assert_eq!(
            v["ips"][0],
            json!({"address":"10.1.0.5/16","gateway":"10.1.0.1","interface":1})
        );
        assert_eq!(
            v["routes"][0],
            json!({"dst":"0.0.0.0/0","priority":10,"table":0})
        );
        assert_eq!(v["dns"], json!({"nameservers":["10.1.0.1"]}));
    }

    #[test]
    fn versioned_shape() {
        for ver in [CniVersion::V0_3_0, CniVersion::V0_3_1, CniVersion::V0_4_0] {
            let v = to_json(&dual_stack(), ver).unwrap();
            assert_eq!(v["cniVersion"], ver.as_str());
            assert_eq!(v["ips"][0]["version"], "4");
            assert_eq!(v["ips"][1]["version"], "6");
            assert_eq!(v["ips"][1]["interface"], 1);
            assert!(v["interfaces"][0].get("mtu").is_none());
            assert!(v["interfaces"][1].get("pciID").is_none());
            assert_eq!(v["interfaces"][1]["sandbox"], "/run/netns/c1");
            assert_eq!(v["routes"][0]["priority"], 10, "1.1 route extras survive");
        }
    }

    #[test]
    fn legacy_shape() {
        for ver in [CniVersion::V0_1_0, CniVersion::V0_2_0] {
            let v = to_json(&dual_stack(), ver).unwrap();
            assert_eq!(
                v,
                json!({"cniVersion": ver.as_str(),
                    "ip4":{"ip":"10.1.0.5/16","gateway":"10.1.0.1","routes":[{"dst":"0.0.0.0/0"}]},
                    "ip6":{"ip":"fd00::5/64","gateway":"fd00::1","routes":[{"dst":"::/0","gw":"fd00::1"}]},
                    "dns":{"nameservers":["10.1.0.1"]}})
            );
        }
        let e = to_json(&CniResult::default(), CniVersion::V0_2_0).unwrap_err();
        assert_eq!(e.msg, "cannot convert: no valid IP addresses");
    }

    #[test]
    fn legacy_keeps_first_address_per_family_only() {
        let mut r = dual_stack();
        r.ips.insert(
            0,
            IpConfig {
                address: "10.9.0.9/24".parse().unwrap(),
                gateway: None,
                interface: None,
            },
        );
        let v = to_json(&r, CniVersion::V0_2_0).unwrap();
        assert_eq!(v["ip4"]["ip"], "10.9.0.9/24");
        assert!(v["ip4"].get("gateway").is_none());
    }

    /// Every version pair: render in one, parse back, render in another; what the target
    /// version can express is preserved.
    #[test]
    fn every_version_pair_round_trips() {
        for from in CniVersion::ALL {
            for to in CniVersion::ALL {
                let original = dual_stack();
                let wire = to_json(&original, from).unwrap();
                let parsed = parse(&wire, CniVersion::V0_1_0).unwrap();
                let out = to_json(&parsed, to).unwrap();
                let direct = to_json(&lossy(&original, from), to).unwrap();
                assert_eq!(out, direct, "{from} -> {to}");
                assert_eq!(out["cniVersion"], to.as_str());
            }
        }
    }

    /// What survives a trip through `version`.
    fn lossy(r: &CniResult, version: CniVersion) -> CniResult {
        match version.result_shape() {
            ResultShape::Current => r.clone(),
            ResultShape::Versioned => from_versioned(to_versioned(r)),
            ResultShape::Legacy => from_legacy(to_legacy(r).unwrap()),
        }
    }

    #[test]
    fn parse_uses_own_version_then_default() {
        let legacy = json!({"ip4":{"ip":"10.0.0.2/24"}});
        let r = parse(&legacy, CniVersion::V0_2_0).unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.0.0.2/24");
        let tagged = json!({"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.0.0.3/24","interface":0}]});
        let r = parse(&tagged, CniVersion::V1_1_0).unwrap();
        assert_eq!(r.ips[0].interface, Some(0));
        let e = parse(&json!({"cniVersion":"7.0.0"}), CniVersion::V1_0_0).unwrap_err();
        assert_eq!(e.msg, "unsupported CNI result version \"7.0.0\"");
        assert!(
            parse(
                &json!({"cniVersion":"1.0.0","ips":[{"address":"bogus"}]}),
                CniVersion::V1_0_0
            )
            .is_err()
        );
    }
}

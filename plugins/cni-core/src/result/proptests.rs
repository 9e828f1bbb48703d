//! Property tests of version conversion: for any result, rendering in a version and parsing
//! back keeps exactly what that version can express, and the printed text is stable.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use proptest::prelude::*;
use serde_json::Value;

use super::convert::{parse, to_json};
use super::types::{CniResult, Dns, Interface, IpConfig, Route};
use crate::version::{CniVersion, ResultShape};

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
        // IPv4-mapped IPv6 and the unspecified / loopback corner cases.
        any::<[u8; 4]>().prop_map(|b| IpAddr::V6(std::net::Ipv4Addr::from(b).to_ipv6_mapped())),
        Just("::".parse().unwrap_or(IpAddr::from([0u8; 16]))),
    ]
}

fn network() -> impl Strategy<Value = IpNetwork> {
    (ip(), any::<u8>()).prop_map(|(addr, p)| {
        let max = if addr.is_ipv4() { 33 } else { 129 };
        IpNetwork::new(addr, p % max).unwrap_or_else(|_| IpNetwork::from(addr))
    })
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z0-9:./_ -]{1,12}", any::<String>()]
}

fn interface() -> impl Strategy<Value = Interface> {
    (
        text(),
        text(),
        proptest::option::of(any::<u32>()),
        text(),
        text(),
        text(),
    )
        .prop_map(|(name, mac, mtu, sandbox, socket_path, pci_id)| Interface {
            name,
            mac,
            mtu,
            sandbox,
            socket_path,
            pci_id,
        })
}

fn ip_config() -> impl Strategy<Value = IpConfig> {
    (
        network(),
        proptest::option::of(ip()),
        proptest::option::of(0usize..4),
    )
        .prop_map(|(address, gateway, interface)| IpConfig {
            address,
            gateway,
            interface,
        })
}

fn route() -> impl Strategy<Value = Route> {
    (
        network(),
        proptest::option::of(ip()),
        prop_oneof![Just(0u32), any::<u32>()],
        prop_oneof![Just(0u32), any::<u32>()],
        prop_oneof![Just(0u32), any::<u32>()],
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u8>()),
    )
        .prop_map(|(dst, gw, mtu, advmss, priority, table, scope)| Route {
            dst,
            gw,
            mtu,
            advmss,
            priority,
            table,
            scope,
        })
}

fn dns() -> impl Strategy<Value = Dns> {
    (
        proptest::collection::vec(text(), 0..3),
        text(),
        proptest::collection::vec(text(), 0..3),
        proptest::collection::vec(text(), 0..3),
    )
        .prop_map(|(nameservers, domain, search, options)| Dns {
            nameservers,
            domain,
            search,
            options,
        })
}

fn result() -> impl Strategy<Value = CniResult> {
    (
        proptest::collection::vec(interface(), 0..4),
        proptest::collection::vec(ip_config(), 0..5),
        proptest::collection::vec(route(), 0..5),
        dns(),
    )
        .prop_map(|(interfaces, ips, routes, dns)| CniResult {
            interfaces,
            ips,
            routes,
            dns,
        })
}

fn version() -> impl Strategy<Value = CniVersion> {
    proptest::sample::select(CniVersion::ALL.to_vec())
}

/// What a result looks like after a trip through `version`, written out independently of the
/// converter: 1.x keeps everything; 0.3/0.4 drop the 1.1 interface fields; 0.1/0.2 keep the
/// first address of each family (without interface index) and, for families that have an
/// address, the routes' destination and gateway, IPv4 first.
fn expected_after(r: &CniResult, version: CniVersion) -> CniResult {
    match version.result_shape() {
        ResultShape::Current => r.clone(),
        ResultShape::Versioned => CniResult {
            interfaces: r
                .interfaces
                .iter()
                .map(|i| Interface {
                    name: i.name.clone(),
                    mac: i.mac.clone(),
                    sandbox: i.sandbox.clone(),
                    ..Interface::default()
                })
                .collect(),
            ..r.clone()
        },
        ResultShape::Legacy => {
            let mut out = CniResult {
                dns: r.dns.clone(),
                ..CniResult::default()
            };
            for v4 in [true, false] {
                if let Some(first) = r.ips.iter().find(|i| i.address.is_ipv4() == v4) {
                    out.ips.push(IpConfig {
                        address: first.address,
                        gateway: first.gateway,
                        interface: None,
                    });
                    out.routes.extend(
                        r.routes
                            .iter()
                            .filter(|route| route.dst.is_ipv4() == v4)
                            .map(|route| Route::new(route.dst, route.gw)),
                    );
                }
            }
            out
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Render in `v`, parse back (by the stamped version): exactly what `v` can express.
    #[test]
    fn round_trip_keeps_what_the_version_expresses(r in result(), v in version()) {
        match to_json(&r, v) {
            Ok(wire) => {
                prop_assert_eq!(&wire["cniVersion"], &Value::String(v.as_str().into()));
                let back = parse(&wire, CniVersion::V0_1_0);
                prop_assert!(back.is_ok(), "{} output does not parse: {:?}", v, back);
                prop_assert_eq!(back.ok(), Some(expected_after(&r, v)));
            }
            Err(e) => {
                // Only the legacy shape refuses, and only a result without addresses.
                prop_assert_eq!(v.result_shape(), ResultShape::Legacy);
                prop_assert!(r.ips.is_empty(), "{}", e);
            }
        }
    }

    /// Chained conversion (a plugin reading a `prevResult` in `a` and printing in `b`) equals
    /// converting the lossy intermediate directly, and printing is stable: the same text again.
    #[test]
    fn every_version_pair(r in result(), a in version(), b in version()) {
        let Ok(wire_a) = to_json(&r, a) else {
            return Ok(());
        };
        let mid = parse(&wire_a, CniVersion::V1_1_0);
        prop_assert!(mid.is_ok());
        let mid = mid.unwrap_or_default();
        prop_assert_eq!(&mid, &expected_after(&r, a));
        let wire_b = to_json(&mid, b);
        let direct = to_json(&expected_after(&r, a), b);
        prop_assert_eq!(wire_b.as_ref().ok(), direct.as_ref().ok());
        if let Ok(wire_b) = wire_b {
            let again = parse(&wire_b, CniVersion::V0_1_0).and_then(|x| to_json(&x, b));
            prop_assert_eq!(again.ok(), Some(wire_b));
        }
    }

    /// 0.3.x / 0.4.0 tag every address with its family; 1.x never does; 0.1/0.2 have no `ips`.
    #[test]
    fn version_field_matches_family(r in result(), v in version()) {
        let Ok(wire) = to_json(&r, v) else {
            return Ok(());
        };
        let ips = wire.get("ips").and_then(Value::as_array).cloned().unwrap_or_default();
        match v.result_shape() {
            ResultShape::Versioned => {
                prop_assert_eq!(ips.len(), r.ips.len());
                for (w, ip) in ips.iter().zip(&r.ips) {
                    let want = if ip.address.is_ipv4() { "4" } else { "6" };
                    prop_assert_eq!(&w["version"], &Value::String(want.into()));
                }
            }
            ResultShape::Current => {
                prop_assert_eq!(ips.len(), r.ips.len());
                prop_assert!(ips.iter().all(|w| w.get("version").is_none()));
            }
            ResultShape::Legacy => prop_assert!(wire.get("ips").is_none()),
        }
    }

    /// Parsing arbitrary JSON in any default version never panics, and whatever parses renders
    /// in every version it can.
    #[test]
    fn parse_never_panics(s in any::<String>(), v in version()) {
        if let Ok(value) = serde_json::from_str::<Value>(&s)
            && let Ok(r) = parse(&value, v)
        {
            for to in CniVersion::ALL {
                let _ = to_json(&r, to);
            }
        }
    }
}

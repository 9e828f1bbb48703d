//! podman's view of a CNI network (containers/common `libnetwork/cni`, podman ≥ 4): the model
//! `podman network create` builds, the conflist it writes from it (field order, omitted fields,
//! three-space indent, `cniVersion` 0.4.0, `args.podman_labels` / `args.podman_options`), and
//! the reverse mapping `podman network inspect` applies to any conflist.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::goformat;
use crate::model::ConfList;

/// podman's version for the lists it writes.
pub const PODMAN_CNI_VERSION: &str = "0.4.0";
/// podman's `args` key for labels.
pub const LABELS_KEY: &str = "podman_labels";
/// podman's `args` key for options.
pub const OPTIONS_KEY: &str = "podman_options";
/// The dnsname plugin's domain as podman writes it.
pub const DNSNAME_DOMAIN: &str = "dns.podman";

/// IPAM drivers podman knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IpamDriver {
    /// `host-local`.
    HostLocal,
    /// `dhcp`.
    Dhcp,
    /// `none` (L2 only; written as `"type": ""`).
    None,
    /// Any other IPAM plugin (read only).
    Other,
}

impl IpamDriver {
    /// The `ipam.type` written for this driver.
    pub fn plugin_type(self) -> &'static str {
        match self {
            IpamDriver::HostLocal => "host-local",
            IpamDriver::Dhcp => "dhcp",
            IpamDriver::None | IpamDriver::Other => "",
        }
    }
}

/// One subnet of a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subnet {
    /// The subnet (network address and prefix).
    pub subnet: IpNetwork,
    /// The gateway, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// `rangeStart`, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_start: Option<IpAddr>,
    /// `rangeEnd`, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_end: Option<IpAddr>,
}

/// `--opt isolate=…`, as the firewall plugin's `ingressPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolate {
    /// `isolate=true`: `same-bridge`.
    SameBridge,
    /// `isolate=strict`: `isolated`.
    Strict,
}

impl Isolate {
    /// The firewall plugin's `ingressPolicy` value.
    pub fn ingress_policy(self) -> &'static str {
        match self {
            Isolate::SameBridge => "same-bridge",
            Isolate::Strict => "isolated",
        }
    }
}

/// A network as podman models it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Network {
    /// Network name.
    pub name: String,
    /// First plugin's type (`bridge`, `macvlan`, …).
    pub driver: String,
    /// Bridge name (bridge) or master (macvlan); may be empty for macvlan.
    pub network_interface: String,
    /// Subnets, one range set each.
    pub subnets: Vec<Subnet>,
    /// No gateway, no masquerade, no default route.
    pub internal: bool,
    /// A v6 subnet exists.
    pub ipv6_enabled: bool,
    /// The dnsname plugin is in the chain.
    pub dns_enabled: bool,
    /// IPAM driver.
    pub ipam_driver: IpamDriver,
    /// `args.podman_labels`.
    pub labels: BTreeMap<String, String>,
    /// `args.podman_options`.
    pub options: BTreeMap<String, String>,
    /// bridge / macvlan `mtu`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// bridge `vlan`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// macvlan `mode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Isolation through the firewall plugin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolate: Option<Isolate>,
    /// `cniVersion` of the list.
    pub cni_version: String,
    /// host-local `dataDir` (not a podman setting; kept when present).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipam_data_dir: Option<String>,
}

// ---- writing -------------------------------------------------------------------------------

#[derive(Serialize)]
struct RangeOut {
    subnet: String,
    #[serde(rename = "rangeStart", skip_serializing_if = "Option::is_none")]
    range_start: Option<String>,
    #[serde(rename = "rangeEnd", skip_serializing_if = "Option::is_none")]
    range_end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway: Option<String>,
}

#[derive(Serialize)]
struct RouteOut {
    dst: &'static str,
}

#[derive(Serialize)]
struct IpamOut {
    #[serde(rename = "type")]
    plugin_type: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<RouteOut>,
    #[serde(rename = "dataDir", skip_serializing_if = "Option::is_none")]
    data_dir: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ranges: Vec<[RangeOut; 1]>,
}

#[derive(Serialize)]
struct BridgeOut {
    #[serde(rename = "type")]
    plugin_type: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    bridge: String,
    #[serde(rename = "isGateway")]
    is_gateway: bool,
    #[serde(rename = "ipMasq", skip_serializing_if = "is_false")]
    ip_masq: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<u32>,
    #[serde(rename = "hairpinMode")]
    hairpin_mode: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    vlan: Option<u16>,
    ipam: IpamOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    capabilities: Option<BTreeMap<&'static str, bool>>,
}

#[derive(Serialize)]
struct MacvlanOut {
    #[serde(rename = "type")]
    plugin_type: &'static str,
    master: String,
    ipam: IpamOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    capabilities: Option<BTreeMap<&'static str, bool>>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn ipam_out(net: &Network) -> IpamOut {
    let mut routes = Vec::new();
    if !net.internal && net.ipam_driver == IpamDriver::HostLocal {
        for s in &net.subnets {
            let dst = if s.subnet.is_ipv4() {
                "0.0.0.0/0"
            } else {
                "::/0"
            };
            if !routes.iter().any(|r: &RouteOut| r.dst == dst) {
                routes.push(RouteOut { dst });
            }
        }
    }
    let text = |ip: Option<IpAddr>| ip.map(|i| i.to_string());
    IpamOut {
        plugin_type: net.ipam_driver.plugin_type(),
        routes,
        data_dir: net.ipam_data_dir.clone(),
        ranges: net
            .subnets
            .iter()
            .map(|s| {
                [RangeOut {
                    subnet: s.subnet.to_string(),
                    range_start: text(s.range_start),
                    range_end: text(s.range_end),
                    gateway: text(s.gateway),
                }]
            })
            .collect(),
    }
}

fn ips_capability(net: &Network) -> Option<BTreeMap<&'static str, bool>> {
    (net.ipam_driver == IpamDriver::HostLocal).then(|| BTreeMap::from([("ips", true)]))
}

#[derive(Serialize)]
struct CapsOut {
    #[serde(rename = "type")]
    plugin_type: &'static str,
    #[serde(rename = "domainName", skip_serializing_if = "Option::is_none")]
    domain_name: Option<&'static str>,
    capabilities: BTreeMap<&'static str, bool>,
}

#[derive(Serialize)]
struct FirewallOut {
    #[serde(rename = "type")]
    plugin_type: &'static str,
    backend: &'static str,
    #[serde(rename = "ingressPolicy", skip_serializing_if = "Option::is_none")]
    ingress_policy: Option<&'static str>,
}

#[derive(Serialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    plugin_type: &'static str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum PluginOut {
    Bridge(BridgeOut),
    Macvlan(MacvlanOut),
    Caps(CapsOut),
    Firewall(FirewallOut),
    Type(TypeOnly),
}

/// The plugins podman chains after the bridge.
fn chained_after_bridge(net: &Network) -> Vec<PluginOut> {
    let mut out = vec![
        PluginOut::Caps(CapsOut {
            plugin_type: "portmap",
            domain_name: None,
            capabilities: BTreeMap::from([("portMappings", true)]),
        }),
        PluginOut::Firewall(FirewallOut {
            plugin_type: "firewall",
            backend: "",
            ingress_policy: net.isolate.map(Isolate::ingress_policy),
        }),
        PluginOut::Type(TypeOnly {
            plugin_type: "tuning",
        }),
    ];
    if net.dns_enabled {
        out.push(PluginOut::Caps(CapsOut {
            plugin_type: "dnsname",
            domain_name: Some(DNSNAME_DOMAIN),
            capabilities: BTreeMap::from([("aliases", true)]),
        }));
    }
    out
}

/// The bytes podman would write to `<name>.conflist` for `net`.
pub fn render(net: &Network) -> Result<Vec<u8>, serde_json::Error> {
    // Top level is a Go map (keys sorted); plugin objects keep podman's struct field order,
    // which serde_json's sorted `Value` maps would lose, so they are rendered from structs.
    #[derive(Serialize)]
    struct Top<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        args: Option<BTreeMap<&'static str, &'a BTreeMap<String, String>>>,
        #[serde(rename = "cniVersion")]
        cni_version: &'a str,
        name: &'a str,
        plugins: Vec<PluginOut>,
    }
    let mut args = BTreeMap::new();
    if !net.labels.is_empty() {
        args.insert(LABELS_KEY, &net.labels);
    }
    if !net.options.is_empty() {
        args.insert(OPTIONS_KEY, &net.options);
    }
    let plugins = if net.driver == "macvlan" {
        vec![PluginOut::Macvlan(MacvlanOut {
            plugin_type: "macvlan",
            master: net.network_interface.clone(),
            ipam: ipam_out(net),
            mtu: net.mtu,
            mode: net.mode.clone(),
            capabilities: ips_capability(net),
        })]
    } else {
        let bridge = PluginOut::Bridge(BridgeOut {
            plugin_type: "bridge",
            bridge: net.network_interface.clone(),
            is_gateway: !net.internal,
            ip_masq: !net.internal,
            mtu: net.mtu,
            hairpin_mode: true,
            vlan: net.vlan,
            ipam: ipam_out(net),
            capabilities: ips_capability(net),
        });
        std::iter::once(bridge)
            .chain(chained_after_bridge(net))
            .collect()
    };
    let top = Top {
        args: (!args.is_empty()).then_some(args),
        cni_version: &net.cni_version,
        name: &net.name,
        plugins,
    };
    goformat::to_go_indented(&top)
}

// ---- reading -------------------------------------------------------------------------------

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn ip(v: Option<&Value>) -> Option<IpAddr> {
    v.and_then(Value::as_str).and_then(|s| s.parse().ok())
}

/// The first address of a subnet (network + 1), podman's default gateway.
pub fn first_host(net: &IpNetwork) -> Option<IpAddr> {
    match net {
        IpNetwork::V4(n) => n
            .network()
            .to_bits()
            .checked_add(1)
            .map(|b| IpAddr::V4(b.into())),
        IpNetwork::V6(n) => n
            .network()
            .to_bits()
            .checked_add(1)
            .map(|b| IpAddr::V6(b.into())),
    }
}

fn subnets_of(ipam: &Map<String, Value>, internal: bool) -> Vec<Subnet> {
    let mut ranges: Vec<&Value> = Vec::new();
    if ipam.get("subnet").is_some() {
        ranges.push(&Value::Null); // placeholder for the legacy range, read from `ipam` itself
    }
    let sets = ipam.get("ranges").and_then(Value::as_array);
    for set in sets.into_iter().flatten() {
        ranges.extend(set.as_array().into_iter().flatten());
    }
    ranges
        .into_iter()
        .filter_map(|r| {
            let src = if r.is_null() { ipam } else { r.as_object()? };
            let subnet: IpNetwork = src.get("subnet")?.as_str()?.parse().ok()?;
            let subnet = IpNetwork::new(subnet.network(), subnet.prefix()).ok()?;
            let gateway = ip(src.get("gateway"))
                .or_else(|| if internal { None } else { first_host(&subnet) });
            Some(Subnet {
                subnet,
                gateway,
                range_start: ip(src.get("rangeStart")),
                range_end: ip(src.get("rangeEnd")),
            })
        })
        .collect()
}

/// podman's reading of any conflist (`createNetworkFromCNIConfigList`), extended with the legacy
/// `ipam.subnet` form, `isolate` from the firewall's `ingressPolicy`, and `dataDir`.
pub fn network_from_list(list: &ConfList) -> Network {
    let args = list.raw.get("args");
    let labels = string_map(args.and_then(|a| a.get(LABELS_KEY)));
    let options = string_map(args.and_then(|a| a.get(OPTIONS_KEY)));
    let empty = Map::new();
    let first = list.plugins.first().unwrap_or(&empty);
    let driver = first
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let text = |k: &str| {
        first
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let number = |k: &str| first.get(k).and_then(Value::as_u64).filter(|n| *n != 0);
    let (interface, internal) = match driver.as_str() {
        "bridge" => (
            text("bridge"),
            !first
                .get("isGateway")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        ),
        "macvlan" | "ipvlan" => (text("master"), false),
        _ => (String::new(), false),
    };
    let ipam = first
        .get("ipam")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let ipam_driver = match ipam.get("type").and_then(Value::as_str).unwrap_or("") {
        "" => IpamDriver::None,
        "host-local" => IpamDriver::HostLocal,
        "dhcp" => IpamDriver::Dhcp,
        _ => IpamDriver::Other,
    };
    let subnets = subnets_of(ipam, internal);
    let isolate = list
        .plugins
        .iter()
        .filter(|p| p.get("type").and_then(Value::as_str) == Some("firewall"))
        .find_map(|p| match p.get("ingressPolicy").and_then(Value::as_str) {
            Some("same-bridge") => Some(Isolate::SameBridge),
            Some("isolated") => Some(Isolate::Strict),
            _ => None,
        });
    Network {
        name: list.name.clone(),
        driver: driver.clone(),
        network_interface: interface,
        ipv6_enabled: subnets.iter().any(|s| s.subnet.is_ipv6()),
        subnets,
        internal,
        dns_enabled: list.plugin_types().iter().any(|t| t == "dnsname"),
        ipam_driver,
        labels,
        options,
        mtu: number("mtu").and_then(|n| u32::try_from(n).ok()),
        vlan: (driver == "bridge")
            .then(|| number("vlan").and_then(|n| u16::try_from(n).ok()))
            .flatten(),
        mode: Some(text("mode")).filter(|m| !m.is_empty() && driver != "bridge"),
        isolate,
        cni_version: list.cni_version.clone(),
        ipam_data_dir: ipam
            .get("dataDir")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    }
}

/// podman's network ID: hex SHA-256 of the name.
pub fn network_id(name: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(name.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests;

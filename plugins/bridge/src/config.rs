//! The bridge plugin's own config fields, their validation, and the container MAC's precedence.

use cni_core::CniError;
use cni_core::config::NetConf;
use cni_core::skel::Attachment;
use cni_kernel::netlink::parse_mac;
use serde::Deserialize;

/// Default bridge name.
pub const DEFAULT_BRIDGE: &str = "cni0";

/// One `vlanTrunk` entry: a single `id` or a `minID`..=`maxID` range.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct TrunkEntry {
    /// A single VLAN.
    #[serde(default, rename = "id")]
    pub id: Option<i64>,
    /// First VLAN of a range.
    #[serde(default, rename = "minID")]
    pub min_id: Option<i64>,
    /// Last VLAN of a range.
    #[serde(default, rename = "maxID")]
    pub max_id: Option<i64>,
}

/// The bridge plugin's fields, as the reference names them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BridgeFields {
    /// Bridge name (default `cni0`).
    #[serde(default, rename = "bridge")]
    pub bridge: String,
    /// Put the gateway address on the bridge.
    #[serde(default, rename = "isGateway")]
    pub is_gateway: bool,
    /// Implies `isGateway`; add a default route via the gateway.
    #[serde(default, rename = "isDefaultGateway")]
    pub is_default_gateway: bool,
    /// Replace a conflicting bridge address.
    #[serde(default)]
    pub force_address: bool,
    /// Masquerade traffic leaving the network.
    #[serde(default)]
    pub ip_masq: bool,
    /// `iptables` or `nftables`.
    #[serde(default)]
    pub ip_masq_backend: Option<String>,
    /// MTU of the veth pair (and of the bridge when created).
    #[serde(default)]
    pub mtu: u32,
    /// Hairpin on the host port.
    #[serde(default)]
    pub hairpin_mode: bool,
    /// Promiscuous bridge.
    #[serde(default)]
    pub promisc_mode: bool,
    /// Access VLAN.
    #[serde(default)]
    pub vlan: i64,
    /// Trunk VLANs.
    #[serde(default)]
    pub vlan_trunk: Option<Vec<TrunkEntry>>,
    /// Keep VLAN 1 on the port when a VLAN is set.
    #[serde(default)]
    pub preserve_default_vlan: bool,
    /// MAC spoof check (nft bridge filter).
    #[serde(default)]
    pub macspoofchk: bool,
    /// Leave IPv6 DAD on for the container interface.
    #[serde(default)]
    pub enabledad: bool,
    /// Leave the container interface down (L2 only).
    #[serde(default)]
    pub disable_container_interface: bool,
    /// Isolated bridge port.
    #[serde(default)]
    pub port_isolation: bool,
}

/// `args.cni` keys bridge reads.
#[derive(Debug, Default, Deserialize)]
struct ArgsCni {
    #[serde(default)]
    mac: Option<String>,
}

/// The validated config of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    /// Bridge name.
    pub bridge: String,
    /// Gateway on the bridge.
    pub is_gateway: bool,
    /// Default route via the gateway.
    pub is_default_gateway: bool,
    /// Replace conflicting bridge addresses.
    pub force_address: bool,
    /// Masquerade.
    pub ip_masq: bool,
    /// Masquerade backend as written (None = default choice).
    pub ip_masq_backend: Option<String>,
    /// MTU (None = kernel default).
    pub mtu: Option<u32>,
    /// Hairpin.
    pub hairpin: bool,
    /// Promiscuous bridge.
    pub promisc: bool,
    /// Access VLAN (0 = none).
    pub vlan: u16,
    /// Trunk VLAN IDs, sorted and unique.
    pub trunk: Vec<u16>,
    /// Keep VLAN 1.
    pub preserve_default_vlan: bool,
    /// MAC spoof check.
    pub macspoofchk: bool,
    /// DAD on.
    pub enable_dad: bool,
    /// Container interface left down.
    pub disable_container_interface: bool,
    /// Isolated port.
    pub port_isolation: bool,
    /// Container MAC from CNI_ARGS / args.cni / runtimeConfig.
    pub mac: Option<[u8; 6]>,
}

impl BridgeConfig {
    /// True when a VLAN is configured (the bridge then filters VLANs).
    pub fn vlan_filtering(&self) -> bool {
        self.vlan != 0 || !self.trunk.is_empty()
    }
}

fn trunk_ids(entries: &[TrunkEntry]) -> Result<Vec<u16>, CniError> {
    let valid = |v: i64| (1..=4094).contains(&v);
    let mut ids = Vec::new();
    for e in entries {
        match (e.min_id, e.max_id) {
            (Some(min), Some(max)) => {
                if !valid(min) {
                    return Err(CniError::invalid_config("incorrect trunk minID parameter"));
                }
                if !valid(max) {
                    return Err(CniError::invalid_config("incorrect trunk maxID parameter"));
                }
                if max < min {
                    return Err(CniError::invalid_config(
                        "minID is greater than maxID in trunk parameter",
                    ));
                }
                ids.extend((min..=max).filter_map(|v| u16::try_from(v).ok()));
            }
            (None, Some(_)) => {
                return Err(CniError::invalid_config(
                    "minID and maxID should be configured simultaneously, minID is missing",
                ));
            }
            (Some(_), None) => {
                return Err(CniError::invalid_config(
                    "minID and maxID should be configured simultaneously, maxID is missing",
                ));
            }
            (None, None) => {}
        }
        if let Some(id) = e.id {
            if !valid(id) {
                return Err(CniError::invalid_config("incorrect trunk id parameter"));
            }
            ids.extend(u16::try_from(id).ok());
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// The container MAC in the reference precedence: CNI_ARGS `MAC` < `args.cni.mac` < `runtimeConfig.mac`.
fn container_mac(
    conf: &NetConf<BridgeFields>,
    att: Option<&Attachment>,
) -> Result<Option<[u8; 6]>, CniError> {
    let args_cni: ArgsCni = conf.args_cni()?.unwrap_or_default();
    let chosen = conf
        .runtime_config
        .mac
        .clone()
        .or(args_cni.mac)
        .or_else(|| att.and_then(|a| a.args.get("MAC")).map(str::to_string));
    match chosen {
        None => Ok(None),
        Some(text) => parse_mac(&text)
            .map(Some)
            .ok_or_else(|| CniError::invalid_config(format!("invalid MAC address {text:?}"))),
    }
}

/// Validates the config (code 7 with the reference's messages).
pub fn load(
    conf: &NetConf<BridgeFields>,
    att: Option<&Attachment>,
) -> Result<BridgeConfig, CniError> {
    let f = &conf.plugin;
    if !(0..=4094).contains(&f.vlan) {
        return Err(CniError::invalid_config(format!(
            "invalid VLAN ID {} (must be between 0 and 4094)",
            f.vlan
        )));
    }
    let trunk = trunk_ids(f.vlan_trunk.as_deref().unwrap_or_default())?;
    if f.hairpin_mode && f.promisc_mode {
        return Err(CniError::invalid_config(
            "cannot set hairpin mode and promiscuous mode at the same time",
        ));
    }
    if f.disable_container_interface && conf.ipam_type().is_some() {
        return Err(CniError::invalid_config(
            "cannot use IPAM when DisableContainerInterface flag is set",
        ));
    }
    if let Some(b) = f.ip_masq_backend.as_deref()
        && !matches!(b, "iptables" | "nftables")
    {
        return Err(CniError::invalid_config(format!(
            "unknown ipmasq backend \"{b}\""
        )));
    }
    let bridge = if f.bridge.is_empty() {
        DEFAULT_BRIDGE.to_string()
    } else {
        f.bridge.clone()
    };
    cni_core::validate::interface_name(&bridge).map_err(|e| {
        CniError::invalid_config(format!("invalid bridge name {bridge:?}: {}", e.msg))
    })?;
    if f.vlan != 0 && f.is_gateway | f.is_default_gateway {
        let gw_iface = format!("{bridge}.{}", f.vlan);
        cni_core::validate::interface_name(&gw_iface).map_err(|e| {
            CniError::invalid_config(format!(
                "VLAN gateway interface {gw_iface:?} is not a valid name: {}",
                e.msg
            ))
        })?;
    }
    Ok(BridgeConfig {
        bridge,
        is_gateway: f.is_gateway || f.is_default_gateway,
        is_default_gateway: f.is_default_gateway,
        force_address: f.force_address,
        ip_masq: f.ip_masq,
        ip_masq_backend: f.ip_masq_backend.clone(),
        mtu: (f.mtu != 0).then_some(f.mtu),
        hairpin: f.hairpin_mode,
        promisc: f.promisc_mode,
        vlan: u16::try_from(f.vlan).unwrap_or(0),
        trunk,
        preserve_default_vlan: f.preserve_default_vlan,
        macspoofchk: f.macspoofchk,
        enable_dad: f.enabledad,
        disable_container_interface: f.disable_container_interface,
        port_isolation: f.port_isolation,
        mac: container_mac(conf, att)?,
    })
}

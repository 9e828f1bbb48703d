//! The tuning plugin's config fields, the per-attachment overrides and their validation.
//!
//! Precedence (later wins), as the reference applies it: the config's fields, then CNI_ARGS
//! `MAC`, then `runtimeConfig.mac`, then `args.cni` (`mac`, `promisc`, `mtu`, `allmulti`,
//! `txQLen`; `sysctl` merged key by key).

use std::path::PathBuf;

use cni_core::CniError;
use cni_core::config::NetConf;
use cni_kernel::netlink::parse_mac;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::sysctls::{self, SysctlEntry};

/// Where backups live when `dataDir` is not set.
pub const DEFAULT_DATA_DIR: &str = "/run/cni/tuning";

/// The tuning plugin's fields, as the reference names them (`sysctl` is read from the raw
/// config, so that duplicate keys can be seen).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TuningFields {
    /// `dataDir`: where backups live.
    #[serde(default, rename = "dataDir")]
    pub data_dir: Option<String>,
    /// `mac`.
    #[serde(default)]
    pub mac: Option<String>,
    /// `promisc`: set promiscuous mode on (false leaves it alone).
    #[serde(default)]
    pub promisc: Option<bool>,
    /// `mtu` (0 = leave alone).
    #[serde(default)]
    pub mtu: Option<i64>,
    /// `allmulti`: set all-multicast on or off.
    #[serde(default)]
    pub allmulti: Option<bool>,
    /// `txQLen`: transmit queue length.
    #[serde(default, rename = "txQLen")]
    pub tx_qlen: Option<i64>,
}

/// `args.cni` keys tuning reads.
#[derive(Debug, Default, Deserialize)]
struct ArgsCni {
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    promisc: Option<bool>,
    #[serde(default)]
    mtu: Option<i64>,
    #[serde(default)]
    allmulti: Option<bool>,
    #[serde(default, rename = "txQLen")]
    tx_qlen: Option<i64>,
    /// Only type-checked here; [`sysctls::entries`] reads it in order.
    #[serde(default, rename = "sysctl")]
    _sysctl: Option<Map<String, Value>>,
}

/// Link attributes to set; `None` (and `promisc: false`) leave the attribute alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkSettings {
    /// Hardware address.
    pub mac: Option<[u8; 6]>,
    /// Promiscuous mode on.
    pub promisc: bool,
    /// MTU.
    pub mtu: Option<u32>,
    /// All-multicast on or off.
    pub allmulti: Option<bool>,
    /// Transmit queue length.
    pub txqlen: Option<u32>,
}

impl LinkSettings {
    /// True when no attribute is to be set.
    pub fn is_empty(&self) -> bool {
        *self == LinkSettings::default()
    }
}

/// The validated config of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TuningConfig {
    /// Sysctls, in application order.
    pub sysctls: Vec<SysctlEntry>,
    /// Link attributes.
    pub link: LinkSettings,
    /// Where the backup goes.
    pub data_dir: PathBuf,
}

/// The per-attachment inputs besides the config itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides<'a> {
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// CNI_ARGS `MAC`.
    pub cni_args_mac: Option<&'a str>,
}

/// `dataDir`, or [`DEFAULT_DATA_DIR`].
pub fn data_dir(fields: &TuningFields) -> PathBuf {
    PathBuf::from(
        fields
            .data_dir
            .as_deref()
            .filter(|d| !d.is_empty())
            .unwrap_or(DEFAULT_DATA_DIR),
    )
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_string)
}

/// The MAC in the reference precedence: `mac` < CNI_ARGS `MAC` < `runtimeConfig.mac` <
/// `args.cni.mac` (where an empty string cancels the MAC for this attachment).
fn chosen_mac(
    conf: &NetConf<TuningFields>,
    args: &ArgsCni,
    cni_args_mac: Option<&str>,
) -> Option<String> {
    let mut mac = non_empty(conf.plugin.mac.as_deref());
    for later in [cni_args_mac, conf.runtime_config.mac.as_deref()] {
        if let Some(m) = non_empty(later) {
            mac = Some(m);
        }
    }
    match &args.mac {
        Some(m) => non_empty(Some(m)),
        None => mac,
    }
}

fn parse_container_mac(text: &str) -> Result<[u8; 6], CniError> {
    let invalid = |why: &str| {
        CniError::invalid_config(format!("invalid MAC address {text:?}")).with_details(why)
    };
    let mac =
        parse_mac(text).ok_or_else(|| invalid("expected six hex bytes, e.g. c2:11:22:33:44:55"))?;
    if mac[0] & 1 == 1 {
        return Err(invalid(
            "a multicast address cannot be an interface address",
        ));
    }
    if mac == [0; 6] {
        return Err(invalid(
            "the all-zero address cannot be an interface address",
        ));
    }
    Ok(mac)
}

fn bounded_u32(what: &str, v: Option<i64>, zero_unsets: bool) -> Result<Option<u32>, CniError> {
    match v {
        None => Ok(None),
        Some(0) if zero_unsets => Ok(None),
        Some(n) => u32::try_from(n)
            .ok()
            .filter(|&n| i32::try_from(n).is_ok())
            .map(Some)
            .ok_or_else(|| {
                CniError::invalid_config(format!(
                    "invalid {what} {n}: must be between 0 and {}",
                    i32::MAX
                ))
            }),
    }
}

/// Validates the whole request config (code 7): sysctl keys and values, MAC, numbers.
/// `raw` is the config as received (the `sysctl` maps are read from it in order).
pub fn load(
    conf: &NetConf<TuningFields>,
    raw: &[u8],
    over: Overrides<'_>,
) -> Result<TuningConfig, CniError> {
    let args: ArgsCni = conf.args_cni()?.unwrap_or_default();
    let sysctls = sysctls::entries(raw, over.ifname)?;
    let f = &conf.plugin;
    let mac = chosen_mac(conf, &args, over.cni_args_mac)
        .map(|m| parse_container_mac(&m))
        .transpose()?;
    let link = LinkSettings {
        mac,
        promisc: args.promisc.or(f.promisc).unwrap_or(false),
        mtu: bounded_u32("MTU", args.mtu.or(f.mtu), true)?,
        allmulti: args.allmulti.or(f.allmulti),
        txqlen: bounded_u32("txQLen", args.tx_qlen.or(f.tx_qlen), false)?,
    };
    Ok(TuningConfig {
        sysctls,
        link,
        data_dir: data_dir(f),
    })
}

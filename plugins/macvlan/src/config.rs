//! macvlan's config fields, their validation and the MAC precedence.

use cni_core::CniError;
use cni_core::config::NetConf;
use cni_core::skel::Attachment;
use cni_kernel::netlink::{MacvlanMode, parse_mac};
use serde::Deserialize;

/// The fields as the reference names them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MacvlanFields {
    /// Parent interface (default: the interface of the default route).
    #[serde(default)]
    pub master: String,
    /// `bridge` (default), `private`, `vepa`, `passthru`.
    #[serde(default)]
    pub mode: String,
    /// MTU, 0 = inherit the master's.
    #[serde(default)]
    pub mtu: i64,
    /// Container MAC.
    #[serde(default)]
    pub mac: String,
    /// Broadcast queue length.
    #[serde(default)]
    pub bcqueuelen: Option<u32>,
    /// The master lives in the container netns.
    #[serde(default)]
    pub link_in_container: bool,
}

/// The validated config of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacvlanConfig {
    /// Master name; None = find the default-route interface.
    pub master: Option<String>,
    /// Mode.
    pub mode: MacvlanMode,
    /// MTU (None = the master's).
    pub mtu: Option<u32>,
    /// Container MAC.
    pub mac: Option<[u8; 6]>,
    /// Broadcast queue length.
    pub bcqueuelen: Option<u32>,
    /// Master in the container netns.
    pub link_in_container: bool,
}

fn mac(text: &str) -> Result<[u8; 6], CniError> {
    parse_mac(text).ok_or_else(|| CniError::invalid_config(format!("invalid MAC address {text:?}")))
}

/// Validates the config (code 7). MAC precedence: `mac` < CNI_ARGS `MAC` < `runtimeConfig.mac`.
pub fn load(
    conf: &NetConf<MacvlanFields>,
    att: Option<&Attachment>,
) -> Result<MacvlanConfig, CniError> {
    let f = &conf.plugin;
    let mode = if f.mode.is_empty() {
        MacvlanMode::Bridge
    } else {
        MacvlanMode::parse(&f.mode)
            .filter(|m| *m != MacvlanMode::Source)
            .ok_or_else(|| {
                CniError::invalid_config(format!("unknown macvlan mode: {:?}", f.mode))
            })?
    };
    if f.mtu < 0 || f.mtu > i64::from(u32::MAX) {
        return Err(CniError::invalid_config(format!("invalid MTU {}", f.mtu)));
    }
    let master = (!f.master.is_empty()).then(|| f.master.clone());
    if let Some(m) = &master {
        cni_core::validate::interface_name(m)
            .map_err(|e| CniError::invalid_config(format!("invalid master {m:?}: {}", e.msg)))?;
    }
    let chosen = conf
        .runtime_config
        .mac
        .as_deref()
        .or_else(|| att.and_then(|a| a.args.get("MAC")))
        .or((!f.mac.is_empty()).then_some(f.mac.as_str()));
    Ok(MacvlanConfig {
        master,
        mode,
        mtu: u32::try_from(f.mtu).ok().filter(|m| *m != 0),
        mac: chosen.map(mac).transpose()?,
        bcqueuelen: f.bcqueuelen,
        link_in_container: f.link_in_container,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn load_json(v: serde_json::Value) -> Result<MacvlanConfig, CniError> {
        let conf: NetConf<MacvlanFields> = NetConf::parse(v.to_string().as_bytes())?;
        load(&conf, None)
    }

    #[test]
    fn defaults_and_modes() {
        let c = load_json(json!({"name": "n"})).unwrap();
        assert_eq!((c.mode, c.master, c.mtu), (MacvlanMode::Bridge, None, None));
        for m in ["bridge", "private", "vepa", "passthru"] {
            assert_eq!(
                load_json(json!({"name": "n", "mode": m}))
                    .unwrap()
                    .mode
                    .as_str(),
                m
            );
        }
        let e = load_json(json!({"name": "n", "mode": "source"})).unwrap_err();
        assert_eq!(e.msg, "unknown macvlan mode: \"source\"");
        let e = load_json(json!({"name": "n", "mode": "hub"})).unwrap_err();
        assert_eq!(e.msg, "unknown macvlan mode: \"hub\"");
    }

    #[test]
    fn bad_values() {
        assert!(load_json(json!({"name": "n", "mtu": -1})).is_err());
        assert!(load_json(json!({"name": "n", "master": "../eth0"})).is_err());
        assert!(load_json(json!({"name": "n", "mac": "nope"})).is_err());
    }

    #[test]
    fn mac_precedence() {
        let v = json!({"name": "n", "mac": "c2:00:00:00:00:01", "runtimeConfig": {"mac": "c2:00:00:00:00:03"}});
        assert_eq!(load_json(v).unwrap().mac, Some([0xc2, 0, 0, 0, 0, 3]));
        let v = json!({"name": "n", "mac": "c2:00:00:00:00:01"});
        assert_eq!(load_json(v).unwrap().mac, Some([0xc2, 0, 0, 0, 0, 1]));
    }
}

//! The network configuration a plugin receives on stdin, generic over the plugin's own fields.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{CniError, ErrorCode};
use crate::result::{self, CniResult, types::Dns};
use crate::version::CniVersion;

/// A plugin with no fields of its own.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NoFields {}

/// One `(containerID, ifname)` pair from a GC request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub struct AttachmentKey {
    /// Container ID.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Interface name.
    pub ifname: String,
}

/// `runtimeConfig`: capability arguments injected by the runtime.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RuntimeConfig {
    /// `ips` capability: requested addresses, with or without prefix.
    #[serde(default)]
    pub ips: Vec<String>,
    /// `mac` capability.
    #[serde(default)]
    pub mac: Option<String>,
    /// `ipRanges` capability (host-local range sets), kept raw for the IPAM plugin.
    #[serde(default, rename = "ipRanges")]
    pub ip_ranges: Option<Value>,
    /// `portMappings` capability, kept raw for portmap.
    #[serde(default, rename = "portMappings")]
    pub port_mappings: Option<Value>,
    /// Every other capability argument.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The network configuration, with the plugin's own fields in `plugin`. Unknown keys are tolerated.
#[derive(Debug, Clone, Deserialize)]
pub struct NetConf<T> {
    /// `cniVersion` as written (empty when absent: treated as 0.1.0, as libcni does).
    #[serde(default, rename = "cniVersion")]
    pub cni_version: String,
    /// Network name.
    #[serde(default)]
    pub name: String,
    /// Plugin type.
    #[serde(default, rename = "type")]
    pub plugin_type: String,
    /// Capabilities (libcni passes them through; harmless).
    #[serde(default)]
    pub capabilities: BTreeMap<String, bool>,
    /// The `ipam` section, raw: its fields belong to the IPAM plugin.
    #[serde(default)]
    pub ipam: Option<Value>,
    /// Well-known `dns` section.
    #[serde(default)]
    pub dns: Option<Dns>,
    /// Capability arguments from the runtime.
    #[serde(default, rename = "runtimeConfig")]
    pub runtime_config: RuntimeConfig,
    /// `args` (conventions live under `args.cni`).
    #[serde(default)]
    pub args: Option<Value>,
    /// The previous plugin's result, raw until parsed in its own version.
    #[serde(default, rename = "prevResult")]
    pub prev_result: Option<Value>,
    #[serde(default, rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<AttachmentKey>>,
    #[serde(default, rename = "cni.dev/attachments")]
    attachments: Option<Vec<AttachmentKey>>,
    /// The plugin's own fields.
    #[serde(flatten)]
    pub plugin: T,
}

/// Reads only the `cniVersion` of a config, so versions can be checked before the full decode.
pub fn peek_version(raw: &[u8]) -> Result<String, CniError> {
    #[derive(Deserialize)]
    struct Peek {
        #[serde(default, rename = "cniVersion")]
        cni_version: Value,
    }
    let peek: Peek = serde_json::from_slice(raw).map_err(decode_error)?;
    match peek.cni_version {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s),
        other => Err(CniError::new(
            ErrorCode::DecodingFailure,
            format!("error unmarshall network config: cniVersion must be a string, got {other}"),
        )),
    }
}

/// Code 6 with the Go skel's wording.
pub fn decode_error(e: serde_json::Error) -> CniError {
    CniError::new(
        ErrorCode::DecodingFailure,
        format!("error unmarshall network config: {e}"),
    )
}

impl<T: DeserializeOwned> NetConf<T> {
    /// Decodes a whole config (code 6 on failure).
    pub fn parse(raw: &[u8]) -> Result<Self, CniError> {
        serde_json::from_slice(raw).map_err(decode_error)
    }
}

impl<T> NetConf<T> {
    /// The IPAM plugin type; `None` when there is no `ipam` or its `type` is empty (L2 only).
    pub fn ipam_type(&self) -> Option<&str> {
        self.ipam
            .as_ref()?
            .get("type")?
            .as_str()
            .filter(|t| !t.is_empty())
    }

    /// Deserialises `args.cni` into `D`; `None` when absent (code 7 when malformed).
    pub fn args_cni<D: DeserializeOwned>(&self) -> Result<Option<D>, CniError> {
        let Some(cni) = self.args.as_ref().and_then(|a| a.get("cni")) else {
            return Ok(None);
        };
        serde_json::from_value(cni.clone())
            .map(Some)
            .map_err(|e| CniError::invalid_config(format!("invalid args.cni: {e}")))
    }

    /// The still-valid attachments of a GC request (`cni.dev/valid-attachments`, else the older
    /// `cni.dev/attachments`); empty when neither is present.
    pub fn valid_attachments(&self) -> &[AttachmentKey] {
        self.valid_attachments
            .as_deref()
            .or(self.attachments.as_deref())
            .unwrap_or_default()
    }

    /// Parses `prevResult` in its own `cniVersion` (or the config's when it has none).
    pub fn prev_result(&self, config_version: CniVersion) -> Result<Option<CniResult>, CniError> {
        match &self.prev_result {
            None | Some(Value::Null) => Ok(None),
            Some(v) => result::convert::parse(v, config_version).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct BridgeLike {
        #[serde(default)]
        bridge: String,
        #[serde(default, rename = "isGateway")]
        is_gateway: bool,
        #[serde(default)]
        mtu: u32,
    }

    #[test]
    fn generic_fields_and_unknown_keys() {
        let raw =
            br#"{"cniVersion":"1.1.0","name":"n","type":"bridge","bridge":"cni0","isGateway":true,
            "mtu":1450,"whatever":{"x":1},"capabilities":{"mac":true,"portMappings":false},
            "ipam":{"type":"host-local","subnet":"10.1.0.0/16"},
            "runtimeConfig":{"mac":"c2:11:22:33:44:55","ips":["10.1.0.9/16"],"bandwidth":{"x":1}},
            "args":{"cni":{"ips":["10.1.0.7"]}}}"#;
        let c: NetConf<BridgeLike> = NetConf::parse(raw).unwrap();
        assert_eq!(c.name, "n");
        assert_eq!(c.plugin.bridge, "cni0");
        assert!(c.plugin.is_gateway);
        assert_eq!(c.plugin.mtu, 1450);
        assert_eq!(c.ipam_type(), Some("host-local"));
        assert_eq!(c.runtime_config.mac.as_deref(), Some("c2:11:22:33:44:55"));
        assert!(c.runtime_config.other.contains_key("bandwidth"));
        #[derive(Deserialize)]
        struct Ips {
            ips: Vec<String>,
        }
        let ips: Ips = c.args_cni().unwrap().unwrap();
        assert_eq!(ips.ips, ["10.1.0.7"]);
    }

    #[test]
    fn empty_ipam_type_is_l2() {
        let c: NetConf<NoFields> = NetConf::parse(br#"{"name":"n","ipam":{}}"#).unwrap();
        assert_eq!(c.ipam_type(), None);
        assert_eq!(c.cni_version, "");
    }

    #[test]
    fn gc_keys_prefer_valid_attachments() {
        let both =
            br#"{"name":"n","cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}],
            "cni.dev/attachments":[{"containerID":"b","ifname":"eth0"}]}"#;
        let c: NetConf<NoFields> = NetConf::parse(both).unwrap();
        assert_eq!(c.valid_attachments()[0].container_id, "a");
        let old = br#"{"name":"n","cni.dev/attachments":[{"containerID":"b","ifname":"eth1"}]}"#;
        let c: NetConf<NoFields> = NetConf::parse(old).unwrap();
        assert_eq!(c.valid_attachments()[0].ifname, "eth1");
        let none: NetConf<NoFields> = NetConf::parse(br#"{"name":"n"}"#).unwrap();
        assert!(none.valid_attachments().is_empty());
    }

    #[test]
    fn decode_failures_are_code_6() {
        for raw in [&b"{"[..], b"[]", br#"{"name":5}"#, br#"{"cniVersion":1}"#] {
            let e = peek_version(raw)
                .and_then(|_| NetConf::<NoFields>::parse(raw).map(|_| ()))
                .unwrap_err();
            assert_eq!(
                e.code,
                ErrorCode::DecodingFailure,
                "{}",
                String::from_utf8_lossy(raw)
            );
            assert!(e.msg.starts_with("error unmarshall network config: "));
        }
    }
}

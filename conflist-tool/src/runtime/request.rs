//! The attachment parameters of an `exec` call, read the way cnitool reads them: `CNI_ARGS`
//! (`K=V;…`), `CAP_ARGS` (a JSON object), `CNI_CONTAINERID` or cnitool's derived ID.

use std::path::Path;

use serde_json::{Map, Value};

use super::{RuntimeConf, RuntimeError, netns};

/// cnitool's `CNI_ARGS` parsing: `;`-separated `K=V` pairs, neither side empty.
pub fn parse_cni_args(raw: &str) -> Result<Vec<[String; 2]>, RuntimeError> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    raw.split(';')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok([k.to_owned(), v.to_owned()]),
            _ => Err(RuntimeError::Invalid(format!(
                "invalid CNI_ARGS pair {pair:?}"
            ))),
        })
        .collect()
}

/// `CAP_ARGS`: a JSON object of capability arguments.
pub fn parse_cap_args(raw: &str) -> Result<Map<String, Value>, RuntimeError> {
    if raw.is_empty() {
        return Ok(Map::new());
    }
    serde_json::from_str(raw).map_err(|e| RuntimeError::Invalid(format!("CAP_ARGS: {e}")))
}

/// The runtime parameters for an attachment in `netns_path` (made absolute, as cnitool does).
pub fn runtime_conf(
    netns_path: &Path,
    ifname: &str,
    container_id: Option<&str>,
    cni_args: &str,
    cap_args: &str,
) -> Result<RuntimeConf, RuntimeError> {
    let abs = netns::absolute(netns_path);
    let container_id = match container_id.filter(|c| !c.is_empty()) {
        Some(c) => c.to_owned(),
        None => netns::cnitool_container_id(&abs),
    };
    Ok(RuntimeConf {
        container_id,
        netns: abs.display().to_string(),
        ifname: ifname.to_owned(),
        args: parse_cni_args(cni_args)?,
        capability_args: parse_cap_args(cap_args)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cni_args_like_cnitool() {
        let args = parse_cni_args("IgnoreUnknown=1;K8S_POD_NAME=a=b").unwrap();
        assert_eq!(args[1], ["K8S_POD_NAME".to_owned(), "a=b".to_owned()]);
        for bad in ["A", "=1", "A=", "A=1;;B=2"] {
            let e = parse_cni_args(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid CNI_ARGS pair"), "{bad}: {e}");
        }
        assert!(parse_cni_args("").unwrap().is_empty());
    }

    #[test]
    fn derived_container_id() {
        let rt = runtime_conf(Path::new("/run/netns/refA"), "eth0", None, "", "").unwrap();
        assert_eq!(rt.container_id, "cnitool-f09c7c96cd7b16d5da00");
        let rt = runtime_conf(
            Path::new("/run/netns/refA"),
            "eth1",
            Some("ctr1"),
            "",
            r#"{"mac":"c2:00:00:00:00:01"}"#,
        )
        .unwrap();
        assert_eq!(
            (rt.container_id.as_str(), rt.ifname.as_str()),
            ("ctr1", "eth1")
        );
        assert!(rt.capability_args.contains_key("mac"));
        assert!(parse_cap_args("[1]").is_err());
    }
}

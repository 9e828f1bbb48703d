//! `CNI_ARGS` parsing compatible with Go's `types.LoadArgs`.
//!
//! The string is `K=V` pairs joined by `;`. Keys are matched case-sensitively against the keys the
//! plugin knows; unknown keys are an error unless `IgnoreUnknown` is true. DEL never fails on
//! `CNI_ARGS` (see [`CniArgs::parse_lenient`]).

use crate::error::CniError;

/// Keys every plugin accepts (Go's `types.CommonArgs` plus what kubelet and podman always send).
pub const COMMON_KEYS: &[&str] = &[
    "IgnoreUnknown",
    "K8S_POD_NAME",
    "K8S_POD_NAMESPACE",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
];

/// Parsed `CNI_ARGS`, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

impl CniArgs {
    /// Parses `raw`, refusing malformed pairs and (unless `IgnoreUnknown`) keys not in `known`
    /// or [`COMMON_KEYS`]. Errors are code 4 with Go's messages.
    pub fn parse(raw: &str, known: &[&str]) -> Result<CniArgs, CniError> {
        let args = Self::split(raw)?;
        let ignore_unknown = match args.get("IgnoreUnknown") {
            None => false,
            Some(v) => parse_bool(v).ok_or_else(|| {
                CniError::invalid_env(format!(
                    "ARGS: error parsing value of pair \"IgnoreUnknown={v}\": invalid boolean"
                ))
            })?,
        };
        if !ignore_unknown {
            let unknown: Vec<String> = args
                .pairs
                .iter()
                .filter(|(k, _)| !known.contains(&k.as_str()) && !COMMON_KEYS.contains(&k.as_str()))
                .map(|(k, v)| format!("\"{k}={v}\""))
                .collect();
            if !unknown.is_empty() {
                return Err(CniError::invalid_env(format!(
                    "ARGS: unknown args [{}]",
                    unknown.join(" ")
                )));
            }
        }
        Ok(args)
    }

    /// Parses what can be parsed and drops the rest; used on DEL, which must not fail on args.
    pub fn parse_lenient(raw: &str) -> CniArgs {
        let pairs = raw
            .split(';')
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                (!v.contains('=')).then(|| (k.to_string(), v.to_string()))
            })
            .collect();
        CniArgs { pairs }
    }

    fn split(raw: &str) -> Result<CniArgs, CniError> {
        if raw.is_empty() {
            return Ok(CniArgs::default());
        }
        let mut pairs = Vec::new();
        for pair in raw.split(';') {
            let parts: Vec<&str> = pair.split('=').collect();
            match parts.as_slice() {
                [k, v] => pairs.push((k.to_string(), v.to_string())),
                _ => {
                    return Err(CniError::invalid_env(format!(
                        "ARGS: invalid pair \"{pair}\""
                    )));
                }
            }
        }
        Ok(CniArgs { pairs })
    }

    /// The last value given for `key` (keys are case-sensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All pairs in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn parses_known_keys() {
        let a = CniArgs::parse("IP=10.0.0.5;MAC=c2:11:22:33:44:55", &["IP", "MAC"]).unwrap();
        assert_eq!(a.get("IP"), Some("10.0.0.5"));
        assert_eq!(a.get("MAC"), Some("c2:11:22:33:44:55"));
        assert_eq!(a.get("ip"), None);
        assert_eq!(CniArgs::parse("", &[]).unwrap(), CniArgs::default());
    }

    #[test]
    fn table_of_failures() {
        let cases = [
            ("FOO=bar", r#"ARGS: unknown args ["FOO=bar"]"#),
            ("ip=10.0.0.1", r#"ARGS: unknown args ["ip=10.0.0.1"]"#),
            ("novalue", r#"ARGS: invalid pair "novalue""#),
            ("a=b=c", r#"ARGS: invalid pair "a=b=c""#),
            ("IP=1.2.3.4;", r#"ARGS: invalid pair """#),
            (
                "IgnoreUnknown=maybe",
                r#"ARGS: error parsing value of pair "IgnoreUnknown=maybe": invalid boolean"#,
            ),
        ];
        for (raw, msg) in cases {
            let e = CniArgs::parse(raw, &["IP"]).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidEnvironment, "{raw}");
            assert_eq!(e.msg, msg, "{raw}");
        }
    }

    #[test]
    fn ignore_unknown_variants() {
        for v in ["1", "true", "True", "TRUE"] {
            let raw = format!("IgnoreUnknown={v};FOO=bar;IP=10.99.0.50");
            let a = CniArgs::parse(&raw, &["IP"]).unwrap();
            assert_eq!(a.get("IP"), Some("10.99.0.50"));
        }
        assert!(CniArgs::parse("IgnoreUnknown=0;FOO=bar", &[]).is_err());
        assert!(CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAME=x", &[]).is_ok());
        assert!(CniArgs::parse("K8S_POD_NAME=x;K8S_POD_NAMESPACE=y", &[]).is_ok());
    }

    #[test]
    fn lenient_never_fails() {
        let a = CniArgs::parse_lenient("novalue;IP=1.2.3.4;x=y=z;;FOO=bar");
        assert_eq!(a.get("IP"), Some("1.2.3.4"));
        assert_eq!(a.get("FOO"), Some("bar"));
        assert_eq!(a.pairs().len(), 2);
    }
}

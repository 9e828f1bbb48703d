//! The `CNI_*` environment: which verb, for which attachment, and where plugins live.

use std::path::PathBuf;

use crate::error::{CniError, ErrorCode};
use crate::validate;

/// The verb in `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// ADD
    Add,
    /// DEL
    Del,
    /// CHECK
    Check,
    /// GC
    Gc,
    /// STATUS
    Status,
    /// VERSION
    Version,
}

impl Command {
    /// Parses a `CNI_COMMAND` value (exact, upper case).
    pub fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            "VERSION" => Command::Version,
            _ => return None,
        })
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Gc => "GC",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
        }
    }

    /// Environment variables this verb cannot do without.
    fn required(self) -> &'static [&'static str] {
        match self {
            Command::Add | Command::Check => &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
            Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME"],
            Command::Gc => &["CNI_PATH"],
            Command::Status | Command::Version => &[],
        }
    }
}

/// The validated environment of one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// The verb.
    pub command: Command,
    /// `CNI_CONTAINERID` (validated); empty for GC, STATUS and VERSION.
    pub container_id: String,
    /// `CNI_NETNS`, when given and non-empty.
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME` (validated); empty for GC, STATUS and VERSION.
    pub ifname: String,
    /// `CNI_ARGS` as given (parsed later, with the plugin's known keys).
    pub args: String,
    /// `CNI_PATH`, split on `:`, empty entries dropped.
    pub cni_path: Vec<PathBuf>,
}

/// What the environment asks for before any config is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `CNI_COMMAND` is unset or empty: print the plugin's about text.
    About,
    /// A verb to run.
    Verb(Environment),
}

impl Environment {
    /// Reads and validates the environment through `get` (for example `std::env::var`).
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Request, CniError> {
        let value = |k: &str| get(k).filter(|v| !v.is_empty());
        let Some(raw_command) = value("CNI_COMMAND") else {
            return Ok(Request::About);
        };
        let command = Command::parse(&raw_command).ok_or_else(|| {
            CniError::new(
                ErrorCode::InvalidEnvironment,
                format!("unknown CNI_COMMAND: {raw_command}"),
            )
        })?;
        let missing: Vec<&str> = command
            .required()
            .iter()
            .copied()
            .filter(|k| value(k).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(CniError::invalid_env(format!(
                "required env variables [{}] missing",
                missing.join(",")
            )));
        }
        let needs_attachment = matches!(command, Command::Add | Command::Del | Command::Check);
        let (container_id, ifname) = if needs_attachment {
            let id = value("CNI_CONTAINERID").unwrap_or_default();
            validate::container_id(&id)?;
            let ifname = value("CNI_IFNAME").unwrap_or_default();
            validate::interface_name(&ifname)?;
            (id, ifname)
        } else {
            (String::new(), String::new())
        };
        Ok(Request::Verb(Environment {
            command,
            container_id,
            netns: value("CNI_NETNS").map(PathBuf::from),
            ifname,
            args: value("CNI_ARGS").unwrap_or_default(),
            cni_path: split_path(&value("CNI_PATH").unwrap_or_default()),
        }))
    }
}

/// Splits a `CNI_PATH` value on `:`, dropping empty entries.
pub fn split_path(raw: &str) -> Vec<PathBuf> {
    raw.split(':')
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<Request, CniError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Environment::from_lookup(&move |k| map.get(k).cloned())
    }

    const FULL: &[(&str, &str)] = &[
        ("CNI_CONTAINERID", "ctr1"),
        ("CNI_NETNS", "/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin::/usr/lib/cni"),
        ("CNI_ARGS", "IP=10.0.0.2"),
    ];

    fn with(cmd: &str, drop: &[&str]) -> Result<Request, CniError> {
        let mut v: Vec<(&str, &str)> = FULL
            .iter()
            .copied()
            .filter(|(k, _)| !drop.contains(k))
            .collect();
        v.push(("CNI_COMMAND", cmd));
        env(&v)
    }

    #[test]
    fn no_command_is_about() {
        assert_eq!(env(&[]).unwrap(), Request::About);
        assert_eq!(env(&[("CNI_COMMAND", "")]).unwrap(), Request::About);
    }

    #[test]
    fn full_add() {
        let Request::Verb(e) = with("ADD", &[]).unwrap() else {
            panic!()
        };
        assert_eq!(e.command, Command::Add);
        assert_eq!(e.container_id, "ctr1");
        assert_eq!(e.netns, Some(PathBuf::from("/run/netns/x")));
        assert_eq!(
            e.cni_path,
            vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
        );
        assert_eq!(e.args, "IP=10.0.0.2");
    }

    #[test]
    fn required_per_verb() {
        let cases: &[(&str, &[&str], Option<&str>)] = &[
            (
                "ADD",
                &["CNI_NETNS"],
                Some("required env variables [CNI_NETNS] missing"),
            ),
            (
                "ADD",
                &["CNI_CONTAINERID", "CNI_IFNAME"],
                Some("required env variables [CNI_CONTAINERID,CNI_IFNAME] missing"),
            ),
            (
                "CHECK",
                &["CNI_NETNS"],
                Some("required env variables [CNI_NETNS] missing"),
            ),
            ("DEL", &["CNI_NETNS", "CNI_PATH", "CNI_ARGS"], None),
            (
                "DEL",
                &["CNI_IFNAME"],
                Some("required env variables [CNI_IFNAME] missing"),
            ),
            ("GC", &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"], None),
            (
                "GC",
                &["CNI_PATH"],
                Some("required env variables [CNI_PATH] missing"),
            ),
            (
                "STATUS",
                &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
                None,
            ),
            (
                "VERSION",
                &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
                None,
            ),
        ];
        for (cmd, drop, want) in cases {
            match (with(cmd, drop), want) {
                (Ok(_), None) => {}
                (Err(e), Some(msg)) => {
                    assert_eq!(e.code, ErrorCode::InvalidEnvironment);
                    assert_eq!(&e.msg, msg);
                }
                (got, want) => panic!("{cmd} without {drop:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn unknown_command_and_bad_names() {
        let e = with("FOO", &[]).unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (ErrorCode::InvalidEnvironment, "unknown CNI_COMMAND: FOO")
        );
        let e = with("add", &[]).unwrap_err();
        assert_eq!(e.msg, "unknown CNI_COMMAND: add");
        let e = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "-x"),
            ("CNI_NETNS", "/n"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap_err();
        assert_eq!(e.msg, "invalid characters in containerID");
        let e = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "x"),
            ("CNI_IFNAME", "eth0:1"),
        ])
        .unwrap_err();
        assert_eq!(
            e.msg,
            "interface name contains / or : or whitespace characters"
        );
    }
}

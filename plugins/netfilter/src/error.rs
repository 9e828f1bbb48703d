//! Errors of the netfilter layer.

use std::error::Error as _;

/// A failed netfilter operation.
#[derive(Debug, thiserror::Error)]
pub enum NetfilterError {
    /// `ipMasqBackend` named something other than `iptables` or `nftables`.
    #[error("unknown ipmasq backend {}", crate::names::go_quote(.name))]
    UnknownBackend {
        /// The name given.
        name: String,
    },
    /// A name that would end up inside a rule contains characters we refuse to emit.
    #[error("invalid {what} {value:?} for a netfilter rule: {reason}")]
    InvalidName {
        /// What the name is (`network name`, `container ID`, `interface name`).
        what: &'static str,
        /// The rejected value.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A program (`iptables`, `nft`, …) is not installed where we look for it.
    #[error("{program} not found in PATH")]
    ProgramNotFound {
        /// The program name.
        program: String,
    },
    /// The program exists but could not be started or waited for.
    #[error("failed to run {program}")]
    Spawn {
        /// The program name.
        program: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The program ran and exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        /// Program and arguments.
        command: String,
        /// Exit status, or `killed by signal`.
        status: String,
        /// Its trimmed standard error.
        stderr: String,
    },
    /// An iptables tool gave up waiting for the xtables lock (`-w <seconds>` ran out) because
    /// another program held it; nothing was changed.
    #[error("`{command}` gave up waiting for the xtables lock: {stderr}")]
    XtablesLockTimeout {
        /// Program and arguments.
        command: String,
        /// Its trimmed standard error (names the lock file).
        stderr: String,
    },
    /// The program's output could not be understood.
    #[error("unexpected output from {program}: {detail}")]
    Parse {
        /// The program name.
        program: String,
        /// What did not parse.
        detail: String,
    },
    /// CHECK found that a rule (or chain) set up for the attachment is missing.
    #[error("{what} not found")]
    RuleMissing {
        /// The missing rule or chain, as an operator would type it.
        what: String,
    },
    /// The backend cannot be used on this host (binaries missing or the kernel refuses).
    #[error("{backend} backend is not usable")]
    Unusable {
        /// `iptables` or `nftables`.
        backend: &'static str,
        /// Cause.
        #[source]
        source: Box<NetfilterError>,
    },
    /// A request to nf_tables over netlink failed (the kernel's errno, or the socket's).
    #[error("nf_tables netlink {op} failed")]
    Nfnl {
        /// What was asked (`list rules`, `delete rules`, …).
        op: &'static str,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The kernel's nf_tables reply could not be decoded.
    #[error("unexpected nf_tables netlink reply: {detail}")]
    NfnlDecode {
        /// What did not decode.
        detail: String,
    },
    /// Several independent steps failed (teardown keeps going and reports all of them).
    #[error("{}", join_chains(.0))]
    Multiple(Vec<NetfilterError>),
}

impl NetfilterError {
    /// True when a failed command said that the chain, rule or table does not exist — the
    /// "already gone" case an idempotent teardown treats as success.
    pub fn is_not_exist(&self) -> bool {
        match self {
            NetfilterError::CommandFailed { stderr, .. } => stderr_means_not_exist(stderr),
            _ => false,
        }
    }

    /// True when an iptables tool gave up waiting for the xtables lock, here or in a wrapped
    /// error — the transient case a plugin reports as "try again later" (CNI code 11), and
    /// that a retry loop must not retry (each attempt would wait the whole timeout again).
    pub fn is_lock_timeout(&self) -> bool {
        match self {
            NetfilterError::XtablesLockTimeout { .. } => true,
            NetfilterError::Unusable { source, .. } => source.is_lock_timeout(),
            NetfilterError::Multiple(errors) => errors.iter().any(NetfilterError::is_lock_timeout),
            _ => false,
        }
    }

    /// An nf_tables netlink failure whose cause is the kernel's (or the socket's) `errno`.
    pub fn nfnl(op: &'static str, errno: i32) -> NetfilterError {
        NetfilterError::Nfnl {
            op,
            source: std::io::Error::from_raw_os_error(errno),
        }
    }

    /// The `errno` of an nf_tables netlink failure, if this is one.
    pub fn nfnl_errno(&self) -> Option<i32> {
        match self {
            NetfilterError::Nfnl { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// Collapse a list of errors: none → `Ok`, one → that error, more → [`NetfilterError::Multiple`].
    pub fn collect(mut errors: Vec<NetfilterError>) -> Result<(), NetfilterError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(NetfilterError::Multiple(errors)),
        }
    }
}

/// Messages iptables-legacy, iptables-nft and nft print when the object is absent.
pub(crate) fn stderr_means_not_exist(stderr: &str) -> bool {
    const NEEDLES: [&str; 6] = [
        "does not exist",
        "No chain/target/match by that name",
        "Bad rule (does a matching rule exist in that chain?)",
        "No such file or directory",
        "Table does not exist",
        "Address family not supported",
    ];
    NEEDLES.iter().any(|n| stderr.contains(n))
}

/// `e: cause: cause…` for one error.
pub(crate) fn display_chain(error: &NetfilterError) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn join_chains(errors: &[NetfilterError]) -> String {
    errors
        .iter()
        .map(display_chain)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_backend_message_matches_reference() {
        let e = NetfilterError::UnknownBackend { name: "x".into() };
        assert_eq!(e.to_string(), r#"unknown ipmasq backend "x""#);
    }

    #[test]
    fn multiple_shows_each_cause_chain() {
        let e = NetfilterError::Multiple(vec![
            NetfilterError::Unusable {
                backend: "iptables",
                source: Box::new(NetfilterError::ProgramNotFound {
                    program: "iptables".into(),
                }),
            },
            NetfilterError::RuleMissing {
                what: "chain X".into(),
            },
        ]);
        assert_eq!(
            e.to_string(),
            "iptables backend is not usable: iptables not found in PATH; chain X not found"
        );
    }

    #[test]
    fn not_exist_detection() {
        let e = NetfilterError::CommandFailed {
            command: "iptables-restore".into(),
            status: "exit status 1".into(),
            stderr: "iptables-restore v1.8.9 (nf_tables): Chain 'CNI-x' does not exist".into(),
        };
        assert!(e.is_not_exist());
    }
}

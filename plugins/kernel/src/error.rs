//! Errors of the kernel layer.

use std::path::PathBuf;

/// A failed kernel operation.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The netns path does not exist (the runtime may already have removed it).
    #[error("netns {path} does not exist")]
    NetnsNotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The path exists but could not be opened or inspected.
    #[error("failed to open netns {path}")]
    NetnsOpen {
        /// The path given.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The path is not a network namespace (not on nsfs).
    #[error("{path} is not a network namespace")]
    NotANetns {
        /// The path given.
        path: PathBuf,
    },
    /// setns(2) into the target failed.
    #[error("failed to enter netns")]
    NetnsEnter(#[source] nix::Error),
    /// Opening or using the netlink socket failed.
    #[error("netlink socket: {op}")]
    Socket {
        /// What was being done.
        op: &'static str,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The kernel answered a request with an error.
    #[error("netlink {op} failed")]
    Netlink {
        /// The request.
        op: &'static str,
        /// The errno the kernel returned.
        #[source]
        source: std::io::Error,
    },
    /// The kernel sent something we could not decode.
    #[error("undecodable netlink reply to {op}: {detail}")]
    Decode {
        /// The request.
        op: &'static str,
        /// Decoder message.
        detail: String,
    },
    /// A sysctl key outside what plugins may touch.
    #[error("invalid sysctl key {key:?}: {why}")]
    BadSysctlKey {
        /// The key.
        key: String,
        /// Which rule it breaks.
        why: String,
    },
    /// Reading or writing a sysctl failed.
    #[error("sysctl {key}")]
    Sysctl {
        /// The key.
        key: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// No link with that name.
    #[error("Link not found: {name}")]
    LinkNotFound {
        /// The link name.
        name: String,
    },
}

impl KernelError {
    /// True when the error means "the thing is already gone" (useful for idempotent DEL). A
    /// netns path that is no longer a namespace (the bind mount went, the mount point stayed)
    /// counts as gone.
    pub fn is_not_found(&self) -> bool {
        match self {
            KernelError::NetnsNotFound { .. }
            | KernelError::NotANetns { .. }
            | KernelError::LinkNotFound { .. } => true,
            KernelError::Netlink { source, .. } => source.raw_os_error() == Some(libc_enodev()),
            _ => false,
        }
    }
}

const fn libc_enodev() -> i32 {
    nix::errno::Errno::ENODEV as i32
}

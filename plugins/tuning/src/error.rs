//! The tuning plugin's error codes and the mapping of kernel and file errors to CNI errors.

use cni_core::CniError;
use cni_core::error::codes;
use cni_kernel::KernelError;

/// Plugin-specific codes (documented in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TuningCode {
    /// 132: CHECK found a configured value that no longer holds.
    CheckFailed = 132,
    /// 133: the backup file could not be read, written or removed.
    Backup = 133,
}

/// An error with a tuning-specific code.
pub fn plugin(code: TuningCode, msg: impl Into<String>) -> CniError {
    CniError::plugin(code as u32, msg)
}

/// A CHECK drift error (132).
pub fn drift(msg: impl Into<String>) -> CniError {
    plugin(TuningCode::CheckFailed, msg)
}

/// A backup-file error (133) with what was being done.
pub fn backup(context: &str, e: &std::io::Error) -> CniError {
    plugin(TuningCode::Backup, format!("{context}: {e}"))
}

/// A kernel error with what was being done: 104 for namespace problems, 105 otherwise.
pub fn kernel(context: &str, e: &KernelError) -> CniError {
    let code = match e {
        KernelError::NetnsNotFound { .. }
        | KernelError::NetnsOpen { .. }
        | KernelError::NotANetns { .. }
        | KernelError::NetnsEnter(_) => codes::NETNS,
        _ => codes::KERNEL,
    };
    CniError::plugin(code, format!("{context}: {}", chain(e)))
}

pub use cni_core::error::chain;

/// True when a sysctl read failed because the key is write-only (e.g. `net/ipv4/route/flush`).
pub fn is_write_only(e: &KernelError) -> bool {
    matches!(e, KernelError::Sysctl { source, .. }
        if source.kind() == std::io::ErrorKind::PermissionDenied)
}

/// True when a sysctl or link is simply not there (interface gone, protocol not in this netns).
pub fn is_gone(e: &KernelError) -> bool {
    e.is_not_found()
        || matches!(e, KernelError::Sysctl { source, .. }
            if source.kind() == std::io::ErrorKind::NotFound)
}

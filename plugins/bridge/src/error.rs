//! The bridge plugin's error codes and the mapping of kernel errors to CNI errors.

use cni_core::CniError;
use cni_core::error::codes;
use cni_kernel::KernelError;

/// Plugin-specific codes (documented in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeCode {
    /// 120: the bridge already has a different gateway address (and no `forceAddress`).
    GatewayConflict = 120,
    /// 121: a link of the bridge's name exists and is not a bridge.
    NotABridge = 121,
    /// 122: the container interface already exists.
    ContainerIfaceExists = 122,
    /// 123: CHECK found drift from the ADD result.
    CheckFailed = 123,
    /// 124: masquerade or spoof-check rules could not be set up, checked or removed.
    Firewall = 124,
    /// 125: the host end of the veth never came up.
    PortDown = 125,
}

/// An error with a bridge-specific code.
pub fn plugin(code: BridgeCode, msg: impl Into<String>) -> CniError {
    CniError::plugin(code as u32, msg)
}

/// A kernel error with what was being done: 104 for namespace problems, 105 otherwise.
pub fn kernel(context: &str, e: KernelError) -> CniError {
    let code = match e {
        KernelError::NetnsNotFound { .. }
        | KernelError::NetnsOpen { .. }
        | KernelError::NotANetns { .. }
        | KernelError::NetnsEnter(_) => codes::NETNS,
        _ => codes::KERNEL,
    };
    CniError::plugin(code, format!("{context}: {}", chain(&e)))
}

/// An error and its causes, joined with `": "`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

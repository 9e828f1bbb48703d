//! The bridge plugin's error codes and the mapping of kernel errors to CNI errors.

use cni_core::CniError;

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

pub use cni_ipconfig::{error_chain as chain, kernel_error as kernel};

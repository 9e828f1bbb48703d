//! What interface plugins share above the kernel layer: applying a result's addresses and
//! routes to an interface ([`configure`], the reference's `ConfigureIface`), checking them
//! ([`verify`]), the delegated IPAM plugin ([`Ipam`]) and turning kernel errors into CNI errors
//! ([`kernel_error`]).

mod configure;
mod ipam;

pub use configure::{Configure, configure, verify};
pub use ipam::{DelegatedIpam, Ipam};

use cni_core::CniError;
use cni_core::error::codes;
use cni_kernel::KernelError;

/// A kernel error with what was being done: code 104 for namespace problems, 105 otherwise.
pub fn kernel_error(context: &str, e: KernelError) -> CniError {
    let code = match e {
        KernelError::NetnsNotFound { .. }
        | KernelError::NetnsOpen { .. }
        | KernelError::NotANetns { .. }
        | KernelError::NetnsEnter(_) => codes::NETNS,
        _ => codes::KERNEL,
    };
    CniError::plugin(code, format!("{context}: {}", error_chain(&e)))
}

/// Open the container's network namespace; failures as [`kernel_error`] (code 104).
pub fn open_netns(path: &std::path::Path) -> Result<cni_kernel::netns::Netns, CniError> {
    cni_kernel::netns::Netns::open(path).map_err(|e| {
        kernel_error(
            &format!("failed to open netns {:?}", path.display().to_string()),
            e,
        )
    })
}

/// An error and its causes, joined with `": "`.
pub use cni_core::error::chain as error_chain;

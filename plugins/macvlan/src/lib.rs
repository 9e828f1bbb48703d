//! The macvlan plugin: a macvlan link on a master interface, created straight inside the
//! container netns and renamed to `CNI_IFNAME`.
//!
//! [`attach`] and [`check`] hold the logic over the kernel traits (unit-tested with fakes);
//! [`plugin`] opens namespaces and sockets and wires the delegated IPAM.

pub mod attach;
pub mod check;
pub mod config;
pub mod plugin;

pub use plugin::Macvlan;

/// Plugin-specific error codes (documented in the README).
pub mod codes {
    /// The container interface already exists.
    pub const CONTAINER_IFACE_EXISTS: u32 = 140;
    /// The master cannot be found, or its MTU is smaller than the configured one.
    pub const MASTER: u32 = 141;
    /// CHECK found drift.
    pub const CHECK_FAILED: u32 = 142;
}

#[cfg(test)]
mod tests;

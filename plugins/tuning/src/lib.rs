//! The tuning plugin (chained): sets sysctls and link attributes (MAC, MTU, promiscuous and
//! all-multicast mode, transmit queue length) of the container interface, and puts every one of
//! them back on DEL from a backup written at ADD.
//!
//! [`add`], [`del`] and [`check`] hold the logic and act only through the kernel traits
//! (`Netlink`, `Sysctl`) and a [`backup::BackupFile`], so they are unit-tested with fakes;
//! [`config`], [`sysctls`] and [`allowlist`] validate everything before anything changes;
//! [`plugin`] wires the real namespace.

pub mod add;
pub mod allowlist;
pub mod backup;
pub mod check;
pub mod config;
pub mod del;
pub mod error;
pub mod plugin;
pub mod sysctls;

pub use plugin::Tuning;

#[cfg(test)]
mod tests;

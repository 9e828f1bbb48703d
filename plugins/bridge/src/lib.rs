//! The bridge plugin: containers attached to a Linux bridge through veth pairs.
//!
//! [`add`], [`del`] and [`check`] hold the logic and act only through the seams in [`ports`]
//! (netlink and sysctls per namespace, IPAM, masquerade), so they are unit-tested with fakes;
//! [`plugin`] wires the real kernel, the delegated IPAM and the netfilter backends.

pub mod add;
pub mod check;
pub mod config;
pub mod del;
pub mod error;
pub mod firewall;
pub mod journal;
pub mod plugin;
pub mod ports;

pub use plugin::Bridge;

#[cfg(test)]
mod tests;

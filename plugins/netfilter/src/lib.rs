//! Netfilter layer of the CNI plugin suite: everything that writes iptables or nftables rules.
//!
//! - [`names`]: the reference's chain-name hash and rule comments, and name validation.
//! - [`exec`]: the [`exec::CommandRunner`] trait (program + argv, never a shell), the real runner
//!   and a scripted fake for unit tests.
//! - [`iptables`]: one `iptables-save` read and one atomic `iptables-restore --noflush` write per
//!   operation, with a batch builder the firewall and portmap plugins can share.
//! - [`nfnl`]: iptables-nft rules read and deleted over nf_tables netlink, without an exec.
//! - [`nft`]: `nft -f -` transactions and `nft -j` listings.
//! - [`firewall`]: the firewall plugin's rules behind [`firewall::FirewallBackend`], iptables
//!   (reference layout plus owner comments) and nftables (table `inet cni_firewall`).
//! - [`masquerade`]: the bridge plugin's `ipMasq` behind [`masquerade::MasqueradeBackend`], with
//!   iptables and nftables backends compatible with the reference plugin's rules.

pub mod error;
pub mod exec;
pub mod firewall;
pub mod iptables;
pub mod masquerade;
pub mod names;
pub mod nfnl;
pub mod nft;
pub mod portmap;

pub use error::NetfilterError;
pub use exec::{CommandRunner, FakeRunner, SystemRunner};
pub use masquerade::{BackendKind, MasqueradeBackend, select_backend, teardown_all};

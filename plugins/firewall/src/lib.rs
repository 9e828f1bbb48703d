//! The `firewall` CNI plugin (chained, after `bridge`): lets forwarded traffic reach each
//! container (established connections) and leave it, and with `ingressPolicy: same-bridge` /
//! `isolated` drops traffic between bridges (and inside one bridge). Drop-in for the reference
//! `firewall` plugin's iptables backend, plus an nftables backend.
//!
//! Config: `backend` (`iptables` — also `""`/absent —, `nftables`; `firewalld` is refused),
//! `ingressPolicy` (`open`, `same-bridge`, `isolated`), `iptablesAdminChainName` (default
//! `CNI-ADMIN`), `dataDir` (lock directory, default `/run/cni/firewall`). Versions 0.4.0–1.1.0.
//!
//! Owner tracking: the two per-container rules carry a comment naming network, container ID,
//! interface and (for isolating policies) the bridge, e.g.
//! `name: "cnixnet" id: "ctr1" if: "eth0" same-bridge: "cnix0"` — so DEL (also without
//! `prevResult`, also after the netns is gone) and GC remove exactly one attachment's rules and
//! know whether its bridge still has a container. No state file.
//!
//! Codes: 7 config (also names in `prevResult` that cannot go into a rule), 50 STATUS, 105 the
//! kernel refused, 130 rules could not be applied or removed, 131 CHECK found a rule missing.
//!
//! [`plugin`] holds the verbs; the rule model and backends live in
//! `cni_netfilter::firewall`.

pub mod config;
pub mod error;
pub mod plugin;

pub use plugin::{Firewall, Service};

#[cfg(test)]
mod tests;

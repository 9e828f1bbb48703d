//! The `portmap` CNI plugin (chained, after `bridge`): publishes host ports to a container
//! (`runtimeConfig.portMappings`: `hostPort`, `containerPort`, `protocol` tcp/udp/sctp, optional
//! `hostIP`), IPv4 and IPv6, including hairpin and localhost access. Drop-in for the reference
//! `portmap` plugin: the same iptables layout, chain names and comments (either side can tear
//! down the other's rules), plus the reference's nftables tables.
//!
//! Config: `snat` (default true), `masqAll`, `markMasqBit` (0–31, default 13) or
//! `externalSetMarkChain`, `conditionsV4` / `conditionsV6`, `backend` (`iptables`, `nftables`;
//! absent: nftables when the conditions are nft text or only nft is installed, else iptables),
//! `dataDir` (lock directory, default `/run/cni/portmap`). Versions 0.1.0–1.1.0.
//!
//! Owner tracking: a container's mappings belong to network + container ID. The iptables
//! per-container chain `CNI-DN-<hash>` derives from those, and its entry rules in
//! `CNI-HOSTPORT-DNAT` carry the reference comment `dnat name: "<net>" id: "<cid>"`; nftables
//! rules carry `<hash(net)>-<hash(cid)>, net: …, id: …`. So DEL (also without `prevResult`,
//! also after the netns is gone) and GC remove exactly one container's mappings. No state file.
//!
//! Localhost publishing: with `snat`, `net/ipv4/conf/<if>/route_localnet=1` on the host
//! interface routing to the container (never reverted, as the reference). UDP mappings: stale
//! conntrack entries for the host port are dropped with the `conntrack` tool when it is
//! installed; without it this step is skipped silently.
//!
//! Codes: 7 config (also mappings and names that cannot go into a rule), 50 STATUS, 150 rules
//! could not be applied or removed, 151 CHECK found a rule missing, 152 the host port is
//! already published by another container (nothing was changed).
//!
//! [`plugin`] holds the verbs; the rule model and backends live in `cni_netfilter::portmap`.

pub mod config;
pub mod error;
pub mod plugin;

pub use plugin::{Portmap, Service, container_addresses};

#[cfg(test)]
mod tests;

//! The portmap model: mappings, options, owners and the names derived from them, validated
//! before anything reaches a rule.

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::iptables;
use crate::NetfilterError;
use crate::iptables::IpFamily;
use crate::names::{chain_name, go_quote, hash_with_prefix, validate_name};

/// The mark bit when `markMasqBit` is not set (Kubernetes uses 14 and 15, Calico 20–31).
pub const DEFAULT_MARK_BIT: u8 = 13;
/// iptables' comment limit.
const IPTABLES_COMMENT_MAX: usize = 255;
/// nftables' comment limit.
const NFT_COMMENT_MAX: usize = 128;

/// A transport protocol a host port can be published for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// `tcp`.
    Tcp,
    /// `udp`.
    Udp,
    /// `sctp`.
    Sctp,
}

impl Protocol {
    /// `tcp`, `udp`, `sctp` in any letter case; `None` for anything else.
    pub fn parse(text: &str) -> Option<Protocol> {
        match text.to_ascii_lowercase().as_str() {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            "sctp" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The lowercase name (as iptables and nft spell it).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One published port (`runtimeConfig.portMappings[]`, validated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortMapping {
    /// Port on the host.
    pub host_port: u16,
    /// Port in the container.
    pub container_port: u16,
    /// Transport protocol.
    pub protocol: Protocol,
    /// Only traffic to this host address (`None`: any local address).
    pub host_ip: Option<IpAddr>,
}

impl PortMapping {
    /// Whether the mapping is set up for containers addresses of `family`: always without a
    /// `hostIP`, else only for the `hostIP`'s family (as the reference).
    pub fn applies_to(&self, family: IpFamily) -> bool {
        self.host_ip.is_none_or(|ip| IpFamily::of(&ip) == family)
    }

    /// The destination address rules match on: the `hostIP` unless it is unspecified.
    pub fn destination(&self) -> Option<IpAddr> {
        self.host_ip.filter(|ip| !ip.is_unspecified())
    }

    /// `tcp 127.0.0.1:8080`, `tcp [::1]:8080`, `udp *:53`: for messages.
    pub fn describe(&self) -> String {
        let host = match self.destination() {
            Some(IpAddr::V4(ip)) => ip.to_string(),
            Some(IpAddr::V6(ip)) => format!("[{ip}]"),
            None => "*".to_owned(),
        };
        format!("{} {host}:{}", self.protocol.as_str(), self.host_port)
    }

    /// Whether traffic `self` captures could also be captured by `other`: same protocol and
    /// port, and equal destinations or either one for any address.
    pub fn overlaps(&self, other: &PortMapping) -> bool {
        self.protocol == other.protocol
            && self.host_port == other.host_port
            && match (self.destination(), other.destination()) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// How traffic that needs masquerading is marked (iptables backend).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MarkMode {
    /// `markMasqBit`: our `CNI-HOSTPORT-SETMARK` / `CNI-HOSTPORT-MASQ` chains with this bit.
    Bit(u8),
    /// `externalSetMarkChain`: jump to this existing chain instead; nothing shared is created.
    External(String),
}

impl MarkMode {
    /// The chain the per-container rules jump to for marking.
    pub fn setmark_chain(&self) -> &str {
        match self {
            MarkMode::Bit(_) => iptables::SETMARK_CHAIN,
            MarkMode::External(chain) => chain,
        }
    }
}

/// The plugin options that shape the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortmapOptions {
    /// `snat` (default true): masquerade hairpin and localhost traffic.
    pub snat: bool,
    /// `masqAll`: masquerade every source (no localhost rule).
    pub masq_all: bool,
    /// `markMasqBit` / `externalSetMarkChain`.
    pub mark: MarkMode,
    /// `conditionsV4`: extra matches on the entry rules (iptables arguments or nft text).
    pub conditions_v4: Vec<String>,
    /// `conditionsV6`.
    pub conditions_v6: Vec<String>,
}

impl Default for PortmapOptions {
    fn default() -> Self {
        PortmapOptions {
            snat: true,
            masq_all: false,
            mark: MarkMode::Bit(DEFAULT_MARK_BIT),
            conditions_v4: Vec::new(),
            conditions_v6: Vec::new(),
        }
    }
}

impl PortmapOptions {
    /// The conditions of `family`.
    pub fn conditions(&self, family: IpFamily) -> &[String] {
        match family {
            IpFamily::V4 => &self.conditions_v4,
            IpFamily::V6 => &self.conditions_v6,
        }
    }
}

/// Whose mappings: network name and container ID (the reference's chain-name inputs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortmapOwner {
    /// Network name.
    pub network: String,
    /// Container ID.
    pub container_id: String,
}

impl PortmapOwner {
    /// An owner (validated when used in a rule).
    pub fn new(network: &str, container_id: &str) -> PortmapOwner {
        PortmapOwner {
            network: network.to_owned(),
            container_id: container_id.to_owned(),
        }
    }

    /// Refuse names that could break a rule's quoting.
    pub fn validate(&self) -> Result<(), NetfilterError> {
        validate_name("network name", &self.network)?;
        validate_name("container ID", &self.container_id)
    }

    /// `CNI-DN-<21 hex>`: the per-container DNAT chain.
    pub fn dnat_chain(&self) -> String {
        chain_name("DN-", &self.network, &self.container_id)
    }

    /// `CNI-SN-<21 hex>`: the SNAT chain of very old reference versions (removed on DEL).
    pub fn legacy_snat_chain(&self) -> String {
        chain_name("SN-", &self.network, &self.container_id)
    }

    /// `dnat name: "<net>" id: "<cid>"`, cut like the reference to 255 characters.
    pub fn iptables_comment(&self) -> String {
        let text = format!(
            "dnat name: {} id: {}",
            go_quote(&self.network),
            go_quote(&self.container_id)
        );
        if text.len() <= IPTABLES_COMMENT_MAX {
            return text;
        }
        let mut end = IPTABLES_COMMENT_MAX - 2;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &text[..end])
    }

    /// `<16 hex of SHA-512(net)>-<16 hex of SHA-512(cid)>`: the nftables identity.
    pub fn nft_instance(&self) -> String {
        format!(
            "{}-{}",
            network_hash(&self.network),
            hash_with_prefix(16, "", &self.container_id)
        )
    }

    /// `<instance>, net: <net>, id: <cid>`, cut to nftables' 128 bytes.
    pub fn nft_comment(&self) -> String {
        let mut text = format!(
            "{}, net: {}, id: {}",
            self.nft_instance(),
            self.network,
            self.container_id
        );
        text.truncate(NFT_COMMENT_MAX); // ASCII only: names are validated
        text
    }
}

/// First 16 hex of SHA-512(network): the nftables comment prefix of a network's mappings.
pub fn network_hash(network: &str) -> String {
    hash_with_prefix(16, "", network)
}

/// Everything ADD and CHECK need for one attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPorts {
    /// Whose mappings.
    pub owner: PortmapOwner,
    /// The container's IPv4 address with its subnet's prefix.
    pub v4: Option<IpNetwork>,
    /// The container's IPv6 address with its subnet's prefix.
    pub v6: Option<IpNetwork>,
    /// The mappings, in the runtime's order (duplicates removed).
    pub mappings: Vec<PortMapping>,
    /// Rule-shaping options.
    pub options: PortmapOptions,
}

impl ContainerPorts {
    /// Validate and assemble: names, conditions and the external chain are checked before they
    /// can reach a rule.
    pub fn new(
        owner: PortmapOwner,
        addresses: [Option<IpNetwork>; 2],
        mappings: &[PortMapping],
        options: PortmapOptions,
    ) -> Result<ContainerPorts, NetfilterError> {
        owner.validate()?;
        if let MarkMode::External(chain) = &options.mark {
            validate_chain(chain)?;
        }
        for condition in options.conditions_v4.iter().chain(&options.conditions_v6) {
            validate_condition(condition)?;
        }
        let [v4, v6] = addresses;
        let mut unique: Vec<PortMapping> = Vec::new();
        for m in mappings {
            if !unique.contains(m) {
                unique.push(*m);
            }
        }
        Ok(ContainerPorts {
            owner,
            v4: v4.filter(|n| n.is_ipv4()),
            v6: v6.filter(|n| n.is_ipv6()),
            mappings: unique,
            options,
        })
    }

    /// The container address of `family`.
    pub fn address(&self, family: IpFamily) -> Option<IpNetwork> {
        match family {
            IpFamily::V4 => self.v4,
            IpFamily::V6 => self.v6,
        }
    }

    /// The families the container has an address in (v4 first).
    pub fn families(&self) -> Vec<IpFamily> {
        IpFamily::ALL
            .into_iter()
            .filter(|f| self.address(*f).is_some())
            .collect()
    }

    /// The mappings set up for `family`.
    pub fn mappings_for(&self, family: IpFamily) -> impl Iterator<Item = &PortMapping> {
        self.mappings.iter().filter(move |m| m.applies_to(family))
    }
}

/// A user chain name iptables accepts (`externalSetMarkChain`).
pub fn validate_chain(name: &str) -> Result<(), NetfilterError> {
    validate_name("chain name", name)?;
    if name.len() > 28 || name.starts_with(['-', '!']) {
        return Err(NetfilterError::InvalidName {
            what: "chain name",
            value: name.to_owned(),
            reason: "not a valid iptables chain name",
        });
    }
    Ok(())
}

/// A `conditionsV4`/`conditionsV6` entry: iptables arguments are quoted when written, nft text
/// is written as is, so line breaks and the nft command separators `;` and `#` are refused.
pub fn validate_condition(text: &str) -> Result<(), NetfilterError> {
    if text.chars().any(|c| c.is_control() || c == ';' || c == '#') {
        return Err(NetfilterError::InvalidName {
            what: "condition",
            value: text.to_owned(),
            reason: "it contains control characters, ';' or '#'",
        });
    }
    Ok(())
}

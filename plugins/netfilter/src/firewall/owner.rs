//! Who a per-container rule belongs to, written into the rule's comment.
//!
//! iptables (comments up to 255 bytes), readable and exact, starting like the reference's
//! masquerade comments:
//!
//! ```text
//! name: "<network>" id: "<containerID>" if: "<ifname>"[ same-bridge: "<bridge>" | isolated: "<bridge>"]
//! ```
//!
//! nftables (comments up to 128 bytes): hashes first so identity survives truncation, as the
//! reference's nftables masquerade comments do:
//!
//! ```text
//! <16hex(network)>-<16hex(ifname:containerID)>[ same-bridge: <bridge> | isolated: <bridge>], net: …, if: …, id: …
//! ```
//!
//! The isolation part records which bridge's isolation rules the container relies on, so a DEL
//! without `prevResult` still knows whether it removed the bridge's last container.

use super::{IngressPolicy, Isolation, validate_interface};
use crate::NetfilterError;
use crate::masquerade::{instance_hash, network_hash};
use crate::names::validate_name;

/// iptables' comment limit.
pub(crate) const IPTABLES_COMMENT_MAX: usize = 255;
/// nftables' comment limit.
pub(crate) const NFT_COMMENT_MAX: usize = 128;

/// An attachment: network, container ID and interface name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    /// Network name.
    pub network: String,
    /// Container ID.
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
}

impl Owner {
    /// An owner (validated when used in a rule).
    pub fn new(network: &str, container_id: &str, ifname: &str) -> Owner {
        Owner {
            network: network.to_owned(),
            container_id: container_id.to_owned(),
            ifname: ifname.to_owned(),
        }
    }

    /// Refuse names that could break a rule's quoting.
    pub fn validate(&self) -> Result<(), NetfilterError> {
        validate_name("network name", &self.network)?;
        validate_name("container ID", &self.container_id)?;
        validate_interface(&self.ifname)
    }

    /// `<16hex(network)>-<16hex(ifname:containerID)>`: the nftables identity of this attachment.
    pub fn instance_hash(&self) -> String {
        instance_hash(&self.network, &self.ifname, &self.container_id)
    }
}

/// An owner plus the isolation its container relies on: the content of a per-container comment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OwnerTag {
    /// Whose rule.
    pub owner: Owner,
    /// The bridge whose isolation rules the container relies on (`None`: policy `open`).
    pub isolation: Option<Isolation>,
}

impl OwnerTag {
    /// The iptables comment; refused when longer than iptables allows.
    pub fn iptables_comment(&self) -> Result<String, NetfilterError> {
        let o = &self.owner;
        let mut text = format!(
            "name: \"{}\" id: \"{}\" if: \"{}\"",
            o.network, o.container_id, o.ifname
        );
        if let Some(iso) = &self.isolation {
            text.push_str(&format!(" {}: \"{}\"", iso.policy.as_str(), iso.bridge));
        }
        if text.len() > IPTABLES_COMMENT_MAX {
            return Err(NetfilterError::InvalidName {
                what: "network name",
                value: o.network.clone(),
                reason: "the rule comment would exceed iptables' 255-character limit",
            });
        }
        Ok(text)
    }

    /// Read an iptables comment back; `None` for any other text.
    pub fn parse_iptables(text: &str) -> Option<OwnerTag> {
        let mut fields = Fields(text);
        let network = fields.quoted("name")?;
        let container_id = fields.quoted("id")?;
        let ifname = fields.quoted("if")?;
        let isolation = match fields.0 {
            "" => None,
            _ => {
                let (policy, bridge) = fields.isolation()?;
                Some(Isolation { bridge, policy })
            }
        };
        fields.0.is_empty().then_some(OwnerTag {
            owner: Owner {
                network,
                container_id,
                ifname,
            },
            isolation,
        })
    }

    /// The nftables comment, cut to 128 bytes (identity is in the hashes at the front).
    pub fn nft_comment(&self) -> String {
        let o = &self.owner;
        let mut text = o.instance_hash();
        if let Some(iso) = &self.isolation {
            text.push_str(&format!(" {}: {}", iso.policy.as_str(), iso.bridge));
        }
        text.push_str(&format!(
            ", net: {}, if: {}, id: {}",
            o.network, o.ifname, o.container_id
        ));
        text.truncate(NFT_COMMENT_MAX); // ASCII only: names are validated
        text
    }
}

/// What an nftables per-container comment tells: the attachment's hashes and its isolation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftTag {
    /// `<16hex(network)>-<16hex(ifname:containerID)>`.
    pub instance: String,
    /// The bridge the container relies on, if any.
    pub isolation: Option<Isolation>,
}

impl NftTag {
    /// Read an nftables comment back; `None` for any other text.
    pub fn parse(text: &str) -> Option<NftTag> {
        const HASHES: usize = 33; // 16 hex, '-', 16 hex
        let instance = text.get(..HASHES)?;
        let hex = |s: &str| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit());
        let (net, inst) = instance.split_once('-')?;
        if !hex(net) || !hex(inst) {
            return None;
        }
        let rest = &text[HASHES..];
        let mut isolation = None;
        for policy in [IngressPolicy::SameBridge, IngressPolicy::Isolated] {
            if let Some(tail) = rest.strip_prefix(&format!(" {}: ", policy.as_str())) {
                // Interface names hold no spaces, so the bridge ends where ", net: " starts.
                let bridge = tail.split(", net: ").next().unwrap_or_default();
                if bridge.is_empty() {
                    return None;
                }
                isolation = Some(Isolation {
                    bridge: bridge.to_owned(),
                    policy,
                });
            }
        }
        if isolation.is_none() && !rest.is_empty() && !rest.starts_with(", net: ") {
            return None;
        }
        Some(NftTag {
            instance: instance.to_owned(),
            isolation,
        })
    }

    /// Whether the rule belongs to `network` (by its hash).
    pub fn in_network(&self, network: &str) -> bool {
        self.instance
            .starts_with(&format!("{}-", network_hash(network)))
    }
}

/// A cursor over `key: value key: value` text.
struct Fields<'a>(&'a str);

impl<'a> Fields<'a> {
    fn key(&mut self, key: &str) -> Option<()> {
        let rest = self.0.strip_prefix(' ').unwrap_or(self.0);
        self.0 = rest.strip_prefix(key)?.strip_prefix(": ")?;
        Some(())
    }

    /// `key: "value"` (validated names never need escapes).
    fn quoted(&mut self, key: &str) -> Option<String> {
        self.key(key)?;
        let rest = self.0.strip_prefix('"')?;
        let end = rest.find('"')?;
        let value = &rest[..end];
        if value.contains('\\') {
            return None;
        }
        self.0 = &rest[end + 1..];
        Some(value.to_owned())
    }

    /// `same-bridge: "<bridge>"` or `isolated: "<bridge>"`.
    fn isolation(&mut self) -> Option<(IngressPolicy, String)> {
        for policy in [IngressPolicy::SameBridge, IngressPolicy::Isolated] {
            let mut attempt = Fields(self.0);
            if let Some(bridge) = attempt.quoted(policy.as_str()) {
                self.0 = attempt.0;
                return Some((policy, bridge));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(isolation: Option<(IngressPolicy, &str)>) -> OwnerTag {
        OwnerTag {
            owner: Owner::new("cnixnet", "ctr1", "eth0"),
            isolation: isolation.map(|(policy, bridge)| Isolation {
                bridge: bridge.to_owned(),
                policy,
            }),
        }
    }

    #[test]
    fn iptables_comment_round_trips() {
        let open = tag(None);
        let text = open.iptables_comment().unwrap();
        assert_eq!(text, r#"name: "cnixnet" id: "ctr1" if: "eth0""#);
        assert_eq!(OwnerTag::parse_iptables(&text), Some(open));
        let same = tag(Some((IngressPolicy::SameBridge, "cnix0")));
        let text = same.iptables_comment().unwrap();
        assert_eq!(
            text,
            r#"name: "cnixnet" id: "ctr1" if: "eth0" same-bridge: "cnix0""#
        );
        assert_eq!(OwnerTag::parse_iptables(&text), Some(same));
        let iso = tag(Some((IngressPolicy::Isolated, "cnix0")));
        let text = iso.iptables_comment().unwrap();
        assert_eq!(OwnerTag::parse_iptables(&text), Some(iso));
    }

    #[test]
    fn other_comments_are_not_tags() {
        for text in [
            r#"name: "cnixnet" id: "ctr1""#,
            r#"name: "cnixnet" id: "ctr1" if: "eth0" extra"#,
            r#"name: "cnixnet" id: "ctr1" if: "eth0" open: "x""#,
            r#"name: "a\"b" id: "c" if: "d""#,
            "CNI firewall plugin rules",
            "",
        ] {
            assert_eq!(OwnerTag::parse_iptables(text), None, "{text}");
        }
    }

    #[test]
    fn long_names_are_refused_for_iptables() {
        let mut t = tag(None);
        t.owner.network = "n".repeat(250);
        assert!(t.iptables_comment().is_err());
    }

    #[test]
    fn nft_comment_round_trips_and_truncates() {
        let t = tag(Some((IngressPolicy::Isolated, "cnix0")));
        let text = t.nft_comment();
        assert!(
            text.ends_with(" isolated: cnix0, net: cnixnet, if: eth0, id: ctr1"),
            "{text}"
        );
        let parsed = NftTag::parse(&text).unwrap();
        let comma = tag(Some((IngressPolicy::SameBridge, "br,0")));
        let back = NftTag::parse(&comma.nft_comment()).unwrap();
        assert_eq!(back.isolation, comma.isolation);
        assert_eq!(parsed.instance, t.owner.instance_hash());
        assert_eq!(parsed.isolation, t.isolation);
        assert!(parsed.in_network("cnixnet"));
        assert!(!parsed.in_network("other"));

        let mut long = tag(None);
        long.owner.container_id = "c".repeat(200);
        let text = long.nft_comment();
        assert_eq!(text.len(), NFT_COMMENT_MAX);
        assert_eq!(
            NftTag::parse(&text).unwrap().instance,
            long.owner.instance_hash()
        );
        assert_eq!(NftTag::parse(&text).unwrap().isolation, None);
    }

    #[test]
    fn other_nft_comments_are_not_tags() {
        let hashes = Owner::new("n", "c", "eth0").instance_hash();
        for text in [
            "isolation",
            "same-bridge: cnix0",
            "admin overrides",
            "x-y",
            "",
            &format!("{hashes} open: x"),
            &format!("{hashes} isolated: , net: n"),
        ] {
            assert_eq!(NftTag::parse(text), None, "{text}");
        }
    }
}

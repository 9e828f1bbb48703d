//! The sysctls [`ProcSysctl`](super::ProcSysctl) serves over rtnetlink instead of `/proc/sys`.
//!
//! Why: proc keeps one dentry tree for `/proc/sys` and tells the namespaces' `net/ipv4` and
//! `net/ipv6` directories apart with a compare callback, so looking one of them up walks past
//! the entry of every other namespace that has looked there. On a host with a thousand
//! containers a first open under `/proc/sys/net/ipv4` or `…/ipv6` costs about a millisecond,
//! and the host namespace's own entry, created long before, sits at the far end of that chain
//! for every open; a netlink request costs tens of microseconds at any container count.
//!
//! Only keys whose netlink and proc forms are the same value with the same effect are here:
//! reads of the namespace-wide forwarding switches (netconf) and of a few per-device settings
//! (link messages), and one write, `net/ipv4/conf/<dev>/arp_notify`, which the kernel applies
//! from `RTM_SETLINK` exactly as from proc (keys whose proc write has side effects, such as
//! `forwarding` or `rp_filter`, stay on proc). Anything else, and any netlink failure, goes
//! through `/proc/sys` as before.

use crate::error::KernelError;
use crate::netlink::{IpFamily, RtnlSocket};

/// `IPV4_DEVCONF_ARP_NOTIFY` (linux/ip.h), 1-based.
const IPV4_DEVCONF_ARP_NOTIFY: u16 = 22;

/// A per-device IPv6 setting readable from link messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Inet6Setting {
    /// `accept_ra`.
    AcceptRa,
    /// `accept_dad`.
    AcceptDad,
}

/// A per-device IPv4 setting, readable from link messages and settable with `RTM_SETLINK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum InetSetting {
    /// `arp_notify`.
    ArpNotify,
}

/// A sysctl key with a netlink form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NetlinkKey<'k> {
    /// `net/ipv4/ip_forward` or `net/ipv6/conf/all/forwarding`.
    Forwarding(IpFamily),
    /// `net/ipv6/conf/<dev>/<setting>` of a real device.
    Inet6 {
        /// The interface name.
        dev: &'k str,
        /// Which setting.
        setting: Inet6Setting,
    },
    /// `net/ipv4/conf/<dev>/<setting>` of a real device.
    Inet {
        /// The interface name.
        dev: &'k str,
        /// Which setting.
        setting: InetSetting,
    },
}

/// The netlink form of a (validated) key, if it has one. `all` and `default` under `conf` are
/// proc's pseudo-devices, not interfaces, and stay on proc (except `all/forwarding`).
pub(super) fn classify(key: &str) -> Option<NetlinkKey<'_>> {
    match key {
        "net/ipv4/ip_forward" => return Some(NetlinkKey::Forwarding(IpFamily::V4)),
        "net/ipv6/conf/all/forwarding" => return Some(NetlinkKey::Forwarding(IpFamily::V6)),
        _ => {}
    }
    let mut parts = key.split('/');
    let (Some("net"), Some(family), Some("conf"), Some(dev), Some(name), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    if dev == "all" || dev == "default" || dev.is_empty() || dev.len() > 15 {
        return None;
    }
    match (family, name) {
        ("ipv6", "accept_ra") => Some(NetlinkKey::Inet6 {
            dev,
            setting: Inet6Setting::AcceptRa,
        }),
        ("ipv6", "accept_dad") => Some(NetlinkKey::Inet6 {
            dev,
            setting: Inet6Setting::AcceptDad,
        }),
        ("ipv4", "arp_notify") => Some(NetlinkKey::Inet {
            dev,
            setting: InetSetting::ArpNotify,
        }),
        _ => None,
    }
}

/// The value as proc would print it (without the newline); `None` when the kernel's answer
/// does not carry it, which sends the caller to proc.
pub(super) fn read(
    sock: &mut RtnlSocket,
    key: NetlinkKey<'_>,
) -> Result<Option<String>, KernelError> {
    let value = match key {
        NetlinkKey::Forwarding(family) => sock.forwarding(family)?,
        NetlinkKey::Inet6 { dev, setting } => sock.inet6_devconf(dev)?.map(|c| match setting {
            Inet6Setting::AcceptRa => c.accept_ra,
            Inet6Setting::AcceptDad => c.accept_dad,
        }),
        NetlinkKey::Inet { dev, setting } => sock.inet_devconf(dev)?.map(|c| match setting {
            InetSetting::ArpNotify => c.arp_notify,
        }),
    };
    Ok(value.map(|v| v.to_string()))
}

/// Writes `value` over netlink when the key is writable that way and the value is a plain
/// non-negative integer (what proc would store for these keys); `Ok(false)` otherwise.
pub(super) fn write(
    sock: &mut RtnlSocket,
    key: NetlinkKey<'_>,
    value: &str,
) -> Result<bool, KernelError> {
    let NetlinkKey::Inet { dev, setting } = key else {
        return Ok(false);
    };
    let Ok(number) = value.parse::<u32>() else {
        return Ok(false);
    };
    if i32::try_from(number).is_err() {
        return Ok(false);
    }
    let id = match setting {
        InetSetting::ArpNotify => IPV4_DEVCONF_ARP_NOTIFY,
    };
    sock.set_inet_devconf(dev, id, number)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keys_with_an_equivalent_netlink_form_are_classified() {
        assert_eq!(
            classify("net/ipv4/ip_forward"),
            Some(NetlinkKey::Forwarding(IpFamily::V4))
        );
        assert_eq!(
            classify("net/ipv6/conf/all/forwarding"),
            Some(NetlinkKey::Forwarding(IpFamily::V6))
        );
        assert_eq!(
            classify("net/ipv6/conf/veth1a2b.10/accept_ra"),
            Some(NetlinkKey::Inet6 {
                dev: "veth1a2b.10",
                setting: Inet6Setting::AcceptRa
            })
        );
        assert_eq!(
            classify("net/ipv6/conf/eth0/accept_dad"),
            Some(NetlinkKey::Inet6 {
                dev: "eth0",
                setting: Inet6Setting::AcceptDad
            })
        );
        assert_eq!(
            classify("net/ipv4/conf/eth0/arp_notify"),
            Some(NetlinkKey::Inet {
                dev: "eth0",
                setting: InetSetting::ArpNotify
            })
        );
        for proc_only in [
            "net/ipv4/conf/all/arp_notify",
            "net/ipv4/conf/default/arp_notify",
            "net/ipv6/conf/default/accept_ra",
            "net/ipv6/conf/all/accept_dad",
            "net/ipv4/conf/all/forwarding",
            "net/ipv4/conf/eth0/forwarding",
            "net/ipv4/conf/eth0/rp_filter",
            "net/ipv6/conf/eth0/enhanced_dad",
            "net/ipv4/conf/eth0/arp_notify/x",
            "net/ipv4/conf/a-name-longer-than-15/arp_notify",
            "net/ipv4/neigh/eth0/arp_notify",
            "net/core/somaxconn",
            "net/ipv4/ip_forward_use_pmtu",
        ] {
            assert_eq!(classify(proc_only), None, "{proc_only}");
        }
    }
}

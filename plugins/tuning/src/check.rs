//! CHECK: every configured value must still hold (132 with the reference's messages otherwise).
//!
//! Sysctl keys are resolved exactly as ADD resolves them (`IFNAME` substituted — the reference
//! forgets to). Promiscuous mode is only required when it is configured on: ADD leaves it alone
//! otherwise, so a later plugin may set it.

use cni_core::CniError;
use cni_kernel::netlink::{Netlink, format_mac};
use cni_kernel::sysctl::Sysctl;

use crate::config::TuningConfig;
use crate::error;
use crate::sysctls::same_value;

/// Compares `cfg` with the namespace `nl` and `sys` work in.
pub fn check(
    cfg: &TuningConfig,
    ifname: &str,
    nl: &mut dyn Netlink,
    sys: &mut dyn Sysctl,
) -> Result<(), CniError> {
    for e in &cfg.sysctls {
        let path = format!("/proc/sys/{}", e.key);
        let current = match sys.read(&e.key) {
            Ok(v) => v,
            // Nothing to compare with (e.g. net/ipv4/route/flush).
            Err(err) if error::is_write_only(&err) => continue,
            Err(err) if error::is_gone(&err) => {
                return Err(error::drift(format!(
                    "Error: Tuning configured value of {path} is {}, but {path} does not exist",
                    e.value
                )));
            }
            Err(err) => return Err(error::kernel(&format!("failed to read {path}"), &err)),
        };
        if !same_value(&e.value, &current) {
            return Err(error::drift(format!(
                "Error: Tuning configured value of {path} is {}, current value is {current}",
                e.value
            )));
        }
    }
    let s = &cfg.link;
    if s.is_empty() {
        return Ok(());
    }
    let link = match nl.link_by_name(ifname) {
        Ok(l) => l,
        Err(e) if error::is_gone(&e) => {
            return Err(error::drift(format!("Cannot find container link {ifname}")));
        }
        Err(e) => return Err(error::kernel(&format!("failed to get {ifname:?}"), &e)),
    };
    if let Some(mac) = s.mac
        && format_mac(&mac) != link.mac
    {
        return Err(error::drift(format!(
            "Error: Tuning configured Ethernet of {ifname} is {}, current value is {}",
            format_mac(&mac),
            link.mac
        )));
    }
    if s.promisc && !link.promisc {
        return Err(error::drift(format!(
            "Error: Tuning link {ifname} configured promisc is true, current value is 0"
        )));
    }
    if let Some(mtu) = s.mtu
        && mtu != link.mtu
    {
        return Err(error::drift(format!(
            "Error: Tuning configured MTU of {ifname} is {mtu}, current value is {}",
            link.mtu
        )));
    }
    if let Some(on) = s.allmulti
        && on != link.allmulti
    {
        return Err(error::drift(format!(
            "Error: Tuning configured all-multicast mode of {ifname} is {on}, current value is {}",
            link.allmulti
        )));
    }
    if let Some(len) = s.txqlen
        && len != link.txqlen
    {
        return Err(error::drift(format!(
            "Error: Tuning configured Transmit Queue Length of {ifname} is {len}, current value is {}",
            link.txqlen
        )));
    }
    Ok(())
}

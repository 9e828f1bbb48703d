//! What an ADD did so far, so a failure undoes exactly that, in reverse order.

use cni_kernel::netlink::Netlink;
use cni_kernel::sysctl::Sysctl;
use ipnetwork::IpNetwork;

use crate::ports::{Ipam, Masquerade, SpoofChecker};

/// One undoable step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A link this ADD created in the host netns (a veth takes its peer along).
    HostLink(u32),
    /// The bridge, when this ADD created it. Removed only while no other port uses it: a
    /// concurrent ADD may have attached to it meanwhile.
    Bridge(u32),
    /// A gateway address this ADD put on the bridge (or its VLAN interface), with the bridge's
    /// index; kept while other ports use the bridge.
    BridgeAddress(u32, u32, IpNetwork),
    /// Promiscuous mode this ADD turned on.
    Promisc(u32),
    /// A link this ADD set up.
    LinkUp(u32),
    /// A host sysctl this ADD changed, with its old value.
    HostSysctl(String, String),
    /// The IPAM reservation.
    Ipam,
    /// The masquerade rules.
    Masquerade,
    /// The MAC spoof-check rules.
    SpoofCheck,
}

/// True when some link is still a port of `bridge`.
fn bridge_in_use(host: &mut dyn Netlink, bridge: u32) -> bool {
    match host.links() {
        Ok(links) => links.iter().any(|l| l.master == Some(bridge)),
        // Unknown: keep it rather than break somebody's network.
        Err(_) => true,
    }
}

/// Steps in the order they were done.
#[derive(Debug, Default)]
pub struct Journal {
    steps: Vec<Step>,
}

/// What undoing needs.
pub struct Undoer<'a> {
    /// Host netlink.
    pub host: &'a mut dyn Netlink,
    /// Host sysctls.
    pub host_sysctl: &'a mut dyn Sysctl,
    /// IPAM.
    pub ipam: &'a dyn Ipam,
    /// Masquerade.
    pub masq: &'a dyn Masquerade,
    /// Spoof check teardown.
    pub spoof: &'a dyn SpoofChecker,
}

impl Journal {
    /// Records a step.
    pub fn push(&mut self, step: Step) {
        self.steps.push(step);
    }

    /// The steps so far.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Undoes every step, newest first, carrying on past failures (reported on stderr: the
    /// ADD's own error is the one the runtime must see).
    pub fn undo(self, u: &mut Undoer<'_>) {
        for step in self.steps.into_iter().rev() {
            let outcome = match &step {
                Step::HostLink(i) => u.host.delete_link(*i).map_err(|e| e.to_string()),
                Step::Bridge(br) => match bridge_in_use(u.host, *br) {
                    true => Ok(()),
                    false => u.host.delete_link(*br).map_err(|e| e.to_string()),
                },
                Step::BridgeAddress(br, i, a) => match bridge_in_use(u.host, *br) {
                    true => Ok(()),
                    false => u.host.del_address(*i, *a).map_err(|e| e.to_string()),
                },
                Step::Promisc(i) => u.host.set_promisc(*i, false).map_err(|e| e.to_string()),
                Step::LinkUp(i) => u.host.set_link_up(*i, false).map_err(|e| e.to_string()),
                Step::HostSysctl(k, v) => u.host_sysctl.write(k, v).map_err(|e| e.to_string()),
                Step::Ipam => u.ipam.del().map_err(|e| e.to_string()),
                Step::Masquerade => u.masq.teardown().map_err(|e| e.to_string()),
                Step::SpoofCheck => u.spoof.teardown().map_err(|e| e.to_string()),
            };
            if let Err(e) = outcome {
                eprintln!("rollback of {step:?} failed: {e}");
            }
        }
    }
}

//! Masquerade teardown without an iptables exec, over nf_tables netlink (see [`crate::nfnl`]):
//! the attachment's `POSTROUTING` jumps, its chain's rules and the chain go in one
//! transaction. Reading `nat` with `iptables-save` costs in proportion to the number of
//! containers (every chain, every rule); this reads `POSTROUTING` and asks for one chain.

use crate::NetfilterError;
use crate::iptables::IpFamily;
use crate::nfnl::{Deletion, NfRules};

/// The table masquerade lives in.
pub(crate) const NAT: &str = "nat";
const POSTROUTING: &str = "POSTROUTING";

/// What the netlink teardown of one family found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The jumps, the rules and the chain were deleted.
    Removed,
    /// nf_tables holds neither the chain nor a jump to it.
    Absent,
}

/// Delete `chain` with its rules and `POSTROUTING`'s jumps to it, in one transaction. An error
/// (a jump from another chain keeps the chain busy, say) changes nothing.
pub(crate) fn teardown_family(
    nf: &dyn NfRules,
    family: IpFamily,
    chain: &str,
) -> Result<Outcome, NetfilterError> {
    let jumps: Vec<u64> = nf
        .list(family, NAT, POSTROUTING, None)?
        .iter()
        .filter(|r| r.jump_target() == Some(chain))
        .map(|r| r.handle)
        .collect();
    if !nf.has_chain(family, NAT, chain)? {
        if jumps.is_empty() {
            return Ok(Outcome::Absent);
        }
        // A jump cannot outlive its target; the tools will sort out whatever this is.
        return Err(NetfilterError::RuleMissing {
            what: format!("chain {chain} that POSTROUTING jumps to"),
        });
    }
    let mut steps: Vec<Deletion<'_>> = jumps
        .into_iter()
        .map(|handle| Deletion::Rule {
            chain: POSTROUTING,
            handle,
        })
        .collect();
    steps.push(Deletion::Flush { chain });
    steps.push(Deletion::Chain { chain });
    nf.delete_all(family, NAT, &steps)?;
    Ok(Outcome::Removed)
}

#[cfg(test)]
mod tests;

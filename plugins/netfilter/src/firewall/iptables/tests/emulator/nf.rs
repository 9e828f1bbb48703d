//! The emulated tables seen through nf_tables netlink: rules encoded the way iptables-nft
//! writes them, with handles that stay the same while a rule exists.

use std::hash::{DefaultHasher, Hash, Hasher};

use super::{Emulator, index, lock};
use crate::NetfilterError;
use crate::iptables::{IpFamily, SavedTable};
use crate::nfnl::{Deletion, NfRules, NftRule, rule_from_args};

/// A handle derived from the rule itself (and which of its identical copies it is).
fn handle(chain: &str, args: &[String], copy: usize) -> u64 {
    let mut h = DefaultHasher::new();
    (chain, args, copy).hash(&mut h);
    h.finish() >> 1
}

/// `(handle, position in t.rules)` of every rule of `chain`.
fn handles(t: &SavedTable, chain: &str) -> Vec<(u64, usize)> {
    let mut seen: Vec<&[String]> = Vec::new();
    let mut out = Vec::new();
    for (i, rule) in t.rules.iter().enumerate().filter(|(_, r)| r.chain == chain) {
        let copy = seen.iter().filter(|a| **a == rule.args.as_slice()).count();
        seen.push(&rule.args);
        out.push((handle(chain, &rule.args, copy), i));
    }
    out
}

fn family_name(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "v4",
        IpFamily::V6 => "v6",
    }
}

impl Emulator {
    /// Every netlink call after this one fails (a kernel without nf_tables, say).
    pub(crate) fn break_nf(&self) {
        *lock(&self.nf_broken) = true;
    }

    /// The netlink calls so far (`list v4 FORWARD`, `delete v4 CNI-FORWARD 2`), emptied.
    pub(crate) fn take_nf_calls(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.nf_calls))
    }

    fn nf_call(&self, line: String) -> Result<(), NetfilterError> {
        lock(&self.nf_calls).push(line);
        if *lock(&self.nf_broken) {
            return Err(NetfilterError::nfnl(
                "emulated",
                nix::errno::Errno::EPROTONOSUPPORT as i32,
            ));
        }
        Ok(())
    }
}

impl NfRules for Emulator {
    fn list(
        &self,
        family: IpFamily,
        _table: &str,
        chain: &str,
        limit: Option<usize>,
    ) -> Result<Vec<NftRule>, NetfilterError> {
        self.nf_call(format!("list {} {chain}", family_name(family)))?;
        let tables = lock(&self.tables);
        let t = &tables[index(family)];
        let rules = handles(t, chain).into_iter().map(|(handle, i)| {
            let words: Vec<&str> = t.rules[i].args.iter().map(String::as_str).collect();
            rule_from_args(handle, &words)
        });
        Ok(rules.take(limit.unwrap_or(usize::MAX)).collect())
    }

    fn has_chain(
        &self,
        family: IpFamily,
        _table: &str,
        chain: &str,
    ) -> Result<bool, NetfilterError> {
        self.nf_call(format!("has {} {chain}", family_name(family)))?;
        Ok(lock(&self.tables)[index(family)].has_chain(chain))
    }

    fn create_chain(
        &self,
        family: IpFamily,
        _table: &str,
        chain: &str,
    ) -> Result<bool, NetfilterError> {
        self.nf_call(format!("create {} {chain}", family_name(family)))?;
        let mut tables = lock(&self.tables);
        let t = &mut tables[index(family)];
        if t.has_chain(chain) {
            return Ok(false);
        }
        t.chains.push(chain.to_owned());
        Ok(true)
    }

    fn delete_all(
        &self,
        family: IpFamily,
        _table: &str,
        steps: &[Deletion<'_>],
    ) -> Result<(), NetfilterError> {
        let rules = steps
            .iter()
            .filter(|s| matches!(s, Deletion::Rule { .. }))
            .count();
        self.nf_call(format!(
            "delete {} rules {rules} chains {}",
            family_name(family),
            steps.len() - rules
        ))?;
        let fail = |errno: nix::errno::Errno| NetfilterError::nfnl("delete rules", errno as i32);
        let mut tables = lock(&self.tables);
        // All or nothing: work on a copy; handles refer to the table as it was.
        let mut next = tables[index(family)].clone();
        let original = tables[index(family)].clone();
        let mut gone = Vec::new();
        for step in steps {
            match *step {
                Deletion::Rule { chain, handle } => {
                    let present = handles(&original, chain);
                    let (_, i) = present
                        .iter()
                        .find(|(p, _)| *p == handle)
                        .ok_or_else(|| fail(nix::errno::Errno::ENOENT))?;
                    gone.push(*i);
                }
                Deletion::Flush { chain } => {
                    gone.extend(handles(&original, chain).into_iter().map(|(_, i)| i));
                }
                Deletion::Chain { chain } => {
                    let left = original.rules.iter().enumerate().any(|(i, r)| {
                        !gone.contains(&i) && (r.chain == chain || r.target() == Some(chain))
                    });
                    if !original.has_chain(chain) {
                        return Err(fail(nix::errno::Errno::ENOENT));
                    }
                    if left {
                        return Err(fail(nix::errno::Errno::EBUSY));
                    }
                    next.chains.retain(|c| c != chain);
                }
            }
        }
        gone.sort_unstable();
        gone.dedup();
        for i in gone.into_iter().rev() {
            next.rules.remove(i);
        }
        tables[index(family)] = next;
        Ok(())
    }
}

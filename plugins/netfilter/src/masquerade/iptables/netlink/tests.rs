//! The netlink teardown on a small in-memory nat table, and the backend choosing between it and
//! the tools.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::*;
use crate::exec::FakeRunner;
use crate::masquerade::MasqueradeBackend;
use crate::masquerade::iptables::IptablesMasquerade;
use crate::names;
use crate::nfnl::{NftRule, rule_from_args};

/// nat chains per family: name → rules. Deletions are all-or-nothing like the kernel's.
#[derive(Default)]
struct FakeNat {
    chains: Mutex<BTreeMap<(u8, String), Vec<NftRule>>>,
    next: Mutex<u64>,
    calls: Mutex<Vec<String>>,
}

fn fam(family: IpFamily) -> u8 {
    match family {
        IpFamily::V4 => 4,
        IpFamily::V6 => 6,
    }
}

fn enoent() -> NetfilterError {
    NetfilterError::nfnl("fake", nix::errno::Errno::ENOENT as i32)
}

impl FakeNat {
    fn chain(&self, family: IpFamily, chain: &str) {
        let mut chains = self.chains.lock().unwrap();
        chains.entry((fam(family), chain.to_owned())).or_default();
    }

    fn rule(&self, family: IpFamily, chain: &str, args: &[&str]) {
        let mut next = self.next.lock().unwrap();
        *next += 1;
        let mut chains = self.chains.lock().unwrap();
        let rules = chains.entry((fam(family), chain.to_owned())).or_default();
        rules.push(rule_from_args(*next, args));
    }

    fn names(&self, family: IpFamily) -> Vec<String> {
        let chains = self.chains.lock().unwrap();
        chains
            .iter()
            .filter(|((f, _), _)| *f == fam(family))
            .map(|((_, c), rules)| format!("{c}:{}", rules.len()))
            .collect()
    }
}

impl NfRules for FakeNat {
    fn list(
        &self,
        family: IpFamily,
        _table: &str,
        chain: &str,
        limit: Option<usize>,
    ) -> Result<Vec<NftRule>, NetfilterError> {
        self.calls.lock().unwrap().push(format!("list {chain}"));
        let chains = self.chains.lock().unwrap();
        let rules = chains.get(&(fam(family), chain.to_owned())).cloned();
        Ok(rules
            .unwrap_or_default()
            .into_iter()
            .take(limit.unwrap_or(usize::MAX))
            .collect())
    }

    fn has_chain(
        &self,
        family: IpFamily,
        _table: &str,
        chain: &str,
    ) -> Result<bool, NetfilterError> {
        let chains = self.chains.lock().unwrap();
        Ok(chains.contains_key(&(fam(family), chain.to_owned())))
    }

    fn create_chain(
        &self,
        family: IpFamily,
        _table: &str,
        chain: &str,
    ) -> Result<bool, NetfilterError> {
        self.calls.lock().unwrap().push(format!("create {chain}"));
        let mut chains = self.chains.lock().unwrap();
        let key = (fam(family), chain.to_owned());
        if chains.contains_key(&key) {
            return Ok(false);
        }
        chains.insert(key, Vec::new());
        Ok(true)
    }

    fn delete_all(
        &self,
        family: IpFamily,
        _table: &str,
        steps: &[Deletion<'_>],
    ) -> Result<(), NetfilterError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("delete {}", steps.len()));
        let mut chains = self.chains.lock().unwrap();
        let mut next = chains.clone();
        for step in steps {
            match *step {
                Deletion::Rule { chain, handle } => {
                    let rules = next
                        .get_mut(&(fam(family), chain.to_owned()))
                        .ok_or_else(enoent)?;
                    let at = rules
                        .iter()
                        .position(|r| r.handle == handle)
                        .ok_or_else(enoent)?;
                    rules.remove(at);
                }
                Deletion::Flush { chain } => {
                    next.get_mut(&(fam(family), chain.to_owned()))
                        .ok_or_else(enoent)?
                        .clear();
                }
                Deletion::Chain { chain } => {
                    let key = (fam(family), chain.to_owned());
                    let busy = next.get(&key).is_none_or(|r| !r.is_empty())
                        || next
                            .values()
                            .flatten()
                            .any(|r| r.jump_target() == Some(chain));
                    if busy {
                        return Err(NetfilterError::nfnl(
                            "fake",
                            nix::errno::Errno::EBUSY as i32,
                        ));
                    }
                    next.remove(&key);
                }
            }
        }
        *chains = next;
        Ok(())
    }
}

const NET: &str = "cnixnet";
const CID: &str = "ctr1";

/// What `setup` leaves for `CID` in `family`, plus another attachment's chain and jump.
fn populated() -> (Arc<FakeNat>, String) {
    let nat = Arc::new(FakeNat::default());
    let chain = names::chain_name("", NET, CID);
    let other = names::chain_name("", NET, "ctr2");
    nat.chain(IpFamily::V4, "POSTROUTING");
    for (c, ip) in [(&chain, "10.99.0.2/32"), (&other, "10.99.0.3/32")] {
        nat.rule(
            IpFamily::V4,
            c,
            &[
                "-d",
                "10.99.0.0/24",
                "-m",
                "comment",
                "--comment",
                "x",
                "-j",
                "ACCEPT",
            ],
        );
        nat.rule(
            IpFamily::V4,
            c,
            &[
                "!",
                "-d",
                "224.0.0.0/4",
                "-m",
                "comment",
                "--comment",
                "x",
                "-j",
                "MASQUERADE",
            ],
        );
        nat.rule(
            IpFamily::V4,
            "POSTROUTING",
            &["-s", ip, "-m", "comment", "--comment", "x", "-j", c],
        );
    }
    (nat, chain)
}

#[test]
fn removes_the_jump_the_rules_and_the_chain_in_one_transaction() {
    let (nat, chain) = populated();
    let other = names::chain_name("", NET, "ctr2");
    assert_eq!(
        teardown_family(nat.as_ref(), IpFamily::V4, &chain).unwrap(),
        Outcome::Removed
    );
    assert_eq!(
        nat.calls.lock().unwrap().clone(),
        ["list POSTROUTING", "delete 3"]
    );
    assert_eq!(
        nat.names(IpFamily::V4),
        [format!("{other}:2"), "POSTROUTING:1".to_owned()]
    );
    assert_eq!(
        teardown_family(nat.as_ref(), IpFamily::V4, &chain).unwrap(),
        Outcome::Absent
    );
    assert_eq!(
        teardown_family(nat.as_ref(), IpFamily::V6, &chain).unwrap(),
        Outcome::Absent
    );
}

#[test]
fn a_jump_from_elsewhere_keeps_the_chain_busy_and_nothing_changes() {
    let (nat, chain) = populated();
    nat.rule(IpFamily::V4, "OUTPUT", &["-j", &chain]);
    let before = nat.names(IpFamily::V4);
    assert!(teardown_family(nat.as_ref(), IpFamily::V4, &chain).is_err());
    assert_eq!(nat.names(IpFamily::V4), before);
}

#[test]
fn the_backend_runs_no_tool_when_netlink_did_it_and_the_tools_otherwise() {
    // Trusted absence (iptables-nft): nothing for v6 either, no tool at all.
    let (nat, _) = populated();
    let fake = Arc::new(FakeRunner::new());
    let b = IptablesMasquerade::new(fake.clone()).with_nf_rules(nat.clone(), true);
    b.teardown(NET, CID, "eth0").unwrap();
    assert_eq!(fake.command_lines(), Vec::<String>::new());
    assert_eq!(nat.names(IpFamily::V4).len(), 2);

    // Untrusted absence (a wrapper in front of iptables): the tools look in v6.
    let (nat, _) = populated();
    let fake = Arc::new(FakeRunner::new());
    let b = IptablesMasquerade::new(fake.clone()).with_nf_rules(nat, false);
    b.teardown(NET, CID, "eth0").unwrap();
    assert_eq!(fake.command_lines(), ["ip6tables-save -t nat"]);

    // A failing transaction: the tools do that family.
    let (nat, chain) = populated();
    nat.rule(IpFamily::V4, "OUTPUT", &["-j", &chain]);
    let fake = Arc::new(FakeRunner::new());
    let b = IptablesMasquerade::new(fake.clone()).with_nf_rules(nat, true);
    b.teardown(NET, CID, "eth0").unwrap();
    assert_eq!(fake.command_lines(), ["iptables-save -t nat"]);
}

#[test]
fn a_known_nft_setup_creates_the_chain_over_netlink_and_appends_without_n() {
    use crate::exec::CommandOutput;
    let nat = Arc::new(FakeNat::default());
    let fake = Arc::new(FakeRunner::new());
    let b = IptablesMasquerade::new(fake.clone()).with_nf_rules(nat.clone(), true);
    let ips: Vec<ipnetwork::IpNetwork> = vec!["10.99.0.2/24".parse().unwrap()];
    b.setup(NET, CID, "eth0", &ips).unwrap();
    let chain = names::chain_name("", NET, CID);
    assert_eq!(nat.names(IpFamily::V4), [format!("{chain}:0")]);
    let calls = fake.calls();
    assert_eq!(calls.len(), 1, "{:?}", fake.command_lines());
    let batch = calls[0].stdin.clone().unwrap_or_default();
    assert!(!batch.contains("\n-N "), "{batch}");
    assert!(batch.contains(&format!("\n-A {chain} ")), "{batch}");

    // The chain exists already (an interrupted ADD): the reading path repairs.
    let fake = Arc::new(FakeRunner::new());
    let b = IptablesMasquerade::new(fake.clone()).with_nf_rules(nat.clone(), true);
    b.setup(NET, CID, "eth0", &ips).unwrap();
    assert_eq!(fake.command_lines()[0], "iptables-save -t nat");

    // The batch fails after the chain was made: the chain goes again, then the tools retry.
    let nat = Arc::new(FakeNat::default());
    let fake = Arc::new(FakeRunner::new());
    fake.reply(
        "iptables-restore",
        CommandOutput {
            status: Some(1),
            stdout: String::new(),
            stderr: "iptables-restore: line 2 failed".into(),
        },
    );
    let b = IptablesMasquerade::new(fake.clone()).with_nf_rules(nat.clone(), true);
    b.setup(NET, CID, "eth0", &ips).unwrap();
    assert_eq!(nat.names(IpFamily::V4), Vec::<String>::new(), "rolled back");
    assert_eq!(nat.calls.lock().unwrap().last().unwrap(), "delete 2");

    // Not known to be iptables-nft: the `-N` batch as before, nothing over netlink.
    let nat = Arc::new(FakeNat::default());
    let fake = Arc::new(FakeRunner::new());
    let b = IptablesMasquerade::new(fake.clone()).with_nf_rules(nat.clone(), false);
    b.setup(NET, CID, "eth0", &ips).unwrap();
    assert!(
        fake.calls()[0]
            .stdin
            .clone()
            .unwrap_or_default()
            .contains("\n-N ")
    );
    assert!(nat.calls.lock().unwrap().is_empty());
}

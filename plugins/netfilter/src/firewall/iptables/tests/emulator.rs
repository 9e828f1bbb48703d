//! A small in-memory `iptables-save` / `iptables-restore --noflush` for the filter table, with the
//! failure semantics the backend relies on (`-N` of an existing chain, `-D` of a missing rule,
//! `-X` of a non-empty or referenced chain, a jump to a missing chain: the whole batch fails and
//! nothing changes), and a hook to play another process between a save and a restore. It also
//! answers nf_tables netlink reads and deletes of the same tables ([`nf`]).

mod nf;

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use crate::NetfilterError;
use crate::exec::{CommandOutput, CommandRunner};
use crate::iptables::{IpFamily, SavedRule, SavedTable, render_args};

const BUILTIN: [&str; 3] = ["INPUT", "FORWARD", "OUTPUT"];
const TARGETS: [&str; 4] = ["ACCEPT", "DROP", "RETURN", "REJECT"];

type Hook = (IpFamily, Box<dyn FnMut(&mut SavedTable) + Send>);

pub(crate) struct Emulator {
    tables: Mutex<[SavedTable; 2]>,
    calls: Mutex<Vec<String>>,
    batches: Mutex<Vec<String>>,
    before_restore: Mutex<Vec<Hook>>,
    missing: Mutex<HashSet<String>>,
    nf_calls: Mutex<Vec<String>>,
    nf_broken: Mutex<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap()
}

fn empty() -> SavedTable {
    SavedTable {
        chains: BUILTIN.iter().map(|c| (*c).to_owned()).collect(),
        rules: Vec::new(),
    }
}

fn index(family: IpFamily) -> usize {
    match family {
        IpFamily::V4 => 0,
        IpFamily::V6 => 1,
    }
}

impl Emulator {
    pub(crate) fn new() -> Emulator {
        Emulator {
            tables: Mutex::new([empty(), empty()]),
            calls: Mutex::new(Vec::new()),
            batches: Mutex::new(Vec::new()),
            before_restore: Mutex::new(Vec::new()),
            missing: Mutex::new(HashSet::new()),
            nf_calls: Mutex::new(Vec::new()),
            nf_broken: Mutex::new(false),
        }
    }

    /// Start from `iptables-save` text.
    pub(crate) fn load(&self, family: IpFamily, save: &str) {
        lock(&self.tables)[index(family)] = SavedTable::parse(save, "filter").unwrap();
    }

    /// The table as `iptables-save -t filter` prints it.
    pub(crate) fn save(&self, family: IpFamily) -> String {
        render(&lock(&self.tables)[index(family)])
    }

    /// Only the `-A` lines and user chains (what an operator compares).
    pub(crate) fn state(&self, family: IpFamily) -> Vec<String> {
        self.save(family)
            .lines()
            .filter(|l| l.starts_with("-A") || (l.starts_with(':') && !l.contains(" ACCEPT ")))
            .map(str::to_owned)
            .collect()
    }

    /// Run `hook` on `family`'s table right before its next restore (another process's change).
    pub(crate) fn before_next_restore(
        &self,
        family: IpFamily,
        hook: impl FnMut(&mut SavedTable) + Send + 'static,
    ) {
        lock(&self.before_restore).push((family, Box::new(hook)));
    }

    pub(crate) fn set_missing(&self, program: &str) {
        lock(&self.missing).insert(program.to_owned());
    }

    /// Calls so far, in order (interleaved when both families run in parallel).
    pub(crate) fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }

    /// The calls of one family's tools, in order.
    pub(crate) fn family_calls(&self, family: IpFamily) -> Vec<String> {
        let v6 = family == IpFamily::V6;
        self.calls()
            .into_iter()
            .filter(|c| c.starts_with("ip6") == v6)
            .collect()
    }

    pub(crate) fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.calls))
    }

    /// Restore inputs received, sorted.
    pub(crate) fn take_batches(&self) -> Vec<String> {
        let mut batches = std::mem::take(&mut *lock(&self.batches));
        batches.sort();
        batches
    }
}

pub(crate) fn render(t: &SavedTable) -> String {
    let mut chains: Vec<&String> = t.chains.iter().collect();
    chains.sort_by_key(|c| {
        (
            !BUILTIN.contains(&c.as_str()),
            BUILTIN.iter().position(|b| b == c),
            (*c).clone(),
        )
    });
    let mut out = String::from("*filter\n");
    for c in &chains {
        let policy = if BUILTIN.contains(&c.as_str()) {
            "ACCEPT"
        } else {
            "-"
        };
        out.push_str(&format!(":{c} {policy} [0:0]\n"));
    }
    for c in &chains {
        for r in t.rules_in(c) {
            out.push_str(&format!("-A {c} {}\n", render_args(&r.args)));
        }
    }
    out.push_str("COMMIT\n");
    out
}

fn apply(t: &mut SavedTable, batch: &str) -> Result<(), String> {
    for (n, line) in batch.lines().enumerate() {
        let fail = |why: &str| format!("iptables-restore: line {} failed: {why}", n + 1);
        if line.starts_with('*') || line == "COMMIT" {
            continue;
        }
        let mut words = line.splitn(3, ' ');
        let (op, chain) = (
            words.next().unwrap_or_default(),
            words.next().unwrap_or_default().to_owned(),
        );
        let mut rest_text = words.next().unwrap_or_default();
        if op == "-I" {
            rest_text = rest_text.split_once(' ').map_or("", |(_, r)| r);
        }
        let rest = if rest_text.is_empty() {
            Vec::new()
        } else {
            let parsed =
                SavedTable::parse(&format!("*filter\n-A X {rest_text}\nCOMMIT\n"), "filter")
                    .map_err(|e| fail(&e.to_string()))?;
            parsed.rules[0].args.clone()
        };
        let exists = t.has_chain(&chain);
        match op {
            "-N" if exists => return Err(fail("Chain already exists.")),
            "-N" => t.chains.push(chain),
            "-X" => {
                let used = t
                    .rules
                    .iter()
                    .any(|r| r.chain == chain || r.target() == Some(chain.as_str()));
                if !exists || used {
                    return Err(fail("Directory not empty / No chain by that name"));
                }
                t.chains.retain(|c| *c != chain);
            }
            "-A" | "-I" | "-D" | "-C" if !exists => {
                return Err(fail("No chain/target/match by that name."));
            }
            "-C" => {
                if !t.rules.iter().any(|r| r.chain == chain && r.args == rest) {
                    return Err(fail(
                        "Bad rule (does a matching rule exist in that chain?).",
                    ));
                }
            }
            "-A" | "-I" => {
                let (position, args) = if op == "-I" {
                    (Some(()), rest)
                } else {
                    (None, rest)
                };
                let rule = SavedRule {
                    chain: chain.clone(),
                    args,
                };
                if let Some(target) = rule.target()
                    && !TARGETS.contains(&target)
                    && !t.has_chain(target)
                {
                    return Err(fail("Couldn't load target"));
                }
                let at = match position {
                    Some(()) => t
                        .rules
                        .iter()
                        .position(|r| r.chain == chain)
                        .unwrap_or(t.rules.len()),
                    None => t
                        .rules
                        .iter()
                        .rposition(|r| r.chain == chain)
                        .map_or(t.rules.len(), |i| i + 1),
                };
                t.rules.insert(at, rule);
            }
            "-D" => {
                let at = t
                    .rules
                    .iter()
                    .position(|r| r.chain == chain && r.args == rest)
                    .ok_or_else(|| fail("Bad rule (does a matching rule exist in that chain?)."))?;
                t.rules.remove(at);
            }
            other => return Err(fail(&format!("unknown op {other}"))),
        }
    }
    Ok(())
}

impl CommandRunner for Emulator {
    fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<CommandOutput, NetfilterError> {
        lock(&self.calls).push(
            std::iter::once(program)
                .chain(args.iter().copied())
                .collect::<Vec<_>>()
                .join(" "),
        );
        if lock(&self.missing).contains(program) {
            return Err(NetfilterError::ProgramNotFound {
                program: program.to_owned(),
            });
        }
        let family = if program.starts_with("ip6") {
            IpFamily::V6
        } else {
            IpFamily::V4
        };
        let ok = |stdout: String| {
            Ok(CommandOutput {
                status: Some(0),
                stdout,
                stderr: String::new(),
            })
        };
        if program.ends_with("-save") {
            return ok(self.save(family));
        }
        if program.ends_with("-restore") {
            let batch = stdin.unwrap_or_default();
            lock(&self.batches).push(batch.to_owned());
            let mut tables = lock(&self.tables);
            let table = &mut tables[index(family)];
            let hooks = std::mem::take(&mut *lock(&self.before_restore));
            let (mine, others): (Vec<Hook>, Vec<Hook>) =
                hooks.into_iter().partition(|(f, _)| *f == family);
            *lock(&self.before_restore) = others;
            for (_, mut hook) in mine {
                hook(table);
            }
            let mut next = table.clone();
            return match apply(&mut next, batch) {
                Ok(()) => {
                    *table = next;
                    ok(String::new())
                }
                Err(stderr) => Ok(CommandOutput {
                    status: Some(1),
                    stdout: String::new(),
                    stderr,
                }),
            };
        }
        ok(String::new())
    }

    fn has_program(&self, program: &str) -> bool {
        !lock(&self.missing).contains(program)
    }
}

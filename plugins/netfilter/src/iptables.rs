//! The iptables layer: per-family tool names, one `iptables-save` read and one atomic
//! `iptables-restore --noflush` write per operation, and the batch builder shared by the plugins.
//!
//! A `:CHAIN - [0:0]` declaration in a `--noflush` batch creates the chain when it is missing and
//! **flushes it when it exists** (iptables-legacy and iptables-nft 1.8.9 alike), so "declare, then
//! append the wanted rules" rewrites a chain to exactly the wanted content in one transaction.

mod save;

use std::net::IpAddr;
use std::sync::Arc;

pub use save::{SavedRule, SavedTable, render_args};

use crate::NetfilterError;
use crate::exec::{self, CommandRunner, run_checked};

/// An IP family: selects `iptables` vs `ip6tables` and family-specific constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpFamily {
    /// Both families, v4 first.
    pub const ALL: [IpFamily; 2] = [IpFamily::V4, IpFamily::V6];

    /// The family of an address.
    pub fn of(ip: &IpAddr) -> IpFamily {
        match ip {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    /// `iptables` / `ip6tables`.
    pub fn iptables(self) -> &'static str {
        match self {
            IpFamily::V4 => exec::IPTABLES,
            IpFamily::V6 => exec::IP6TABLES,
        }
    }

    /// `iptables-save` / `ip6tables-save`.
    pub fn save_program(self) -> &'static str {
        match self {
            IpFamily::V4 => exec::IPTABLES_SAVE,
            IpFamily::V6 => exec::IP6TABLES_SAVE,
        }
    }

    /// `iptables-restore` / `ip6tables-restore`.
    pub fn restore_program(self) -> &'static str {
        match self {
            IpFamily::V4 => exec::IPTABLES_RESTORE,
            IpFamily::V6 => exec::IP6TABLES_RESTORE,
        }
    }

    /// The multicast range the masquerade rules leave alone.
    pub fn multicast(self) -> &'static str {
        match self {
            IpFamily::V4 => "224.0.0.0/4",
            IpFamily::V6 => "ff00::/8",
        }
    }

    /// Host prefix length (32 / 128).
    pub fn host_prefix(self) -> u8 {
        match self {
            IpFamily::V4 => 32,
            IpFamily::V6 => 128,
        }
    }
}

/// One family's iptables tools, run through a [`CommandRunner`].
#[derive(Clone)]
pub struct Iptables {
    runner: Arc<dyn CommandRunner>,
    family: IpFamily,
}

impl std::fmt::Debug for Iptables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iptables")
            .field("family", &self.family)
            .finish_non_exhaustive()
    }
}

impl Iptables {
    /// The tools of `family`.
    pub fn new(runner: Arc<dyn CommandRunner>, family: IpFamily) -> Self {
        Self { runner, family }
    }

    /// The family these tools act on.
    pub fn family(&self) -> IpFamily {
        self.family
    }

    /// `iptables-save -t <table>`, parsed.
    pub fn save(&self, table: &str) -> Result<SavedTable, NetfilterError> {
        let program = self.family.save_program();
        let out = run_checked(self.runner.as_ref(), program, &["-t", table], None)?;
        SavedTable::parse(&out.stdout, table).map_err(|e| match e {
            NetfilterError::Parse { detail, .. } => NetfilterError::Parse {
                program: program.to_owned(),
                detail,
            },
            other => other,
        })
    }

    /// `iptables-restore --noflush -w 30` with the batch on stdin: all lines apply or none do.
    pub fn restore(&self, batch: &RestoreBatch) -> Result<(), NetfilterError> {
        let program = self.family.restore_program();
        run_checked(
            self.runner.as_ref(),
            program,
            &exec::restore_args(),
            Some(&batch.render()),
        )?;
        Ok(())
    }

    /// `iptables -w 30 -t nat -S POSTROUTING`: can this family's iptables talk to the kernel?
    pub fn probe(&self) -> Result<(), NetfilterError> {
        let program = self.family.iptables();
        run_checked(
            self.runner.as_ref(),
            program,
            &[
                exec::WAIT,
                exec::wait_seconds(),
                "-t",
                "nat",
                "-S",
                "POSTROUTING",
            ],
            None,
        )?;
        Ok(())
    }
}

/// Run `op` for each family, in parallel when there are several (the families' tables are
/// independent, and each step is an exec that mostly waits); results in `families` order.
pub(crate) fn per_family<T: Send, E: Send + From<NetfilterError>>(
    families: &[IpFamily],
    op: impl Fn(IpFamily) -> Result<T, E> + Sync,
) -> Vec<(IpFamily, Result<T, E>)> {
    if let [family] = families {
        return vec![(*family, op(*family))];
    }
    std::thread::scope(|scope| {
        let op = &op;
        let running: Vec<_> = families
            .iter()
            .map(|family| (*family, scope.spawn(move || op(*family))))
            .collect();
        running
            .into_iter()
            .map(|(family, handle)| {
                let result = handle.join().unwrap_or_else(|_| {
                    Err(E::from(NetfilterError::Parse {
                        program: family.restore_program().to_owned(),
                        detail: "the worker thread panicked".to_owned(),
                    }))
                });
                (family, result)
            })
            .collect()
    })
}

/// The lines of one `iptables-restore --noflush` transaction on one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreBatch {
    table: String,
    lines: Vec<String>,
}

impl RestoreBatch {
    /// An empty batch for `table`.
    pub fn new(table: &str) -> Self {
        Self {
            table: table.to_owned(),
            lines: Vec::new(),
        }
    }

    /// `:CHAIN - [0:0]` — creates the chain, or flushes it if it exists.
    pub fn declare_chain(&mut self, chain: &str) -> &mut Self {
        self.lines.push(format!(":{chain} - [0:0]"));
        self
    }

    /// `-N CHAIN` — fails the whole batch if the chain exists. A cheap existence probe: a batch
    /// that starts with it applies only when nothing of an earlier run is there.
    pub fn new_chain(&mut self, chain: &str) -> &mut Self {
        self.lines.push(format!("-N {chain}"));
        self
    }

    /// `-C CHAIN args…` — fails the whole batch unless the rule exists. Unlike `-D`, it costs
    /// the kernel nothing, so it serves as a precondition of a batch that skips reading the table.
    pub fn require<S: AsRef<str>>(&mut self, chain: &str, args: &[S]) -> &mut Self {
        self.lines.push(format!("-C {chain} {}", render_args(args)));
        self
    }

    /// `-A CHAIN args…`.
    pub fn append<S: AsRef<str>>(&mut self, chain: &str, args: &[S]) -> &mut Self {
        self.lines.push(format!("-A {chain} {}", render_args(args)));
        self
    }

    /// `-I CHAIN <position> args…` (1-based position).
    pub fn insert<S: AsRef<str>>(&mut self, chain: &str, position: u32, args: &[S]) -> &mut Self {
        self.lines
            .push(format!("-I {chain} {position} {}", render_args(args)));
        self
    }

    /// `-D CHAIN args…` — fails the whole batch if the rule does not exist.
    pub fn delete<S: AsRef<str>>(&mut self, chain: &str, args: &[S]) -> &mut Self {
        self.lines.push(format!("-D {chain} {}", render_args(args)));
        self
    }

    /// `-F CHAIN`.
    pub fn flush_chain(&mut self, chain: &str) -> &mut Self {
        self.lines.push(format!("-F {chain}"));
        self
    }

    /// `-X CHAIN` — the chain must be empty and unreferenced by then.
    pub fn delete_chain(&mut self, chain: &str) -> &mut Self {
        self.lines.push(format!("-X {chain}"));
        self
    }

    /// True when there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The restore input: `*table`, the lines, `COMMIT`.
    pub fn render(&self) -> String {
        let mut out = format!("*{}\n", self.table);
        for line in &self.lines {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str("COMMIT\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::FakeRunner;

    #[test]
    fn batch_renders_restore_syntax() {
        let mut b = RestoreBatch::new("nat");
        assert!(b.is_empty());
        b.declare_chain("C")
            .append(
                "C",
                &[
                    "-d",
                    "10.0.0.0/8",
                    "-m",
                    "comment",
                    "--comment",
                    "a b",
                    "-j",
                    "ACCEPT",
                ],
            )
            .insert("POSTROUTING", 1, &["-j", "C"])
            .delete("POSTROUTING", &["-j", "C"])
            .flush_chain("C")
            .delete_chain("C")
            .new_chain("D")
            .require("FORWARD", &["-j", "D"]);
        assert_eq!(
            b.render(),
            "*nat\n:C - [0:0]\n-A C -d 10.0.0.0/8 -m comment --comment \"a b\" -j ACCEPT\n\
             -I POSTROUTING 1 -j C\n-D POSTROUTING -j C\n-F C\n-X C\n-N D\n-C FORWARD -j D\nCOMMIT\n"
        );
    }

    #[test]
    fn tools_use_family_binaries_and_wait_flag() {
        let fake = Arc::new(FakeRunner::new());
        let v6 = Iptables::new(fake.clone(), IpFamily::V6);
        v6.save("nat").unwrap();
        v6.restore(&RestoreBatch::new("nat")).unwrap();
        v6.probe().unwrap();
        assert_eq!(
            fake.command_lines(),
            [
                "ip6tables-save -t nat",
                "ip6tables-restore --noflush -w 30",
                "ip6tables -w 30 -t nat -S POSTROUTING"
            ]
        );
        assert_eq!(fake.calls()[1].stdin.as_deref(), Some("*nat\nCOMMIT\n"));
    }

    #[test]
    fn restore_failure_carries_stderr() {
        let fake = Arc::new(FakeRunner::new());
        fake.fail(
            "iptables-restore",
            2,
            "iptables-restore v1.8.9 (nf_tables): Chain 'X' does not exist\n",
        );
        let err = Iptables::new(fake, IpFamily::V4)
            .restore(&RestoreBatch::new("nat"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`iptables-restore --noflush -w 30` failed (exit status 2): \
             iptables-restore v1.8.9 (nf_tables): Chain 'X' does not exist"
        );
        assert!(err.is_not_exist());
    }
}

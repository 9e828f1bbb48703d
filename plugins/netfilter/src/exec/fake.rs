//! A recording [`CommandRunner`] with scripted replies, for tests that must not touch netfilter.

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{CommandOutput, CommandRunner};
use crate::NetfilterError;

/// One call the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    /// Program name as passed.
    pub program: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Standard input, if any.
    pub stdin: Option<String>,
}

impl RecordedCall {
    /// `program arg arg…` for compact assertions.
    pub fn command_line(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Replies are consumed in order per program: a call takes the oldest reply scripted for its
/// program, so code that runs the two IP families in parallel threads gets each family's
/// replies whatever the interleaving. A call with no reply left for its program succeeds with
/// empty output.
#[derive(Debug, Default)]
pub struct FakeRunner {
    replies: Mutex<VecDeque<(String, CommandOutput)>>,
    calls: Mutex<Vec<RecordedCall>>,
    missing: Mutex<HashSet<String>>,
}

impl FakeRunner {
    /// A fake with no script: every call succeeds with empty output.
    pub fn new() -> Self {
        Self::default()
    }

    /// Script the next reply: `program` exits 0 printing `stdout`.
    pub fn ok(&self, program: &str, stdout: &str) -> &Self {
        self.reply(
            program,
            CommandOutput {
                status: Some(0),
                stdout: stdout.into(),
                stderr: "".into(),
            },
        )
    }

    /// Script the next reply: `program` exits with `status` printing `stderr`.
    pub fn fail(&self, program: &str, status: i32, stderr: &str) -> &Self {
        self.reply(
            program,
            CommandOutput {
                status: Some(status),
                stdout: "".into(),
                stderr: stderr.into(),
            },
        )
    }

    /// Script an arbitrary reply.
    pub fn reply(&self, program: &str, output: CommandOutput) -> &Self {
        lock(&self.replies).push_back((program.to_owned(), output));
        self
    }

    /// Pretend `program` is not installed: `has_program` is false and running it fails with
    /// [`NetfilterError::ProgramNotFound`].
    pub fn set_missing(&self, program: &str) -> &Self {
        lock(&self.missing).insert(program.to_owned());
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<RecordedCall> {
        lock(&self.calls).clone()
    }

    /// The calls as `program arg…` lines.
    pub fn command_lines(&self) -> Vec<String> {
        self.calls()
            .iter()
            .map(RecordedCall::command_line)
            .collect()
    }

    /// Scripted replies not consumed yet.
    pub fn pending(&self) -> usize {
        lock(&self.replies).len()
    }
}

impl CommandRunner for FakeRunner {
    fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<CommandOutput, NetfilterError> {
        lock(&self.calls).push(RecordedCall {
            program: program.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            stdin: stdin.map(str::to_owned),
        });
        if lock(&self.missing).contains(program) {
            return Err(NetfilterError::ProgramNotFound {
                program: program.to_owned(),
            });
        }
        let mut replies = lock(&self.replies);
        match replies.iter().position(|(p, _)| p == program) {
            Some(at) => Ok(replies.remove(at).map(|(_, out)| out).unwrap_or_default()),
            None => Ok(CommandOutput {
                status: Some(0),
                ..CommandOutput::default()
            }),
        }
    }

    fn has_program(&self, program: &str) -> bool {
        !lock(&self.missing).contains(program)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_in_order_and_records() {
        let fake = FakeRunner::new();
        fake.ok("a", "out").fail("b", 2, "bad");
        assert_eq!(fake.run("a", &["-x"], None).unwrap().stdout, "out");
        assert_eq!(fake.run("b", &[], Some("in")).unwrap().status, Some(2));
        assert!(fake.run("c", &[], None).unwrap().success());
        assert_eq!(fake.command_lines(), ["a -x", "b", "c"]);
        assert_eq!(fake.calls()[1].stdin.as_deref(), Some("in"));
    }

    #[test]
    fn replies_per_program_and_missing() {
        let fake = FakeRunner::new();
        fake.ok("a", "first a")
            .ok("b", "b")
            .ok("a", "second a")
            .set_missing("nft");
        assert_eq!(fake.run("b", &[], None).unwrap().stdout, "b");
        assert_eq!(fake.run("a", &[], None).unwrap().stdout, "first a");
        assert_eq!(fake.run("a", &[], None).unwrap().stdout, "second a");
        assert_eq!(fake.pending(), 0);
        assert!(matches!(
            fake.run("nft", &[], None),
            Err(NetfilterError::ProgramNotFound { .. })
        ));
        assert!(!fake.has_program("nft"));
        assert!(fake.has_program("iptables"));
    }
}

//! Running the netfilter tools: a [`CommandRunner`] trait (program + argv + optional stdin,
//! never a shell), the real implementation over `std::process`, and a scripted fake.

mod fake;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub use fake::{FakeRunner, RecordedCall};

use crate::NetfilterError;

/// `iptables` (IPv4 rule tool).
pub const IPTABLES: &str = "iptables";
/// `ip6tables` (IPv6 rule tool).
pub const IP6TABLES: &str = "ip6tables";
/// `iptables-save`.
pub const IPTABLES_SAVE: &str = "iptables-save";
/// `ip6tables-save`.
pub const IP6TABLES_SAVE: &str = "ip6tables-save";
/// `iptables-restore`.
pub const IPTABLES_RESTORE: &str = "iptables-restore";
/// `ip6tables-restore`.
pub const IP6TABLES_RESTORE: &str = "ip6tables-restore";
/// `nft`.
pub const NFT: &str = "nft";

/// The flag that makes an iptables tool wait for the xtables lock. Never pass it bare (that
/// waits forever): always follow it with [`wait_seconds`], or use [`restore_args`].
pub const WAIT: &str = "-w";

/// The exit status of an iptables tool that gave up waiting for the xtables lock
/// (`RESOURCE_PROBLEM`).
const LOCK_BUSY_STATUS: i32 = 4;

/// How long an iptables tool may wait for the xtables lock, as the argument of [`WAIT`]: the
/// suite's lock timeout ([`cni_core::lock::timeout`], 30 s unless the test hook
/// `CNI_TEST_LOCK_TIMEOUT` shortens it) in whole seconds, rounded up. When it runs out, the
/// tool fails and [`CommandOutput::check`] reports [`NetfilterError::XtablesLockTimeout`].
/// (`iptables-nft` takes no lock and ignores the flag.)
pub fn wait_seconds() -> &'static str {
    static SECONDS: OnceLock<String> = OnceLock::new();
    SECONDS.get_or_init(|| {
        cni_core::lock::timeout_whole_seconds(cni_core::lock::timeout()).to_string()
    })
}

/// `--noflush -w <seconds>`: the arguments of every `iptables-restore` that edits a table.
pub fn restore_args() -> [&'static str; 3] {
    ["--noflush", WAIT, wait_seconds()]
}

/// Directories searched after `PATH`: runtimes sometimes exec plugins with a `PATH` that lacks
/// the `sbin` directories the tools live in.
const FALLBACK_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/sbin",
    "/sbin",
    "/usr/local/bin",
    "/usr/bin",
    "/bin",
];

/// What a finished command left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit code; `None` when killed by a signal.
    pub status: Option<i32>,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
}

impl CommandOutput {
    /// True for exit status 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    /// True when an iptables tool gave up waiting for the xtables lock (`-w <seconds>` ran
    /// out): exit status 4 and a message about the lock.
    pub fn is_xtables_lock_timeout(&self) -> bool {
        self.status == Some(LOCK_BUSY_STATUS) && self.stderr.contains("xtables lock")
    }

    /// `Ok(self)` on success, otherwise [`NetfilterError::CommandFailed`] naming the command
    /// ([`NetfilterError::XtablesLockTimeout`] when it gave up waiting for the xtables lock).
    pub fn check(self, program: &str, args: &[&str]) -> Result<CommandOutput, NetfilterError> {
        if self.success() {
            return Ok(self);
        }
        let mut command = program.to_owned();
        for arg in args {
            command.push(' ');
            command.push_str(arg);
        }
        if self.is_xtables_lock_timeout() {
            return Err(NetfilterError::XtablesLockTimeout {
                command,
                stderr: self.stderr.trim().to_owned(),
            });
        }
        Err(NetfilterError::CommandFailed {
            command,
            status: match self.status {
                Some(code) => format!("exit status {code}"),
                None => "killed by signal".to_owned(),
            },
            stderr: self.stderr.trim().to_owned(),
        })
    }
}

/// Runs one program with an argument vector and optional standard input.
///
/// Implementations must not involve a shell. A program that cannot be found is reported as
/// [`NetfilterError::ProgramNotFound`]; a non-zero exit is *not* an error at this level (see
/// [`CommandOutput::check`]).
pub trait CommandRunner: Send + Sync {
    /// Run `program` with `args`, feeding `stdin` if given, and wait for it.
    fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<CommandOutput, NetfilterError>;

    /// Whether `program` can be found (without running it).
    fn has_program(&self, program: &str) -> bool;
}

/// Run and require success: the common case.
pub(crate) fn run_checked(
    runner: &dyn CommandRunner,
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<CommandOutput, NetfilterError> {
    runner.run(program, args, stdin)?.check(program, args)
}

/// The real runner: `std::process::Command` on the resolved binary, `LC_ALL=C` so error texts
/// stay matchable.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRunner;

impl SystemRunner {
    /// Where `program` would be run from: the first executable named so on `PATH`, then in the
    /// usual `sbin`/`bin` directories.
    pub fn resolve(program: &str) -> Option<PathBuf> {
        if program.contains('/') {
            let path = PathBuf::from(program);
            return is_executable(&path).then_some(path);
        }
        let from_env = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default();
        from_env
            .into_iter()
            .chain(FALLBACK_DIRS.iter().map(PathBuf::from))
            .filter(|dir| dir.is_absolute())
            .map(|dir| dir.join(program))
            .find(|candidate| is_executable(candidate))
    }
}

impl CommandRunner for SystemRunner {
    fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<CommandOutput, NetfilterError> {
        let path =
            SystemRunner::resolve(program).ok_or_else(|| NetfilterError::ProgramNotFound {
                program: program.to_owned(),
            })?;
        let spawn_error = |source: std::io::Error| NetfilterError::Spawn {
            program: program.to_owned(),
            source,
        };
        let mut child = Command::new(&path)
            .args(args)
            .env("LC_ALL", "C")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        // Feed stdin from a second thread so a child that writes a lot before reading all its
        // input cannot deadlock against us.
        let output = std::thread::scope(|scope| {
            let writer = child.stdin.take().map(|mut pipe| {
                let data = stdin.unwrap_or_default().as_bytes();
                scope.spawn(move || pipe.write_all(data))
            });
            let output = child.wait_with_output();
            let written = writer.map(|w| w.join());
            (output, written)
        });
        let (output, written) = output;
        let output = output.map_err(spawn_error)?;
        let result = CommandOutput {
            status: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        // A write error (EPIPE) only matters if the child otherwise claims success.
        if let Some(Ok(Err(e))) = written
            && result.success()
        {
            return Err(spawn_error(e));
        }
        Ok(result)
    }

    fn has_program(&self, program: &str) -> bool {
        SystemRunner::resolve(program).is_some()
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_runner_passes_argv_and_stdin_without_a_shell() {
        let out = SystemRunner.run("cat", &[], Some("a b; $(x)\n")).unwrap();
        assert!(out.success());
        assert_eq!(out.stdout, "a b; $(x)\n");
        let out = SystemRunner.run("echo", &["$HOME", "a;b"], None).unwrap();
        assert_eq!(out.stdout, "$HOME a;b\n");
    }

    #[test]
    fn system_runner_reports_missing_program_and_failure() {
        let err = SystemRunner
            .run("no-such-program-cni", &[], None)
            .unwrap_err();
        assert!(matches!(err, NetfilterError::ProgramNotFound { .. }));
        let out = SystemRunner.run("false", &[], None).unwrap();
        let err = out.check("false", &["x"]).unwrap_err();
        assert_eq!(err.to_string(), "`false x` failed (exit status 1): ");
        assert!(SystemRunner.has_program("true"));
    }

    #[test]
    fn wait_flag_always_carries_seconds() {
        let seconds: u64 = wait_seconds().parse().unwrap();
        assert!(seconds >= 1);
        assert_eq!(restore_args(), ["--noflush", "-w", wait_seconds()]);
    }

    #[test]
    fn giving_up_on_the_xtables_lock_is_its_own_error() {
        let stderr = "Can't lock /run/xtables.lock: Resource temporarily unavailable\n\
                      Another app is currently holding the xtables lock. Stopped waiting after 30s.\n";
        let out = CommandOutput {
            status: Some(4),
            stdout: String::new(),
            stderr: stderr.to_owned(),
        };
        let err = out
            .check("iptables-restore", &["--noflush", "-w", "30"])
            .unwrap_err();
        assert!(err.is_lock_timeout(), "{err:?}");
        assert!(
            err.to_string().starts_with(
                "`iptables-restore --noflush -w 30` gave up waiting for the xtables lock: \
                 Can't lock /run/xtables.lock"
            ),
            "{err}"
        );
        // Other failures, and status 4 without the lock message, stay ordinary failures.
        for (status, stderr) in [(1, stderr), (4, "iptables: Memory allocation problem.")] {
            let out = CommandOutput {
                status: Some(status),
                stdout: String::new(),
                stderr: stderr.to_owned(),
            };
            let err = out.check("iptables", &[]).unwrap_err();
            assert!(
                matches!(err, NetfilterError::CommandFailed { .. }),
                "{err:?}"
            );
            assert!(!err.is_lock_timeout());
        }
    }

    #[test]
    fn large_stdin_does_not_deadlock() {
        let big = "x".repeat(1 << 20);
        let out = SystemRunner.run("cat", &[], Some(&big)).unwrap();
        assert_eq!(out.stdout.len(), big.len());
    }
}

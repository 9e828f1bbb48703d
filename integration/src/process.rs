//! Running child processes with stdin bytes, captured output and a hard timeout.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long any single child process may run before the harness kills it and fails the test.
/// Generous: 200 plugins contend for one flock in the concurrency test.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// The captured outcome of one child process.
#[derive(Debug, Clone)]
pub struct Output {
    /// Human-readable command line, for failure messages.
    pub command: String,
    /// Exit code; `None` if the process was killed by a signal.
    pub status: Option<i32>,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: Vec<u8>,
}

impl Output {
    /// True when the process exited with code 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    /// Stdout as (lossy) UTF-8.
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as (lossy) UTF-8.
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// A multi-line description (command, exit status, stdout, stderr) for panic messages.
    pub fn describe(&self) -> String {
        format!(
            "command: {}\nexit status: {:?}\nstdout:\n{}\nstderr:\n{}",
            self.command,
            self.status,
            self.stdout_str(),
            self.stderr_str()
        )
    }

    /// Panics unless the process exited 0; returns `self` for chaining.
    #[track_caller]
    pub fn expect_success(&self) -> &Self {
        assert!(self.success(), "expected success\n{}", self.describe());
        self
    }

    /// Panics unless the process exited 0 and printed nothing on stdout (the spec's success
    /// for DEL, CHECK, GC and STATUS).
    #[track_caller]
    pub fn expect_silent_success(&self) -> &Self {
        self.expect_success();
        assert!(
            self.stdout.iter().all(u8::is_ascii_whitespace),
            "expected empty stdout\n{}",
            self.describe()
        );
        self
    }

    /// Stdout parsed as JSON; panics (with the full output) if it is not JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.describe()))
    }
}

/// Runs `cmd` to completion, feeding `stdin`, and captures its output.
///
/// Panics if the process cannot be spawned or outlives [`TIMEOUT`] (it is killed first).
pub fn run(cmd: &mut Command, stdin: &[u8]) -> Output {
    let command = describe_command(cmd);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn `{command}`: {e}"));
    let input = stdin.to_vec();
    let mut pipe_in = child.stdin.take().expect("stdin is piped");
    // A plugin may exit without reading stdin; a broken pipe is then not our failure.
    let writer = thread::spawn(move || {
        let _ = pipe_in.write_all(&input);
    });
    let out_reader = reader(child.stdout.take().expect("stdout is piped"));
    let err_reader = reader(child.stderr.take().expect("stderr is piped"));
    let status = wait_with_timeout(&mut child, &command);
    let _ = writer.join();
    let stdout = out_reader.join().expect("stdout reader thread");
    let stderr = err_reader.join().expect("stderr reader thread");
    Output {
        command,
        status: status.code(),
        stdout,
        stderr,
    }
}

fn reader(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

fn wait_with_timeout(child: &mut Child, command: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) if start.elapsed() > TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`{command}` did not finish within {TIMEOUT:?}; killed it");
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("waiting for `{command}`: {e}"),
        }
    }
}

/// `KEY=value … program arg …` for messages (only explicitly set variables are shown).
fn describe_command(cmd: &Command) -> String {
    let mut parts: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| v.map(|v| format!("{}={}", k.to_string_lossy(), v.to_string_lossy())))
        .collect();
    parts.push(cmd.get_program().to_string_lossy().into_owned());
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

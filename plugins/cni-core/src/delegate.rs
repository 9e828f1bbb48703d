//! Delegation to another plugin (IPAM): find it in `CNI_PATH`, run it with the same environment
//! (only `CNI_COMMAND` replaced) and the complete stdin, and read its result or error.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::env::Command;
use crate::error::{CniError, ErrorCode, codes};
use crate::result::{CniResult, convert};
use crate::version::CniVersion;

/// Finds plugin `plugin_type` in `paths` (first directory holding a regular file of that name).
pub fn find_in_path(plugin_type: &str, paths: &[PathBuf]) -> Result<PathBuf, CniError> {
    if plugin_type.is_empty()
        || plugin_type.contains('/')
        || plugin_type == "."
        || plugin_type == ".."
        || plugin_type.contains('\0')
    {
        return Err(CniError::invalid_config(format!(
            "invalid plugin name: {plugin_type}"
        )));
    }
    if paths.is_empty() {
        return Err(CniError::invalid_env(
            "required env variables [CNI_PATH] missing",
        ));
    }
    paths
        .iter()
        .map(|dir| dir.join(plugin_type))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            CniError::plugin(
                codes::DELEGATE_EXEC,
                format!(
                    "failed to find plugin \"{plugin_type}\" in path [{}]",
                    list.join(" ")
                ),
            )
        })
}

/// A plugin to delegate to, with the stdin and version of the request being served.
#[derive(Debug, Clone)]
pub struct Delegate<'a> {
    /// The plugin type (binary name), e.g. `host-local`.
    pub plugin_type: &'a str,
    /// `CNI_PATH` directories.
    pub cni_path: &'a [PathBuf],
    /// The complete stdin of the calling plugin, passed on unchanged.
    pub stdin: &'a [u8],
    /// The config's version; used for results that carry no `cniVersion`.
    pub version: CniVersion,
}

impl Delegate<'_> {
    /// Runs ADD and returns the delegate's result in the canonical model.
    pub fn add(&self) -> Result<CniResult, CniError> {
        let out = self.exec(Command::Add)?;
        let value: Value = serde_json::from_slice(&out).map_err(|e| {
            CniError::plugin(
                codes::DELEGATE_OUTPUT,
                format!(
                    "failed to parse result of delegated plugin {}: {e}",
                    self.plugin_type
                ),
            )
        })?;
        convert::parse(&value, self.version)
    }

    /// Runs ADD and returns the result together with an [`Undo`] that runs the delegate's DEL
    /// when dropped, unless [`Undo::commit`] is called: a later failure of the calling plugin
    /// then releases what the delegate reserved, on every exit path.
    pub fn add_with_undo(&self) -> Result<(CniResult, Undo<'_>), CniError> {
        let result = self.add()?;
        Ok((
            result,
            Undo {
                delegate: Some(self),
            },
        ))
    }

    /// Runs a verb that prints nothing on success (DEL, CHECK, STATUS, GC).
    pub fn run(&self, verb: Command) -> Result<(), CniError> {
        self.exec(verb).map(|_| ())
    }

    fn exec(&self, verb: Command) -> Result<Vec<u8>, CniError> {
        let path = find_in_path(self.plugin_type, self.cni_path)?;
        let output = spawn_with_retry(&path, verb, self.stdin)?;
        if output.status.success() {
            return Ok(output.stdout);
        }
        Err(delegate_error(
            self.plugin_type,
            &output.stdout,
            &output.status.to_string(),
        ))
    }
}

/// Undoes a delegated ADD on drop unless committed. See [`Delegate::add_with_undo`].
#[derive(Debug)]
#[must_use = "dropping it at once undoes the ADD"]
pub struct Undo<'a> {
    delegate: Option<&'a Delegate<'a>>,
}

impl Undo<'_> {
    /// The calling plugin's ADD succeeded: keep the delegate's reservation.
    pub fn commit(mut self) {
        self.delegate = None;
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if let Some(d) = self.delegate.take() {
            // Best effort: the ADD is failing already and its error is the one to report.
            if let Err(e) = d.run(Command::Del) {
                eprintln!("cleanup: delegated DEL to {} failed: {e}", d.plugin_type);
            }
        }
    }
}

fn spawn_with_retry(
    path: &Path,
    verb: Command,
    stdin: &[u8],
) -> Result<std::process::Output, CniError> {
    let exec_error = |e: std::io::Error| {
        CniError::plugin(
            codes::DELEGATE_EXEC,
            format!("failed to execute {}: {e}", path.display()),
        )
    };
    let mut attempt = 0;
    let mut child = loop {
        let spawned = Process::new(path)
            .env("CNI_COMMAND", verb.as_str())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        match spawned {
            // libcni retries "text file busy": a binary being replaced under us.
            Err(e) if e.kind() == ErrorKind::ExecutableFileBusy && attempt < 5 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(20 * attempt));
            }
            other => break other.map_err(exec_error)?,
        }
    };
    if let Some(mut input) = child.stdin.take() {
        // A delegate may exit without reading stdin; a broken pipe is not our failure then.
        if let Err(e) = input.write_all(stdin)
            && e.kind() != ErrorKind::BrokenPipe
        {
            return Err(exec_error(e));
        }
    }
    child.wait_with_output().map_err(exec_error)
}

/// Turns a failed delegate's stdout into our error, keeping its code and message.
fn delegate_error(plugin_type: &str, stdout: &[u8], status: &str) -> CniError {
    #[derive(serde::Deserialize)]
    struct Wire {
        code: u32,
        #[serde(default)]
        msg: String,
        #[serde(default)]
        details: String,
    }
    if stdout.iter().all(u8::is_ascii_whitespace) {
        return CniError::plugin(
            codes::DELEGATE_OUTPUT,
            format!("delegated plugin {plugin_type} failed ({status}) with no error message"),
        );
    }
    match serde_json::from_slice::<Wire>(stdout) {
        Ok(w) => CniError {
            code: ErrorCode::from_u32(w.code),
            msg: w.msg,
            details: w.details,
        },
        Err(_) => CniError::plugin(
            codes::DELEGATE_OUTPUT,
            format!(
                "delegated plugin {plugin_type} failed ({status}) but its error could not be parsed"
            ),
        )
        .with_details(String::from_utf8_lossy(stdout).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn script(dir: &Path, name: &str, body: &str) {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn tmpdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "cni-core-delegate-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::Relaxed)
    }

    fn delegate<'a>(dir: &'a [PathBuf], stdin: &'a [u8]) -> Delegate<'a> {
        Delegate {
            plugin_type: "ipam",
            cni_path: dir,
            stdin,
            version: CniVersion::V1_0_0,
        }
    }

    #[test]
    fn finds_first_match_and_rejects_bad_names() {
        let a = tmpdir();
        let b = tmpdir();
        script(&b, "ipam", "exit 0");
        let paths = vec![a.clone(), b.clone()];
        assert_eq!(find_in_path("ipam", &paths).unwrap(), b.join("ipam"));
        let e = find_in_path("nope", &paths).unwrap_err();
        assert!(
            e.msg
                .starts_with("failed to find plugin \"nope\" in path ["),
            "{}",
            e.msg
        );
        assert_eq!(
            find_in_path("../x", &paths).unwrap_err().code,
            ErrorCode::InvalidNetworkConfig
        );
        assert_eq!(
            find_in_path("ipam", &[]).unwrap_err().code,
            ErrorCode::InvalidEnvironment
        );
        std::fs::remove_dir_all(a).unwrap();
        std::fs::remove_dir_all(b).unwrap();
    }

    #[test]
    fn passes_stdin_and_command_and_parses_result_in_its_version() {
        let d = tmpdir();
        // Echo back the command and stdin inside a 0.2.0 result.
        script(
            &d,
            "ipam",
            r#"in=$(cat); [ "$in" = '{"x":1}' ] || exit 3; [ "$CNI_COMMAND" = ADD ] || exit 4
printf '{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.9/24","gateway":"10.0.0.1"}}'"#,
        );
        let paths = vec![d.clone()];
        let r = delegate(&paths, br#"{"x":1}"#).add().unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.0.0.9/24");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn undo_runs_del_unless_committed() {
        let d = tmpdir();
        let log = d.join("log");
        script(
            &d,
            "ipam",
            &format!(
                r#"echo "$CNI_COMMAND" >> {}; [ "$CNI_COMMAND" = ADD ] && printf '{{"cniVersion":"1.0.0","ips":[{{"address":"10.0.0.2/24"}}]}}'; exit 0"#,
                log.display()
            ),
        );
        let paths = vec![d.clone()];
        let del = delegate(&paths, b"{}");
        {
            let (_result, _undo) = del.add_with_undo().unwrap();
            // A failure here drops the guard.
        }
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "ADD\nDEL\n");
        let (_result, undo) = del.add_with_undo().unwrap();
        undo.commit();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "ADD\nDEL\nADD\n");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn propagates_delegate_errors() {
        let d = tmpdir();
        script(
            &d,
            "ipam",
            r#"printf '{"code":7,"msg":"bad range","details":"d"}'; exit 1"#,
        );
        let paths = vec![d.clone()];
        let e = delegate(&paths, b"{}").run(Command::Del).unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str(), e.details.as_str()),
            (ErrorCode::InvalidNetworkConfig, "bad range", "d")
        );
        script(&d, "ipam", "exit 2");
        let e = delegate(&paths, b"{}").run(Command::Check).unwrap_err();
        assert!(e.msg.contains("with no error message"), "{}", e.msg);
        script(&d, "ipam", "echo garbage; exit 1");
        let e = delegate(&paths, b"{}").run(Command::Check).unwrap_err();
        assert_eq!(e.code, ErrorCode::Plugin(codes::DELEGATE_OUTPUT));
        std::fs::remove_dir_all(d).unwrap();
    }
}

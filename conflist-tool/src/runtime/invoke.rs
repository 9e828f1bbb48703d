//! Running one plugin binary the way libcni's `invoke` package does: found in `CNI_PATH`, the
//! caller's environment with the `CNI_*` variables replaced, the config on stdin, the result or
//! the CNI error read from stdout.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Deserialize;

/// A plugin could not be found, run, or it reported an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// The type contains a path separator or is empty.
    #[error("invalid plugin name: {0}")]
    InvalidName(String),
    /// No directory of the CNI path holds it.
    #[error("failed to find plugin {plugin:?} in path [{}]", .paths.join(" "))]
    NotFound {
        /// The plugin type.
        plugin: String,
        /// The directories searched.
        paths: Vec<String>,
    },
    /// The binary could not be executed.
    #[error("failed to execute {path}: {reason}")]
    Exec {
        /// The binary.
        path: String,
        /// Why.
        reason: String,
    },
    /// The plugin printed a CNI error (libcni prints `msg; details`).
    #[error("{msg}{}", if .details.is_empty() { String::new() } else { format!("; {}", .details) })]
    Plugin {
        /// CNI error code.
        code: u32,
        /// Message.
        msg: String,
        /// Details.
        details: String,
    },
    /// The plugin failed and printed nothing on stdout.
    #[error("netplugin failed: {stderr:?}: {status}")]
    NoError {
        /// Its exit status.
        status: String,
        /// Its stderr.
        stderr: String,
    },
    /// The plugin failed and printed something that is not a CNI error.
    #[error("netplugin failed but error parsing its diagnostic message {0:?}")]
    Unparsable(String),
    /// The plugin succeeded but its output is not what the verb needs.
    #[error("{0}")]
    Output(String),
}

/// libcni's `FindInPath`: the first directory holding a regular file of that name.
pub fn find(plugin_type: &str, paths: &[PathBuf]) -> Result<PathBuf, InvokeError> {
    if plugin_type.is_empty()
        || plugin_type.contains('/')
        || plugin_type == "."
        || plugin_type == ".."
        || plugin_type.contains('\0')
    {
        return Err(InvokeError::InvalidName(plugin_type.to_owned()));
    }
    paths
        .iter()
        .map(|d| d.join(plugin_type))
        .find(|p| p.is_file())
        .ok_or_else(|| InvokeError::NotFound {
            plugin: plugin_type.to_owned(),
            paths: paths.iter().map(|p| p.display().to_string()).collect(),
        })
}

/// The `CNI_*` environment of one invocation (unset fields are not exported).
#[derive(Debug, Clone, Default)]
pub struct CniEnv {
    /// `CNI_COMMAND`.
    pub command: &'static str,
    /// `CNI_CONTAINERID`.
    pub container_id: Option<String>,
    /// `CNI_NETNS`.
    pub netns: Option<String>,
    /// `CNI_IFNAME`.
    pub ifname: Option<String>,
    /// `CNI_ARGS`.
    pub args: Option<String>,
    /// `CNI_PATH`.
    pub path: Option<String>,
}

/// Runs `binary` with `env` and `stdin`; stdout on success, the plugin's error otherwise.
pub fn exec(binary: &Path, env: &CniEnv, stdin: &[u8]) -> Result<Vec<u8>, InvokeError> {
    let exec_error = |e: std::io::Error| InvokeError::Exec {
        path: binary.display().to_string(),
        reason: e.to_string(),
    };
    let mut attempt = 0;
    let mut child = loop {
        let mut cmd = Command::new(binary);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CNI_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env("CNI_COMMAND", env.command);
        let vars = [
            ("CNI_CONTAINERID", &env.container_id),
            ("CNI_NETNS", &env.netns),
            ("CNI_IFNAME", &env.ifname),
            ("CNI_ARGS", &env.args),
            ("CNI_PATH", &env.path),
        ];
        for (key, value) in vars {
            if let Some(v) = value {
                cmd.env(key, v);
            }
        }
        match cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            // libcni retries "text file busy": a binary being replaced under us.
            Err(e) if e.kind() == ErrorKind::ExecutableFileBusy && attempt < 5 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            other => break other.map_err(exec_error)?,
        }
    };
    if let Some(mut input) = child.stdin.take()
        && let Err(e) = input.write_all(stdin)
        && e.kind() != ErrorKind::BrokenPipe
    {
        return Err(exec_error(e));
    }
    let out = child.wait_with_output().map_err(exec_error)?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !stderr.is_empty() {
        eprint!("{stderr}");
    }
    if out.status.success() {
        return Ok(out.stdout);
    }
    Err(plugin_error(&out.stdout, &stderr, &out.status.to_string()))
}

fn plugin_error(stdout: &[u8], stderr: &str, status: &str) -> InvokeError {
    #[derive(Deserialize)]
    struct Wire {
        #[serde(default)]
        code: u32,
        #[serde(default)]
        msg: String,
        #[serde(default)]
        details: String,
    }
    if stdout.iter().all(u8::is_ascii_whitespace) {
        return InvokeError::NoError {
            status: status.to_owned(),
            stderr: stderr.trim_end().to_owned(),
        };
    }
    match serde_json::from_slice::<Wire>(stdout) {
        Ok(w) => InvokeError::Plugin {
            code: w.code,
            msg: w.msg,
            details: w.details,
        },
        Err(_) => InvokeError::Unparsable(String::from_utf8_lossy(stdout).into_owned()),
    }
}

/// The versions a plugin supports (VERSION, probed the way libcni does it).
pub fn versions(binary: &Path, config_version: &str) -> Result<Vec<String>, InvokeError> {
    let env = CniEnv {
        command: "VERSION",
        netns: Some("dummy".into()),
        ifname: Some("dummy".into()),
        path: Some("dummy".into()),
        ..CniEnv::default()
    };
    let stdin = serde_json::json!({ "cniVersion": config_version }).to_string();
    let out = match exec(binary, &env, stdin.as_bytes()) {
        Ok(out) => out,
        Err(InvokeError::Plugin { msg, .. }) if msg == "unknown CNI_COMMAND: VERSION" => {
            return Ok(vec!["0.1.0".into()]);
        }
        Err(e) => return Err(e),
    };
    #[derive(Deserialize)]
    struct Info {
        #[serde(default, rename = "supportedVersions")]
        supported: Vec<String>,
    }
    let info: Info = serde_json::from_slice(&out).map_err(|e| {
        InvokeError::Output(format!(
            "decoding version info of {}: {e}",
            binary.display()
        ))
    })?;
    Ok(info.supported)
}

//! Verb dispatch: the part of every plugin between the process boundary and the plugin's logic.
//!
//! [`dispatch`] is pure (environment lookup and stdin in, [`Outcome`] out) so it is unit-tested
//! without processes; [`run`] wires it to the real process and exits.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::json;

use crate::args::CniArgs;
use crate::config::{self, AttachmentKey, NetConf};
use crate::env::{Command, Environment, Request};
use crate::error::{CniError, ErrorCode, codes};
use crate::result::{CniResult, convert};
use crate::validate;
use crate::version::{self, CniVersion};

/// The request-wide part of an invocation: the decoded config and where plugins live.
#[derive(Debug, Clone)]
pub struct Invocation<C> {
    /// The config's version (already checked against the plugin's list).
    pub version: CniVersion,
    /// The decoded config.
    pub conf: NetConf<C>,
    /// The stdin bytes as received (passed unchanged to delegates).
    pub raw: Vec<u8>,
    /// `CNI_PATH`.
    pub cni_path: Vec<PathBuf>,
}

/// The attachment an ADD, DEL or CHECK is about.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_NETNS` (always present for ADD and CHECK; optional for DEL).
    pub netns: Option<PathBuf>,
    /// `CNI_ARGS` (strictly parsed for ADD and CHECK, leniently for DEL).
    pub args: CniArgs,
}

impl Attachment {
    /// The netns path, or code 4 when the runtime gave none.
    pub fn netns(&self) -> Result<&Path, CniError> {
        self.netns
            .as_deref()
            .ok_or_else(|| CniError::invalid_env("required env variables [CNI_NETNS] missing"))
    }
}

/// A CNI plugin: its logic for each verb. Defaults: STATUS and GC succeed.
pub trait Plugin {
    /// The plugin's own config fields (flattened into [`NetConf`]).
    type Conf: DeserializeOwned;

    /// Name used in the about text.
    const NAME: &'static str;

    /// `CNI_ARGS` keys this plugin understands (besides the common ones).
    const CNI_ARGS_KEYS: &'static [&'static str] = &[];

    /// Versions this plugin accepts in configs.
    fn supported_versions(&self) -> &'static [CniVersion] {
        &CniVersion::ALL
    }

    /// ADD: returns the result, which the core converts to the config's version.
    fn add(&self, inv: &Invocation<Self::Conf>, att: &Attachment) -> Result<CniResult, CniError>;

    /// DEL: best-effort and idempotent.
    fn del(&self, inv: &Invocation<Self::Conf>, att: &Attachment) -> Result<(), CniError>;

    /// CHECK.
    fn check(&self, inv: &Invocation<Self::Conf>, att: &Attachment) -> Result<(), CniError>;

    /// STATUS: ready to serve ADD?
    fn status(&self, _inv: &Invocation<Self::Conf>) -> Result<(), CniError> {
        Ok(())
    }

    /// GC: remove resources of every attachment not in `valid`.
    fn gc(&self, _inv: &Invocation<Self::Conf>, _valid: &[AttachmentKey]) -> Result<(), CniError> {
        Ok(())
    }
}

/// What the process should print and return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Bytes for stdout (result, version info or error JSON).
    pub stdout: String,
    /// Bytes for stderr (only the about text).
    pub stderr: String,
    /// Exit status: 0 or 1.
    pub exit_code: i32,
}

impl Outcome {
    fn success(stdout: String) -> Self {
        Outcome {
            stdout,
            stderr: String::new(),
            exit_code: 0,
        }
    }

    fn failure(err: &CniError, version: &str) -> Self {
        Outcome {
            stdout: pretty(&err.to_json(version)),
            stderr: String::new(),
            exit_code: 1,
        }
    }
}

fn pretty(v: &serde_json::Value) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    match serde::Serialize::serialize(v, &mut ser) {
        Ok(()) => String::from_utf8_lossy(&out).into_owned() + "\n",
        Err(_) => v.to_string() + "\n",
    }
}

/// Runs one invocation: environment through `lookup`, config from `stdin`.
pub fn dispatch<P: Plugin>(
    plugin: &P,
    lookup: &dyn Fn(&str) -> Option<String>,
    stdin: &mut dyn Read,
) -> Outcome {
    if lookup("CNI_COMMAND").is_none_or(|c| c.is_empty()) {
        return about::<P>(plugin);
    }
    // stdin first, so that even environment errors carry the config's version.
    let mut raw = Vec::new();
    if let Err(e) = stdin.read_to_end(&mut raw) {
        let err = CniError::new(
            ErrorCode::IoFailure,
            format!("error reading from stdin: {e}"),
        );
        return Outcome::failure(&err, CniVersion::LATEST.as_str());
    }
    let stamp = error_version(&raw);
    let env = match Environment::from_lookup(lookup) {
        Ok(Request::About) => return about::<P>(plugin),
        Ok(Request::Verb(env)) => env,
        Err(e) => return Outcome::failure(&e, stamp),
    };
    if env.command == Command::Version {
        return version_info(plugin, &raw);
    }
    match serve(plugin, env, raw) {
        Ok(stdout) => Outcome::success(stdout),
        Err(e) => Outcome::failure(&e, stamp),
    }
}

/// The version errors are stamped with: the config's, when it declares a known one (none
/// declared means 0.1.0, as libcni reads it); otherwise the newest we speak.
fn error_version(raw: &[u8]) -> &'static str {
    match config::peek_version(raw).as_deref() {
        Ok("") => CniVersion::V0_1_0.as_str(),
        Ok(v) => CniVersion::parse(v).unwrap_or(CniVersion::LATEST).as_str(),
        Err(_) => CniVersion::LATEST.as_str(),
    }
}

fn about<P: Plugin>(plugin: &P) -> Outcome {
    let versions: Vec<&str> = plugin
        .supported_versions()
        .iter()
        .map(|v| v.as_str())
        .collect();
    Outcome {
        stdout: String::new(),
        stderr: format!(
            "CNI {} plugin {}\nCNI protocol versions supported: {}\n",
            P::NAME,
            env!("CARGO_PKG_VERSION"),
            versions.join(", ")
        ),
        exit_code: 0,
    }
}

/// VERSION: echo the requested version when it is one we support, else our newest.
fn version_info<P: Plugin>(plugin: &P, raw: &[u8]) -> Outcome {
    let supported = plugin.supported_versions();
    let requested = config::peek_version(raw)
        .ok()
        .and_then(|v| CniVersion::parse(&v));
    let newest = supported
        .iter()
        .max()
        .copied()
        .unwrap_or(CniVersion::LATEST);
    let reply = requested
        .filter(|v| supported.contains(v))
        .unwrap_or(newest);
    let list: Vec<&str> = supported.iter().map(|v| v.as_str()).collect();
    Outcome::success(pretty(
        &json!({"cniVersion": reply.as_str(), "supportedVersions": list}),
    ))
}

/// Decodes, checks and runs a verb.
fn serve<P: Plugin>(plugin: &P, env: Environment, raw: Vec<u8>) -> Result<String, CniError> {
    let declared = config::peek_version(&raw)?;
    serve_checked(plugin, env, raw, &declared)
}

fn serve_checked<P: Plugin>(
    plugin: &P,
    env: Environment,
    raw: Vec<u8>,
    declared: &str,
) -> Result<String, CniError> {
    let version = check_version(plugin.supported_versions(), declared, env.command)?;
    let conf: NetConf<P::Conf> = NetConf::parse(&raw)?;
    validate::network_name(&conf.name)?;
    let inv = Invocation {
        version,
        conf,
        raw,
        cni_path: env.cni_path.clone(),
    };
    let attachment = |strict: bool| -> Result<Attachment, CniError> {
        let args = if strict {
            CniArgs::parse(&env.args, P::CNI_ARGS_KEYS)?
        } else {
            CniArgs::parse_lenient(&env.args)
        };
        Ok(Attachment {
            container_id: env.container_id.clone(),
            ifname: env.ifname.clone(),
            netns: env.netns.clone(),
            args,
        })
    };
    match env.command {
        Command::Add => {
            let result = plugin.add(&inv, &attachment(true)?)?;
            Ok(pretty(&convert::to_json(&result, version)?))
        }
        Command::Del => plugin
            .del(&inv, &attachment(false)?)
            .map(|()| String::new()),
        Command::Check => plugin
            .check(&inv, &attachment(true)?)
            .map(|()| String::new()),
        Command::Status => plugin.status(&inv).map(|()| String::new()),
        Command::Gc => plugin
            .gc(&inv, inv.conf.valid_attachments())
            .map(|()| String::new()),
        Command::Version => Err(CniError::plugin(
            codes::PLUGIN_FAILURE,
            "VERSION reached the verb dispatcher",
        )),
    }
}

/// Version checks: known and supported (code 1), and the verb exists in that version (code 1).
fn check_version(
    supported: &[CniVersion],
    declared: &str,
    command: Command,
) -> Result<CniVersion, CniError> {
    // libcni decodes a missing cniVersion as 0.1.0.
    let effective = if declared.is_empty() {
        "0.1.0"
    } else {
        declared
    };
    let version = CniVersion::parse(effective)
        .filter(|v| supported.contains(v))
        .ok_or_else(|| {
            CniError::new(ErrorCode::IncompatibleVersion, "incompatible CNI versions").with_details(
                format!(
                    "config is \"{effective}\", plugin supports {}",
                    version::go_list(supported)
                ),
            )
        })?;
    let allowed = match command {
        Command::Check => version.allows_check(),
        Command::Gc | Command::Status => version.allows_gc_and_status(),
        _ => true,
    };
    if !allowed {
        return Err(CniError::new(
            ErrorCode::IncompatibleVersion,
            format!("config version does not allow {}", command.as_str()),
        ));
    }
    Ok(version)
}

/// Runs `plugin` as this process: reads the real environment and stdin, prints, exits.
pub fn run<P: Plugin>(plugin: P) -> ! {
    use std::io::Write;
    std::panic::set_hook(Box::new(|info| {
        // A panic is a bug; still answer the runtime in the protocol's terms.
        let err = CniError::plugin(codes::PLUGIN_FAILURE, format!("internal error: {info}"));
        let _ = std::io::stdout()
            .write_all(pretty(&err.to_json(CniVersion::LATEST.as_str())).as_bytes());
    }));
    crate::phase::mark("start");
    let outcome = dispatch(
        &plugin,
        &|k| std::env::var(k).ok(),
        &mut std::io::stdin().lock(),
    );
    let _ = std::io::stdout().write_all(outcome.stdout.as_bytes());
    let _ = std::io::stderr().write_all(outcome.stderr.as_bytes());
    let _ = std::io::stdout().flush();
    crate::phase::mark("exit");
    std::process::exit(outcome.exit_code)
}

#[cfg(test)]
#[path = "skel_tests.rs"]
mod tests;

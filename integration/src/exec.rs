//! Executing a plugin binary directly, the way a runtime does: explicit env, stdin bytes.

use std::collections::BTreeMap;
use std::process::Command;

use crate::locate::{CHILD_PATH, Plugin};
use crate::netns::Netns;
use crate::process::{self, Output};
use crate::world::World;

/// One plugin invocation: `CNI_*` variables and stdin. Built with chained setters:
///
/// ```text
/// PluginCall::add(&conf).id("c1").ifname("eth0").netns(&ctr)
/// ```
///
/// The child's environment is cleared and gets only `PATH` plus the variables set here.
/// `CNI_PATH` defaults to the plugin's own directory unless set or removed with
/// [`PluginCall::unset`].
#[derive(Debug, Clone)]
pub struct PluginCall {
    env: BTreeMap<String, Option<String>>,
    stdin: Vec<u8>,
}

impl PluginCall {
    /// `CNI_COMMAND=<command>` with raw stdin bytes.
    pub fn raw(command: &str, stdin: impl Into<Vec<u8>>) -> PluginCall {
        let mut env = BTreeMap::new();
        env.insert("CNI_COMMAND".to_owned(), Some(command.to_owned()));
        PluginCall {
            env,
            stdin: stdin.into(),
        }
    }

    /// `CNI_COMMAND=<command>` with `config` serialised as stdin.
    pub fn new(command: &str, config: &serde_json::Value) -> PluginCall {
        PluginCall::raw(
            command,
            serde_json::to_vec(config).expect("serialise config"),
        )
    }

    /// ADD with `config` on stdin.
    pub fn add(config: &serde_json::Value) -> PluginCall {
        PluginCall::new("ADD", config)
    }

    /// DEL with `config` on stdin.
    pub fn del(config: &serde_json::Value) -> PluginCall {
        PluginCall::new("DEL", config)
    }

    /// CHECK with `config` on stdin.
    pub fn check(config: &serde_json::Value) -> PluginCall {
        PluginCall::new("CHECK", config)
    }

    /// GC with `config` on stdin.
    pub fn gc(config: &serde_json::Value) -> PluginCall {
        PluginCall::new("GC", config)
    }

    /// STATUS with `config` on stdin.
    pub fn status(config: &serde_json::Value) -> PluginCall {
        PluginCall::new("STATUS", config)
    }

    /// `CNI_CONTAINERID`.
    pub fn id(self, id: &str) -> PluginCall {
        self.env("CNI_CONTAINERID", id)
    }

    /// `CNI_IFNAME`.
    pub fn ifname(self, ifname: &str) -> PluginCall {
        self.env("CNI_IFNAME", ifname)
    }

    /// `CNI_NETNS` = the namespace's path.
    pub fn netns(self, ns: &Netns) -> PluginCall {
        self.env("CNI_NETNS", &ns.path_str())
    }

    /// `CNI_NETNS` = an arbitrary string (e.g. a path that does not exist).
    pub fn netns_path(self, path: &str) -> PluginCall {
        self.env("CNI_NETNS", path)
    }

    /// `CNI_ARGS`.
    pub fn args(self, args: &str) -> PluginCall {
        self.env("CNI_ARGS", args)
    }

    /// `CNI_PATH` (overrides the default).
    pub fn cni_path(self, path: &str) -> PluginCall {
        self.env("CNI_PATH", path)
    }

    /// Sets any environment variable.
    pub fn env(mut self, key: &str, value: &str) -> PluginCall {
        self.env.insert(key.to_owned(), Some(value.to_owned()));
        self
    }

    /// Makes sure `key` is not set (also suppresses the `CNI_PATH` default).
    pub fn unset(mut self, key: &str) -> PluginCall {
        self.env.insert(key.to_owned(), None);
        self
    }

    /// Replaces stdin.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> PluginCall {
        self.stdin = bytes.into();
        self
    }

    /// The `CNI_COMMAND` of this call.
    pub fn command(&self) -> &str {
        self.env
            .get("CNI_COMMAND")
            .and_then(Option::as_deref)
            .unwrap_or("")
    }
}

impl World {
    /// Runs `plugin` with `call` inside the host namespace (`ip netns exec <host> <plugin>`).
    pub fn exec(&self, plugin: &Plugin, call: &PluginCall) -> Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.host().name()])
            .arg(&plugin.path)
            .env_clear()
            .env("PATH", CHILD_PATH);
        if !call.env.contains_key("CNI_PATH") {
            cmd.env("CNI_PATH", &plugin.dir);
        }
        for (key, value) in &call.env {
            if let Some(value) = value {
                cmd.env(key, value);
            }
        }
        process::run(&mut cmd, &call.stdin)
    }
}

//! Root-only helpers: throwaway network namespaces, entering one for the current thread, an
//! exec-counting runner, nat-table snapshots and the reference bridge plugin.
#![allow(
    dead_code,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use cni_netfilter::NetfilterError;
use cni_netfilter::exec::{CommandOutput, CommandRunner, SystemRunner};
use nix::sched::{CloneFlags, setns};

pub const GO_BRIDGE: &str = "/usr/lib/cni/bridge";

/// Fail loudly when not root: a root test that silently passes proves nothing.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (run with --ignored as root)"
    );
}

/// `ip` with arguments; panics with its stderr on failure.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A named netns created with `ip netns add`, deleted on drop (also when the test panics).
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("cninf-{tag}-{}-{n}", std::process::id());
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.exec("ip", &["link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Run a program inside the netns via `ip netns exec` (argv, no shell).
    pub fn exec(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .output()
            .expect("run ip netns exec");
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Enter this netns on the current thread until the guard drops. Children spawned from this
    /// thread start in the netns.
    pub fn enter(&self) -> NetnsGuard {
        let original = File::open("/proc/thread-self/ns/net").expect("open own netns");
        let target = File::open(self.path()).expect("open target netns");
        setns(target.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns into test netns");
        NetnsGuard { original }
    }

    /// The rule lines and user chains of `table` in this netns, as an operator reads them.
    pub fn iptables_state(&self, v6: bool) -> Vec<String> {
        let save = if v6 {
            "ip6tables-save"
        } else {
            "iptables-save"
        };
        self.exec(save, &["-t", "nat"])
            .lines()
            .filter(|l| l.starts_with("-A") || l.starts_with(":CNI-"))
            .map(str::to_owned)
            .collect()
    }

    /// `nft list table inet cni_plugins_masquerade` rule lines (empty when absent).
    pub fn nft_masq_rules(&self) -> Vec<String> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "nft",
                "list",
                "table",
                "inet",
                "cni_plugins_masquerade",
            ])
            .output()
            .expect("run nft");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| l.contains("masquerade comment"))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

pub struct NetnsGuard {
    original: File,
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(e) = setns(self.original.as_fd(), CloneFlags::CLONE_NEWNET) {
            // Cannot continue safely on a thread stuck in the wrong netns.
            eprintln!("failed to restore netns: {e}");
            std::process::abort();
        }
    }
}

/// The real runner, counting execs per program.
#[derive(Default)]
pub struct CountingRunner {
    counts: Mutex<BTreeMap<String, usize>>,
}

impl CountingRunner {
    pub fn total(&self) -> usize {
        self.counts.lock().unwrap().values().sum()
    }
    pub fn take(&self) -> BTreeMap<String, usize> {
        std::mem::take(&mut *self.counts.lock().unwrap())
    }
}

impl CommandRunner for CountingRunner {
    fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<CommandOutput, NetfilterError> {
        *self
            .counts
            .lock()
            .unwrap()
            .entry(program.to_owned())
            .or_default() += 1;
        SystemRunner.run(program, args, stdin)
    }
    fn has_program(&self, program: &str) -> bool {
        SystemRunner.has_program(program)
    }
}

/// Bridge conf for the reference plugin: dual-stack host-local in `data_dir`.
pub fn bridge_conf(data_dir: &str) -> String {
    format!(
        r#"{{"cniVersion":"1.0.0","name":"cnixnet","type":"bridge","bridge":"cnix0","isGateway":true,"ipMasq":true,"ipam":{{"type":"host-local","ranges":[[{{"subnet":"10.99.0.0/24"}}],[{{"subnet":"fd00:99::/64"}}]],"dataDir":"{data_dir}"}}}}"#
    )
}

/// Run the reference bridge plugin with `host` as its host netns.
pub fn go_bridge(
    command: &str,
    host: &Netns,
    container: &Netns,
    container_id: &str,
    conf: &str,
) -> Output {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &host.name, GO_BRIDGE])
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container_id)
        .env("CNI_NETNS", container.path())
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn reference bridge");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(conf.as_bytes())
        .expect("write conf");
    let out = child.wait_with_output().expect("wait reference bridge");
    assert!(
        out.status.success(),
        "reference bridge {command}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The real runner with every iptables tool swapped for its `-legacy` variant, to prove the
/// batches on the x_tables backend too.
pub struct LegacyRunner;

impl LegacyRunner {
    fn map(program: &str) -> String {
        match program.split_once("-") {
            _ if !program.contains("tables") => program.to_owned(),
            Some((tool, action)) => format!("{tool}-legacy-{action}"),
            None => format!("{program}-legacy"),
        }
    }
}

impl CommandRunner for LegacyRunner {
    fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<CommandOutput, NetfilterError> {
        SystemRunner.run(&Self::map(program), args, stdin)
    }
    fn has_program(&self, program: &str) -> bool {
        SystemRunner.has_program(&Self::map(program))
    }
}

/// Lines of `<tool>-save -t nat` with `-legacy` when asked.
pub fn legacy_state(ns: &Netns, v6: bool) -> Vec<String> {
    let save = if v6 {
        "ip6tables-legacy-save"
    } else {
        "iptables-legacy-save"
    };
    ns.exec(save, &["-t", "nat"])
        .lines()
        .filter(|l| l.starts_with("-A") || l.starts_with(":CNI-"))
        .map(str::to_owned)
        .collect()
}

//! The command line: global flags, subcommands, their flags and help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use cni_conflist::podman;

const EXAMPLES: &str = "\
Examples:
  cni-conflist create --subnet 10.89.5.0/24 --opt isolate=true --label app=web web
  cni-conflist create --internal backend --dry-run
  cni-conflist create --driver macvlan --opt parent=eth0 --subnet 192.168.1.0/24 lan
  cni-conflist validate --all
  cni-conflist validate ./87-podman-bridge.conflist --json
  cni-conflist ls
  cni-conflist inspect web
  cni-conflist exec add web /run/netns/web1
  cni-conflist exec del web /run/netns/web1
  cni-conflist doctor --fix
  cni-conflist rm web --force";

/// Create, validate, list, inspect, remove and run CNI .conflist files (podman-compatible).
#[derive(Debug, Parser)]
#[command(name = "cni-conflist", version, after_help = EXAMPLES)]
pub(crate) struct Cli {
    /// Configuration directory.
    #[arg(
        long,
        global = true,
        env = "NETCONFPATH",
        default_value = "/etc/cni/net.d"
    )]
    pub(crate) dir: PathBuf,
    /// Plugin directories, ':'-separated.
    #[arg(
        long,
        global = true,
        env = "CNI_PATH",
        default_value = "/opt/cni/bin:/usr/lib/cni"
    )]
    pub(crate) cni_path: String,
    /// libcni cache directory (holds results/).
    #[arg(long, global = true, default_value = "/var/lib/cni")]
    pub(crate) cache_dir: PathBuf,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Write a new <name>.conflist the way `podman network create` does.
    Create(CreateArgs),
    /// Check files for everything libcni rejects and what fails later.
    Validate(ValidateArgs),
    /// List the networks of the directory.
    Ls,
    /// Show one network, podman-style.
    Inspect {
        /// Network name.
        name: String,
    },
    /// Remove a network's file.
    Rm {
        /// Network name.
        name: String,
        /// Also when attachments are cached; delete the bridge link if no container uses it.
        #[arg(long, short)]
        force: bool,
    },
    /// Run a network list like libcni/cnitool: add, check, del, gc, status.
    Exec(ExecArgs),
    /// Find stale state (reservations, cache entries, rules, bridges) and optionally fix it.
    Doctor {
        /// Only this network.
        name: Option<String>,
        /// Remove what is provably stale (through DEL and GC).
        #[arg(long)]
        fix: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Network name (default: first free cni-podmanN).
    pub(crate) name: Option<String>,
    /// Driver.
    #[arg(long, short, default_value = "bridge", value_parser = ["bridge", "macvlan"])]
    pub(crate) driver: String,
    /// Subnet in CIDR form (repeatable; IPv4 or IPv6).
    #[arg(long)]
    pub(crate) subnet: Vec<String>,
    /// Gateway of the i-th subnet (repeatable).
    #[arg(long)]
    pub(crate) gateway: Vec<String>,
    /// Address range of the i-th subnet: CIDR or start-end (repeatable).
    #[arg(long)]
    pub(crate) ip_range: Vec<String>,
    /// No gateway, no masquerade, no default route.
    #[arg(long)]
    pub(crate) internal: bool,
    /// Add an IPv6 subnet (random ULA /64) when none is given.
    #[arg(long)]
    pub(crate) ipv6: bool,
    /// IPAM driver.
    #[arg(long, value_parser = ["host-local", "dhcp", "none"])]
    pub(crate) ipam_driver: Option<String>,
    /// Bridge name (bridge) or parent interface (macvlan).
    #[arg(long)]
    pub(crate) interface_name: Option<String>,
    /// Driver option: isolate=true|strict, mtu=N, vlan=N, mode=M, parent=IF (repeatable).
    #[arg(long, short)]
    pub(crate) opt: Vec<String>,
    /// Label k=v (repeatable), stored in args.podman_labels.
    #[arg(long)]
    pub(crate) label: Vec<String>,
    /// cniVersion of the list (podman writes 0.4.0).
    #[arg(long, default_value = podman::PODMAN_CNI_VERSION)]
    pub(crate) cni_version: String,
    /// Do not add the dnsname plugin even when it is installed.
    #[arg(long)]
    pub(crate) disable_dns: bool,
    /// host-local dataDir (not a podman flag; default /var/lib/cni/networks).
    #[arg(long)]
    pub(crate) ipam_data_dir: Option<String>,
    /// Print the file instead of writing it.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// Files or network names (default: the whole directory).
    pub(crate) targets: Vec<String>,
    /// The whole directory, with cross-file checks.
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Verb {
    Add,
    Check,
    Del,
    Gc,
    Status,
}

#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    /// Verb.
    pub(crate) verb: Verb,
    /// Network name.
    pub(crate) name: String,
    /// Network namespace path (used for the container ID like cnitool; ignored by gc/status).
    pub(crate) netns: PathBuf,
    /// Interface name.
    #[arg(long, short, env = "CNI_IFNAME", default_value = "eth0")]
    pub(crate) ifname: String,
}

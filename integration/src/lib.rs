//! Root-only integration test harness for the CNI plugin suite.
//!
//! Every test builds its own [`World`]: a "host" network namespace, any number of container
//! namespaces and a temporary directory tree, all removed again when the world is dropped (also
//! when the test panics). Plugins are driven two ways:
//!
//! * directly ([`PluginCall`] + [`World::exec`]): a clean environment holding only `CNI_*` and
//!   `PATH`, stdin bytes, run inside the host netns;
//! * through the real libcni via `cnitool` ([`World::cnitool`]), which also writes the libcni
//!   result cache.
//!
//! Kernel and file-system state is captured with [`Snapshot`] and compared with
//! [`assert_same!`], so a test can prove that teardown returned everything to the baseline.
//! [`Differential`] runs one request against our binary and the Go reference in `/usr/lib/cni`.
//!
//! For interface plugins: [`BridgeBench`] (one bridge network in a world, snapshots without what
//! bridge DEL keeps), [`inspect`] (links, ports, VLANs, addresses, routes, sysctls, nat rules),
//! [`traffic`] (ping, UDP with the receiver's view of the source) and [`Outside`] (a routed
//! namespace behind the host).
//!
//! For chained plugins: [`FirewallNet`] (bridge + host-local + firewall networks, our firewall
//! or Go's, and the iptables/nftables layouts to expect).
//!
//! For macvlan and tuning: [`MacvlanBench`] (a veth master in the host netns with a LAN behind
//! it) and [`TuningNet`] (bridge → tuning networks, our tuning or Go's behind our bridge).
//!
//! Nothing here skips silently: missing binaries, missing tools or not running as root make the
//! harness panic with a message saying what to do.

// A harness that cannot build its world or run its tools must stop the test loudly: `expect`
// and `panic!` are how it reports, so the workspace's warn-level lints are relaxed here.
#![allow(clippy::expect_used, clippy::panic)]

pub mod bridge;
pub mod cni;
pub mod cnitool;
pub mod config;
pub mod conflist;
pub mod differential;
pub mod exec;
pub mod faults;
pub mod firewall;
pub mod firewall_layout;
pub mod hostlocal;
pub mod inspect;
pub mod locate;
pub mod macvlan;
pub mod netns;
pub mod outside;
pub mod portmap;
pub mod process;
pub mod snapshot;
pub mod textdiff;
pub mod traffic;
pub mod tree;
pub mod tuning;
pub mod world;

pub use bridge::BridgeBench;
pub use cni::{CniError, SUPPORTED_VERSIONS, strip_empty};
pub use cnitool::{CnitoolCall, cnitool_container_id};
pub use differential::{Differential, Side};
pub use exec::PluginCall;
pub use firewall::{Firewall, FirewallNet};
pub use hostlocal::HostLocal;
pub use locate::Plugin;
pub use macvlan::MacvlanBench;
pub use netns::Netns;
pub use outside::Outside;
pub use portmap::PortmapNet;
pub use process::Output;
pub use snapshot::Snapshot;
pub use tree::{TreeEntry, read_tree};
pub use tuning::TuningNet;
pub use world::World;

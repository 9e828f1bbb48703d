//! "The outside world": a third namespace routed behind the world's host namespace.
//!
//! ```text
//! container --veth--> bridge (host netns, forwarding) --veth "cnit-out"--> outside netns
//!                                 10.250.0.1/24                          10.250.0.2/24
//! ```
//!
//! Traffic from a container to [`Outside::ADDR`] leaves through the bridge's gateway, is routed
//! by the host namespace and arrives in the outside namespace, which sees either the host's
//! address on the link (masqueraded) or the container's own address.

use std::thread;
use std::time::{Duration, Instant};

use crate::inspect;
use crate::netns::Netns;
use crate::world::World;

/// A routed namespace connected to the world's host namespace by a veth pair.
#[derive(Debug, Clone)]
pub struct Outside {
    /// The outside namespace (owned by the world, deleted with it).
    pub ns: Netns,
}

impl Outside {
    /// The outside namespace's address.
    pub const ADDR: &'static str = "10.250.0.2";
    /// The host namespace's address on the link to the outside.
    pub const HOST_ADDR: &'static str = "10.250.0.1";
    /// The host-side link name.
    pub const HOST_LINK: &'static str = "cnit-out";

    /// Creates the outside namespace and the link, and routes each of `container_subnets`
    /// back through the host (so un-masqueraded replies find their way home).
    pub fn connect(world: &World, container_subnets: &[&str]) -> Outside {
        let ns = world.container();
        let host = world.host();
        host.run_ok(&[
            "ip",
            "link",
            "add",
            Self::HOST_LINK,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns.name(),
        ]);
        host.run_ok(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", Self::HOST_ADDR),
            "dev",
            Self::HOST_LINK,
        ]);
        host.run_ok(&["ip", "link", "set", Self::HOST_LINK, "up"]);
        ns.run_ok(&["ip", "link", "set", "lo", "up"]);
        ns.run_ok(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", Self::ADDR),
            "dev",
            "eth0",
        ]);
        ns.run_ok(&["ip", "link", "set", "eth0", "up"]);
        for subnet in container_subnets {
            ns.run_ok(&["ip", "route", "add", subnet, "via", Self::HOST_ADDR]);
        }
        // Let both ends settle (carrier, operstate, IPv6 link-local address) before a test
        // takes its baseline.
        wait_settled(host, Self::HOST_LINK);
        wait_settled(&ns, "eth0");
        Outside { ns }
    }
}

/// Waits up to five seconds until `dev` in `ns` is operationally UP and has its IPv6
/// link-local address; panics otherwise.
pub fn wait_settled(ns: &Netns, dev: &str) {
    let start = Instant::now();
    loop {
        let up = inspect::link(ns, dev)["operstate"] == "UP";
        let ll = inspect::addrs_with_scope(ns, dev)
            .iter()
            .any(|(_, scope)| scope == "link");
        if up && ll {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{dev} in {} did not come up (operstate UP + link-local address)",
            ns.name()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

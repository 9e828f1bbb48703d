//! Sending real packets between namespaces: ping, and UDP with the receiver's view of the
//! source address (to see masquerading).
//!
//! Sockets are created on a thread that entered the namespace with `setns(2)`; a socket stays
//! in the namespace it was created in, so it can be used from the test thread afterwards.

use std::fs::File;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};

use crate::netns::Netns;

/// Runs `f` on a fresh thread that has joined the network namespace `ns`; returns its value.
pub fn in_netns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    let path = ns.path();
    thread::scope(|s| {
        s.spawn(|| {
            let file = File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            setns(&file, CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns into {}: {e}", path.display()));
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// One `ping -c 1 -W 1` from `ns` to `addr`; true when a reply came back.
pub fn ping_once(ns: &Netns, addr: &str) -> bool {
    ns.run(&["ping", "-n", "-q", "-c", "1", "-W", "1", addr])
        .success()
}

/// True when `addr` answers a ping from `ns` within about five seconds (retries cover ARP/ND
/// and addresses that are still completing DAD on the far side).
pub fn reachable(ns: &Netns, addr: &str) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if ping_once(ns, addr) {
            return true;
        }
    }
    false
}

/// Panics unless `addr` answers a ping from `ns`.
#[track_caller]
pub fn assert_reachable(ns: &Netns, addr: &str) {
    assert!(
        reachable(ns, addr),
        "{addr} does not answer pings from {}",
        ns.name()
    );
}

/// Panics if `addr` answers any of three pings from `ns` (call it only after proving, in the
/// same setup, that a comparable peer IS reachable, so silence means isolation).
#[track_caller]
pub fn assert_unreachable(ns: &Netns, addr: &str) {
    let out = ns.run(&["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "1", addr]);
    assert!(
        !out.success(),
        "{addr} answered pings from {} but must be isolated\n{}",
        ns.name(),
        out.describe()
    );
}

/// A UDP socket bound inside `ns` to `addr` (port 0 picks one).
pub fn udp_bind(ns: &Netns, addr: SocketAddr) -> UdpSocket {
    in_netns(ns, || {
        UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"))
    })
}

/// Sends `payload` from `ns` to `to` (source chosen by the routing table of `ns`).
pub fn udp_send(ns: &Netns, to: SocketAddr, payload: &[u8]) {
    let any: SocketAddr = match to.ip() {
        IpAddr::V4(_) => "0.0.0.0:0".parse().expect("literal"),
        IpAddr::V6(_) => "[::]:0".parse().expect("literal"),
    };
    let sock = udp_bind(ns, any);
    sock.send_to(payload, to)
        .unwrap_or_else(|e| panic!("send to {to} from {}: {e}", ns.name()));
}

/// Waits up to `timeout` for a datagram equal to `payload` on `sock`; returns its source.
pub fn udp_recv_from(sock: &UdpSocket, payload: &[u8], timeout: Duration) -> Option<SocketAddr> {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 2048];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("set_read_timeout");
        match sock.recv_from(&mut buf) {
            Ok((n, from)) if &buf[..n] == payload => return Some(from),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None;
            }
            Err(e) => panic!("recv_from: {e}"),
        }
    }
}

/// Sends `payload` from `from` to the socket `to` (bound in another namespace) and returns
/// the source address the receiver saw; retries a few times (the first datagram can be lost
/// while ARP resolves). Panics when nothing arrives.
#[track_caller]
pub fn udp_source_seen(from: &Netns, to: &UdpSocket, payload: &[u8]) -> IpAddr {
    let dst = to.local_addr().expect("bound socket has an address");
    for _ in 0..5 {
        udp_send(from, dst, payload);
        if let Some(src) = udp_recv_from(to, payload, Duration::from_secs(1)) {
            return src.ip();
        }
    }
    panic!("no datagram from {} reached {dst}", from.name());
}

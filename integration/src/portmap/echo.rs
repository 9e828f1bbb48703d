//! The `cni-echo` server in a namespace and its TCP / UDP clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::netns::Netns;
use crate::traffic::in_netns;

/// A `cni-echo` process inside a namespace; killed (and reaped) when dropped, also on panic.
#[derive(Debug)]
pub struct EchoServer {
    child: Child,
}

impl EchoServer {
    /// Starts `binary` (the test's `env!("CARGO_BIN_EXE_cni-echo")`) in `ns` on `port` with
    /// `tag`, and waits for its `ready`. It exits by itself after two minutes in any case.
    pub fn start(binary: &str, ns: &Netns, port: u16, tag: &str) -> EchoServer {
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns.name(),
                binary,
                &port.to_string(),
                "120",
                tag,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start cni-echo");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut server = EchoServer { child };
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        if read.is_err() || line.trim() != "ready" {
            let _ = server.child.kill();
            panic!("cni-echo in {} did not start (read {line:?})", ns.name());
        }
        server
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the echo server answered: its tag and the source address it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Echo {
    /// The server's tag.
    pub tag: String,
    /// The client address as the server saw it.
    pub peer: String,
}

fn parse_echo(reply: &str, payload: &str) -> Option<Echo> {
    let mut parts = reply.splitn(3, '|');
    let (tag, peer, echoed) = (parts.next()?, parts.next()?, parts.next()?);
    (echoed == payload).then(|| Echo {
        tag: tag.to_owned(),
        peer: peer.to_owned(),
    })
}

/// One TCP exchange from `from` with `to`; `None` when refused, timed out or garbled.
pub fn tcp_once(from: &Netns, to: SocketAddr, payload: &str) -> Option<Echo> {
    let stream = in_netns(from, || {
        TcpStream::connect_timeout(&to, Duration::from_secs(1))
    });
    let mut stream = stream.ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(format!("{payload}\n").as_bytes()).ok()?;
    stream.shutdown(Shutdown::Write).ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    parse_echo(&reply, payload)
}

/// One UDP exchange from `from` with `to` (one second to answer).
pub fn udp_once(from: &Netns, to: SocketAddr, payload: &str) -> Option<Echo> {
    let any: SocketAddr = match to.ip() {
        IpAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        IpAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    };
    let sock = in_netns(from, || UdpSocket::bind(any)).ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    sock.send_to(payload.as_bytes(), to).ok()?;
    let mut buf = [0u8; 2048];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    parse_echo(&String::from_utf8_lossy(&buf[..n]), payload)
}

/// `tcp_once` retried for up to five seconds (neighbour resolution, forwarding settling).
pub fn tcp_echo(from: &Netns, to: SocketAddr, payload: &str) -> Option<Echo> {
    retry(|| tcp_once(from, to, payload))
}

/// `udp_once` retried for up to five seconds.
pub fn udp_echo(from: &Netns, to: SocketAddr, payload: &str) -> Option<Echo> {
    retry(|| udp_once(from, to, payload))
}

fn retry(mut once: impl FnMut() -> Option<Echo>) -> Option<Echo> {
    let start = Instant::now();
    loop {
        if let Some(echo) = once() {
            return Some(echo);
        }
        if start.elapsed() > Duration::from_secs(5) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// [`tcp_echo`] that must get an answer; panics naming the client and the address.
#[track_caller]
pub fn expect_tcp(from: &Netns, to: SocketAddr, payload: &str) -> Echo {
    tcp_echo(from, to, payload)
        .unwrap_or_else(|| panic!("no TCP echo from {} via {to}", from.name()))
}

/// [`udp_echo`] that must get an answer.
#[track_caller]
pub fn expect_udp(from: &Netns, to: SocketAddr, payload: &str) -> Echo {
    udp_echo(from, to, payload)
        .unwrap_or_else(|| panic!("no UDP echo from {} via {to}", from.name()))
}

/// `ip:port` as a socket address (`[v6]:port` for IPv6).
pub fn sockaddr(ip: &str, port: u16) -> SocketAddr {
    let ip: IpAddr = ip.parse().expect("an IP address");
    SocketAddr::new(ip, port)
}

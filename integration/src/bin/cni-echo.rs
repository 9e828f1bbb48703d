//! `cni-echo <port> <timeout-secs> [tag]`: a tiny TCP and UDP echo server for the portmap
//! integration tests, run inside a container namespace with `ip netns exec`.
//!
//! It listens on `[::]:<port>` (dual-stack; `0.0.0.0:<port>` when IPv6 is unavailable) for TCP
//! and UDP, prints `ready` on stdout once both sockets are bound, and answers every TCP
//! connection (after the client shut down its sending side, or after a newline) and every UDP
//! datagram with `<tag>|<peer address>|<payload>`, so a test sees which server answered and the
//! source address it saw (masquerading). It exits by itself after `<timeout-secs>`, so it can
//! never be left running.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

/// How long one TCP client may take to send its payload.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(port), Some(timeout)) = (
        args.get(1).and_then(|p| p.parse::<u16>().ok()),
        args.get(2).and_then(|t| t.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: cni-echo <port> <timeout-secs> [tag]");
        return ExitCode::from(2);
    };
    let tag = args.get(3).cloned().unwrap_or_default();
    thread::spawn(move || {
        thread::sleep(Duration::from_secs(timeout));
        std::process::exit(0);
    });
    let (tcp, udp) = match bind(port) {
        Ok(sockets) => sockets,
        Err(e) => {
            eprintln!("cni-echo: cannot listen on port {port}: {e}");
            return ExitCode::from(1);
        }
    };
    let udp_tag = tag.clone();
    thread::spawn(move || serve_udp(&udp, &udp_tag));
    println!("ready");
    if std::io::stdout().flush().is_err() {
        return ExitCode::from(1);
    }
    for stream in tcp.incoming().flatten() {
        let tag = tag.clone();
        thread::spawn(move || {
            let _ = serve_tcp(stream, &tag);
        });
    }
    ExitCode::SUCCESS
}

/// TCP and UDP sockets on `[::]:port`, else `0.0.0.0:port`.
fn bind(port: u16) -> std::io::Result<(TcpListener, UdpSocket)> {
    let any6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
    let any4 = SocketAddr::from(([0, 0, 0, 0], port));
    match (TcpListener::bind(any6), UdpSocket::bind(any6)) {
        (Ok(tcp), Ok(udp)) => Ok((tcp, udp)),
        _ => Ok((TcpListener::bind(any4)?, UdpSocket::bind(any4)?)),
    }
}

/// `tag|peer|payload`, with IPv4-mapped peers shown as plain IPv4.
fn reply(tag: &str, peer: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let ip = match peer {
        SocketAddr::V6(v6) => v6
            .ip()
            .to_ipv4_mapped()
            .map_or_else(|| v6.ip().to_string(), |v4| v4.to_string()),
        SocketAddr::V4(v4) => v4.ip().to_string(),
    };
    let mut out = format!("{tag}|{ip}|").into_bytes();
    out.extend_from_slice(payload);
    out
}

fn serve_udp(sock: &UdpSocket, tag: &str) {
    let mut buf = [0u8; 2048];
    while let Ok((n, peer)) = sock.recv_from(&mut buf) {
        let _ = sock.send_to(&reply(tag, peer, &buf[..n]), peer);
    }
}

/// Reads one line (or everything up to the client's shutdown) and answers it.
fn serve_tcp(stream: TcpStream, tag: &str) -> std::io::Result<()> {
    let peer = stream.peer_addr()?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut payload = Vec::new();
    reader.by_ref().take(4096).read_until(b'\n', &mut payload)?;
    let mut stream = stream;
    let body = reply(tag, peer, payload.trim_ascii_end());
    // A request line that looks like HTTP gets an HTTP answer, so curl, a browser or the
    // demo's `/dev/tcp` client can fetch "a page".
    if payload.starts_with(b"GET ") {
        let head = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            body.len() + 1
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(&body)?;
        stream.write_all(b"\n")?;
    } else {
        stream.write_all(&body)?;
    }
    stream.shutdown(std::net::Shutdown::Both)
}

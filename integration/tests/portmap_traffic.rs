//! portmap traffic: an echo server in a container is reached through published host ports —
//! from an "outside" namespace routed behind the host (TCP and UDP, IPv4 and IPv6, with and
//! without `hostIP`), from the host itself via its own address and via 127.0.0.1 (localhost
//! publishing, `route_localnet`), and from the same container through the host address
//! (hairpin, masqueraded). After DEL nothing answers any more.

use integration_tests::firewall::ip_of;
use integration_tests::inspect::sysctl;
use integration_tests::portmap::{
    EchoServer, OUTSIDE_V6, Portmap, expect_tcp, expect_udp, mappings, outside_v6, sockaddr,
    tcp_echo, tcp_once, udp_echo, udp_once,
};
use integration_tests::{Outside, PortmapNet, World};
use serde_json::{Value, json};

const ECHO: &str = env!("CARGO_BIN_EXE_cni-echo");

/// TCP and UDP published on 8080 → 80, the same on 8053 → 53 only for `hostIP` = the host's
/// outside address, and 8054 → 54 only for 127.0.0.1.
fn lab_mappings() -> Value {
    mappings(&[
        (8080, 80, "tcp", None),
        (8080, 80, "udp", None),
        (8053, 53, "tcp", Some(Outside::HOST_ADDR)),
        (8053, 53, "udp", Some(Outside::HOST_ADDR)),
        (8054, 54, "tcp", Some("127.0.0.1")),
    ])
}

fn reachability(backend: &str) {
    let world = World::new();
    let net = PortmapNet::new(
        &world,
        "pm-traffic",
        "t",
        &["10.94.1.0/24"],
        json!({ "backend": backend }),
    );
    net.write();
    // The container subnet is routed via the host, so the bridge address is reachable too.
    let outside = Outside::connect(&world, &["10.94.1.0/24"]);
    let ctr = world.container();
    let maps = lab_mappings();
    let result = net.add(Portmap::Ours, &ctr, "ctr-web", &maps);
    let ctr_ip = ip_of(&result, 4);
    let gateway = "10.94.1.1";
    let _echo = [
        EchoServer::start(ECHO, &ctr, 80, "web"),
        EchoServer::start(ECHO, &ctr, 53, "dns"),
        EchoServer::start(ECHO, &ctr, 54, "local"),
    ];
    let host = Outside::HOST_ADDR;

    // From outside: the wildcard mapping on the host's address and on the bridge address.
    for to in [host, gateway] {
        let tcp = expect_tcp(&outside.ns, sockaddr(to, 8080), "hi");
        assert_eq!(
            (tcp.tag.as_str(), tcp.peer.as_str()),
            ("web", Outside::ADDR),
            "{to}"
        );
        let udp = expect_udp(&outside.ns, sockaddr(to, 8080), "hu");
        assert_eq!(
            (udp.tag.as_str(), udp.peer.as_str()),
            ("web", Outside::ADDR),
            "{to}"
        );
    }
    // hostIP: only that address publishes the port.
    let tcp = expect_tcp(&outside.ns, sockaddr(host, 8053), "a");
    assert_eq!(tcp.tag, "dns");
    assert!(udp_echo(&outside.ns, sockaddr(host, 8053), "b").is_some());
    assert_eq!(tcp_once(&outside.ns, sockaddr(gateway, 8053), "c"), None);
    assert_eq!(udp_once(&outside.ns, sockaddr(gateway, 8053), "d"), None);
    assert_eq!(
        tcp_once(&outside.ns, sockaddr(host, 8054), "e"),
        None,
        "127.0.0.1 only"
    );

    // From the host itself: its own address (no masquerading needed) and localhost (source
    // 127.0.0.1 is masqueraded to the bridge address; route_localnet lets it leave).
    let own = expect_tcp(world.host(), sockaddr(host, 8080), "own");
    assert_eq!(own.peer, host);
    for port in [8080, 8054] {
        let local = expect_tcp(world.host(), sockaddr("127.0.0.1", port), "lo");
        assert_eq!(
            local.peer, gateway,
            "localhost traffic is masqueraded ({port})"
        );
    }
    let local_udp = expect_udp(world.host(), sockaddr("127.0.0.1", 8080), "lu");
    assert_eq!(local_udp.peer, gateway);
    let bridge = net.bridge();
    assert_eq!(
        sysctl(
            world.host(),
            &format!("net/ipv4/conf/{bridge}/route_localnet")
        ),
        "1"
    );

    // Hairpin: the container reaches its own port through the host address, masqueraded.
    let hairpin = expect_tcp(&ctr, sockaddr(host, 8080), "hp");
    assert_eq!(
        (hairpin.tag.as_str(), hairpin.peer.as_str()),
        ("web", gateway)
    );
    assert_ne!(hairpin.peer, ctr_ip);

    net.del(Portmap::Ours, &ctr, "ctr-web", &maps);
    assert_eq!(tcp_once(&outside.ns, sockaddr(host, 8080), "x"), None);
    assert_eq!(udp_once(&outside.ns, sockaddr(host, 8080), "y"), None);
    assert_eq!(
        tcp_once(world.host(), sockaddr("127.0.0.1", 8054), "z"),
        None
    );
}

#[test]
fn iptables_tcp_udp_host_ip_localhost_and_hairpin() {
    reachability("iptables");
}

#[test]
fn nftables_tcp_udp_host_ip_localhost_and_hairpin() {
    reachability("nftables");
}

#[test]
fn the_go_plugin_passes_the_same_traffic_checks() {
    // The same checks against the reference prove the test itself (not only our plugin).
    let world = World::new();
    let net = PortmapNet::new(&world, "pm-go", "g", &["10.94.2.0/24"], json!({}));
    net.write();
    let outside = Outside::connect(&world, &[]);
    let ctr = world.container();
    let maps = lab_mappings();
    net.add(Portmap::Go, &ctr, "ctr-go", &maps);
    let _echo = EchoServer::start(ECHO, &ctr, 80, "web");
    let host = Outside::HOST_ADDR;
    assert!(tcp_echo(&outside.ns, sockaddr(host, 8080), "a").is_some());
    assert!(udp_echo(&outside.ns, sockaddr(host, 8080), "b").is_some());
    let local = expect_tcp(world.host(), sockaddr("127.0.0.1", 8080), "c");
    assert_eq!(local.peer, "10.94.2.1");
    let hairpin = expect_tcp(&ctr, sockaddr(host, 8080), "d");
    assert_eq!(hairpin.peer, "10.94.2.1");
    net.del(Portmap::Go, &ctr, "ctr-go", &maps);
}

fn ipv6(backend: &str) {
    let world = World::new();
    let net = PortmapNet::new(
        &world,
        "pm-v6",
        "s",
        &["10.94.3.0/24", "fd94:3::/64"],
        json!({ "backend": backend }),
    );
    net.write();
    let outside = Outside::connect(&world, &[]);
    outside_v6(&world, &outside);
    let ctr = world.container();
    let maps = mappings(&[(8080, 80, "tcp", None), (8081, 81, "udp", None)]);
    let result = net.add(Portmap::Ours, &ctr, "ctr-v6", &maps);
    let ctr_v6 = ip_of(&result, 6);
    let _echo = [
        EchoServer::start(ECHO, &ctr, 80, "tcp6"),
        EchoServer::start(ECHO, &ctr, 81, "udp6"),
    ];
    let (host6, out6) = OUTSIDE_V6;
    let tcp = expect_tcp(&outside.ns, sockaddr(host6, 8080), "six");
    assert_eq!((tcp.tag.as_str(), tcp.peer.as_str()), ("tcp6", out6));
    let udp = expect_udp(&outside.ns, sockaddr(host6, 8081), "six");
    assert_eq!((udp.tag.as_str(), udp.peer.as_str()), ("udp6", out6));
    // IPv4 still works on the same container.
    assert!(tcp_echo(&outside.ns, sockaddr(Outside::HOST_ADDR, 8080), "four").is_some());
    // IPv6 hairpin is masqueraded to the bridge's IPv6 gateway.
    let hairpin = expect_tcp(&ctr, sockaddr(host6, 8080), "hp6");
    assert_eq!(hairpin.peer, "fd94:3::1");
    assert_ne!(hairpin.peer, ctr_v6);
    net.del(Portmap::Ours, &ctr, "ctr-v6", &maps);
    assert_eq!(tcp_once(&outside.ns, sockaddr(host6, 8080), "gone"), None);
}

#[test]
fn iptables_ipv6() {
    ipv6("iptables");
}

#[test]
fn nftables_ipv6() {
    ipv6("nftables");
}

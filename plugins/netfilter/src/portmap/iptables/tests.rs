//! Unit tests of the iptables portmap backend: exact batches over scripted `iptables-save`.

use std::sync::Arc;

use super::*;
use crate::portmap::tests::{ByProgram, lab_ports, lab_ports_for, mapping};
use crate::portmap::{MarkMode, PortmapOptions};

mod removal;

/// `iptables-save -t nat` after the reference v1.1.1 ADD of `lab_ports` (observed on Debian 12,
/// iptables 1.8.9 nf_tables, in a scratch netns; every protocol spelled in lower case).
const GO_V4: &str = r#"*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-DN-89724df900daa5db77d08 - [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-DN-89724df900daa5db77d08 -s 10.99.0.0/24 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-89724df900daa5db77d08 -s 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-89724df900daa5db77d08 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.99.0.2:80
-A CNI-DN-89724df900daa5db77d08 -s 10.99.0.0/24 -p tcp -m tcp --dport 8443 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-89724df900daa5db77d08 -s 127.0.0.1/32 -p tcp -m tcp --dport 8443 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-89724df900daa5db77d08 -p tcp -m tcp --dport 8443 -j DNAT --to-destination 10.99.0.2:443
-A CNI-DN-89724df900daa5db77d08 -s 10.99.0.0/24 -d 127.0.0.1/32 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-89724df900daa5db77d08 -s 127.0.0.1/32 -d 127.0.0.1/32 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-89724df900daa5db77d08 -d 127.0.0.1/32 -p udp -m udp --dport 5353 -j DNAT --to-destination 10.99.0.2:53
-A CNI-DN-89724df900daa5db77d08 -s 10.99.0.0/24 -p tcp -m tcp --dport 9000 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-89724df900daa5db77d08 -s 127.0.0.1/32 -p tcp -m tcp --dport 9000 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-89724df900daa5db77d08 -p tcp -m tcp --dport 9000 -j DNAT --to-destination 10.99.0.2:90
-A CNI-HOSTPORT-DNAT -p sctp -m comment --comment "dnat name: \"cnixnet\" id: \"ctr1\"" -m multiport --dports 7000 -j CNI-DN-89724df900daa5db77d08
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"cnixnet\" id: \"ctr1\"" -m multiport --dports 8080,8443,9000 -j CNI-DN-89724df900daa5db77d08
-A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \"cnixnet\" id: \"ctr1\"" -m multiport --dports 5353 -j CNI-DN-89724df900daa5db77d08
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
COMMIT
"#;

const EMPTY: &str = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                     :POSTROUTING ACCEPT [0:0]\nCOMMIT\n";

const CHAIN: &str = "CNI-DN-89724df900daa5db77d08";
const COMMENT: &str = r#""dnat name: \"cnixnet\" id: \"ctr1\"""#;

fn backend(runner: Arc<ByProgram>) -> (IptablesPortmap, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (
        IptablesPortmap::new(runner, HostLock::in_dir(dir.path())),
        dir,
    )
}

/// The batch of a first ADD of `lab_ports` (IPv4): the reference's rules, in its order.
fn first_add_v4() -> String {
    let c = CHAIN;
    let m = COMMENT;
    format!(
        "*nat
-N CNI-HOSTPORT-SETMARK
-A CNI-HOSTPORT-SETMARK -m comment --comment \"CNI portfwd masquerade mark\" -j MARK --set-xmark 0x2000/0x2000
-N CNI-HOSTPORT-MASQ
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-I POSTROUTING 1 -m comment --comment \"CNI portfwd requiring masquerade\" -j CNI-HOSTPORT-MASQ
-N CNI-HOSTPORT-DNAT
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-N {c}
-A {c} -s 10.99.0.0/24 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A {c} -s 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A {c} -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.99.0.2:80
-A {c} -s 10.99.0.0/24 -p tcp -m tcp --dport 8443 -j CNI-HOSTPORT-SETMARK
-A {c} -s 127.0.0.1/32 -p tcp -m tcp --dport 8443 -j CNI-HOSTPORT-SETMARK
-A {c} -p tcp -m tcp --dport 8443 -j DNAT --to-destination 10.99.0.2:443
-A {c} -s 10.99.0.0/24 -d 127.0.0.1/32 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK
-A {c} -s 127.0.0.1/32 -d 127.0.0.1/32 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK
-A {c} -d 127.0.0.1/32 -p udp -m udp --dport 5353 -j DNAT --to-destination 10.99.0.2:53
-A {c} -s 10.99.0.0/24 -p tcp -m tcp --dport 9000 -j CNI-HOSTPORT-SETMARK
-A {c} -s 127.0.0.1/32 -p tcp -m tcp --dport 9000 -j CNI-HOSTPORT-SETMARK
-A {c} -p tcp -m tcp --dport 9000 -j DNAT --to-destination 10.99.0.2:90
-A CNI-HOSTPORT-DNAT -p sctp -m comment --comment {m} -m multiport --dports 7000 -j {c}
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment {m} -m multiport --dports 8080,8443,9000 -j {c}
-A CNI-HOSTPORT-DNAT -p udp -m comment --comment {m} -m multiport --dports 5353 -j {c}
COMMIT
"
    )
}

#[test]
fn first_add_writes_the_reference_layout_in_one_batch() {
    let kernel = Arc::new(ByProgram::new());
    kernel.ok("iptables-save", EMPTY);
    let (b, _d) = backend(kernel.clone());
    b.add(&lab_ports(true, false, PortmapOptions::default()))
        .unwrap();
    assert_eq!(
        kernel.lines(),
        ["iptables-save -t nat", &restore_line("iptables-restore")]
    );
    assert_eq!(kernel.stdin_of("iptables-restore"), [first_add_v4()]);
}

/// `<program> --noflush -w <seconds>`: every restore waits a bounded time for the xtables lock.
fn restore_line(program: &str) -> String {
    format!("{program} {}", exec::restore_args().join(" "))
}

#[test]
fn ipv6_rules_have_no_localhost_mark_and_bracketed_targets() {
    // `[` is not in iptables-save's bare set: the target is written quoted (restore accepts it).
    let kernel = Arc::new(ByProgram::new());
    kernel
        .ok("iptables-save", EMPTY)
        .ok("ip6tables-save", EMPTY);
    let (b, _d) = backend(kernel.clone());
    b.add(&lab_ports(true, true, PortmapOptions::default()))
        .unwrap();
    let v6 = kernel.stdin_of("ip6tables-restore").remove(0);
    let chain_lines: Vec<&str> = v6
        .lines()
        .filter(|l| l.starts_with(&format!("-A {CHAIN}")))
        .collect();
    assert_eq!(
        chain_lines,
        [
            format!(
                "-A {CHAIN} -s fd00:99::/64 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK"
            ),
            format!(
                "-A {CHAIN} -p tcp -m tcp --dport 8080 -j DNAT --to-destination \"[fd00:99::2]:80\""
            ),
            format!(
                "-A {CHAIN} -s fd00:99::/64 -p tcp -m tcp --dport 8443 -j CNI-HOSTPORT-SETMARK"
            ),
            format!(
                "-A {CHAIN} -p tcp -m tcp --dport 8443 -j DNAT --to-destination \"[fd00:99::2]:443\""
            ),
            format!(
                "-A {CHAIN} -s fd00:99::/64 -d ::1/128 -p sctp -m sctp --dport 7000 -j CNI-HOSTPORT-SETMARK"
            ),
            format!(
                "-A {CHAIN} -d ::1/128 -p sctp -m sctp --dport 7000 -j DNAT --to-destination \"[fd00:99::2]:70\""
            ),
        ]
    );
    assert_eq!(kernel.stdin_of("iptables-restore"), [first_add_v4()]);
}

#[test]
fn add_over_the_reference_state_changes_nothing() {
    let kernel = Arc::new(ByProgram::new());
    kernel.ok("iptables-save", GO_V4);
    let (b, _d) = backend(kernel.clone());
    let ports = lab_ports(true, false, PortmapOptions::default());
    b.add(&ports).unwrap();
    assert_eq!(kernel.lines(), ["iptables-save -t nat"], "no restore");
    kernel.ok("iptables-save", GO_V4);
    b.check(&ports).unwrap();
}

#[test]
fn readd_with_other_mappings_rewrites_only_the_container() {
    let kernel = Arc::new(ByProgram::new());
    kernel.ok("iptables-save", GO_V4);
    let (b, _d) = backend(kernel.clone());
    let ports = ContainerPorts {
        mappings: vec![mapping(8080, 81, "tcp", None)],
        ..lab_ports(true, false, PortmapOptions::default())
    };
    b.add(&ports).unwrap();
    let m = COMMENT;
    assert_eq!(
        kernel.stdin_of("iptables-restore"),
        [format!(
            "*nat
-F {CHAIN}
-A {CHAIN} -s 10.99.0.0/24 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A {CHAIN} -s 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A {CHAIN} -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.99.0.2:81
-D CNI-HOSTPORT-DNAT -p sctp -m comment --comment {m} -m multiport --dports 7000 -j {CHAIN}
-D CNI-HOSTPORT-DNAT -p tcp -m comment --comment {m} -m multiport --dports 8080,8443,9000 -j {CHAIN}
-D CNI-HOSTPORT-DNAT -p udp -m comment --comment {m} -m multiport --dports 5353 -j {CHAIN}
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment {m} -m multiport --dports 8080 -j {CHAIN}
COMMIT
"
        )]
    );
}

#[test]
fn a_port_of_another_container_is_a_conflict_and_nothing_changes() {
    let kernel = Arc::new(ByProgram::new());
    kernel
        .ok("iptables-save", GO_V4)
        .ok("ip6tables-save", EMPTY);
    let (b, _d) = backend(kernel.clone());
    let other = lab_ports_for("ctr2", true, true, PortmapOptions::default());
    let err = b.add(&other).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"host port tcp *:8080 is already mapped to container "ctr1" of network "cnixnet""#
    );
    assert!(
        kernel.stdin_of("ip6tables-restore").is_empty(),
        "IPv6 untouched too"
    );
    assert!(kernel.stdin_of("iptables-restore").is_empty());

    // Another host address on the same port is no conflict; the same container on another
    // network neither.
    let kernel = Arc::new(ByProgram::new());
    kernel.ok("iptables-save", GO_V4);
    let (b, _d) = backend(kernel.clone());
    let elsewhere = ContainerPorts {
        mappings: vec![mapping(5353, 53, "udp", Some("10.1.1.1"))],
        ..lab_ports_for("ctr2", true, false, PortmapOptions::default())
    };
    b.add(&elsewhere).unwrap();
    let kernel = Arc::new(ByProgram::new());
    kernel.ok("iptables-save", GO_V4);
    let (b, _d) = backend(kernel.clone());
    let mut same = lab_ports(true, false, PortmapOptions::default());
    same.owner.network = "other".to_owned();
    b.add(&same).unwrap();
}

#[test]
fn a_failed_batch_is_replanned_from_a_fresh_read() {
    let kernel = Arc::new(ByProgram::new());
    kernel
        .ok("iptables-save", EMPTY)
        .fail(
            "iptables-restore",
            1,
            "iptables-restore: line 2 failed: Chain already exists.",
        )
        .ok("iptables-save", GO_V4);
    let (b, _d) = backend(kernel.clone());
    b.add(&lab_ports(true, false, PortmapOptions::default()))
        .unwrap();
    assert_eq!(
        kernel.lines(),
        [
            "iptables-save -t nat",
            &restore_line("iptables-restore"),
            "iptables-save -t nat"
        ],
        "the second plan finds everything in place"
    );
}

#[test]
fn a_restore_that_timed_out_on_the_xtables_lock_is_not_retried() {
    let kernel = Arc::new(ByProgram::new());
    kernel.ok("iptables-save", EMPTY).fail(
        "iptables-restore",
        4,
        "Another app is currently holding the xtables lock. Stopped waiting after 30s.",
    );
    let (b, _d) = backend(kernel.clone());
    let err = b
        .add(&lab_ports(true, false, PortmapOptions::default()))
        .unwrap_err();
    assert!(
        matches!(&err, PortmapError::Netfilter(n) if n.is_lock_timeout()),
        "{err:?}"
    );
    assert_eq!(
        kernel.lines(),
        ["iptables-save -t nat", &restore_line("iptables-restore")],
        "one wait, no re-plan, nothing to undo"
    );
}

#[test]
fn check_names_the_first_missing_rule() {
    let kernel = Arc::new(ByProgram::new());
    let drifted = GO_V4.replace(
        &format!("-A {CHAIN} -p tcp -m tcp --dport 8443 -j DNAT --to-destination 10.99.0.2:443\n"),
        "",
    );
    kernel.ok("iptables-save", &drifted);
    let (b, _d) = backend(kernel.clone());
    let err = b
        .check(&lab_ports(true, false, PortmapOptions::default()))
        .unwrap_err();
    assert!(err.is_rule_missing());
    assert_eq!(
        err.to_string(),
        format!(
            "rule [-p tcp -m tcp --dport 8443 -j DNAT --to-destination 10.99.0.2:443] in chain \
             {CHAIN} of iptables table nat not found"
        )
    );
    kernel.ok("iptables-save", EMPTY);
    let err = b
        .check(&lab_ports(true, false, PortmapOptions::default()))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "chain CNI-HOSTPORT-DNAT in iptables table nat not found"
    );
}

#[test]
fn options_shape_the_rules() {
    let kernel = Arc::new(ByProgram::new());
    kernel.ok("iptables-save", "*nat\n:KUBE-MARK-MASQ - [0:0]\nCOMMIT\n");
    let (b, _d) = backend(kernel.clone());
    let options = PortmapOptions {
        masq_all: true,
        mark: MarkMode::External("KUBE-MARK-MASQ".to_owned()),
        conditions_v4: vec!["!".into(), "-d".into(), "192.0.2.0/24".into()],
        ..PortmapOptions::default()
    };
    let ports = ContainerPorts {
        mappings: vec![mapping(8080, 80, "tcp", None)],
        ..lab_ports(true, false, options)
    };
    b.add(&ports).unwrap();
    let m = COMMENT;
    assert_eq!(
        kernel.stdin_of("iptables-restore"),
        [format!(
            "*nat
-N CNI-HOSTPORT-DNAT
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-N {CHAIN}
-A {CHAIN} -p tcp -m tcp --dport 8080 -j KUBE-MARK-MASQ
-A {CHAIN} -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.99.0.2:80
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment {m} -m multiport --dports 8080 ! -d 192.0.2.0/24 -j {CHAIN}
COMMIT
"
        )]
    );
    // A missing external chain is refused before anything is written.
    let kernel = Arc::new(ByProgram::new());
    kernel.ok("iptables-save", EMPTY);
    let (b, _d) = backend(kernel.clone());
    let err = b.add(&ports).unwrap_err();
    assert_eq!(
        err.to_string(),
        "externalSetMarkChain KUBE-MARK-MASQ in iptables table nat not found"
    );
    assert!(kernel.stdin_of("iptables-restore").is_empty());
}

#[test]
fn status_probes_the_tools() {
    let kernel = Arc::new(ByProgram::new());
    let (b, _d) = backend(kernel.clone());
    b.status().unwrap();
    assert_eq!(kernel.lines(), ["iptables -w 30 -t nat -S POSTROUTING"]);
    let kernel = Arc::new(ByProgram::new().missing("iptables-restore"));
    let (b, _d) = backend(kernel);
    assert_eq!(
        b.status().unwrap_err().to_string(),
        "iptables backend is not usable"
    );
}

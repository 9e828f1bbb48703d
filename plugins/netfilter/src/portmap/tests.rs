//! Tests of the portmap model: mappings, owners, names, validation, the conntrack step.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use super::*;
use crate::exec::{CommandOutput, FakeRunner};

/// A runner answering per program (replies for one program are consumed in order), so the two
/// families' parallel workers get deterministic answers. Unscripted calls succeed silently.
#[derive(Default)]
pub(crate) struct ByProgram {
    replies: Mutex<HashMap<String, VecDeque<CommandOutput>>>,
    calls: Mutex<Vec<(String, Option<String>)>>,
    missing: Vec<String>,
}

impl ByProgram {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn missing(mut self, program: &str) -> Self {
        self.missing.push(program.to_owned());
        self
    }

    pub(crate) fn ok(&self, program: &str, stdout: &str) -> &Self {
        self.push(program, Some(0), stdout, "")
    }

    pub(crate) fn fail(&self, program: &str, status: i32, stderr: &str) -> &Self {
        self.push(program, Some(status), "", stderr)
    }

    fn push(&self, program: &str, status: Option<i32>, stdout: &str, stderr: &str) -> &Self {
        let out = CommandOutput {
            status,
            stdout: stdout.to_owned(),
            stderr: stderr.to_owned(),
        };
        let mut replies = self.replies.lock().unwrap();
        replies
            .entry(program.to_owned())
            .or_default()
            .push_back(out);
        drop(replies);
        self
    }

    /// `program arg…` of every call, in order.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|(l, _)| l.clone())
            .collect()
    }

    /// The stdin of every call to `program`, in order.
    pub(crate) fn stdin_of(&self, program: &str) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(l, _)| l.split(' ').next() == Some(program))
            .filter_map(|(_, s)| s.clone())
            .collect()
    }
}

impl CommandRunner for ByProgram {
    fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<CommandOutput, NetfilterError> {
        let line = std::iter::once(program)
            .chain(args.iter().copied())
            .collect::<Vec<_>>();
        self.calls
            .lock()
            .unwrap()
            .push((line.join(" "), stdin.map(str::to_owned)));
        if self.missing.iter().any(|m| m == program) {
            let program = program.to_owned();
            return Err(NetfilterError::ProgramNotFound { program });
        }
        let next = self
            .replies
            .lock()
            .unwrap()
            .get_mut(program)
            .and_then(VecDeque::pop_front);
        Ok(next.unwrap_or(CommandOutput {
            status: Some(0),
            ..CommandOutput::default()
        }))
    }

    fn has_program(&self, program: &str) -> bool {
        !self.missing.iter().any(|m| m == program)
    }
}

pub(crate) fn mapping(host: u16, container: u16, proto: &str, ip: Option<&str>) -> PortMapping {
    PortMapping {
        host_port: host,
        container_port: container,
        protocol: Protocol::parse(proto).unwrap(),
        host_ip: ip.map(|s| s.parse().unwrap()),
    }
}

/// `cnixnet`/`ctr1` at 10.99.0.2/24 and fd00:99::2/64 (either optional) with the lab mappings.
pub(crate) fn lab_ports(v4: bool, v6: bool, options: PortmapOptions) -> ContainerPorts {
    lab_ports_for("ctr1", v4, v6, options)
}

pub(crate) fn lab_ports_for(
    cid: &str,
    v4: bool,
    v6: bool,
    options: PortmapOptions,
) -> ContainerPorts {
    ContainerPorts::new(
        PortmapOwner::new("cnixnet", cid),
        [
            v4.then(|| "10.99.0.2/24".parse().unwrap()),
            v6.then(|| "fd00:99::2/64".parse().unwrap()),
        ],
        &[
            mapping(8080, 80, "tcp", None),
            mapping(8443, 443, "tcp", None),
            mapping(5353, 53, "udp", Some("127.0.0.1")),
            mapping(7000, 70, "sctp", Some("::1")),
            mapping(9000, 90, "tcp", Some("0.0.0.0")),
        ],
        options,
    )
    .unwrap()
}

#[test]
fn protocols_parse_in_any_case() {
    assert_eq!(Protocol::parse("TCP"), Some(Protocol::Tcp));
    assert_eq!(Protocol::parse("udp"), Some(Protocol::Udp));
    assert_eq!(Protocol::parse("Sctp"), Some(Protocol::Sctp));
    assert_eq!(Protocol::parse("icmp"), None);
    assert_eq!(Protocol::parse(""), None);
}

#[test]
fn mappings_apply_per_family_and_describe_themselves() {
    let any = mapping(8080, 80, "tcp", None);
    let local = mapping(5353, 53, "udp", Some("127.0.0.1"));
    let wildcard = mapping(9000, 90, "tcp", Some("0.0.0.0"));
    let v6 = mapping(7000, 70, "sctp", Some("::1"));
    assert!(any.applies_to(IpFamily::V4) && any.applies_to(IpFamily::V6));
    assert!(local.applies_to(IpFamily::V4) && !local.applies_to(IpFamily::V6));
    assert!(!v6.applies_to(IpFamily::V4) && v6.applies_to(IpFamily::V6));
    assert_eq!(
        wildcard.destination(),
        None,
        "unspecified means any address"
    );
    assert_eq!(any.describe(), "tcp *:8080");
    assert_eq!(local.describe(), "udp 127.0.0.1:5353");
    assert_eq!(v6.describe(), "sctp [::1]:7000");
}

#[test]
fn overlap_needs_protocol_port_and_address() {
    let any = mapping(8080, 80, "tcp", None);
    assert!(any.overlaps(&mapping(8080, 81, "tcp", Some("10.0.0.1"))));
    assert!(mapping(8080, 80, "tcp", Some("10.0.0.1")).overlaps(&any));
    assert!(!any.overlaps(&mapping(8080, 80, "udp", None)));
    assert!(!any.overlaps(&mapping(8081, 80, "tcp", None)));
    let a = mapping(8080, 80, "tcp", Some("10.0.0.1"));
    assert!(!a.overlaps(&mapping(8080, 80, "tcp", Some("10.0.0.2"))));
    assert!(a.overlaps(&mapping(8080, 80, "tcp", Some("0.0.0.0"))));
}

#[test]
fn owner_names_match_the_reference() {
    let owner = PortmapOwner::new("cnixnet", "ctr1");
    assert_eq!(owner.dnat_chain(), "CNI-DN-89724df900daa5db77d08");
    assert_eq!(owner.legacy_snat_chain().len(), 28);
    assert!(owner.legacy_snat_chain().starts_with("CNI-SN-"));
    assert_eq!(
        owner.iptables_comment(),
        r#"dnat name: "cnixnet" id: "ctr1""#
    );
    let long = PortmapOwner::new("n", &"c".repeat(300));
    let comment = long.iptables_comment();
    assert_eq!(
        comment.len(),
        256,
        "253 characters and \"...\", as the reference"
    );
    assert!(comment.ends_with("cc..."));
    assert_eq!(owner.nft_instance().len(), 33);
    assert_eq!(
        owner.nft_comment(),
        format!("{}, net: cnixnet, id: ctr1", owner.nft_instance())
    );
    assert!(owner.nft_instance().starts_with(&network_hash("cnixnet")));
    assert_eq!(long.nft_comment().len(), 128);
}

#[test]
fn container_ports_validate_before_rules() {
    let ok = lab_ports(true, false, PortmapOptions::default());
    assert_eq!(ok.families(), [IpFamily::V4]);
    assert_eq!(ok.mappings_for(IpFamily::V4).count(), 4);
    assert_eq!(ok.mappings_for(IpFamily::V6).count(), 3);
    let dup = ContainerPorts::new(
        PortmapOwner::new("n", "c"),
        [
            Some("10.0.0.2/24".parse().unwrap()),
            Some("10.0.0.3/24".parse().unwrap()),
        ],
        &[mapping(1, 2, "tcp", None), mapping(1, 2, "tcp", None)],
        PortmapOptions::default(),
    )
    .unwrap();
    assert_eq!(dup.mappings.len(), 1, "duplicates dropped");
    assert_eq!(dup.v6, None, "an IPv4 network is no IPv6 address");
    let bad_owner = ContainerPorts::new(
        PortmapOwner::new("n", "c\"1"),
        [None, None],
        &[],
        PortmapOptions::default(),
    );
    assert!(bad_owner.is_err());
    for bad in ["a\nb", "x; flush ruleset", "# c"] {
        let options = PortmapOptions {
            conditions_v4: vec![bad.to_owned()],
            ..PortmapOptions::default()
        };
        let r = ContainerPorts::new(PortmapOwner::new("n", "c"), [None, None], &[], options);
        assert!(r.is_err(), "{bad:?} accepted");
    }
    for bad in ["", "-X", "A B", &"A".repeat(29)] {
        assert!(validate_chain(bad).is_err(), "{bad:?} accepted");
    }
    assert!(validate_chain("KUBE-MARK-MASQ").is_ok());
}

#[test]
fn conntrack_flush_only_for_udp_and_only_with_the_tool() {
    let fake = FakeRunner::new();
    fake.set_missing("conntrack");
    let maps = [mapping(5353, 53, "udp", None), mapping(80, 80, "tcp", None)];
    assert!(flush_udp_conntrack(&fake, &IpFamily::ALL, &maps).is_empty());
    assert!(fake.calls().is_empty(), "no tool, no exec");

    let fake = FakeRunner::new();
    fake.fail(
        "conntrack",
        1,
        "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.",
    )
    .fail(
        "conntrack",
        1,
        "conntrack v1.4.7 (conntrack-tools): Operation failed: invalid parameters",
    );
    let errors = flush_udp_conntrack(&fake, &IpFamily::ALL, &maps);
    assert_eq!(
        fake.command_lines(),
        [
            "conntrack -D -f ipv4 -p udp --orig-port-dst 5353",
            "conntrack -D -f ipv6 -p udp --orig-port-dst 5353"
        ]
    );
    assert_eq!(
        errors.len(),
        1,
        "real failures are reported for logging, \"0 flow entries\" is not"
    );
}

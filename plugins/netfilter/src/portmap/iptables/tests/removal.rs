//! DEL and GC of the iptables portmap backend: exact batches over scripted `iptables-save`.

use std::sync::Arc;

use super::{CHAIN, COMMENT, EMPTY, GO_V4, backend};
use crate::portmap::tests::{ByProgram, lab_ports_for};
use crate::portmap::{PortmapBackend, PortmapOptions, PortmapOwner};

#[test]
fn del_removes_the_container_and_the_idle_shared_chains() {
    let kernel = Arc::new(ByProgram::new());
    kernel
        .ok("iptables-save", GO_V4)
        .ok("ip6tables-save", EMPTY);
    let (b, _d) = backend(kernel.clone());
    b.del(&PortmapOwner::new("cnixnet", "ctr1")).unwrap();
    let m = COMMENT;
    assert_eq!(
        kernel.stdin_of("iptables-restore"),
        [format!(
            "*nat
-D CNI-HOSTPORT-DNAT -p sctp -m comment --comment {m} -m multiport --dports 7000 -j {CHAIN}
-D CNI-HOSTPORT-DNAT -p tcp -m comment --comment {m} -m multiport --dports 8080,8443,9000 -j {CHAIN}
-D CNI-HOSTPORT-DNAT -p udp -m comment --comment {m} -m multiport --dports 5353 -j {CHAIN}
-F {CHAIN}
-X {CHAIN}
-D PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-D OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-X CNI-HOSTPORT-DNAT
-D POSTROUTING -m comment --comment \"CNI portfwd requiring masquerade\" -j CNI-HOSTPORT-MASQ
-F CNI-HOSTPORT-MASQ
-X CNI-HOSTPORT-MASQ
-F CNI-HOSTPORT-SETMARK
-X CNI-HOSTPORT-SETMARK
COMMIT
"
        )]
    );
    assert!(
        kernel.stdin_of("ip6tables-restore").is_empty(),
        "nothing there"
    );
}

#[test]
fn del_keeps_shared_chains_others_use_and_tolerates_missing_tools() {
    let other = lab_ports_for("ctr2", true, false, PortmapOptions::default());
    let c2 = other.owner.dnat_chain();
    let both = GO_V4.replace(
        "COMMIT\n",
        &format!(
            ":{c2} - [0:0]\n-A {c2} -p tcp -m tcp --dport 1234 -j DNAT --to-destination 10.99.0.3:80\n\
             -A CNI-HOSTPORT-DNAT -p tcp -m comment --comment \"dnat name: \\\"cnixnet\\\" id: \\\"ctr2\\\"\" \
             -m multiport --dports 1234 -j {c2}\nCOMMIT\n"
        ),
    );
    let kernel = Arc::new(ByProgram::new().missing("ip6tables-save"));
    kernel.ok("iptables-save", &both);
    let (b, _d) = backend(kernel.clone());
    b.del(&PortmapOwner::new("cnixnet", "ctr1")).unwrap();
    let batch = kernel.stdin_of("iptables-restore").remove(0);
    assert!(batch.contains(&format!("-X {CHAIN}")), "{batch}");
    assert!(
        !batch.contains("CNI-HOSTPORT-DNAT\n") && !batch.contains("-X CNI-HOSTPORT"),
        "{batch}"
    );
    assert!(!batch.contains(&other.owner.dnat_chain()), "{batch}");
}

#[test]
fn del_of_nothing_writes_nothing() {
    let kernel = Arc::new(ByProgram::new());
    kernel
        .ok("iptables-save", GO_V4)
        .ok("ip6tables-save", EMPTY);
    let (b, _d) = backend(kernel.clone());
    b.del(&PortmapOwner::new("cnixnet", "ctr9")).unwrap();
    let mut lines = kernel.lines();
    lines.sort();
    assert_eq!(
        lines,
        ["ip6tables-save -t nat", "iptables-save -t nat"],
        "no restore"
    );
}

#[test]
fn gc_removes_stale_containers_of_the_network_only() {
    let kernel = Arc::new(ByProgram::new());
    kernel
        .ok("iptables-save", GO_V4)
        .ok("ip6tables-save", EMPTY);
    let (b, _d) = backend(kernel.clone());
    b.gc("other", &[]).unwrap();
    b.gc("cnixnet", &["ctr1"]).unwrap();
    assert!(
        kernel.stdin_of("iptables-restore").is_empty(),
        "other network / still valid"
    );
    kernel
        .ok("iptables-save", GO_V4)
        .ok("ip6tables-save", EMPTY);
    b.gc("cnixnet", &["ctr2"]).unwrap();
    let batch = kernel.stdin_of("iptables-restore").remove(0);
    assert!(batch.contains(&format!("-X {CHAIN}")), "{batch}");
}

//! `CNI_PHASE_TIMES=1`: every plugin of a real cnitool run reports its phases on stderr (one
//! `cni-phase <pid> <label> +<step> ms (<total> ms)` line each), and stays silent without it.

use integration_tests::{BridgeBench, World};
use serde_json::json;

fn phase_lines(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.starts_with("cni-phase "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn phase_times_name_each_step_of_add_and_del_only_when_asked() {
    let world = World::new();
    let b = BridgeBench::new(&world, "phasenet");
    b.write(
        "1.0.0",
        json!({"isGateway": true, "ipMasq": true, "ipam": b.ipam(&["10.97.0.0/24"])}),
    );
    let ctr = world.container();
    let add = b.tool().env("CNI_PHASE_TIMES", "1").add("phasenet", &ctr);
    assert!(add.success(), "{}", add.describe());
    let lines = phase_lines(&add.stderr);
    for label in [
        " start ",
        " bridge:veth ",
        " bridge:ipam ",
        " bridge:masquerade ",
        " bridge:done ",
        " exit ",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(label)),
            "{label:?} missing in {lines:#?}"
        );
    }
    // host-local is a separate process with its own start and exit.
    let pids: std::collections::BTreeSet<&str> =
        lines.iter().filter_map(|l| l.split(' ').nth(1)).collect();
    assert_eq!(pids.len(), 2, "{lines:#?}");
    for line in &lines {
        let (_, times) = line.split_once(" +").unwrap();
        assert!(times.ends_with(" ms)") && times.contains(" ms ("), "{line}");
    }

    let del = b.tool().env("CNI_PHASE_TIMES", "1").del("phasenet", &ctr);
    assert!(del.success(), "{}", del.describe());
    let lines = phase_lines(&del.stderr);
    for label in [
        " bridge:del-link ",
        " bridge:del-ipam ",
        " bridge:del-rules ",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(label)),
            "{label:?} in {lines:#?}"
        );
    }

    let quiet = b.tool().add("phasenet", &ctr);
    assert!(quiet.success(), "{}", quiet.describe());
    assert_eq!(phase_lines(&quiet.stderr), Vec::<String>::new());
    b.del(&ctr);
}

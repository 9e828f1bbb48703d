use cni_core::config::NetConf;
use cni_core::{CniError, ErrorCode};
use serde_json::json;

use crate::config::{BridgeFields, load};

fn load_json(v: serde_json::Value) -> Result<crate::config::BridgeConfig, CniError> {
    let conf: NetConf<BridgeFields> = NetConf::parse(v.to_string().as_bytes())?;
    load(&conf, None)
}

#[test]
fn defaults() {
    let c = load_json(json!({"name": "n", "type": "bridge"})).unwrap();
    assert_eq!(c.bridge, "cni0");
    assert!(!c.is_gateway && !c.ip_masq && !c.vlan_filtering());
    assert_eq!(c.mtu, None);
    let c = load_json(json!({"name": "n", "isDefaultGateway": true})).unwrap();
    assert!(c.is_gateway, "isDefaultGateway implies isGateway");
}

#[test]
fn validation_messages() {
    let cases = [
        (
            json!({"vlan": 5000}),
            "invalid VLAN ID 5000 (must be between 0 and 4094)",
        ),
        (
            json!({"vlan": -1}),
            "invalid VLAN ID -1 (must be between 0 and 4094)",
        ),
        (
            json!({"hairpinMode": true, "promiscMode": true}),
            "cannot set hairpin mode and promiscuous mode at the same time",
        ),
        (
            json!({"disableContainerInterface": true, "ipam": {"type": "host-local"}}),
            "cannot use IPAM when DisableContainerInterface flag is set",
        ),
        (
            json!({"ipMasqBackend": "ebtables"}),
            "unknown ipmasq backend \"ebtables\"",
        ),
        (
            json!({"vlanTrunk": [{"minID": 0, "maxID": 5}]}),
            "incorrect trunk minID parameter",
        ),
        (
            json!({"vlanTrunk": [{"minID": 5, "maxID": 5000}]}),
            "incorrect trunk maxID parameter",
        ),
        (
            json!({"vlanTrunk": [{"minID": 9, "maxID": 5}]}),
            "minID is greater than maxID in trunk parameter",
        ),
        (
            json!({"vlanTrunk": [{"maxID": 5}]}),
            "minID and maxID should be configured simultaneously, minID is missing",
        ),
        (
            json!({"vlanTrunk": [{"minID": 5}]}),
            "minID and maxID should be configured simultaneously, maxID is missing",
        ),
        (
            json!({"vlanTrunk": [{"id": 4095}]}),
            "incorrect trunk id parameter",
        ),
        (
            json!({"bridge": "a-very-long-bridge-name"}),
            "invalid bridge name",
        ),
        (
            json!({"mac": "x", "runtimeConfig": {"mac": "zz:zz"}}),
            "invalid MAC address \"zz:zz\"",
        ),
    ];
    for (extra, msg) in cases {
        let mut v = json!({"name": "n", "type": "bridge"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let e = load_json(v.clone()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidNetworkConfig, "{v}");
        assert!(e.msg.starts_with(msg), "{v}: {}", e.msg);
    }
}

#[test]
fn trunk_ranges_merge() {
    let c = load_json(json!({"name": "n", "vlanTrunk": [{"id": 7}, {"minID": 5, "maxID": 8}]}))
        .unwrap();
    assert_eq!(c.trunk, [5, 6, 7, 8]);
    assert!(c.vlan_filtering());
}

#[test]
fn mac_precedence() {
    let all = json!({"name": "n", "args": {"cni": {"mac": "c2:00:00:00:00:02"}}, "runtimeConfig": {"mac": "c2:00:00:00:00:03"}});
    assert_eq!(load_json(all).unwrap().mac, Some([0xc2, 0, 0, 0, 0, 3]));
    let args = json!({"name": "n", "args": {"cni": {"mac": "c2:00:00:00:00:02"}}});
    assert_eq!(load_json(args).unwrap().mac, Some([0xc2, 0, 0, 0, 0, 2]));
}

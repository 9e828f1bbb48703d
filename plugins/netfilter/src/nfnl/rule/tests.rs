use netlink_packet_core::{DefaultNla, Emitable, NLA_F_NESTED};

use super::*;
use crate::nfnl::encode::rule_from_args;

fn nla(kind: u16, value: Vec<u8>) -> DefaultNla {
    DefaultNla::new(kind, value)
}

fn nested(kind: u16, inner: &[DefaultNla]) -> DefaultNla {
    let mut buf = vec![0; inner.buffer_len()];
    inner.emit(&mut buf);
    DefaultNla::new(kind | NLA_F_NESTED, buf)
}

fn text(kind: u16, s: &str) -> DefaultNla {
    nla(kind, [s.as_bytes(), &[0]].concat())
}

fn be32(kind: u16, v: u32) -> DefaultNla {
    nla(kind, v.to_be_bytes().to_vec())
}

fn expr(name: &str, data: &[DefaultNla]) -> DefaultNla {
    nested(
        NFTA_LIST_ELEM,
        &[text(NFTA_EXPR_NAME, name), nested(NFTA_EXPR_DATA, data)],
    )
}

fn meta(key: u32) -> DefaultNla {
    expr("meta", &[be32(NFTA_META_KEY, key), be32(NFTA_META_DREG, 1)])
}

fn cmp(op: u32, data: &[u8]) -> DefaultNla {
    expr(
        "cmp",
        &[
            be32(NFTA_CMP_SREG, 1),
            be32(NFTA_CMP_OP, op),
            nested(NFTA_CMP_DATA, &[nla(NFTA_DATA_VALUE, data.to_vec())]),
        ],
    )
}

fn comment(body: &str) -> DefaultNla {
    let mut info = body.as_bytes().to_vec();
    info.resize(256, 0);
    expr(
        "match",
        &[
            text(NFTA_MATCH_NAME, "comment"),
            be32(2, 0),
            nla(NFTA_MATCH_INFO, info),
        ],
    )
}

fn verdict(code: i32, chain: Option<&str>) -> DefaultNla {
    let mut v = vec![be32(NFTA_VERDICT_CODE, code as u32)];
    if let Some(chain) = chain {
        v.push(text(NFTA_VERDICT_CHAIN, chain));
    }
    expr(
        "immediate",
        &[
            be32(NFTA_IMMEDIATE_DREG, 0),
            nested(NFTA_IMMEDIATE_DATA, &[nested(NFTA_DATA_VERDICT, &v)]),
        ],
    )
}

/// The attributes of an NFT_MSG_NEWRULE message with `exprs`.
fn message(handle: u64, exprs: &[DefaultNla]) -> Vec<u8> {
    let attrs = [
        text(NFTA_RULE_TABLE, "filter"),
        text(NFTA_RULE_CHAIN, "CNI-ISOLATION-STAGE-1"),
        nla(NFTA_RULE_HANDLE, handle.to_be_bytes().to_vec()),
        nested(NFTA_RULE_EXPRESSIONS, exprs),
    ];
    let mut buf = vec![0; attrs.as_slice().buffer_len()];
    attrs.as_slice().emit(&mut buf);
    buf
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn a_kernel_message_decodes_to_the_rule_iptables_save_prints() {
    // What iptables-nft 1.8.9 sends for
    // -A CNI-ISOLATION-STAGE-1 -i br0 ! -o br0 -m comment --comment "c" -j CNI-ISOLATION-STAGE-2
    let attrs = message(
        42,
        &[
            meta(NFT_META_IIFNAME),
            cmp(NFT_CMP_EQ, b"br0\0"),
            meta(NFT_META_OIFNAME),
            cmp(NFT_CMP_NEQ, b"br0\0"),
            comment("c"),
            expr("counter", &[]),
            verdict(NFT_JUMP, Some("CNI-ISOLATION-STAGE-2")),
        ],
    );
    let parsed = RuleMessage::parse(&attrs).unwrap();
    assert_eq!(parsed.table, "filter");
    assert_eq!(parsed.chain, "CNI-ISOLATION-STAGE-1");
    assert_eq!(parsed.rule.handle, 42);
    assert_eq!(parsed.rule.comment().as_deref(), Some("c"));
    assert_eq!(
        parsed.rule.iptables_args().unwrap(),
        strings(&[
            "-i",
            "br0",
            "!",
            "-o",
            "br0",
            "-m",
            "comment",
            "--comment",
            "c",
            "-j",
            "CNI-ISOLATION-STAGE-2"
        ])
    );
}

#[test]
fn verdict_codes_decode_to_targets() {
    for (code, chain, want) in [
        (NF_ACCEPT, None, vec!["-j", "ACCEPT"]),
        (NF_DROP, None, vec!["-j", "DROP"]),
        (NFT_RETURN, None, vec!["-j", "RETURN"]),
        (NFT_GOTO, Some("X"), vec!["-g", "X"]),
    ] {
        let attrs = message(1, &[expr("counter", &[]), verdict(code, chain)]);
        let rule = RuleMessage::parse(&attrs).unwrap().rule;
        assert_eq!(rule.iptables_args().unwrap(), strings(&want), "code {code}");
    }
}

#[test]
fn a_wildcard_interface_is_a_prefix_without_terminator() {
    let attrs = message(
        1,
        &[
            meta(NFT_META_OIFNAME),
            cmp(NFT_CMP_EQ, b"br"),
            verdict(NF_DROP, None),
        ],
    );
    let rule = RuleMessage::parse(&attrs).unwrap().rule;
    assert_eq!(
        rule.iptables_args().unwrap(),
        strings(&["-o", "br+", "-j", "DROP"])
    );
}

#[test]
fn rules_with_parts_the_reader_does_not_interpret_have_no_args_but_keep_their_comment() {
    // -s 10.0.0.2/32 -m comment --comment owner -j ACCEPT
    let attrs = message(
        7,
        &[
            expr(
                "payload",
                &[be32(1, 1), be32(2, 1), be32(3, 12), be32(4, 4)],
            ),
            cmp(NFT_CMP_EQ, &[10, 0, 0, 2]),
            comment("owner"),
            expr("counter", &[]),
            verdict(NF_ACCEPT, None),
        ],
    );
    let rule = RuleMessage::parse(&attrs).unwrap().rule;
    assert_eq!(rule.iptables_args(), None);
    assert_eq!(rule.comment().as_deref(), Some("owner"));
    // A verdict-less rule, an unknown comparison or a second comment are not ours to judge.
    let no_verdict = message(1, &[comment("x"), expr("counter", &[])]);
    assert_eq!(
        RuleMessage::parse(&no_verdict)
            .unwrap()
            .rule
            .iptables_args(),
        None
    );
    let lt = message(
        1,
        &[
            meta(NFT_META_IIFNAME),
            cmp(4, b"a\0"),
            verdict(NF_DROP, None),
        ],
    );
    assert_eq!(RuleMessage::parse(&lt).unwrap().rule.iptables_args(), None);
    let two = message(1, &[comment("a"), comment("b"), verdict(NF_DROP, None)]);
    assert_eq!(RuleMessage::parse(&two).unwrap().rule.iptables_args(), None);
}

#[test]
fn truncated_or_malformed_messages_are_errors_not_panics() {
    let attrs = message(1, &[comment("x"), verdict(NF_DROP, None)]);
    for cut in 0..attrs.len() {
        let _ = RuleMessage::parse(&attrs[..cut]);
    }
    let no_handle = {
        let a = [text(NFTA_RULE_TABLE, "filter")];
        let mut buf = vec![0; a.as_slice().buffer_len()];
        a.as_slice().emit(&mut buf);
        buf
    };
    assert!(RuleMessage::parse(&no_handle).is_err());
    assert!(RuleMessage::parse(&[0xff, 0xff, 0x01, 0x00]).is_err());
}

#[test]
fn the_fake_encodes_rules_the_reader_reads_back() {
    for args in [
        vec![
            "-m",
            "comment",
            "--comment",
            "CNI firewall plugin rules",
            "-j",
            "CNI-FORWARD",
        ],
        vec![
            "-i",
            "cni0",
            "!",
            "-o",
            "cni0",
            "-m",
            "comment",
            "--comment",
            "x y",
            "-j",
            "S2",
        ],
        vec![
            "-i",
            "cni0",
            "-o",
            "cni0",
            "-m",
            "comment",
            "--comment",
            "x",
            "-j",
            "DROP",
        ],
        vec!["!", "-i", "veth+", "-j", "RETURN"],
    ] {
        assert_eq!(
            rule_from_args(1, &args).iptables_args().unwrap(),
            strings(&args)
        );
    }
    let owner = [
        "-s",
        "10.0.0.2/32",
        "-m",
        "comment",
        "--comment",
        "o",
        "-j",
        "ACCEPT",
    ];
    let rule = rule_from_args(1, &owner);
    assert_eq!(rule.iptables_args(), None);
    assert_eq!(rule.comment().as_deref(), Some("o"));
}

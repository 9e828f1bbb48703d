//! Names shared with the reference plugins: chain-name hashes, rule comments, and the
//! validation every name passes before it is written into a rule.

use sha2::{Digest, Sha512};

use crate::NetfilterError;

/// Maximum iptables chain-name length the reference uses (`CNI-` + prefix + hash).
pub const MAX_CHAIN_LEN: usize = 28;

/// Prefix of every chain the reference plugins create.
pub const CHAIN_PREFIX: &str = "CNI-";

/// `prefix` followed by the lowercase hex SHA-512 of `input`, cut to `len` characters — the
/// reference's `MustFormatHashWithPrefix`. Where the reference panics (prefix not shorter than
/// `len`, `len` over 128) this returns the text cut to `len` instead.
pub fn hash_with_prefix(len: usize, prefix: &str, input: &str) -> String {
    let digest = Sha512::digest(input.as_bytes());
    let mut out = String::with_capacity(prefix.len() + digest.len() * 2);
    out.push_str(prefix);
    for byte in digest.iter() {
        out.push(hex_digit(byte >> 4));
        out.push(hex_digit(byte & 0x0f));
    }
    out.chars().take(len).collect()
}

/// The per-attachment chain name: `CNI-` + `prefix` + hex(SHA-512(network + container_id)),
/// 28 characters in all. `prefix` is `""` for ipMasq and `"DN-"` for portmap's DNAT chain.
pub fn chain_name(prefix: &str, network: &str, container_id: &str) -> String {
    let full_prefix = format!("{CHAIN_PREFIX}{prefix}");
    hash_with_prefix(
        MAX_CHAIN_LEN,
        &full_prefix,
        &format!("{network}{container_id}"),
    )
}

/// The rule comment the reference writes on every iptables rule of an attachment:
/// `name: "<net>" id: "<cid>"` (Go `%q` quoting).
pub fn comment(network: &str, container_id: &str) -> String {
    format!("name: {} id: {}", go_quote(network), go_quote(container_id))
}

/// Parse a [`comment`] back into `(network, container_id)`; `None` when the text has another form.
pub fn parse_comment(text: &str) -> Option<(String, String)> {
    let rest = text.strip_prefix("name: ")?;
    let (network, rest) = go_unquote_prefix(rest)?;
    let rest = rest.strip_prefix(" id: ")?;
    let (container_id, rest) = go_unquote_prefix(rest)?;
    rest.is_empty().then_some((network, container_id))
}

/// Go's `strconv.Quote` for the characters a validated name can hold (printable text is kept,
/// `"` and `\` are escaped, control characters use Go's escapes).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Read one Go-quoted string at the start of `s`; returns it and the rest of `s`.
fn go_unquote_prefix(s: &str) -> Option<(String, &str)> {
    let mut chars = s.char_indices();
    if chars.next()?.1 != '"' {
        return None;
    }
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => {
                let (_, e) = chars.next()?;
                out.push(match e {
                    '"' => '"',
                    '\\' => '\\',
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    _ => return None,
                });
            }
            c => out.push(c),
        }
    }
    None
}

/// Refuse a name that could break out of a rule's quoting or argument boundaries: it must be
/// non-empty printable ASCII without spaces, quotes or backslashes.
pub fn validate_name(what: &'static str, value: &str) -> Result<(), NetfilterError> {
    let reason = if value.is_empty() {
        Some("it is empty")
    } else if !value.chars().all(|c| c.is_ascii_graphic()) {
        Some("it contains spaces, control or non-ASCII characters")
    } else if value.contains(['"', '\'', '\\', '`']) {
        Some("it contains quotes or backslashes")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(NetfilterError::InvalidName {
            what,
            value: value.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0x0f)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_name_matches_observed_reference_chains() {
        assert_eq!(
            chain_name("", "cnixnet", "ctr1"),
            "CNI-89724df900daa5db77d08f33"
        );
        assert_eq!(
            chain_name("DN-", "cnixnet", "ctr1"),
            "CNI-DN-89724df900daa5db77d08"
        );
        assert_eq!(
            chain_name("", "cnixnet", "ctr2"),
            "CNI-9f343930075763797ba11ce0"
        );
    }

    #[test]
    fn chain_name_matches_reference_unit_tests() {
        assert_eq!(
            chain_name("", "test", "1234"),
            "CNI-2bbe0c48b91a7d1b8a6753a8"
        );
        assert_eq!(
            chain_name("", "testalongnamethatdoesnotmakesense", "1234"),
            "CNI-374f33fe84ab0ed84dcdebe3"
        );
        assert_eq!(
            chain_name("PREFIX-", "test", "1234"),
            "CNI-PREFIX-2bbe0c48b91a7d1b8"
        );
        assert_eq!(chain_name("", "test", "1234").len(), MAX_CHAIN_LEN);
    }

    #[test]
    fn hash_with_prefix_lengths() {
        assert_eq!(hash_with_prefix(10, "AAA", "some string").len(), 10);
        assert!(hash_with_prefix(10, "AAA", "some string").starts_with("AAA"));
        assert_eq!(hash_with_prefix(500, "", "x").len(), 128);
        assert_eq!(hash_with_prefix(2, "AAA", "x"), "AA");
    }

    #[test]
    fn comment_uses_go_quoting() {
        assert_eq!(comment("cnixnet", "ctr1"), r#"name: "cnixnet" id: "ctr1""#);
        assert_eq!(go_quote("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\x01""#);
    }

    #[test]
    fn comment_round_trips() {
        assert_eq!(
            parse_comment(r#"name: "cnixnet" id: "ctr1""#),
            Some(("cnixnet".into(), "ctr1".into()))
        );
        assert_eq!(
            parse_comment(r#"name: "a\"b" id: "c""#),
            Some(("a\"b".into(), "c".into()))
        );
        assert_eq!(parse_comment(r#"name: "x" id: "y" extra"#), None);
        assert_eq!(parse_comment("CNI portfwd masquerade mark"), None);
        assert_eq!(parse_comment(r#"dnat name: "x" id: "y""#), None);
        assert_eq!(parse_comment(r#"name: "x" id: "y"#), None);
    }

    #[test]
    fn validation_refuses_breakout_characters() {
        assert!(validate_name("network name", "cnixnet").is_ok());
        assert!(validate_name("container ID", "a-b_c.d").is_ok());
        for bad in ["", "a b", "a\"b", "a\nb", "a'b", "a\\b", "é"] {
            assert!(
                validate_name("network name", bad).is_err(),
                "{bad:?} accepted"
            );
        }
    }
}

//! One nf_tables rule as the kernel reports it, and the small part of iptables-nft's encoding
//! we read back into iptables terms: interface matches, the comment match and the verdict.

use netlink_packet_core::{NlaBuffer, NlasIterator, parse_string, parse_u32_be, parse_u64_be};

use crate::NetfilterError;

// Attribute numbers from <linux/netfilter/nf_tables.h>.
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_MATCH_NAME: u16 = 1;
const NFTA_MATCH_INFO: u16 = 3;

/// `meta` keys iptables-nft uses for `-i` / `-o`.
pub(crate) const NFT_META_IIFNAME: u32 = 6;
pub(crate) const NFT_META_OIFNAME: u32 = 7;
/// `cmp` operators.
pub(crate) const NFT_CMP_EQ: u32 = 0;
pub(crate) const NFT_CMP_NEQ: u32 = 1;
/// The verdict register.
const NFT_REG_VERDICT: u32 = 0;
// Verdict codes (netfilter's NF_DROP / NF_ACCEPT and nf_tables' own, negative).
const NF_DROP: i32 = 0;
const NF_ACCEPT: i32 = 1;
const NFT_JUMP: i32 = -3;
const NFT_GOTO: i32 = -4;
const NFT_RETURN: i32 = -5;

/// A rule: its handle (stable while the rule exists, never reused in the table) and its
/// expressions in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftRule {
    /// The rule's handle.
    pub handle: u64,
    /// Its expressions.
    pub exprs: Vec<Expr>,
}

/// One expression, decoded as far as iptables' interface, comment and verdict parts need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `meta load <key> => reg <dreg>`.
    Meta {
        /// `NFT_META_*`.
        key: u32,
        /// Destination register.
        dreg: u32,
    },
    /// `cmp <op> reg <sreg> <data>`.
    Cmp {
        /// Source register.
        sreg: u32,
        /// `NFT_CMP_*`.
        op: u32,
        /// The value compared with.
        data: Vec<u8>,
    },
    /// An xtables match kept as is (`-m comment`, `-m conntrack`, …).
    Match {
        /// The match's name.
        name: String,
        /// Its binary `info` block.
        info: Vec<u8>,
    },
    /// `counter`.
    Counter,
    /// `immediate reg 0 <verdict>`.
    Verdict(Verdict),
    /// Anything else, by expression name.
    Other(String),
}

/// A rule's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `-j ACCEPT`.
    Accept,
    /// `-j DROP`.
    Drop,
    /// `-j RETURN`.
    Return,
    /// `-j <chain>`.
    Jump(String),
    /// `-g <chain>`.
    Goto(String),
    /// Any other code.
    Other(i32),
}

fn decode(detail: impl Into<String>) -> NetfilterError {
    NetfilterError::NfnlDecode {
        detail: detail.into(),
    }
}

/// The attributes in `buf` as (type, value) pairs.
fn attrs(buf: &[u8]) -> impl Iterator<Item = Result<(u16, &[u8]), NetfilterError>> {
    NlasIterator::new(buf).map(|nla| {
        let nla: NlaBuffer<&[u8]> = nla.map_err(|e| decode(e.to_string()))?;
        let kind = nla.kind();
        Ok((kind, nla.into_inner_value()))
    })
}

/// `NlaBuffer::value` borrowing the underlying slice rather than the buffer.
trait IntoValue<'a> {
    fn into_inner_value(self) -> &'a [u8];
}

impl<'a> IntoValue<'a> for NlaBuffer<&'a [u8]> {
    fn into_inner_value(self) -> &'a [u8] {
        let len = self.value_length();
        let inner = self.into_inner();
        &inner[4..4 + len]
    }
}

fn u32_be(value: &[u8]) -> Result<u32, NetfilterError> {
    parse_u32_be(value).map_err(|e| decode(e.to_string()))
}

fn string(value: &[u8]) -> Result<String, NetfilterError> {
    parse_string(value).map_err(|e| decode(e.to_string()))
}

/// A rule message's identity and content.
pub(crate) struct RuleMessage {
    /// `NFTA_RULE_TABLE`.
    pub(crate) table: String,
    /// `NFTA_RULE_CHAIN`.
    pub(crate) chain: String,
    /// The rule.
    pub(crate) rule: NftRule,
}

impl RuleMessage {
    /// Decode the attributes of an `NFT_MSG_NEWRULE` message (after its `nfgenmsg` header).
    pub(crate) fn parse(attributes: &[u8]) -> Result<RuleMessage, NetfilterError> {
        let mut table = String::new();
        let mut chain = String::new();
        let mut handle = None;
        let mut exprs = Vec::new();
        for attr in attrs(attributes) {
            let (kind, value) = attr?;
            match kind {
                NFTA_RULE_TABLE => table = string(value)?,
                NFTA_RULE_CHAIN => chain = string(value)?,
                NFTA_RULE_HANDLE => {
                    handle = Some(parse_u64_be(value).map_err(|e| decode(e.to_string()))?)
                }
                NFTA_RULE_EXPRESSIONS => {
                    for elem in attrs(value) {
                        let (kind, value) = elem?;
                        if kind == NFTA_LIST_ELEM {
                            exprs.push(parse_expr(value)?);
                        }
                    }
                }
                _ => {}
            }
        }
        let handle = handle.ok_or_else(|| decode("rule without a handle"))?;
        Ok(RuleMessage {
            table,
            chain,
            rule: NftRule { handle, exprs },
        })
    }
}

fn parse_expr(elem: &[u8]) -> Result<Expr, NetfilterError> {
    let mut name = String::new();
    let mut data: &[u8] = &[];
    for attr in attrs(elem) {
        let (kind, value) = attr?;
        match kind {
            NFTA_EXPR_NAME => name = string(value)?,
            NFTA_EXPR_DATA => data = value,
            _ => {}
        }
    }
    Ok(match name.as_str() {
        "meta" => {
            let (mut key, mut dreg) = (None, None);
            for attr in attrs(data) {
                match attr? {
                    (NFTA_META_KEY, v) => key = Some(u32_be(v)?),
                    (NFTA_META_DREG, v) => dreg = Some(u32_be(v)?),
                    _ => {}
                }
            }
            match (key, dreg) {
                (Some(key), Some(dreg)) => Expr::Meta { key, dreg },
                // A meta *set* (no destination register) is not a match.
                _ => Expr::Other(name),
            }
        }
        "cmp" => {
            let (mut sreg, mut op, mut value) = (None, None, None);
            for attr in attrs(data) {
                match attr? {
                    (NFTA_CMP_SREG, v) => sreg = Some(u32_be(v)?),
                    (NFTA_CMP_OP, v) => op = Some(u32_be(v)?),
                    (NFTA_CMP_DATA, v) => {
                        for inner in attrs(v) {
                            if let (NFTA_DATA_VALUE, bytes) = inner? {
                                value = Some(bytes.to_vec());
                            }
                        }
                    }
                    _ => {}
                }
            }
            match (sreg, op, value) {
                (Some(sreg), Some(op), Some(data)) => Expr::Cmp { sreg, op, data },
                _ => return Err(decode("cmp expression without register, operator or data")),
            }
        }
        "match" => {
            let (mut match_name, mut info) = (None, Vec::new());
            for attr in attrs(data) {
                match attr? {
                    (NFTA_MATCH_NAME, v) => match_name = Some(string(v)?),
                    (NFTA_MATCH_INFO, v) => info = v.to_vec(),
                    _ => {}
                }
            }
            let name = match_name.ok_or_else(|| decode("match expression without a name"))?;
            Expr::Match { name, info }
        }
        "counter" => Expr::Counter,
        "immediate" => parse_immediate(data)?.map_or(Expr::Other(name), Expr::Verdict),
        _ => Expr::Other(name),
    })
}

/// The verdict of an `immediate` expression; `None` when it loads a data register instead.
fn parse_immediate(data: &[u8]) -> Result<Option<Verdict>, NetfilterError> {
    let mut dreg = None;
    let mut verdict = None;
    for attr in attrs(data) {
        match attr? {
            (NFTA_IMMEDIATE_DREG, v) => dreg = Some(u32_be(v)?),
            (NFTA_IMMEDIATE_DATA, v) => {
                for inner in attrs(v) {
                    if let (NFTA_DATA_VERDICT, v) = inner? {
                        verdict = Some(parse_verdict(v)?);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(match dreg {
        Some(NFT_REG_VERDICT) => verdict,
        _ => None,
    })
}

fn parse_verdict(data: &[u8]) -> Result<Verdict, NetfilterError> {
    let (mut code, mut chain) = (None, None);
    for attr in attrs(data) {
        match attr? {
            (NFTA_VERDICT_CODE, v) => code = Some(u32_be(v)? as i32),
            (NFTA_VERDICT_CHAIN, v) => chain = Some(string(v)?),
            _ => {}
        }
    }
    let code = code.ok_or_else(|| decode("verdict without a code"))?;
    Ok(match (code, chain) {
        (NF_ACCEPT, _) => Verdict::Accept,
        (NF_DROP, _) => Verdict::Drop,
        (NFT_RETURN, _) => Verdict::Return,
        (NFT_JUMP, Some(chain)) => Verdict::Jump(chain),
        (NFT_GOTO, Some(chain)) => Verdict::Goto(chain),
        (code, _) => Verdict::Other(code),
    })
}

/// NUL-terminated text of a fixed-size buffer (an xtables comment's `char[256]`).
fn c_text(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8(bytes[..end].to_vec()).ok()
}

/// iptables-nft compares `-i br0` with `br0\0` and `-i br+` with the prefix `br`.
fn interface_text(data: &[u8]) -> Option<String> {
    match data.split_last() {
        Some((0, name)) if !name.contains(&0) => String::from_utf8(name.to_vec()).ok(),
        Some(_) if !data.contains(&0) => String::from_utf8(data.to_vec()).ok().map(|p| p + "+"),
        _ => None,
    }
}

impl NftRule {
    /// The text of the rule's first `-m comment`, if it has one.
    pub fn comment(&self) -> Option<String> {
        self.exprs.iter().find_map(|e| match e {
            Expr::Match { name, info } if name == "comment" => c_text(info),
            _ => None,
        })
    }

    /// The chain this rule jumps to (`-j <chain>`), whatever it matches.
    pub fn jump_target(&self) -> Option<&str> {
        self.exprs.iter().find_map(|e| match e {
            Expr::Verdict(Verdict::Jump(chain)) => Some(chain.as_str()),
            _ => None,
        })
    }

    /// The rule as `iptables-save` prints it after `-A <chain>`, for rules made only of
    /// `[!] -i`, `[!] -o`, `-m comment` and a standard verdict; `None` for any other rule (an
    /// address, another match, a target extension), which this reader does not interpret.
    pub fn iptables_args(&self) -> Option<Vec<String>> {
        let mut iif: Option<(String, bool)> = None;
        let mut oif: Option<(String, bool)> = None;
        let mut comment = None;
        let mut verdict = None;
        let mut loaded: Option<(u32, u32)> = None;
        for expr in &self.exprs {
            match expr {
                Expr::Meta { key, dreg }
                    if loaded.is_none() && matches!(*key, NFT_META_IIFNAME | NFT_META_OIFNAME) =>
                {
                    loaded = Some((*key, *dreg));
                }
                Expr::Cmp { sreg, op, data } => {
                    let (key, reg) = loaded.take()?;
                    let negated = match *op {
                        NFT_CMP_EQ => false,
                        NFT_CMP_NEQ => true,
                        _ => return None,
                    };
                    let slot = if key == NFT_META_IIFNAME {
                        &mut iif
                    } else {
                        &mut oif
                    };
                    if reg != *sreg || slot.is_some() {
                        return None;
                    }
                    *slot = Some((interface_text(data)?, negated));
                }
                Expr::Match { name, info } if name == "comment" && comment.is_none() => {
                    comment = Some(c_text(info)?);
                }
                Expr::Counter => {}
                Expr::Verdict(v) if verdict.is_none() && loaded.is_none() => {
                    verdict = Some(v.clone());
                }
                _ => return None,
            }
        }
        let mut args = Vec::new();
        for (flag, iface) in [("-i", iif), ("-o", oif)] {
            if let Some((name, negated)) = iface {
                if negated {
                    args.push("!".to_owned());
                }
                args.extend([flag.to_owned(), name]);
            }
        }
        if let Some(text) = comment {
            args.extend(["-m", "comment", "--comment"].map(str::to_owned));
            args.push(text);
        }
        let (flag, target) = match verdict? {
            Verdict::Accept => ("-j", "ACCEPT".to_owned()),
            Verdict::Drop => ("-j", "DROP".to_owned()),
            Verdict::Return => ("-j", "RETURN".to_owned()),
            Verdict::Jump(chain) => ("-j", chain),
            Verdict::Goto(chain) => ("-g", chain),
            Verdict::Other(_) => return None,
        };
        args.extend([flag.to_owned(), target]);
        Some(args)
    }
}

#[cfg(test)]
mod tests;

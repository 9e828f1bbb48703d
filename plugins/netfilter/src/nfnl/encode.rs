//! Rules written the way iptables-nft encodes them, for tests that emulate nf_tables.

use super::rule::{
    Expr, NFT_CMP_EQ, NFT_CMP_NEQ, NFT_META_IIFNAME, NFT_META_OIFNAME, NftRule, Verdict,
};

/// The expressions iptables-nft writes for a rule given as `iptables-save` arguments: exact
/// for `[!] -i/-o`, `-m comment` and `-j`/`-g`; an address or another match becomes an
/// expression the reader does not interpret, as a real one would be.
pub fn rule_from_args(handle: u64, args: &[&str]) -> NftRule {
    let mut exprs = Vec::new();
    let mut negate = false;
    let mut verdict = None;
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).copied().unwrap_or_default();
        match args[i] {
            "!" => {
                negate = true;
                i += 1;
                continue;
            }
            flag @ ("-i" | "-o") => {
                let key = if flag == "-i" {
                    NFT_META_IIFNAME
                } else {
                    NFT_META_OIFNAME
                };
                exprs.push(Expr::Meta { key, dreg: 1 });
                let data = match value.strip_suffix('+') {
                    Some(prefix) => prefix.as_bytes().to_vec(),
                    None => [value.as_bytes(), &[0]].concat(),
                };
                let op = if negate { NFT_CMP_NEQ } else { NFT_CMP_EQ };
                exprs.push(Expr::Cmp { sreg: 1, op, data });
                i += 2;
            }
            "-m" if value == "comment" => {
                let text = args.get(i + 3).copied().unwrap_or_default();
                let mut info = text.as_bytes().to_vec();
                info.resize(256, 0);
                exprs.push(Expr::Match {
                    name: "comment".to_owned(),
                    info,
                });
                i += 4;
            }
            "-m" => {
                exprs.push(Expr::Match {
                    name: value.to_owned(),
                    info: Vec::new(),
                });
                i += 2;
            }
            "-j" | "-g" => {
                verdict = Some(match (args[i], value) {
                    (_, "ACCEPT") => Verdict::Accept,
                    (_, "DROP") => Verdict::Drop,
                    (_, "RETURN") => Verdict::Return,
                    ("-g", chain) => Verdict::Goto(chain.to_owned()),
                    (_, chain) => Verdict::Jump(chain.to_owned()),
                });
                i += 2;
            }
            _ => {
                exprs.push(Expr::Other("payload".to_owned()));
                i += 1;
            }
        }
        negate = false;
    }
    exprs.push(Expr::Counter);
    if let Some(v) = verdict {
        exprs.push(Expr::Verdict(v));
    }
    NftRule { handle, exprs }
}

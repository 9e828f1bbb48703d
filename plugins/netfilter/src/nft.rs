//! The nftables layer: `nft -f -` transactions and `nft -j list table` reads.

use std::sync::Arc;

use serde_json::Value;

use crate::NetfilterError;
use crate::error::stderr_means_not_exist;
use crate::exec::{CommandRunner, NFT, run_checked};

/// A listed nftables table: its chains and rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NftTable {
    /// Chain names, in listing order.
    pub chains: Vec<String>,
    /// Rules of every chain, in listing order.
    pub rules: Vec<NftRule>,
}

/// One rule from `nft -j` output.
#[derive(Debug, Clone, PartialEq)]
pub struct NftRule {
    /// The chain holding it.
    pub chain: String,
    /// Its handle (for `delete rule … handle N`).
    pub handle: u64,
    /// Its comment, if any.
    pub comment: Option<String>,
    /// The `expr` array as nft printed it.
    pub expr: Value,
}

impl NftTable {
    /// Parse `nft -j list table …` output.
    pub fn parse(json: &str) -> Result<NftTable, NetfilterError> {
        let value: Value = serde_json::from_str(json).map_err(|e| parse_error(&e.to_string()))?;
        let items = value
            .get("nftables")
            .and_then(Value::as_array)
            .ok_or_else(|| parse_error("no \"nftables\" array"))?;
        let mut table = NftTable::default();
        for item in items {
            if let Some(chain) = item.get("chain") {
                let name = chain.get("name").and_then(Value::as_str);
                table.chains.push(
                    name.ok_or_else(|| parse_error("chain without a name"))?
                        .to_owned(),
                );
            } else if let Some(rule) = item.get("rule") {
                let chain = rule.get("chain").and_then(Value::as_str);
                let handle = rule.get("handle").and_then(Value::as_u64);
                let (Some(chain), Some(handle)) = (chain, handle) else {
                    return Err(parse_error("rule without chain or handle"));
                };
                table.rules.push(NftRule {
                    chain: chain.to_owned(),
                    handle,
                    comment: rule
                        .get("comment")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    expr: rule.get("expr").cloned().unwrap_or(Value::Null),
                });
            }
        }
        Ok(table)
    }

    /// Whether a chain of that name exists.
    pub fn has_chain(&self, chain: &str) -> bool {
        self.chains.iter().any(|c| c == chain)
    }
}

/// `nft`, run through a [`CommandRunner`].
#[derive(Clone)]
pub struct Nft {
    runner: Arc<dyn CommandRunner>,
}

impl std::fmt::Debug for Nft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nft").finish_non_exhaustive()
    }
}

impl Nft {
    /// `nft` through `runner`.
    pub fn new(runner: Arc<dyn CommandRunner>) -> Self {
        Self { runner }
    }

    /// `nft -f -` with `batch` on stdin: one atomic transaction.
    pub fn apply(&self, batch: &str) -> Result<(), NetfilterError> {
        run_checked(self.runner.as_ref(), NFT, &["-f", "-"], Some(batch))?;
        Ok(())
    }

    /// `nft -j list table <family> <table>`; `None` when the table does not exist.
    pub fn list_table(
        &self,
        family: &str,
        table: &str,
    ) -> Result<Option<NftTable>, NetfilterError> {
        let args = ["-j", "list", "table", family, table];
        let out = self.runner.run(NFT, &args, None)?;
        if !out.success() && stderr_means_not_exist(&out.stderr) {
            return Ok(None);
        }
        let out = out.check(NFT, &args)?;
        NftTable::parse(&out.stdout).map(Some)
    }

    /// `nft --check add table <family> <table>`: the kernel accepts nftables requests from us
    /// (nothing is committed).
    pub fn probe(&self, family: &str, table: &str) -> Result<(), NetfilterError> {
        run_checked(
            self.runner.as_ref(),
            NFT,
            &["--check", "add", "table", family, table],
            None,
        )?;
        Ok(())
    }
}

/// `"text"` for an nft batch. Callers pass only validated text; a `"`, `\` or line break is
/// refused rather than escaped (nft strings have no escape syntax).
pub fn quote(text: &str) -> Result<String, NetfilterError> {
    if text.contains(['"', '\\', '\n', '\r']) {
        return Err(NetfilterError::InvalidName {
            what: "nft string",
            value: text.to_owned(),
            reason: "it contains quotes, backslashes or line breaks",
        });
    }
    Ok(format!("\"{text}\""))
}

fn parse_error(detail: &str) -> NetfilterError {
    NetfilterError::Parse {
        program: NFT.to_owned(),
        detail: detail.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::FakeRunner;

    /// `nft -j list table inet cni_plugins_masquerade` from nft 1.0.6 after our setup.
    pub(crate) const LISTING: &str = include_str!("../testdata/nft-masquerade.json");

    #[test]
    fn parses_listing() {
        let table = NftTable::parse(LISTING).unwrap();
        assert!(table.has_chain("masq_checks"));
        assert!(table.has_chain("postrouting"));
        let masq: Vec<_> = table
            .rules
            .iter()
            .filter(|r| r.chain == "masq_checks")
            .collect();
        assert_eq!(masq.len(), 4);
        assert!(
            masq[0]
                .comment
                .as_deref()
                .unwrap_or_default()
                .contains("net: cnixnet")
        );
        assert!(masq[0].handle > 0);
    }

    #[test]
    fn missing_table_is_none() {
        let fake = Arc::new(FakeRunner::new());
        fake.fail(
            "nft",
            1,
            "Error: No such file or directory\nlist table inet x\n",
        );
        assert_eq!(
            Nft::new(fake.clone()).list_table("inet", "x").unwrap(),
            None
        );
        assert_eq!(fake.command_lines(), ["nft -j list table inet x"]);
    }

    #[test]
    fn quote_refuses_breakout() {
        assert_eq!(quote("a, b").unwrap(), "\"a, b\"");
        assert!(quote("a\"b").is_err());
        assert!(quote("a\nb").is_err());
    }

    #[test]
    fn garbage_is_a_parse_error() {
        assert!(NftTable::parse("not json").is_err());
        assert!(NftTable::parse("{}").is_err());
        assert!(NftTable::parse(r#"{"nftables":[{"rule":{"chain":"x"}}]}"#).is_err());
    }
}

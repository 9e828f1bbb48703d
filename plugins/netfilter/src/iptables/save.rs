//! Reading `iptables-save` output and writing `iptables-restore` lines: the shared tokenizer and
//! quoting, so rules we write compare equal to rules we read back.

use crate::NetfilterError;

/// One table section of `iptables-save` output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedTable {
    /// Every chain declared in the section (built-in and user-defined), in order.
    pub chains: Vec<String>,
    /// Every rule, in order.
    pub rules: Vec<SavedRule>,
}

/// One `-A CHAIN …` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedRule {
    /// The chain the rule is in.
    pub chain: String,
    /// The rule's arguments after `-A CHAIN`, unquoted.
    pub args: Vec<String>,
}

impl SavedTable {
    /// Parse the `*table` section of `iptables-save` output. A missing section (the table does
    /// not exist yet) yields an empty table.
    pub fn parse(text: &str, table: &str) -> Result<SavedTable, NetfilterError> {
        let mut saved = SavedTable::default();
        let mut inside = false;
        for (number, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(name) = line.strip_prefix('*') {
                inside = name == table;
                continue;
            }
            if !inside {
                continue;
            }
            if line == "COMMIT" {
                inside = false;
            } else if let Some(decl) = line.strip_prefix(':') {
                let name = decl.split_whitespace().next().unwrap_or_default();
                saved.chains.push(name.to_owned());
            } else if line.starts_with("-A ") {
                let mut tokens = tokenize(line).map_err(|detail| parse_error(number, &detail))?;
                if tokens.len() < 2 {
                    return Err(parse_error(number, "rule without a chain"));
                }
                let args = tokens.split_off(2);
                let chain = tokens.swap_remove(1);
                saved.rules.push(SavedRule { chain, args });
            } else {
                return Err(parse_error(number, &format!("unrecognised line {line:?}")));
            }
        }
        Ok(saved)
    }

    /// Whether a chain of that name is declared.
    pub fn has_chain(&self, chain: &str) -> bool {
        self.chains.iter().any(|c| c == chain)
    }

    /// The rules of one chain, in order.
    pub fn rules_in<'a>(&'a self, chain: &'a str) -> impl Iterator<Item = &'a SavedRule> + 'a {
        self.rules.iter().filter(move |r| r.chain == chain)
    }

    /// Every rule (in any chain) that jumps or goes to `target`.
    pub fn rules_jumping_to<'a>(
        &'a self,
        target: &'a str,
    ) -> impl Iterator<Item = &'a SavedRule> + 'a {
        self.rules
            .iter()
            .filter(move |r| r.target() == Some(target))
    }
}

impl SavedRule {
    /// The value following `flag` when the flag is not negated with `!`.
    pub fn option(&self, flag: &str) -> Option<&str> {
        let at = self.args.iter().position(|a| a == flag)?;
        if at > 0 && self.args[at - 1] == "!" {
            return None;
        }
        self.args.get(at + 1).map(String::as_str)
    }

    /// The `-j` or `-g` target.
    pub fn target(&self) -> Option<&str> {
        self.option("-j").or_else(|| self.option("-g"))
    }

    /// The `-m comment --comment` text.
    pub fn comment(&self) -> Option<&str> {
        self.option("--comment")
    }
}

/// Split a rule line the way `iptables-restore` does: whitespace separates arguments outside
/// double quotes; inside quotes a backslash escapes the next character.
pub(crate) fn tokenize(line: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut in_token = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '\\' => current.push(chars.next().ok_or("dangling backslash")?),
                '"' => quoted = false,
                c => current.push(c),
            }
        } else if c == '"' {
            quoted = true;
            in_token = true;
        } else if c.is_whitespace() {
            if in_token {
                tokens.push(std::mem::take(&mut current));
                in_token = false;
            }
        } else {
            current.push(c);
            in_token = true;
        }
    }
    if quoted {
        return Err("unterminated quote".to_owned());
    }
    if in_token {
        tokens.push(current);
    }
    Ok(tokens)
}

/// Join arguments into one restore line, quoting the way `iptables-save` does (bare when only
/// `[A-Za-z0-9_-]`, otherwise double-quoted with `"`, `\` and `'` escaped).
pub fn render_args<S: AsRef<str>>(args: &[S]) -> String {
    args.iter()
        .map(|a| quote_arg(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote_arg(arg: &str) -> String {
    let bare = !arg.is_empty()
        && arg.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '!' | '/' | '.' | ':' | ',')
        });
    if bare {
        return arg.to_owned();
    }
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('"');
    for c in arg.chars() {
        if matches!(c, '"' | '\\' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn parse_error(line_index: usize, detail: &str) -> NetfilterError {
    NetfilterError::Parse {
        program: "iptables-save".to_owned(),
        detail: format!("line {}: {detail}", line_index + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Taken from a Debian 12 host (iptables v1.8.9 nf_tables) after the reference bridge plugin
    /// v1.1.1 ran ADD for `ctr1` and `ctr2` on network `cnixnet` inside a scratch netns.
    pub(crate) const GO_SAVE_V4: &str = include_str!("../../testdata/go-bridge-v4.save");

    #[test]
    fn parses_reference_output() {
        let saved = SavedTable::parse(GO_SAVE_V4, "nat").unwrap();
        assert!(saved.has_chain("POSTROUTING"));
        assert!(saved.has_chain("CNI-89724df900daa5db77d08f33"));
        let jumps: Vec<_> = saved
            .rules_jumping_to("CNI-89724df900daa5db77d08f33")
            .collect();
        assert_eq!(jumps.len(), 1);
        assert_eq!(jumps[0].chain, "POSTROUTING");
        assert_eq!(jumps[0].option("-s"), Some("10.99.0.2/32"));
        assert_eq!(jumps[0].comment(), Some(r#"name: "cnixnet" id: "ctr1""#));
        let rules: Vec<_> = saved.rules_in("CNI-89724df900daa5db77d08f33").collect();
        assert_eq!(rules.len(), 2);
        assert_eq!(
            rules[1].option("-d"),
            None,
            "negated -d is not reported as a match"
        );
        assert_eq!(rules[1].target(), Some("MASQUERADE"));
    }

    #[test]
    fn other_tables_are_skipped_and_missing_table_is_empty() {
        let text = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j DROP\nCOMMIT\n";
        assert_eq!(
            SavedTable::parse(text, "nat").unwrap(),
            SavedTable::default()
        );
        assert_eq!(SavedTable::parse("", "nat").unwrap(), SavedTable::default());
    }

    #[test]
    fn render_then_tokenize_round_trips() {
        let args = [
            "-s",
            "10.99.0.2/32",
            "-m",
            "comment",
            "--comment",
            r#"name: "n" id: "c""#,
            "-j",
            "X",
        ];
        let line = render_args(&args);
        assert_eq!(
            line,
            r#"-s 10.99.0.2/32 -m comment --comment "name: \"n\" id: \"c\"" -j X"#
        );
        assert_eq!(tokenize(&line).unwrap(), args);
        assert_eq!(
            tokenize(r#"a "" "b\\c" d"e f"g"#).unwrap(),
            ["a", "", "b\\c", "de fg"]
        );
        assert!(tokenize(r#"a "b"#).is_err());
    }

    #[test]
    fn garbage_is_a_parse_error() {
        let err = SavedTable::parse("*nat\n-A X \"open\nCOMMIT\n", "nat").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unexpected output from iptables-save: line 2: unterminated quote"
        );
        assert!(SavedTable::parse("*nat\nbogus\n", "nat").is_err());
    }
}

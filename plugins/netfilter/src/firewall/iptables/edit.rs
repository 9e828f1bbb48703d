//! Planning edits of one `iptables-save` snapshot: each edit updates an in-memory model of the
//! table and emits the `iptables-restore --noflush` line that makes the same change, so later
//! decisions ("is this chain empty now?") see the planned state.
//!
//! Only lines that **fail** when the table changed under us are emitted: `-N` (chain already
//! exists), `-D` (rule gone), `-X` (chain not empty or still referenced). Appends and inserts of
//! rules another process could have added meanwhile are covered by the host lock. A failed
//! batch changes nothing; the caller re-reads and re-plans.

use super::rules::{Args, FILTER};
use crate::iptables::{SavedRule, SavedTable, render_args};

/// The planned state and the restore lines leading to it.
#[derive(Debug, Clone)]
pub(crate) struct TableEdit {
    model: SavedTable,
    lines: Vec<String>,
}

impl TableEdit {
    /// Start from a snapshot.
    pub(crate) fn new(saved: &SavedTable) -> TableEdit {
        TableEdit {
            model: saved.clone(),
            lines: Vec::new(),
        }
    }

    /// The planned state.
    pub(crate) fn model(&self) -> &SavedTable {
        &self.model
    }

    /// The rules of `chain` in the planned state.
    pub(crate) fn rules_in<'a>(&'a self, chain: &'a str) -> impl Iterator<Item = &'a SavedRule> {
        self.model.rules_in(chain)
    }

    /// Whether `chain` holds a rule `matches` accepts.
    pub(crate) fn has(&self, chain: &str, matches: impl Fn(&[String]) -> bool) -> bool {
        self.model.rules_in(chain).any(|r| matches(&r.args))
    }

    /// `-N chain` unless it exists.
    pub(crate) fn ensure_chain(&mut self, chain: &str) {
        if !self.model.has_chain(chain) {
            self.lines.push(format!("-N {chain}"));
            self.model.chains.push(chain.to_owned());
        }
    }

    /// `-I chain 1 args`.
    pub(crate) fn insert_first(&mut self, chain: &str, args: Args) {
        self.lines
            .push(format!("-I {chain} 1 {}", render_args(&args)));
        let at = self
            .model
            .rules
            .iter()
            .position(|r| r.chain == chain)
            .unwrap_or(self.model.rules.len());
        self.model.rules.insert(
            at,
            SavedRule {
                chain: chain.to_owned(),
                args,
            },
        );
    }

    /// `-A chain args`.
    pub(crate) fn append(&mut self, chain: &str, args: Args) {
        self.lines
            .push(format!("-A {chain} {}", render_args(&args)));
        let at = self
            .model
            .rules
            .iter()
            .rposition(|r| r.chain == chain)
            .map_or(self.model.rules.len(), |i| i + 1);
        self.model.rules.insert(
            at,
            SavedRule {
                chain: chain.to_owned(),
                args,
            },
        );
    }

    /// `-D chain args` for every rule of `chain` that `matches` accepts (each `-D` removes the
    /// first equal rule, so duplicates get one line each). Returns the removed rules.
    pub(crate) fn delete_all(
        &mut self,
        chain: &str,
        mut matches: impl FnMut(&SavedRule) -> bool,
    ) -> Vec<SavedRule> {
        let mut removed = Vec::new();
        self.model.rules.retain(|r| {
            let hit = r.chain == chain && matches(r);
            if hit {
                removed.push(r.clone());
            }
            !hit
        });
        for rule in &removed {
            self.lines
                .push(format!("-D {chain} {}", render_args(&rule.args)));
        }
        removed
    }

    /// `-X chain` (the caller made sure it is empty and unreferenced).
    pub(crate) fn delete_chain(&mut self, chain: &str) {
        self.lines.push(format!("-X {chain}"));
        self.model.chains.retain(|c| c != chain);
    }

    /// The restore input, or `None` when nothing changes.
    pub(crate) fn into_batch(self) -> Option<String> {
        if self.lines.is_empty() {
            return None;
        }
        let mut text = format!("*{FILTER}\n");
        for line in self.lines {
            text.push_str(&line);
            text.push('\n');
        }
        text.push_str("COMMIT\n");
        Some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(list: &[&str]) -> Args {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn edits_update_the_model_and_emit_failing_lines() {
        let saved = SavedTable::parse(
            "*filter\n:FORWARD ACCEPT [0:0]\n:X - [0:0]\n-A X -j A\n-A X -j B\n-A X -j A\nCOMMIT\n",
            "filter",
        )
        .unwrap();
        let mut e = TableEdit::new(&saved);
        e.ensure_chain("X");
        e.ensure_chain("Y");
        e.insert_first("X", a(&["-j", "FIRST"]));
        e.append("Y", a(&["-s", "1.2.3.4/32", "-j", "ACCEPT"]));
        let gone = e.delete_all("X", |r| r.args == a(&["-j", "A"]));
        assert_eq!(gone.len(), 2);
        e.delete_chain("Z");
        let order: Vec<String> = e.model().rules.iter().map(|r| r.args.join(" ")).collect();
        assert_eq!(order, ["-j FIRST", "-j B", "-s 1.2.3.4/32 -j ACCEPT"]);
        assert!(e.has("Y", |args| args.len() == 4));
        assert_eq!(
            e.into_batch().unwrap(),
            "*filter\n-N Y\n-I X 1 -j FIRST\n-A Y -s 1.2.3.4/32 -j ACCEPT\n-D X -j A\n-D X -j A\n-X Z\nCOMMIT\n"
        );
        assert_eq!(TableEdit::new(&saved).into_batch(), None);
    }
}

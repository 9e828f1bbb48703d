//! Where things are in a JSON file: [`JsonPath`]s (`.plugins[0].ipam.ranges[0][0].subnet`) and a
//! [`SpanIndex`] mapping each path to the line and column its value starts at, so a finding can
//! point the user at the exact spot. Duplicate object keys (legal JSON, silently "last wins" in
//! both Go and serde) are recorded on the way.

use std::collections::HashMap;
use std::fmt;

/// A 1-based line and column (columns count characters, as editors do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// One step of a [`JsonPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

/// A path from the document root, printed jq-style: `.` for the root, `.plugins[0].ipam`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct JsonPath(Vec<Seg>);

impl JsonPath {
    /// The document root.
    pub fn root() -> JsonPath {
        JsonPath(Vec::new())
    }

    /// This path extended by an object member.
    pub fn key(&self, key: &str) -> JsonPath {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        JsonPath(segs)
    }

    /// This path extended by an array index.
    pub fn index(&self, index: usize) -> JsonPath {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        JsonPath(segs)
    }

    /// The enclosing path (`None` for the root).
    pub fn parent(&self) -> Option<JsonPath> {
        let mut segs = self.0.clone();
        segs.pop()?;
        Some(JsonPath(segs))
    }

    /// The segments.
    pub fn segments(&self) -> &[Seg] {
        &self.0
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str(".");
        }
        for seg in &self.0 {
            match seg {
                Seg::Index(i) => write!(f, "[{i}]")?,
                Seg::Key(k) if is_plain_key(k) => write!(f, ".{k}")?,
                Seg::Key(k) => write!(f, "[{}]", serde_json::Value::String(k.clone()))?,
            }
        }
        Ok(())
    }
}

fn is_plain_key(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Positions of every value and member key of a syntactically valid JSON document.
#[derive(Debug, Clone, Default)]
pub struct SpanIndex {
    values: HashMap<JsonPath, Pos>,
    keys: HashMap<JsonPath, Pos>,
    duplicates: Vec<(JsonPath, Pos)>,
}

impl SpanIndex {
    /// Indexes `text`. Text that is not valid JSON yields whatever was indexed before the
    /// first surprise (callers check syntax with serde first).
    pub fn build(text: &str) -> SpanIndex {
        let mut scanner = Scanner {
            chars: text.chars().collect(),
            at: 0,
            line: 1,
            col: 1,
            index: SpanIndex::default(),
        };
        scanner.skip_ws();
        let _ = scanner.value(&JsonPath::root(), 0);
        scanner.index
    }

    /// Where the value at `path` starts.
    pub fn value(&self, path: &JsonPath) -> Option<Pos> {
        self.values.get(path).copied()
    }

    /// Where the member key of `path` starts (values of array elements have no key).
    pub fn key(&self, path: &JsonPath) -> Option<Pos> {
        self.keys.get(path).copied()
    }

    /// The position of `path`, or of its nearest ancestor that exists in the file.
    pub fn nearest(&self, path: &JsonPath) -> Option<Pos> {
        let mut current = Some(path.clone());
        while let Some(p) = current {
            if let Some(pos) = self.value(&p) {
                return Some(pos);
            }
            current = p.parent();
        }
        None
    }

    /// Members that appear more than once in their object (path and position of each repeat).
    pub fn duplicates(&self) -> &[(JsonPath, Pos)] {
        &self.duplicates
    }
}

/// serde_json refuses nesting deeper than this anyway.
const MAX_DEPTH: usize = 128;

struct Scanner {
    chars: Vec<char>,
    at: usize,
    line: usize,
    col: usize,
    index: SpanIndex,
}

impl Scanner {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
            self.bump();
        }
    }

    fn expect(&mut self, c: char) -> Option<()> {
        (self.bump()? == c).then_some(())
    }

    fn value(&mut self, path: &JsonPath, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.index.values.insert(path.clone(), self.pos());
        match self.peek()? {
            '{' => self.object(path, depth),
            '[' => self.array(path, depth),
            '"' => self.string().map(|_| ()),
            _ => {
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || "+-.".contains(c))
                {
                    self.bump();
                }
                Some(())
            }
        }
    }

    fn object(&mut self, path: &JsonPath, depth: usize) -> Option<()> {
        self.expect('{')?;
        self.skip_ws();
        if self.peek()? == '}' {
            self.bump();
            return Some(());
        }
        loop {
            self.skip_ws();
            let key_pos = self.pos();
            let key = self.string()?;
            let member = path.key(&key);
            if self.index.keys.insert(member.clone(), key_pos).is_some() {
                self.index.duplicates.push((member.clone(), key_pos));
            }
            self.skip_ws();
            self.expect(':')?;
            self.skip_ws();
            self.value(&member, depth + 1)?;
            self.skip_ws();
            match self.bump()? {
                ',' => continue,
                '}' => return Some(()),
                _ => return None,
            }
        }
    }

    fn array(&mut self, path: &JsonPath, depth: usize) -> Option<()> {
        self.expect('[')?;
        self.skip_ws();
        if self.peek()? == ']' {
            self.bump();
            return Some(());
        }
        let mut i = 0;
        loop {
            self.skip_ws();
            self.value(&path.index(i), depth + 1)?;
            i += 1;
            self.skip_ws();
            match self.bump()? {
                ',' => continue,
                ']' => return Some(()),
                _ => return None,
            }
        }
    }

    fn string(&mut self) -> Option<String> {
        self.expect('"')?;
        let mut out = String::new();
        loop {
            match self.bump()? {
                '"' => return Some(out),
                '\\' => match self.bump()? {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'u' => {
                        let hi = self.hex4()?;
                        let code = if (0xd800..0xdc00).contains(&hi) {
                            self.expect('\\')?;
                            self.expect('u')?;
                            let lo = self.hex4()?;
                            0x10000 + ((hi - 0xd800) << 10) + (lo.checked_sub(0xdc00)?)
                        } else {
                            hi
                        };
                        out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                    }
                    other => out.push(other),
                },
                c => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let mut n = 0;
        for _ in 0..4 {
            n = n * 16 + self.bump()?.to_digit(16)?;
        }
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_print_like_jq() {
        let p = JsonPath::root().key("plugins").index(0).key("ipam");
        assert_eq!(p.to_string(), ".plugins[0].ipam");
        assert_eq!(JsonPath::root().to_string(), ".");
        assert_eq!(
            JsonPath::root().key("cni.dev/x").to_string(),
            "[\"cni.dev/x\"]"
        );
        assert_eq!(p.parent().unwrap().to_string(), ".plugins[0]");
    }

    #[test]
    fn positions_of_values_and_keys() {
        let text = "{\n  \"name\": \"x\",\n  \"plugins\": [\n    {\"type\": \"bridge\", \"vlan\": 5000}\n  ]\n}";
        let idx = SpanIndex::build(text);
        let vlan = JsonPath::root().key("plugins").index(0).key("vlan");
        assert_eq!(idx.value(&vlan), Some(Pos { line: 4, col: 32 }));
        assert_eq!(idx.key(&vlan), Some(Pos { line: 4, col: 24 }));
        assert_eq!(
            idx.value(&JsonPath::root().key("name")),
            Some(Pos { line: 2, col: 11 })
        );
        let missing = JsonPath::root().key("plugins").index(0).key("mtu");
        assert_eq!(idx.nearest(&missing), Some(Pos { line: 4, col: 5 }));
    }

    #[test]
    fn escapes_and_duplicates() {
        let idx = SpanIndex::build(r#"{"a\u00e9": 1, "b": [1, {"c": 2}], "b": 3}"#);
        assert!(idx.value(&JsonPath::root().key("aé")).is_some());
        assert_eq!(idx.duplicates().len(), 1);
        assert_eq!(idx.duplicates()[0].0.to_string(), ".b");
    }
}

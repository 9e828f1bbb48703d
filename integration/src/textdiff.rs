//! A small line diff (longest common subsequence) with unified-style hunks.

/// Lines of context shown around each change.
const CONTEXT: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Same,
    Removed,
    Added,
}

/// A readable diff of `before` → `after` (lines prefixed `-`, `+`, or space for context);
/// `None` when equal.
pub fn diff_lines(before: &str, after: &str) -> Option<String> {
    if before == after {
        return None;
    }
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    let script = edit_script(&a, &b);
    let changed: Vec<usize> = script
        .iter()
        .enumerate()
        .filter(|(_, (op, _))| *op != Op::Same)
        .map(|(i, _)| i)
        .collect();
    if changed.is_empty() {
        // Only line endings differ (e.g. a trailing newline).
        return Some(format!(
            "(whitespace-only difference)\n- {before:?}\n+ {after:?}\n"
        ));
    }
    let mut out = String::new();
    let mut last_shown: Option<usize> = None;
    for (i, (op, line)) in script.iter().enumerate() {
        let near = changed.iter().any(|&c| c.abs_diff(i) <= CONTEXT);
        if !near {
            continue;
        }
        if last_shown.is_some_and(|l| l + 1 != i) {
            out.push_str("  ...\n");
        }
        let mark = match op {
            Op::Same => ' ',
            Op::Removed => '-',
            Op::Added => '+',
        };
        out.push(mark);
        out.push(' ');
        out.push_str(line);
        out.push('\n');
        last_shown = Some(i);
    }
    Some(out)
}

fn edit_script<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<(Op, &'a str)> {
    // lcs[i][j] = length of the LCS of a[i..] and b[j..]
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut script = Vec::with_capacity(a.len() + b.len());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            script.push((Op::Same, a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            script.push((Op::Removed, a[i]));
            i += 1;
        } else {
            script.push((Op::Added, b[j]));
            j += 1;
        }
    }
    script
}

#[cfg(test)]
mod tests {
    use super::diff_lines;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(diff_lines("a\nb\n", "a\nb\n"), None);
    }

    #[test]
    fn changes_are_marked_with_context() {
        let d = diff_lines("1\n2\n3\n4\n5\n6\n7\n8\n9\n", "1\n2\n3\n4\nX\n6\n7\n8\n9\n")
            .expect("texts differ");
        assert_eq!(d, "  2\n  3\n  4\n- 5\n+ X\n  6\n  7\n  8\n");
    }

    #[test]
    fn distant_changes_are_separated() {
        let before = (0..20).map(|i| format!("l{i}\n")).collect::<String>();
        let after = before
            .replace("l1\n", "one\n")
            .replace("l18\n", "eighteen\n");
        let d = diff_lines(&before, &after).expect("texts differ");
        assert!(d.contains("  ...\n"), "{d}");
        assert!(d.contains("- l18\n+ eighteen\n"), "{d}");
        assert!(d.starts_with("  l0\n- l1\n+ one\n"), "{d}");
    }
}

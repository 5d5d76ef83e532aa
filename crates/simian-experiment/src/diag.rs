//! Diagnostics that point into the experiment file: file:line:col, the
//! source line, a caret under the spot, and a hint.

use std::fmt::Write;

use crate::tree::Pos;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub pos: Pos,
    /// How many characters the caret underlines.
    pub width: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(file: &str, pos: Pos, width: usize, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_string(),
            pos,
            width: width.max(1),
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Renders like a compiler: message, location, source line with a caret, hint.
    pub fn render(&self, source: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "error: {}", self.message);
        let line_no = self.pos.line.to_string();
        let pad = " ".repeat(line_no.len());
        let _ = writeln!(
            out,
            "{pad}--> {}:{}:{}",
            self.file, self.pos.line, self.pos.col
        );
        if let Some(line) = source.lines().nth(self.pos.line.saturating_sub(1)) {
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{line_no} | {line}");
            let lead: String = line
                .chars()
                .take(self.pos.col.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let room = line
                .chars()
                .count()
                .saturating_sub(self.pos.col.saturating_sub(1))
                .max(1);
            let _ = writeln!(out, "{pad} | {lead}{}", "^".repeat(self.width.min(room)));
        }
        if let Some(h) = &self.hint {
            let _ = writeln!(out, "{pad} = hint: {h}");
        }
        out
    }
}

/// The candidate closest to `word`, if close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (levenshtein(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_caret_under_the_spot() {
        let src = "a: 1\nsteady: x\n";
        let d = Diagnostic::new("f.yaml", Pos { line: 2, col: 1 }, 6, "unknown key `steady`")
            .hint("did you mean `steady_state`?");
        let r = d.render(src);
        assert_eq!(
            r,
            "error: unknown key `steady`\n --> f.yaml:2:1\n  |\n2 | steady: x\n  | ^^^^^^\n  = hint: did you mean `steady_state`?\n"
        );
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("p98", ["p99", "p50", "rate"]), Some("p99"));
        assert_eq!(
            did_you_mean("stedy_state", ["steady_state", "method"]),
            Some("steady_state")
        );
        assert_eq!(did_you_mean("banana", ["steady_state", "method"]), None);
    }
}

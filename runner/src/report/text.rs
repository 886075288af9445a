//! Shared pieces of the readable text view.

use probes::finding::Finding;
use std::fmt::Write;

/// One block per finding: `SEVERITY rule  location\n    message\n    evidence`.
pub fn findings(out: &mut String, findings: &[Finding]) {
    if findings.is_empty() {
        out.push_str("  no findings\n");
        return;
    }
    for f in findings {
        let _ = write!(
            out,
            "  {:<8} {}",
            f.severity.as_str().to_uppercase(),
            f.rule
        );
        if let Some(loc) = &f.location {
            let _ = write!(out, "  {}", inert(loc));
        }
        let _ = writeln!(out, "\n           {}", inert(&f.message));
        if let Some(ev) = &f.evidence {
            let _ = writeln!(out, "           evidence: {}", inert(ev));
        }
    }
}

/// A control character (C0, DEL, C1) or a character that shows nothing itself: what a terminal
/// acts on instead of showing, or what hides or reorders text around it.
fn acts_on_terminal(c: char) -> bool {
    c.is_control() || unseen(c)
}

/// Format characters a name can carry unseen: bidirectional marks and overrides (which reorder
/// what follows), the Unicode line and paragraph separators (line breaks to some readers), zero-
/// width characters and joiners, the byte-order mark, interlinear annotations and tag characters.
/// A path or name shown with one of them raw can pass for another.
pub fn unseen(c: char) -> bool {
    matches!(c,
        // Format characters (Unicode's Cf) and the other default-ignorable ones: fillers,
        // joiners, variation selectors, invisible operators and musical formatting.
        '\u{ad}' | '\u{34f}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}' | '\u{890}' | '\u{891}'
        | '\u{8e2}' | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}' | '\u{180b}'..='\u{180f}'
        | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}'
        | '\u{3164}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}' | '\u{ffa0}' | '\u{fff0}'..='\u{fffb}'
        | '\u{110bd}' | '\u{110cd}' | '\u{13430}'..='\u{1343f}' | '\u{1bca0}'..='\u{1bca3}'
        | '\u{1d173}'..='\u{1d17a}' | '\u{e0000}'..='\u{e0fff}')
}

/// `s` with every character a terminal acts on escaped (`\u{1b}`): messages carry paths and
/// names the examined file or program chose, which must not move the cursor, erase or hide lines
/// of the report, start fake ones, or reorder its text on a terminal.
pub fn inert(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(acts_on_terminal) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if acts_on_terminal(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A whole text view made safe for a terminal: `inert`, but its own line breaks kept.
pub fn terminal_safe(text: String) -> String {
    if !text.chars().any(|c| c != '\n' && acts_on_terminal(c)) {
        return text;
    }
    text.split('\n').map(inert).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        assert_eq!(inert("/tmp/a b.txt"), "/tmp/a b.txt");
        assert_eq!(
            inert("x\r\u{1b}[2Kverdict: pass\n\u{9b}\u{202e}"),
            "x\\u{d}\\u{1b}[2Kverdict: pass\\u{a}\\u{9b}\\u{202e}"
        );
        assert_eq!(terminal_safe("a\n\u{1b}[8mb\n".into()), "a\n\\u{1b}[8mb\n");
        // Unseen characters a red team put in names: line separators, zero-width, BOM, tags.
        assert_eq!(
            inert("a\u{2028}b\u{200b}c\u{feff}d\u{e0001}e\u{fffb}"),
            "a\\u{2028}b\\u{200b}c\\u{feff}d\\u{e0001}e\\u{fffb}"
        );
        assert_eq!(
            inert("caf\u{e9} \u{4e2d}\u{6587}"),
            "caf\u{e9} \u{4e2d}\u{6587}"
        );
        // And those a second look found: Hangul fillers, a grapheme joiner, a variation
        // selector, invisible musical formatting.
        for c in [
            '\u{115f}',
            '\u{3164}',
            '\u{34f}',
            '\u{fe0f}',
            '\u{1d173}',
            '\u{e0100}',
        ] {
            assert!(inert(&format!("a{c}b")).contains("\\u{"), "{:x}", c as u32);
        }
        assert_eq!(terminal_safe("plain\n".into()), "plain\n");
    }
}

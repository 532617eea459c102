//! Text helpers for the report: escaping for HTML/SVG, wrapping for SVG (which cannot wrap
//! text itself), and names from 4-tuples.

use crate::timeline::fmt::endpoint;
use crate::timeline::FourTuple;

/// `text` safe inside HTML/SVG element content and double- or single-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0 (tab and newline are).
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Splits `text` into lines of at most `width` characters at spaces; a longer word gets a line
/// of its own.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let fits = line.chars().count() + 1 + word.chars().count() <= width;
        if !line.is_empty() && !fits {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// "local > peer" as in the summary table.
pub fn conn_name(t: &FourTuple) -> String {
    format!("{} > {}", endpoint(&t.saddr, t.sport), endpoint(&t.daddr, t.dport))
}

/// A file name for a connection: the 4-tuple with everything but letters, digits, dots and
/// dashes replaced (IPv6 colons are not portable in file names).
pub fn file_stem(t: &FourTuple) -> String {
    let raw = format!("{}_{}-{}_{}", t.saddr, t.sport, t.daddr, t.dport);
    raw.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
        assert_eq!(escape("bell\u{7}"), "bell\u{FFFD}");
    }

    #[test]
    fn wrapping_keeps_words_whole() {
        assert_eq!(wrap("aa bb cc dd", 5), vec!["aa bb", "cc dd"]);
        assert_eq!(wrap("averyverylongword x", 4), vec!["averyverylongword", "x"]);
        assert!(wrap("", 10).is_empty());
    }

    #[test]
    fn file_stems_are_portable() {
        let t = FourTuple {
            saddr: "::1".parse().unwrap(),
            sport: 80,
            daddr: "10.0.0.1".parse().unwrap(),
            dport: 4000,
        };
        assert_eq!(file_stem(&t), "__1_80-10.0.0.1_4000");
        assert_eq!(conn_name(&t), "[::1]:80 > 10.0.0.1:4000");
    }
}

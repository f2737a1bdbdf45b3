//! Making guest-derived text safe to print: secret values redacted, control
//! characters escaped.
//!
//! Guests are hostile, and everything they write ends up somewhere a person
//! or a machine reads it: log lines, failure causes sent to the service,
//! recordings, `invoke` output. Two things must hold wherever it does:
//!
//! * **No secret value leaves.** [`Redactor`] replaces every occurrence of a
//!   secret (and of its percent-, JSON- and debug-escaped forms, which is how
//!   a secret shows up in a URL query or a quoted message) with
//!   [`REDACTED`]. Matching is literal and on bytes; occurrences that overlap
//!   (of one secret or of two) are merged and replaced as one, so no part of
//!   any occurrence survives whatever the order of the secrets. Redaction
//!   comes *before* any truncation: cutting first can leave the front half of
//!   a secret at the cut, and redacting after cutting can make the text
//!   longer than the limit the cut was for. Text that is cut from a stream (a
//!   stdout buffer flushed at its size limit, a per-call cap, a tail of
//!   stderr) goes through [`Redactor::redact_window`], which keeps back what
//!   could still be the start of a secret and takes the text before the
//!   window into account. Redaction is a safety net against accidental
//!   leaks: a guest that holds a secret and wants it out can always encode
//!   it some other way, so secrets are only given to guests that need them.
//! * **Guest text is inert.** [`escape`] turns every character that could
//!   end a log line, start a terminal escape sequence or reorder what a
//!   reader sees (C0 and C1 controls, DEL, U+2028/U+2029, bidi controls)
//!   into a visible `\n`, `\r`, `\t` or `\u{..}`, so a guest cannot forge a
//!   log line in the human format (the JSON format escapes them too, but a
//!   line that reads as two to a person is still a forgery).

use std::borrow::Cow;
use std::fmt;

/// Text that replaces a secret value wherever the host would print it.
pub(crate) const REDACTED: &str = "[redacted]";

/// Replaces the values of secrets, in the forms they are likely to appear in.
///
/// Its `Debug` output shows how many patterns it holds, never the patterns.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    /// Byte strings to replace, longest first, no duplicates, none empty.
    patterns: Vec<Box<[u8]>>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("patterns", &self.patterns.len())
            .finish()
    }
}

/// `s` with every byte outside RFC 3986's unreserved set as `%XX`.
fn percent_encode(s: &str, upper: bool, space_as_plus: bool) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' if space_as_plus => out.push('+'),
            _ if upper => out.push_str(&format!("%{b:02X}")),
            _ => out.push_str(&format!("%{b:02x}")),
        }
    }
    out
}

/// The inside of a quoted string literal (`"…"` without the quotes).
fn unquote(quoted: String) -> String {
    quoted
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .map(str::to_string)
        .unwrap_or(quoted)
}

impl Redactor {
    /// A redactor for these secret values; empty values are ignored.
    pub(crate) fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut patterns: Vec<Box<[u8]>> = Vec::new();
        for secret in secrets {
            if secret.is_empty() {
                continue;
            }
            let forms = [
                secret.to_string(),
                percent_encode(secret, true, false),
                percent_encode(secret, false, false),
                percent_encode(secret, true, true),
                percent_encode(secret, false, true),
                unquote(serde_json::to_string(secret).unwrap_or_default()),
                unquote(format!("{secret:?}")),
                escape(secret).into_owned(),
            ];
            for form in forms {
                let form = form.into_bytes().into_boxed_slice();
                if !form.is_empty() && !patterns.contains(&form) {
                    patterns.push(form);
                }
            }
        }
        patterns.sort_by_key(|p| std::cmp::Reverse(p.len()));
        Redactor { patterns }
    }

    /// True if there is nothing to redact.
    pub(crate) fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The longest pattern, in bytes: how far a secret can reach across a
    /// cut.
    pub(crate) fn max_len(&self) -> usize {
        self.patterns.first().map_or(0, |p| p.len())
    }

    /// `text` with every secret value replaced by [`REDACTED`].
    pub(crate) fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if self.is_empty() {
            return Cow::Borrowed(text);
        }
        match self.redact_window(text.as_bytes(), 0, false) {
            (Cow::Borrowed(_), _) => Cow::Borrowed(text),
            // Patterns are whole UTF-8 strings and the marker is ASCII, so
            // replacing them in UTF-8 text leaves UTF-8 text.
            (Cow::Owned(bytes), _) => Cow::Owned(
                String::from_utf8(bytes)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            ),
        }
    }

    /// Redacts `text`, then cuts it to `max_chars` characters with a marker
    /// saying how much was cut: the order that keeps both the secret and the
    /// limit.
    ///
    /// Only the head that can survive the cut is redacted, so the work is
    /// bounded by the limit, not by how much text a guest returned (this
    /// runs on the control plane).
    pub(crate) fn redact_truncate(&self, text: &str, max_chars: usize) -> String {
        let window = max_chars
            .saturating_mul(4)
            .saturating_add(self.max_len())
            .saturating_add(4);
        if text.len() <= window {
            return truncate_chars(&self.redact(text), max_chars);
        }
        let mut cut = window;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, used) = self.redact_window(&text.as_bytes()[..cut], 0, true);
        let head = String::from_utf8_lossy(&head);
        let gone = text
            .get(used..)
            .map_or(text.len() - used, |t| t.chars().count());
        truncate_chars_with(&head, max_chars, gone)
    }

    /// Redacts the part of a byte stream held in `window` from `from` on.
    ///
    /// `window[..from]` is text before it that was already dealt with (given
    /// so a secret that began there is still recognised; it is not part of
    /// the result). If `more` is true, more bytes may follow the window:
    /// then the result stops where what remains could still be part of a
    /// secret (or is an incomplete UTF-8 character), and the caller keeps
    /// those bytes for later or drops them. Returns the redacted bytes and
    /// the window offset they end at (`window.len()` when `more` is false;
    /// otherwise all but at most `max(max_len() - 1, 3)` bytes, or `from`).
    pub(crate) fn redact_window<'a>(
        &self,
        window: &'a [u8],
        from: usize,
        more: bool,
    ) -> (Cow<'a, [u8]>, usize) {
        let from = from.min(window.len());
        let mut end = window.len();
        if more {
            end = end.min(self.undecided_from(window));
            end = end.min(incomplete_utf8_from(window));
            end = end.max(from);
        }
        if self.is_empty() {
            return (Cow::Borrowed(&window[from..end]), end);
        }
        let spans = self.spans(window);
        let mut out: Option<Vec<u8>> = None;
        let mut at = from;
        for (start, stop) in spans {
            if stop <= from || start >= end {
                continue;
            }
            let buf = out.get_or_insert_with(|| Vec::with_capacity(end - from));
            if start > at {
                buf.extend_from_slice(&window[at..start]);
            }
            buf.extend_from_slice(REDACTED.as_bytes());
            at = stop.min(end);
        }
        match out {
            None => (Cow::Borrowed(&window[from..end]), end),
            Some(mut buf) => {
                buf.extend_from_slice(&window[at..end]);
                (Cow::Owned(buf), end)
            }
        }
    }

    /// Every occurrence of every pattern in `text`, overlapping ones merged,
    /// in order.
    fn spans(&self, text: &[u8]) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        for p in &self.patterns {
            let first = p[0];
            let mut i = 0;
            while i + p.len() <= text.len() {
                let Some(off) = text[i..=text.len() - p.len()]
                    .iter()
                    .position(|&b| b == first)
                else {
                    break;
                };
                let at = i + off;
                if text[at..].starts_with(p) {
                    found.push((at, at + p.len()));
                }
                i = at + 1;
            }
        }
        found.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(found.len());
        for (start, stop) in found {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(stop),
                _ => merged.push((start, stop)),
            }
        }
        merged
    }

    /// The first offset from which the rest of `text` is a proper prefix of
    /// some pattern: a secret may start there and go on past the end.
    fn undecided_from(&self, text: &[u8]) -> usize {
        let lookback = self.max_len().saturating_sub(1).min(text.len());
        (text.len() - lookback..text.len())
            .find(|&i| {
                let rest = &text[i..];
                self.patterns
                    .iter()
                    .any(|p| p.len() > rest.len() && p.starts_with(rest))
            })
            .unwrap_or(text.len())
    }
}

/// Where a UTF-8 character cut off at the end of `bytes` begins, or
/// `bytes.len()` if the end is not inside a character.
fn incomplete_utf8_from(bytes: &[u8]) -> usize {
    for back in 1..=3.min(bytes.len()) {
        let i = bytes.len() - back;
        let b = bytes[i];
        if b & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back
        }
        let needed = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if back < needed { i } else { bytes.len() };
    }
    bytes.len()
}

/// True for characters that must not reach a log line as they are.
fn needs_escape(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'        // C0 controls: NUL, ESC, CR, LF, TAB...
        | '\u{7f}'..='\u{9f}'     // DEL and C1 controls (NEL, CSI...)
        | '\u{2028}' | '\u{2029}' // line and paragraph separators
        | '\u{200e}' | '\u{200f}' | '\u{61c}' // direction marks
        | '\u{202a}'..='\u{202e}' // bidi embeddings and overrides
        | '\u{2066}'..='\u{2069}' // bidi isolates
    )
}

/// `text` with control, line-breaking and bidi characters written as `\n`,
/// `\r`, `\t` or `\u{..}`, so it prints on one line and shows what it holds.
/// Everything else, backslashes included, is kept as it is.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// True if `text` holds nothing [`escape`] would change.
pub fn is_inert(text: &str) -> bool {
    !text.chars().any(needs_escape)
}

/// JSON text as serde_json writes it, with the characters it leaves raw
/// inside strings (DEL, C1 controls, U+2028/U+2029, bidi controls) written
/// as `\uXXXX` escapes: still the same JSON value, and inert when printed.
/// (serde_json already escapes the other controls; its own line breaks in
/// pretty output are kept.)
pub fn escape_json(json: &str) -> Cow<'_, str> {
    let raw = |c: char| needs_escape(c) && !matches!(c, '\n' | '\r' | '\t');
    if !json.chars().any(raw) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if raw(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Displays guest text escaped (see [`escape`]), for log fields and
/// messages: `tracing::info!(cause = %Inert(&cause))`.
#[derive(Debug, Clone, Copy)]
pub struct Inert<'a>(pub &'a str);

impl fmt::Display for Inert<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape(self.0))
    }
}

/// Cut text says so, and where: every place that bounds text the host
/// sends or prints (reports, heartbeat details, logged URLs, error chains)
/// cuts it here, after redaction, so a secret is never half-cut into view.
/// Cuts `s` to at most `max` characters, ending with a marker that says how
/// much was cut.
pub(crate) fn truncate_chars(s: &str, max: usize) -> String {
    truncate_chars_with(s, max, 0)
}

/// [`truncate_chars`] of `s` followed by `gone` more characters that were
/// already dropped (counted in the marker, never looked at again).
pub(crate) fn truncate_chars_with(s: &str, max: usize, gone: usize) -> String {
    let total = s.chars().count() + gone;
    if total <= max {
        return s.to_string();
    }
    let marker = |cut: usize| format!("… [{cut} characters cut]");
    // The marker's length depends on the number it carries: start from the
    // longest possible marker, then keep more while the result still fits.
    let Some(mut keep) = max.checked_sub(marker(total).chars().count()) else {
        return s.chars().take(max).collect();
    };
    while keep + 1 + marker(total - keep - 1).chars().count() <= max {
        keep += 1;
    }
    let mut out: String = s.chars().take(keep).collect();
    out.push_str(&marker(total - keep));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn truncate_keeps_short_strings_and_bounds_long_ones() {
        assert_eq!(truncate_chars("abc", 3), "abc");
        let cut = truncate_chars(&"a".repeat(1000), 100);
        assert_eq!(cut.chars().count(), 100);
        assert!(cut.contains("characters cut"));
        assert_eq!(truncate_chars("abcdef", 2), "ab");
    }

    use super::*;

    fn r(secrets: &[&str]) -> Redactor {
        Redactor::new(secrets.iter().copied())
    }

    #[test]
    fn secrets_are_replaced_literally_whatever_their_length_or_characters() {
        let two = r(&["k9"]);
        assert_eq!(two.redact("ak9b k9"), "a[redacted]b [redacted]");
        let meta = r(&[".*(a|b)+$[x]\\"]);
        assert_eq!(meta.redact("x .*(a|b)+$[x]\\ y aab"), "x [redacted] y aab");
        // One character shorter than the marker and inside it: no
        // re-redaction of the marker, no growth beyond one marker per span.
        let e = r(&["e", "da"]);
        assert_eq!(e.redact("eda"), "[redacted]");
        assert_eq!(e.redact("xex"), "x[redacted]x");
        assert_eq!(r(&[""]).redact("abc"), "abc");
        assert!(matches!(r(&["zz"]).redact("abc"), Cow::Borrowed(_)));
    }

    #[test]
    fn redact_truncate_looks_only_at_what_can_survive_the_cut() {
        let secret = "TOPSECRET1";
        let red = r(&[secret]);
        let max = 100;
        // The secret straddles the end of the window that is looked at.
        for offset in 395..415 {
            let text = format!("{}{secret}{}", "a".repeat(offset), "b".repeat(10 << 20));
            let out = red.redact_truncate(&text, max);
            assert!(out.chars().count() <= max, "{offset}: {out}");
            for n in 3..=secret.len() {
                assert!(!out.contains(&secret[..n]), "{offset}: {out}");
            }
            let cut: usize = out
                .rsplit_once("… [")
                .and_then(|(_, m)| m.split_whitespace().next()?.parse().ok())
                .unwrap();
            let kept = out.chars().count() - format!("… [{cut} characters cut]").chars().count();
            assert!(
                kept + cut >= text.chars().count() - secret.len(),
                "{offset}: {out}"
            );
        }
    }

    #[test]
    fn overlapping_secrets_leave_no_part_behind() {
        let o = r(&["abc", "cde"]);
        assert_eq!(o.redact("xabcdey"), "x[redacted]y");
        assert_eq!(r(&["aa"]).redact("aaa b"), "[redacted] b");
    }

    #[test]
    fn percent_json_and_debug_forms_are_redacted() {
        let secret = "p@ss w/rd\"+&=";
        let red = r(&[secret]);
        let upper = "https://h/x?key=p%40ss%20w%2Frd%22%2B%26%3D&y=1";
        assert_eq!(red.redact(upper), "https://h/x?key=[redacted]&y=1");
        let lower = "?key=p%40ss+w%2frd%22%2b%26%3d";
        assert_eq!(red.redact(lower), "?key=[redacted]");
        let json = serde_json::json!({ "k": secret }).to_string();
        assert_eq!(red.redact(&json), r#"{"k":"[redacted]"}"#);
        let debug = format!("{:?}", format!("<{secret}>"));
        assert_eq!(red.redact(&debug), "\"<[redacted]>\"");
    }

    #[test]
    fn a_window_keeps_back_what_could_start_a_secret() {
        let red = r(&["SECRET"]);
        let (out, end) = red.redact_window(b"hello SEC", 0, true);
        assert_eq!((&*out, end), (&b"hello "[..], 6));
        // The rest arrives: with the held-back bytes it is redacted whole.
        let (out, end) = red.redact_window(b"SECRET!", 0, false);
        assert_eq!((&*out, end), (&b"[redacted]!"[..], 7));
        // Text that cannot start a secret is not held back.
        let (out, end) = red.redact_window(b"hello SEX", 0, true);
        assert_eq!((&*out, end), (&b"hello SEX"[..], 9));
        // A cut inside a UTF-8 character waits for the rest of it.
        let cut = &"ab\u{e9}".as_bytes()[..3];
        let (out, end) = Redactor::default().redact_window(cut, 0, true);
        assert_eq!((&*out, end), (&b"ab"[..], 2));
    }

    #[test]
    fn context_before_the_window_catches_a_secret_that_began_there() {
        let red = r(&["SECRET"]);
        // "xxSE" was already emitted; the secret that began there still
        // hides its part inside the window.
        let (out, end) = red.redact_window(b"xxSECRET tail", 4, false);
        assert_eq!(&*out, b"[redacted] tail");
        assert_eq!(end, 13);
    }

    #[test]
    fn redact_then_truncate_keeps_the_limit_and_the_secret() {
        let secret = "S".repeat(40);
        let red = r(&[&secret]);
        let limit = 32_768;
        // A secret straddling the limit, and one-character secrets
        // expanding ten-fold: the result is within the limit, secret-free.
        let text = format!("{}{secret}", "a".repeat(limit - 20));
        let out = red.redact_truncate(&text, limit);
        assert!(out.chars().count() <= limit);
        assert!(!out.contains("SSSS"), "{}", &out[out.len() - 60..]);
        let one = r(&["e"]);
        let out = one.redact_truncate(&"e".repeat(limit), limit);
        assert!(out.chars().count() <= limit);
        assert!(!out.contains("e]e"));
    }

    #[test]
    fn escaping_makes_controls_visible_and_keeps_the_rest() {
        assert_eq!(
            escape("a\nb\rc\u{1b}[31md\0e\tf\u{7f}\u{85}g\u{2028}h\u{202e}i"),
            "a\\nb\\rc\\u{1b}[31md\\u{0}e\\tf\\u{7f}\\u{85}g\\u{2028}h\\u{202e}i"
        );
        assert!(matches!(escape("plain, é ü 漢 \\n"), Cow::Borrowed(_)));
        assert_eq!(Inert("x\ny").to_string(), "x\\ny");
        assert!(
            !escape("\u{0}\u{1}\u{1f}\u{9f}\u{2029}")
                .chars()
                .any(needs_escape)
        );
    }

    #[test]
    fn json_escaping_keeps_the_value_and_makes_it_inert() {
        let value = serde_json::json!({"k\u{2028}": "a\u{85}b\u{7f}\u{202e}\n\u{1b}"});
        let text = value.to_string();
        let escaped = escape_json(&text);
        assert!(is_inert(&escaped), "{escaped}");
        let back: serde_json::Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(back, value);
        let pretty = serde_json::to_string_pretty(&serde_json::json!({"a": 1})).unwrap();
        assert_eq!(escape_json(&pretty), pretty, "serde's own line breaks stay");
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let red = r(&["hunter2"]);
        assert!(!format!("{red:?}").contains("hunter2"));
    }
}

//! One log line per event on stdout, in logfmt, that no client input can split.
//!
//! `2026-02-04T21:14:22.663Z service=A endpoint=/echo status=ok http_status=200 latency_ms=0`
//!
//! A value with spaces, quotes, `=` or control characters is quoted and escaped,
//! so a `msg` holding `"\n` cannot forge a second line. Each line is written with
//! one `write_all` under stdout's lock: lines from concurrent requests never interleave.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::SystemTime;

/// A log line under construction: `Line::new("A").str("event", "start").emit()`.
#[derive(Debug)]
#[must_use = "a line is only written by emit()"]
pub struct Line {
    buf: String,
}

impl Line {
    /// Starts a line with the timestamp and `service=NAME`.
    pub fn new(service: &str) -> Self {
        let mut buf = String::with_capacity(192);
        let _ = write!(
            buf,
            "{}",
            humantime::format_rfc3339_millis(SystemTime::now())
        );
        let mut line = Self { buf };
        line.push_str("service", service);
        line
    }

    /// Adds `key=value`, quoting the value if it needs it.
    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.push_str(key, value);
        self
    }

    /// Adds `key=value` for a number or anything else that prints without quotes.
    pub fn num(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        let _ = write!(self.buf, " {key}={value}");
        self
    }

    /// Adds `key=value` when there is a value.
    pub fn opt_str(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.str(key, v),
            None => self,
        }
    }

    fn push_str(&mut self, key: &str, value: &str) {
        self.buf.push(' ');
        self.buf.push_str(key);
        self.buf.push('=');
        self.buf.push_str(&escape(value));
    }

    /// The line as text, without the newline.
    pub fn as_str(&self) -> &str {
        &self.buf
    }

    /// Writes the line to stdout. A closed stdout is ignored: logging never fails a request.
    pub fn emit(mut self) {
        self.buf.push('\n');
        let _ = std::io::stdout().lock().write_all(self.buf.as_bytes());
    }
}

/// A logfmt value: bare when safe, else quoted with `\"`, `\\`, `\n`, `\t`, `\u{..}` escapes.
pub fn escape(value: &str) -> Cow<'_, str> {
    let bare = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && c != '"' && c != '=' && c != '\\');
    if bare {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Control characters and exotic line breaks (U+2028...) spelled out.
            c if c.is_control() || (c.is_whitespace() && c != ' ') => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Safe values stay bare; anything that could split or confuse a line is quoted.
    #[test]
    fn escapes_what_could_split_a_line() {
        assert_eq!(escape("/echo"), "/echo");
        assert_eq!(escape(""), "\"\"");
        assert_eq!(escape("a b"), "\"a b\"");
        assert_eq!(escape("x=1"), "\"x=1\"");
        assert_eq!(escape("say \"hi\"\n"), r#""say \"hi\"\n""#);
        assert_eq!(escape("c:\\"), r#""c:\\""#);
        assert_eq!(escape("\u{0}\u{7f}"), r#""\u{0}\u{7f}""#);
        assert_eq!(escape("line\u{2028}sep"), r#""line\u{2028}sep""#);
        assert_eq!(escape("émoji🎉"), "émoji🎉");
    }

    /// A line is one line, whatever its values hold.
    #[test]
    fn a_line_never_splits() {
        let line = Line::new("A")
            .str("detail", "evil\nservice=B status=ok")
            .num("latency_ms", 3);
        assert!(!line.as_str().contains('\n'));
        assert!(line
            .as_str()
            .ends_with(r#" service=A detail="evil\nservice=B status=ok" latency_ms=3"#));
    }
}

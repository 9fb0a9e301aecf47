//! A log line as text: a timestamp, `service=NAME`, then fields, in logfmt
//! or JSON, that no client input can split.
//!
//! In logfmt a value with spaces, quotes, `=` or control characters is quoted
//! and escaped, so a `msg` holding `"\n` cannot forge a second line. JSON
//! lines are escaped as strictly: besides what JSON requires, line and
//! paragraph separators (U+2028, U+2029), C1 controls and bidi/invisible
//! marks are written as `\uXXXX`, so no Unicode-aware reader splits or
//! reorders a line either. What a client controls (a request target) is cut
//! to [`MAX_CLIENT_TEXT`] bytes before it is written ([`Line::client`]).
//!
//! The format, the clock and the service's name are the process's, set once
//! at start ([`init`], [`init_clock`]). Writing a line out is the writer's
//! job (`writer.rs`, `Line::emit`).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// How lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `key=value` pairs (the contract's format).
    #[default]
    Logfmt,
    /// One JSON object per line.
    Json,
}

/// Which clock a line's timestamp reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Clock {
    /// UTC, ending in `Z` (the contract's format).
    #[default]
    Utc,
    /// This machine's time zone, ending in its offset (`+01:00`).
    Local,
}

/// Stdout is one per process, so its format is too: set once at start.
static FORMAT: OnceLock<Format> = OnceLock::new();
/// The service writing, for the lines the writer thread itself adds.
static SERVICE: OnceLock<&'static str> = OnceLock::new();

/// Sets the service name and the format of every line from now on (first call wins).
pub fn init(service: &'static str, format: Format) {
    let _ = SERVICE.set(service);
    let _ = FORMAT.set(format);
}

/// Whether [`init`] has named the service: not in a unit test that calls a
/// handler, whose lines are then printed in place for the harness to catch.
pub(super) fn in_a_service() -> bool {
    SERVICE.get().is_some()
}

/// The most bytes of client-controlled text (a request target) a line
/// carries; longer text is cut at a character boundary and marked
/// `...(N bytes)` with its full length. Enough for any path a person types.
pub const MAX_CLIENT_TEXT: usize = 256;

/// The clock of every line's timestamp, set once at start like the format.
static CLOCK: OnceLock<Clock> = OnceLock::new();

/// Sets the clock of every line's timestamp from now on (first call wins).
pub fn init_clock(clock: Clock) {
    let _ = CLOCK.set(clock);
}

/// Now, as a line's timestamp: RFC 3339 with milliseconds, in UTC (`Z`) or,
/// with [`Clock::Local`], in this machine's zone with its offset. Should the
/// zone be unknown, jiff falls back to UTC, and the `Z` says so.
fn timestamp(clock: Clock) -> String {
    match clock {
        Clock::Utc => humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        Clock::Local => local_timestamp(jiff::ZonedDateTime::now()),
    }
}

fn local_timestamp(now: jiff::ZonedDateTime) -> String {
    if now.offset() == jiff::tz::Offset::UTC {
        now.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    } else {
        now.strftime("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()
    }
}

/// `text` cut to at most `max` bytes at a character boundary, marked with its
/// full length when cut: `/aaaa...(8192 bytes)`.
pub fn truncate(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}...({} bytes)", &text[..end], text.len()))
}

/// A log line under construction: `Line::new("A").str("event", "start").emit()`.
///
/// The text is written as the fields are added, in the configured format: one
/// buffer per line, no allocation per field.
#[derive(Debug)]
#[must_use = "a line is only written by emit()"]
pub struct Line {
    format: Format,
    text: String,
}

impl Line {
    /// Starts a line with the timestamp and `service=NAME`.
    pub fn new(service: &str) -> Self {
        Self::in_format(FORMAT.get().copied().unwrap_or_default(), service)
    }

    /// Starts a line of this service's (as [`init`] named it) with `event=NAME`.
    pub fn event(name: &str) -> Self {
        Self::new(SERVICE.get().copied().unwrap_or("-")).str("event", name)
    }

    fn in_format(format: Format, service: &str) -> Self {
        let ts = timestamp(CLOCK.get().copied().unwrap_or_default());
        let mut text = String::with_capacity(256);
        let _ = match format {
            Format::Logfmt => write!(text, "{ts}"),
            Format::Json => write!(text, "{{\"ts\":\"{ts}\""),
        };
        Self { format, text }.str("service", service)
    }

    fn key(&mut self, key: &str) {
        let (before, after) = match self.format {
            Format::Logfmt => (" ", "="),
            Format::Json => (",\"", "\":"),
        };
        self.text.push_str(before);
        self.text.push_str(key);
        self.text.push_str(after);
    }

    /// Adds `key=value`, quoting the value if it needs it.
    pub fn str(mut self, key: &'static str, value: &str) -> Self {
        self.key(key);
        self.value(value);
        self
    }

    /// Adds `key=value` where a client chose the value (a request target):
    /// cut to [`MAX_CLIENT_TEXT`] bytes first.
    pub fn client(self, key: &'static str, value: &str) -> Self {
        self.str(key, &truncate(value, MAX_CLIENT_TEXT))
    }

    /// Adds a field whose key is not a constant (a span's property): the key
    /// keeps letters, digits and `_ . - :`, anything else becomes `_`.
    pub fn field(mut self, key: &str, value: &str) -> Self {
        self.key(&safe_key(key));
        self.value(value);
        self
    }

    fn value(&mut self, value: &str) {
        match self.format {
            Format::Logfmt => self.text.push_str(&escape(value)),
            Format::Json => json_string(&mut self.text, value),
        }
    }

    /// Adds `key=value` for a number or a boolean.
    pub fn num(mut self, key: &'static str, value: impl Number) -> Self {
        self.key(key);
        let _ = write!(self.text, "{value}");
        self
    }

    /// The finished line, with its newline.
    pub(super) fn render(mut self) -> String {
        if self.format == Format::Json {
            self.text.push('}');
        }
        self.text.push('\n');
        self.text
    }
}

/// Values written bare: they are valid JSON tokens and never need logfmt quotes.
pub trait Number: std::fmt::Display {}
macro_rules! number {
    ($($t:ty),*) => { $(impl Number for $t {})* };
}
number!(u8, u16, u32, u64, u128, usize, i32, i64, f64, bool);

/// A logfmt value: bare when safe, else quoted with `\"`, `\\`, `\n`, `\t`, `\u{..}` escapes.
pub fn escape(value: &str) -> Cow<'_, str> {
    let bare = !value.is_empty()
        && value.chars().all(|c| {
            !c.is_control()
                && !c.is_whitespace()
                && !invisible(c)
                && c != '"'
                && c != '='
                && c != '\\'
        });
    if bare {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 2);
    // Control characters, exotic line breaks (U+2028...) and invisible
    // reordering marks spelled out.
    quote_into(
        &mut out,
        value,
        |c| c.is_control() || (c.is_whitespace() && c != ' ') || invisible(c),
        |out, c| {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        },
    );
    Cow::Owned(out)
}

/// Appends `value` in double quotes: a quote, a backslash, a line break or
/// a tab as its short escape ([`short_escape`]), any other character for
/// which `coded` holds as `code` writes it, the rest as it is.
fn quote_into(out: &mut String, value: &str, coded: fn(char) -> bool, code: fn(&mut String, char)) {
    out.push('"');
    for c in value.chars() {
        match short_escape(c) {
            Some(short) => out.push_str(short),
            None if coded(c) => code(out, c),
            None => out.push(c),
        }
    }
    out.push('"');
}

/// The escape both formats write for a quote, a backslash, and the line
/// breaks and tab that have a short one.
fn short_escape(c: char) -> Option<&'static str> {
    match c {
        '"' => Some("\\\""),
        '\\' => Some("\\\\"),
        '\n' => Some("\\n"),
        '\r' => Some("\\r"),
        '\t' => Some("\\t"),
        _ => None,
    }
}

/// `key` as a log key: letters, digits and `_ . - :` kept, anything else
/// (space, `=`, quotes, controls) made `_`, so a key never needs quoting.
pub fn safe_key(key: &str) -> String {
    let key: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if key.is_empty() {
        "_".to_owned()
    } else {
        key
    }
}

/// Appends `value` as a JSON string: what JSON requires escaped (`"`, `\\`,
/// U+0000..U+001F), plus DEL, C1 controls, U+2028/U+2029 (JavaScript and
/// many editors break lines there) and the invisible marks of [`invisible`],
/// all as `\uXXXX`: the line stays one line to every reader.
fn json_string(out: &mut String, value: &str) {
    quote_into(
        out,
        value,
        |c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') || invisible(c),
        |out, c| {
            let _ = write!(out, "\\u{:04x}", c as u32);
        },
    );
}

/// Characters that print as nothing but change how a line reads: bidi
/// overrides and isolates (U+202E can show `txt.exe` as `exe.txt`),
/// zero-width marks, and the byte-order mark.
fn invisible(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Safe values stay bare; anything that could split or confuse a line is quoted.
    /// UTC ends in `Z`; local time ends in the zone's offset, with the
    /// same wall-clock digits a reader of that zone expects.
    #[test]
    fn timestamps_in_utc_or_local_time() {
        let utc = timestamp(Clock::Utc);
        assert_eq!(utc.len(), "2026-02-04T21:14:22.663Z".len(), "{utc}");
        assert!(utc.ends_with('Z'), "{utc}");
        let at: jiff::Timestamp = "2026-02-04T21:14:22.663Z".parse().unwrap();
        let paris = at.in_tz("Europe/Paris").unwrap();
        assert_eq!(local_timestamp(paris), "2026-02-04T22:14:22.663+01:00");
        let kolkata = at.in_tz("Asia/Kolkata").unwrap();
        assert_eq!(local_timestamp(kolkata), "2026-02-05T02:44:22.663+05:30");
        let utc_zone = at.in_tz("UTC").unwrap();
        assert_eq!(local_timestamp(utc_zone), "2026-02-04T21:14:22.663Z");
    }

    #[test]
    fn escapes_what_could_split_a_line() {
        assert_eq!(escape("/echo"), "/echo");
        assert_eq!(escape(""), "\"\"");
        assert_eq!(escape("a b"), "\"a b\"");
        assert_eq!(escape("x=1"), "\"x=1\"");
        assert_eq!(escape("say \"hi\"\n"), r#""say \"hi\"\n""#);
        assert_eq!(escape("c:\\"), r#""c:\\""#);
        assert_eq!(escape("a\u{202e}b"), r#""a\u{202e}b""#);
        assert_eq!(escape("\u{0}\u{7f}"), r#""\u{0}\u{7f}""#);
        assert_eq!(escape("line\u{2028}sep"), r#""line\u{2028}sep""#);
        assert_eq!(escape("émoji🎉"), "émoji🎉");
    }

    /// A line is one line, whatever its values hold.
    #[test]
    fn a_line_never_splits() {
        let text = Line::in_format(Format::Logfmt, "A")
            .str("detail", "evil\nservice=B status=ok")
            .num("latency_ms", 3u64)
            .render();
        assert_eq!(text.lines().count(), 1);
        assert!(text.ends_with(" service=A detail=\"evil\\nservice=B status=ok\" latency_ms=3\n"));
    }

    /// The JSON form is one valid object with the same fields.
    #[test]
    fn json_lines_are_valid_json() {
        let text = Line::in_format(Format::Json, "B")
            .str("detail", "quote\" newline\n \u{1}")
            .num("latency_ms", 1001u64)
            .num("drained", true)
            .render();
        assert_eq!(text.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["service"], "B");
        assert_eq!(v["detail"], "quote\" newline\n \u{1}");
        assert_eq!(v["latency_ms"], 1001);
        assert_eq!(v["drained"], true);
        assert!(v["ts"].as_str().unwrap().ends_with('Z'));
    }

    /// JSON lines escape what splits or reorders a line for Unicode-aware
    /// readers, and still parse back to the exact text.
    #[test]
    fn json_escapes_separators_c1_and_bidi() {
        let nasty = "a\u{2028}b\u{2029}c\u{85}d\u{202e}e\u{200b}f\u{7f}g\u{1b}[31m";
        let text = Line::in_format(Format::Json, "A")
            .str("endpoint", nasty)
            .render();
        for raw in [
            '\u{2028}', '\u{2029}', '\u{85}', '\u{202e}', '\u{200b}', '\u{7f}', '\u{1b}',
        ] {
            assert!(!text.contains(raw), "{raw:?} raw in {text:?}");
        }
        assert!(text.contains(r"\u2028") && text.contains(r"\u0085") && text.contains(r"\u202e"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["endpoint"], nasty);
    }

    /// Client text is cut at a character boundary and says how long it was.
    #[test]
    fn client_text_is_cut() {
        let long = format!("/{}", "é".repeat(5000));
        let text = Line::in_format(Format::Logfmt, "A")
            .client("endpoint", &long)
            .render();
        assert!(text.len() < MAX_CLIENT_TEXT + 100, "{}", text.len());
        assert!(text.contains("...(10001 bytes)"), "{text}");
        assert_eq!(truncate("/short", MAX_CLIENT_TEXT), "/short");
    }

    /// Keys that are not constants keep only safe characters.
    #[test]
    fn dynamic_keys_are_safe() {
        let text = Line::in_format(Format::Logfmt, "A")
            .field("http.route", "/echo")
            .field("a b=\"c", "x")
            .render();
        assert!(text.contains(" http.route=/echo "), "{text}");
        assert!(text.contains(" a_b__c=x"), "{text}");
    }
}

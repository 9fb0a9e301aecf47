//! One log line per event on stdout, that no client input can split.
//!
//! `2026-02-04T21:14:22.663Z service=A endpoint=/echo status=ok http_status=200 latency_ms=0`
//!
//! Times are UTC (the `Z`), so the lines of services on machines in different
//! zones sort and compare as they are; `[log] time = "local"` writes this
//! machine's local time with its offset instead (`2026-02-04T22:14:22.663+01:00`),
//! as Flask's logs do.
//!
//! logfmt by default; `[log] format = "json"` writes one JSON object per line
//! for log shippers. In logfmt a value with spaces, quotes, `=` or control
//! characters is quoted and escaped, so a `msg` holding `"\n` cannot forge a
//! second line.
//!
//! Lines go to a writer thread through a bounded queue, so a slow reader of
//! stdout (a pager, a full pipe) never blocks a request: past
//! [`QUEUE_LINES`] waiting lines, new ones are dropped and counted, and the
//! count is logged (`event=log_dropped`) once the writer catches up. The writer
//! batches whatever is waiting into one write. [`flush`] at exit writes the rest.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
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

/// `[log]` in both services' configs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `logfmt` (default) or `json`.
    pub format: Format,
    /// `utc` (default) or `local`.
    #[serde(default)]
    pub time: Clock,
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

/// Lines that may wait for the writer thread before new ones are dropped.
pub const QUEUE_LINES: usize = 16 * 1024;

enum Message {
    Line(String),
    /// Write everything queued so far, then answer.
    Flush(SyncSender<()>),
}

/// The queue to the writer thread, started on first use.
static QUEUE: OnceLock<SyncSender<Message>> = OnceLock::new();
/// Lines dropped because the queue was full, not yet reported.
static DROPPED: AtomicU64 = AtomicU64::new(0);

fn queue() -> &'static SyncSender<Message> {
    QUEUE.get_or_init(|| {
        let (tx, rx) = sync_channel(QUEUE_LINES);
        let spawned = std::thread::Builder::new()
            .name("log-writer".to_owned())
            .spawn(move || write_lines(rx));
        if spawned.is_err() {
            // No thread, no queue: the receiver is gone and lines are counted as dropped.
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        tx
    })
}

/// How long the writer lets lines gather after the first one: under load it
/// then wakes at most 200 times a second, never once per request (a thread
/// wake-up per line costs more than serving the request it logs).
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

/// The writer thread: everything waiting, in one write; then the dropped count.
fn write_lines(rx: Receiver<Message>) {
    let mut out = std::io::stdout().lock();
    let mut batch = Vec::with_capacity(64 * 1024);
    while let Ok(first) = rx.recv() {
        if matches!(first, Message::Line(_)) {
            std::thread::sleep(GATHER);
        }
        let mut acks = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Line(line) => batch.extend_from_slice(line.as_bytes()),
                Message::Flush(ack) => acks.push(ack),
            }
            next = if batch.len() < 256 * 1024 {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        let dropped = DROPPED.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let service = SERVICE.get().copied().unwrap_or("-");
            let line = Line::new(service)
                .str("event", "log_dropped")
                .num("lines", dropped);
            batch.extend_from_slice(line.render().as_bytes());
        }
        // A closed stdout is ignored: logging never fails a request.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// Waits until every line emitted so far is written: call before exiting.
pub fn flush() {
    let (ack, done) = sync_channel(1);
    if queue().send(Message::Flush(ack)).is_ok() {
        let _ = done.recv();
    }
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
        match self.format {
            Format::Logfmt => self.text.push_str(&escape(value)),
            Format::Json => {
                let quoted = serde_json::to_string(value).unwrap_or_else(|_| "\"\"".into());
                self.text.push_str(&quoted);
            }
        }
        self
    }

    /// Adds `key=value` for a number or a boolean.
    pub fn num(mut self, key: &'static str, value: impl Number) -> Self {
        self.key(key);
        let _ = write!(self.text, "{value}");
        self
    }

    /// Adds `key=value` when there is a value.
    pub fn opt_str(self, key: &'static str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.str(key, v),
            None => self,
        }
    }

    /// The finished line, with its newline.
    fn render(mut self) -> String {
        if self.format == Format::Json {
            self.text.push('}');
        }
        self.text.push('\n');
        self.text
    }

    /// Queues the line for stdout; never blocks (see the module doc).
    pub fn emit(self) {
        if SERVICE.get().is_none() {
            // Not a running service (a unit test calling a handler): print in
            // place, where the test harness captures it.
            print!("{}", self.render());
            return;
        }
        match queue().try_send(Message::Line(self.render())) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
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
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Control characters, exotic line breaks (U+2028...) and
            // invisible reordering marks spelled out.
            c if c.is_control() || (c.is_whitespace() && c != ' ') || invisible(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    Cow::Owned(out)
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
}

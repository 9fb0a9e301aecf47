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
//! JSON lines are escaped as strictly: besides what JSON requires, line and
//! paragraph separators (U+2028, U+2029), C1 controls and bidi/invisible
//! marks are written as `\uXXXX`, so no Unicode-aware reader splits or
//! reorders a line either.
//!
//! What a client controls (a request target) is cut to [`MAX_CLIENT_TEXT`]
//! bytes before it is written ([`Line::client`]): a flood of 8 KiB targets
//! costs the log what a flood of short ones does.
//!
//! Lines go to a writer thread through a queue bounded in bytes
//! ([`QUEUE_BYTES`]), so neither a slow reader of stdout (a pager, a full
//! pipe, a stuck log shipper) nor a flood of lines blocks a request or grows
//! the process: past the bound, new lines are dropped. Every line lost, to a
//! full queue or to a failed write (stdout closed), is counted in `/metrics`
//! (`log_lines_dropped_total`) and, once a write succeeds again, said in an
//! `event=log_dropped lines=N` line. The writer writes whatever is waiting in
//! one write, as fast as stdout takes it. [`flush_within`] at exit writes the
//! rest, but never waits longer than it is told: a stdout nobody reads does
//! not keep a stopped service alive.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::metrics::LOG_LINES_DROPPED as LOST;

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

/// Bytes of rendered lines that may wait for the writer thread (the batch
/// being written included) before new lines are dropped: a few seconds of
/// lines at full load, and a bound on what logging can add to a process's
/// memory however slow stdout is. Sized with the k8s manifests' memory
/// limits (`deploy/k8s`).
pub const QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// The most bytes of client-controlled text (a request target) a line
/// carries; longer text is cut at a character boundary and marked
/// `...(N bytes)` with its full length. Enough for any path a person types.
pub const MAX_CLIENT_TEXT: usize = 256;

/// The most bytes the writer hands to stdout in one write.
const BATCH_BYTES: usize = 256 * 1024;

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

enum Message {
    Line(String),
    /// Write everything queued so far, then answer.
    Flush(SyncSender<()>),
}

/// The queue to the writer thread, started on first use.
static QUEUE: OnceLock<Sender<Message>> = OnceLock::new();
/// Bytes queued or being written, bounded by [`QUEUE_BYTES`].
static QUEUED: AtomicUsize = AtomicUsize::new(0);
/// Lines lost and not yet said in an `event=log_dropped` line.
static UNREPORTED: AtomicU64 = AtomicU64::new(0);
/// Counts `n` lines lost.
fn lost(n: u64) {
    LOST.inc_by(n);
    UNREPORTED.fetch_add(n, Ordering::Relaxed);
}

fn queue() -> &'static Sender<Message> {
    QUEUE.get_or_init(|| {
        let (tx, rx) = channel();
        let spawned = std::thread::Builder::new()
            .name("log-writer".to_owned())
            .spawn(move || write_lines(rx));
        if spawned.is_err() {
            // No thread: the receiver is gone and every line is counted as lost.
            lost(1);
        }
        tx
    })
}

/// Queues `message` for the writer; false if there is no writer.
fn send(message: Message) -> bool {
    queue().send(message).is_ok()
}

/// How long the writer lets lines gather after the first one, when the queue
/// holds less than a batch: under a light load it then wakes at most 200 times
/// a second, never once per request (a thread wake-up per line costs more than
/// serving the request it logs). With a batch or more waiting it never waits:
/// the writer goes as fast as stdout takes the bytes.
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

/// The writer thread: everything waiting, in one write; then the lost count.
fn write_lines(rx: Receiver<Message>) {
    let mut out = std::io::stdout().lock();
    let mut batch = Vec::with_capacity(BATCH_BYTES);
    while let Ok(first) = rx.recv() {
        if matches!(first, Message::Line(_)) && QUEUED.load(Ordering::Relaxed) < BATCH_BYTES {
            std::thread::sleep(GATHER);
        }
        let mut acks = Vec::new();
        let mut lines = 0u64;
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Line(line) => {
                    batch.extend_from_slice(line.as_bytes());
                    lines += 1;
                }
                Message::Flush(ack) => acks.push(ack),
            }
            next = if batch.len() < BATCH_BYTES {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        let queued = batch.len();
        let unreported = UNREPORTED.swap(0, Ordering::Relaxed);
        if unreported > 0 {
            let service = SERVICE.get().copied().unwrap_or("-");
            let line = Line::new(service)
                .str("event", "log_dropped")
                .num("lines", unreported)
                .str(
                    "detail",
                    "stdout was too slow or closed; see log_lines_dropped_total",
                );
            batch.extend_from_slice(line.render().as_bytes());
        }
        if out.write_all(&batch).and_then(|()| out.flush()).is_err() {
            // Stdout closed or broken: the lines are lost, and counted; the
            // `log_dropped` line will say so once a write succeeds.
            LOST.inc_by(lines);
            UNREPORTED.fetch_add(lines + unreported, Ordering::Relaxed);
        }
        QUEUED.fetch_sub(queued, Ordering::Relaxed);
        batch.clear();
        if batch.capacity() > BATCH_BYTES * 2 {
            batch.shrink_to(BATCH_BYTES);
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// How long [`flush`] waits at most: for start-up failures, where no grace
/// was configured yet.
pub const FLUSH_LIMIT: Duration = Duration::from_secs(1);

/// Waits until every line emitted so far is written, or [`FLUSH_LIMIT`].
pub fn flush() {
    flush_within(FLUSH_LIMIT);
}

/// Waits until every line emitted so far is written, but no longer than
/// `limit`: true if they were. A stdout nobody reads then costs the lines
/// still queued (counted), never the exit.
pub fn flush_within(limit: Duration) -> bool {
    let (ack, done) = sync_channel(1);
    send(Message::Flush(ack)) && done.recv_timeout(limit).is_ok()
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
        let line = self.render();
        let bytes = line.len();
        if QUEUED.fetch_add(bytes, Ordering::Relaxed) + bytes > QUEUE_BYTES {
            QUEUED.fetch_sub(bytes, Ordering::Relaxed);
            lost(1);
            return;
        }
        if !send(Message::Line(line)) {
            QUEUED.fetch_sub(bytes, Ordering::Relaxed);
            lost(1);
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
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') || invisible(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
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

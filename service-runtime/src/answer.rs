//! Reading an upstream's answer off the wire: bounded while the bytes arrive,
//! strict about framing. B reads A's answers with it, and A in proxy mode its
//! upstream's; each side keeps a thin adapter (B's `answer.rs`, A's `proxy`).
//!
//! async-h1's client `decode` trusted its upstream: it read head lines without
//! a bound (one upstream that never sent LF grew B to gigabytes), refused
//! HTTP/1.0 and every status http-types does not name, and took a `100
//! Continue` for the whole answer. B reads answers here instead, with
//! `httparse`, and guarantees:
//!
//! - **Bounded memory.** A connection reads into one [`ReadBuf`] of exactly
//!   [`MAX_HEAD_BYTES`], allocated when it opens and kept for its life (bytes
//!   read ahead stay there for the next answer, never dropped). A head that
//!   does not fit, or has more than [`MAX_HEADERS`] fields, is refused the
//!   moment the buffer is full; a body over [`MAX_BODY_BYTES`] is refused
//!   before it is read (a `Content-Length`) or as soon as it passes the cap.
//! - **Not HTTP is seen at once.** The first bytes that cannot begin a status
//!   line (an SSH banner, a TLS alert, an SMTP greeting) are refused without
//!   waiting for more.
//! - **Any status 100..=599**, with its own reason phrase, travels as
//!   [`ExactStatus`]. `1xx` answers other than `101` are interim and skipped
//!   (at most [`MAX_INTERIM`] of them); an upstream that sends one and closes
//!   has answered with that status.
//! - **One framing** (RFC 9112 §6.3): no body for `1xx`, `204` and `304`;
//!   `Transfer-Encoding: chunked` (trailers read and dropped); a
//!   `Content-Length` (every value equal); or, with neither, the body runs to
//!   the close. Both `Content-Length` and `Transfer-Encoding`, differing
//!   lengths, or a coding other than chunked are refused as conflicting.
//! - **Reuse only when safe.** An answer says the connection may carry another
//!   request only if it was complete, framed by length or chunks, not closed
//!   (`Connection: close`, or HTTP/1.0 without `keep-alive`), and nothing was
//!   sent after it.
//!
//! [`parse_head`] and [`BodyReader::feed`] are pure (bytes in, a decision
//! out); [`read_answer`] drives them over any `AsyncRead`, so the property
//! tests run them over arbitrary bytes in process.

use std::io;
use std::mem::MaybeUninit;

use smol::io::{AsyncRead, AsyncReadExt as _};

/// The longest answer head read (status line and fields, CRLFs included): the
/// same cap as the server side's request heads, nginx's
/// `proxy_buffer_size` default (one page more is 8 KiB) and async-h1's limit.
/// Each connection's buffer is exactly this size.
pub const MAX_HEAD_BYTES: usize = crate::head::MAX_HEAD_BYTES;

/// The most header fields in one answer head, as on the server side.
pub const MAX_HEADERS: usize = crate::head::MAX_HEADERS;

/// The largest answer body read, the same as the largest request body a
/// service takes (`head::MAX_BODY_BYTES`, nginx's `client_max_body_size`):
/// A's echo is far smaller, and A as a proxy passes on no more than it takes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Interim (`1xx`) answers skipped before a final one. RFC 9110 lets a server
/// send several (`100`, `102`, `103`); more than this is a stream of them
/// meant to keep B waiting, refused as not a sensible answer.
pub const MAX_INTERIM: usize = 8;

/// Bytes a chunked body may carry beyond its data (size lines, extensions,
/// CRLFs, trailers) before it is refused: a body of empty-looking chunk
/// extensions must not run on forever.
pub const MAX_CHUNK_FRAMING_BYTES: usize = 64 * 1024;

/// Starts the head of a request to an upstream, the half of the exchange
/// before the answer read here: the request line (`path` and `query` as the
/// caller's URL has them, already percent-encoded) and `Host`. The caller adds
/// its fields with [`push_field`], then the blank line.
pub fn start_request(
    out: &mut Vec<u8>,
    method: &str,
    path: &str,
    query: Option<&str>,
    authority: &str,
) {
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    if let Some(query) = query {
        out.push(b'?');
        out.extend_from_slice(query.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(authority.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// One `name: value` field line of a request head.
pub fn push_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The most bytes of an upstream's own words (a reason phrase, a header
/// value) quoted in a failure's detail: every B log line and error body
/// carries the detail, and an upstream's 7 KB reason phrase must not ride along.
pub const MAX_QUOTED_BYTES: usize = 64;

/// `text` cut to `max` bytes (on a character boundary), marked when cut:
/// `RRRR...(7000 bytes)`.
pub fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...({} bytes)", &text[..end], text.len())
}

/// The status an upstream answered, exactly: B carries it beside surf's `Response` (as an
/// extension), because http-types cannot name 420, 499, 520 or 599.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExactStatus {
    /// The three-digit code, 100..=599.
    pub code: u16,
    /// The reason phrase sent (may be empty), cut to [`MAX_QUOTED_BYTES`].
    pub reason: String,
}

/// A fact about a failed exchange with an upstream, as the client saw it on the socket.
#[derive(Debug)]
pub enum Failure {
    /// No connection could be opened (refused, no route, out of descriptors).
    Connect(io::Error),
    /// The connection ended before a complete answer.
    Closed(Closed),
    /// Reading or writing the connection failed otherwise.
    Read(io::Error),
    /// What came back was not a valid HTTP answer.
    Malformed(String),
}

/// How a connection ended before a complete answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The peer closed it cleanly (FIN): end of stream.
    Fin,
    /// The peer reset it (RST): "connection reset by peer".
    Reset,
    /// The peer closed it after part of a body whose length it had announced.
    ShortBody {
        /// Body bytes received.
        got: usize,
        /// The `Content-Length` announced.
        announced: usize,
    },
}

impl Closed {
    /// In words, with `peer` (`A`, `the upstream`) as the one who closed.
    pub fn describe(&self, peer: &str) -> String {
        match self {
            Closed::Fin => format!("{peer} closed the connection (FIN) before a complete answer"),
            Closed::Reset => format!(
                "{peer} reset the connection (RST, reset by peer) before a complete answer"
            ),
            Closed::ShortBody { got, announced } => format!(
                "{peer} closed the connection after {got} of the {announced} body bytes it announced \
                 (Content-Length): the body was short"
            ),
        }
    }
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe("the upstream"))
    }
}

impl Failure {
    /// In words, with `peer` (`A`, `the upstream`) as the other side.
    pub fn describe(&self, peer: &str) -> String {
        match self {
            Failure::Connect(e) => format!("cannot connect: {e}"),
            Failure::Closed(how) => how.describe(peer),
            Failure::Read(e) => format!("the connection to {peer} failed: {e}"),
            Failure::Malformed(why) => format!("not a valid HTTP answer: {why}"),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe("the upstream"))
    }
}

impl std::error::Error for Failure {}

/// How the peer ended the connection, if this io error means it did.
pub fn closed_early(kind: io::ErrorKind) -> Option<Closed> {
    use io::ErrorKind::*;
    match kind {
        ConnectionReset | ConnectionAborted => Some(Closed::Reset),
        BrokenPipe | UnexpectedEof => Some(Closed::Fin),
        _ => None,
    }
}

/// One connection's read buffer: [`MAX_HEAD_BYTES`] allocated once, the
/// unread bytes at `start..end`.
#[derive(Debug)]
pub struct ReadBuf {
    bytes: Box<[u8]>,
    start: usize,
    end: usize,
    /// Bytes read into it over the connection's life.
    received: u64,
}

impl Default for ReadBuf {
    fn default() -> Self {
        Self {
            bytes: vec![0; MAX_HEAD_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
            received: 0,
        }
    }
}

impl ReadBuf {
    /// Bytes read and not yet used.
    pub fn unread(&self) -> &[u8] {
        &self.bytes[self.start..self.end]
    }

    /// Bytes read from the connection so far: the pool compares it before and
    /// after an exchange to know whether any byte of the answer came.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The buffer's fixed size: what a connection holds however its peer behaves.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.bytes.len()
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads more bytes after the unread ones; `Ok(0)` is end of stream, and a
    /// full buffer reads nothing (the caller refuses what does not fit).
    async fn fill(&mut self, io: &mut (impl AsyncRead + Unpin)) -> Result<usize, Failure> {
        if self.end == self.bytes.len() && self.start > 0 {
            self.bytes.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.bytes.len() {
            return Ok(0);
        }
        match io.read(&mut self.bytes[self.end..]).await {
            Ok(n) => {
                self.end += n;
                self.received += n as u64;
                Ok(n)
            }
            Err(e) => Err(match closed_early(e.kind()) {
                Some(how) => Failure::Closed(how),
                None => Failure::Read(e),
            }),
        }
    }

    fn is_full(&self) -> bool {
        self.start == 0 && self.end == self.bytes.len()
    }
}

/// How an answer's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (`1xx`, `204`, `304`).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Whatever comes until the upstream closes.
    UntilClose,
}

/// A complete answer head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The status and its reason phrase.
    pub status: ExactStatus,
    /// The header fields in order, names as sent.
    pub headers: Vec<(String, Vec<u8>)>,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the upstream keeps the connection open after this answer.
    pub keep_alive: bool,
    /// Bytes of the buffer the head took.
    pub len: usize,
}

/// A whole answer: its head and its body.
#[derive(Debug)]
pub struct Answer {
    /// The final head (interim ones skipped).
    pub head: Head,
    /// The body, at most [`MAX_BODY_BYTES`].
    pub body: Vec<u8>,
    /// Whether the connection may carry another request.
    pub reusable: bool,
}

fn malformed(why: impl Into<String>) -> Failure {
    Failure::Malformed(why.into())
}

/// Parses the answer head at the start of `buf`.
///
/// `Ok(None)`: not complete yet, read more. A full buffer ([`MAX_HEAD_BYTES`])
/// without a complete head is refused by the caller, which knows it is full.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, Failure> {
    // Uninitialised: filling 128 empty fields would cost a 4 KiB write per answer.
    let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut res,
        buf,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(malformed(format!(
                "the answer has more than {MAX_HEADERS} header fields"
            )))
        }
        Err(httparse::Error::Version) => {
            return Err(malformed(format!(
                "the answer does not start with an HTTP/1.x status line: it starts {}",
                first_word(buf)
            )))
        }
        Err(e) => {
            return Err(malformed(format!(
                "malformed answer head ({e}): {}",
                first_bytes(buf)
            )))
        }
    };
    // httparse sets all three on a complete head.
    let (Some(version), Some(code), Some(reason)) = (res.version, res.code, res.reason) else {
        return Err(malformed("malformed status line"));
    };
    if !(100..=599).contains(&code) {
        return Err(malformed(format!("status {code} is outside 100..=599")));
    }
    let mut length: Option<u64> = None;
    let mut encoding = false;
    let mut chunked = false;
    let mut close = false;
    let mut keep = false;
    let mut headers = Vec::with_capacity(res.headers.len());
    for field in res.headers.iter() {
        let name = field.name;
        let value = field.value;
        if name.eq_ignore_ascii_case("content-length") {
            for item in value.split(|&b| b == b',') {
                let item = item.trim_ascii();
                let n = std::str::from_utf8(item)
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| {
                        malformed(format!(
                            "Content-Length {:?} is not a number",
                            cut(&String::from_utf8_lossy(value), MAX_QUOTED_BYTES)
                        ))
                    })?;
                if length.is_some_and(|l| l != n) {
                    return Err(malformed("the answer has differing Content-Lengths"));
                }
                length = Some(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            encoding = true;
            // Only the last coding can be chunked; anything after it is not.
            for coding in value.split(|&b| b == b',') {
                let coding = coding.trim_ascii();
                if coding.is_empty() {
                    continue;
                }
                if chunked || !coding.eq_ignore_ascii_case(b"chunked") {
                    return Err(malformed(format!(
                        "Transfer-Encoding {:?}: only chunked is read",
                        cut(&String::from_utf8_lossy(value), MAX_QUOTED_BYTES)
                    )));
                }
                chunked = true;
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        headers.push((name.to_owned(), value.to_vec()));
    }
    let http10 = version == 0;
    if encoding && (length.is_some() || http10) {
        return Err(malformed(if http10 {
            "an HTTP/1.0 answer with Transfer-Encoding (conflicting framing)"
        } else {
            "the answer has both Content-Length and Transfer-Encoding (conflicting framing)"
        }));
    }
    if encoding && !chunked {
        return Err(malformed("an empty Transfer-Encoding"));
    }
    let framing = match (code, chunked, length) {
        (100..=199 | 204 | 304, _, _) => Framing::Empty,
        (_, true, _) => Framing::Chunked,
        (_, _, Some(n)) => Framing::Length(n),
        _ => Framing::UntilClose,
    };
    if let Framing::Length(n) = framing {
        if n > MAX_BODY_BYTES as u64 {
            return Err(malformed(format!(
                "the answer announces a {n}-byte body, over the limit of {MAX_BODY_BYTES} bytes"
            )));
        }
    }
    // After a 101 the connection speaks another protocol: never reused.
    let keep_alive = code != 101 && if http10 { keep && !close } else { !close };
    Ok(Some(Head {
        status: ExactStatus {
            code,
            reason: cut(reason, MAX_QUOTED_BYTES),
        },
        headers,
        framing,
        keep_alive,
        len,
    }))
}

/// The first word of what came back (`SSH-2.0-OpenSSH_9.2`, `220`), for a
/// message: up to a space or line end, at most 32 bytes, escaped.
fn first_word(buf: &[u8]) -> String {
    let end = buf
        .iter()
        .position(|b| matches!(b, b' ' | b'\r' | b'\n'))
        .unwrap_or(buf.len());
    first_bytes(&buf[..end])
}

/// The start of what came back, for a message: at most 32 bytes, escaped.
fn first_bytes(buf: &[u8]) -> String {
    let shown = &buf[..buf.len().min(32)];
    format!("{:?}", String::from_utf8_lossy(shown))
}

/// Where in a body the next byte falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many bytes of a fixed-length body, or of a chunk's data, are left.
    Data { left: u64, chunked: bool },
    /// Next: a chunk-size line.
    Size,
    /// Next: the CRLF after a chunk's data.
    DataEnd,
    /// Next: a trailer field, or the empty line that ends the body.
    Trailers,
    /// Everything until the close.
    UntilClose,
    /// The body is over.
    Done,
}

/// A body being read into a `Vec`, never past [`MAX_BODY_BYTES`].
#[derive(Debug, Clone)]
pub struct BodyReader {
    state: State,
    /// Framing bytes of a chunked body so far, for [`MAX_CHUNK_FRAMING_BYTES`].
    framing: usize,
}

impl BodyReader {
    /// A reader of a body with this framing.
    pub fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Data {
                left: n,
                chunked: false,
            },
            Framing::Chunked => State::Size,
            Framing::UntilClose => State::UntilClose,
        };
        Self { state, framing: 0 }
    }

    /// Whether the whole body has been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes still expected of a fixed-length body (for a short body's message).
    fn left(&self) -> Option<u64> {
        match self.state {
            State::Data {
                left,
                chunked: false,
            } => Some(left),
            _ => None,
        }
    }

    /// Appends to `body` as much of `input` as belongs to the body; returns
    /// how much of `input` it used. Less than all of it means the body is
    /// over (the rest was sent after it) or a line is incomplete: call again
    /// with more bytes.
    pub fn feed(&mut self, input: &[u8], body: &mut Vec<u8>) -> Result<usize, Failure> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            let step = match self.state {
                State::Done => return Ok(used),
                State::UntilClose => {
                    append(body, rest)?;
                    rest.len()
                }
                State::Data { left, chunked } => {
                    let take = usize::try_from(left).map_or(rest.len(), |l| l.min(rest.len()));
                    append(body, &rest[..take])?;
                    let left = left - take as u64;
                    self.state = match (left, chunked) {
                        (0, true) => State::DataEnd,
                        (0, false) => State::Done,
                        (left, chunked) => State::Data { left, chunked },
                    };
                    take
                }
                State::Size => match rest.iter().position(|&b| b == b'\n') {
                    None => 0,
                    Some(end) => match httparse::parse_chunk_size(&rest[..=end]) {
                        Ok(httparse::Status::Complete((n, size))) => {
                            if size > (MAX_BODY_BYTES - body.len()) as u64 {
                                return Err(too_large());
                            }
                            self.state = match size {
                                0 => State::Trailers,
                                left => State::Data {
                                    left,
                                    chunked: true,
                                },
                            };
                            self.count_framing(n)?;
                            n
                        }
                        _ => {
                            return Err(malformed(format!(
                                "malformed chunk size line {}",
                                first_bytes(
                                    rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end])
                                )
                            )))
                        }
                    },
                },
                State::DataEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        self.count_framing(2)?;
                        self.state = State::Size;
                        2
                    }
                    [b'\n', ..] => {
                        self.count_framing(1)?;
                        self.state = State::Size;
                        1
                    }
                    [] | [b'\r'] => 0,
                    _ => return Err(malformed("chunk data is not followed by CRLF")),
                },
                State::Trailers => match rest.iter().position(|&b| b == b'\n') {
                    None => 0,
                    Some(end) => {
                        self.count_framing(end + 1)?;
                        let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
                        if line.is_empty() {
                            self.state = State::Done;
                        } else if !line.contains(&b':') {
                            return Err(malformed("malformed chunked trailer field"));
                        }
                        end + 1
                    }
                },
            };
            if step == 0 {
                return Ok(used);
            }
            used += step;
        }
    }

    fn count_framing(&mut self, n: usize) -> Result<(), Failure> {
        self.framing += n;
        if self.framing > MAX_CHUNK_FRAMING_BYTES {
            return Err(malformed(format!(
                "the chunked body's framing (sizes, extensions, trailers) is over \
                 {MAX_CHUNK_FRAMING_BYTES} bytes"
            )));
        }
        Ok(())
    }
}

fn too_large() -> Failure {
    malformed(format!(
        "the answer body is over the limit of {MAX_BODY_BYTES} bytes"
    ))
}

/// Appends `more` to `body`, growing it at most to [`MAX_BODY_BYTES`].
fn append(body: &mut Vec<u8>, more: &[u8]) -> Result<(), Failure> {
    let want = body.len() + more.len();
    if want > MAX_BODY_BYTES {
        return Err(too_large());
    }
    if want > body.capacity() {
        // Doubling, but never past the cap: the cap bounds the allocation too.
        let target = want.max(body.capacity() * 2).min(MAX_BODY_BYTES);
        body.reserve_exact(target - body.len());
    }
    body.extend_from_slice(more);
    Ok(())
}

/// Reads one whole answer from `io`, through `buf` (which keeps any bytes
/// read past it). Interim answers are skipped.
pub async fn read_answer(
    io: &mut (impl AsyncRead + Unpin),
    buf: &mut ReadBuf,
) -> Result<Answer, Failure> {
    read_answer_to(io, buf, false).await
}

/// [`read_answer`] for a request that was `HEAD` when `head_request`: the
/// answer has no body, whatever its head announces (RFC 9110 §9.3.2).
pub async fn read_answer_to(
    io: &mut (impl AsyncRead + Unpin),
    buf: &mut ReadBuf,
    head_request: bool,
) -> Result<Answer, Failure> {
    let mut interim: Option<Head> = None;
    let mut skipped = 0;
    let head = loop {
        match parse_head(buf.unread())? {
            Some(head) if (100..=199).contains(&head.status.code) && head.status.code != 101 => {
                buf.consume(head.len);
                skipped += 1;
                if skipped > MAX_INTERIM {
                    return Err(malformed(format!(
                        "more than {MAX_INTERIM} interim (1xx) answers before a final one"
                    )));
                }
                interim = Some(head);
                continue;
            }
            Some(mut head) => {
                buf.consume(head.len);
                if head_request {
                    head.framing = Framing::Empty;
                }
                break head;
            }
            None if buf.is_full() => {
                return Err(malformed(format!(
                    "the answer head is over the limit of {MAX_HEAD_BYTES} bytes"
                )))
            }
            None => {}
        }
        if buf.fill(io).await? == 0 {
            // An upstream that sent only an interim answer and closed has
            // answered with that status (A's `fail_status = 103`, say).
            if let (Some(head), true) = (interim.take(), buf.unread().is_empty()) {
                return Ok(Answer {
                    head,
                    body: Vec::new(),
                    reusable: false,
                });
            }
            return Err(Failure::Closed(Closed::Fin));
        }
    };

    let mut reader = BodyReader::new(head.framing);
    let mut body = match head.framing {
        Framing::Length(n) => Vec::with_capacity(n as usize),
        Framing::Empty => Vec::new(),
        Framing::Chunked | Framing::UntilClose => Vec::with_capacity(512),
    };
    loop {
        let used = reader.feed(buf.unread(), &mut body)?;
        buf.consume(used);
        if reader.is_done() {
            break;
        }
        if buf.is_full() {
            // Only a chunk-size or trailer line can fill the buffer unread.
            return Err(malformed(format!(
                "a line of the chunked body is over {MAX_HEAD_BYTES} bytes"
            )));
        }
        if buf.fill(io).await? == 0 {
            return match (head.framing, reader.left()) {
                (Framing::UntilClose, _) => {
                    // A close-delimited body ends here, complete.
                    return Ok(Answer {
                        head,
                        body,
                        reusable: false,
                    });
                }
                (Framing::Length(announced), Some(_)) => Err(Failure::Closed(Closed::ShortBody {
                    got: body.len(),
                    announced: announced as usize,
                })),
                _ => Err(Failure::Closed(Closed::Fin)),
            };
        }
    }
    let reusable = head.keep_alive && buf.unread().is_empty();
    Ok(Answer {
        head,
        body,
        reusable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads one answer from `bytes`, fed in pieces of `piece` bytes.
    fn read(bytes: &[u8], piece: usize) -> Result<Answer, Failure> {
        let mut io = Pieces {
            bytes: bytes.to_vec(),
            at: 0,
            piece,
        };
        let mut buf = ReadBuf::default();
        smol::block_on(read_answer(&mut io, &mut buf))
    }

    /// An `AsyncRead` that gives out its bytes a few at a time, then EOF.
    struct Pieces {
        bytes: Vec<u8>,
        at: usize,
        piece: usize,
    }

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            out: &mut [u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let n = self
                .piece
                .max(1)
                .min(out.len())
                .min(self.bytes.len() - self.at);
            out[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
            self.at += n;
            std::task::Poll::Ready(Ok(n))
        }
    }

    fn ok(bytes: &[u8]) -> Answer {
        for piece in [1, 3, 7, 4096] {
            if let Err(e) = read(bytes, piece) {
                panic!("piece {piece}: {e}");
            }
        }
        read(bytes, 4096).unwrap()
    }

    fn refused(bytes: &[u8]) -> String {
        match read(bytes, 4096) {
            Err(Failure::Malformed(why)) => why,
            Err(other) => panic!("expected a refusal, got {other:?}"),
            Ok(a) => panic!(
                "expected a refusal, got {:?} with {} body bytes",
                a.head,
                a.body.len()
            ),
        }
    }

    /// Each framing reads exactly its body, in pieces of any size.
    #[test]
    fn framings_read_their_bodies() {
        let a = ok(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(
            (a.head.status.code, &a.body[..], a.reusable),
            (200, &b"hello"[..], true)
        );
        let a = ok(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nhel\r\n2\r\nlo\r\n0\r\nX-T: 1\r\n\r\n");
        assert_eq!((&a.body[..], a.reusable), (&b"hello"[..], true));
        let a =
            ok(b"HTTP/1.0 404 File not found\r\nContent-Type: text/html\r\n\r\n<html>gone</html>");
        assert_eq!(
            (a.head.status.code, a.head.status.reason.as_str()),
            (404, "File not found")
        );
        assert_eq!(
            (&a.body[..], a.reusable),
            (&b"<html>gone</html>"[..], false)
        );
        let a = ok(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok");
        assert!(
            a.reusable,
            "HTTP/1.0 with keep-alive and a length may be reused"
        );
        let a = ok(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        assert!(!a.reusable);
        let a = ok(b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n");
        assert!(a.body.is_empty());
    }

    /// Statuses http-types has no name for are read with their own reason.
    #[test]
    fn any_status_is_read_exactly() {
        for code in [420, 499, 520, 527, 599, 299, 103] {
            let wire = format!("HTTP/1.1 {code} Whatever\r\nContent-Length: 0\r\n\r\n");
            let a = read(wire.as_bytes(), 4096).unwrap();
            assert_eq!(a.head.status.code, code);
        }
        assert!(refused(b"HTTP/1.1 600 No\r\n\r\n").contains("outside 100..=599"));
        assert!(refused(b"HTTP/1.1 099 No\r\n\r\n").contains("outside 100..=599"));
    }

    /// `100 Continue` (and other 1xx) are skipped; the final answer counts;
    /// only a 1xx then a close is answered with the 1xx.
    #[test]
    fn interim_answers_are_skipped() {
        let a = ok(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none");
        assert_eq!(
            (a.head.status.code, &a.body[..], a.reusable),
            (200, &b"one"[..], true)
        );
        let a = ok(b"HTTP/1.1 103 Early Hints\r\nConnection: close\r\n\r\n");
        assert_eq!((a.head.status.code, a.reusable), (103, false));
        let many = "HTTP/1.1 100 Continue\r\n\r\n".repeat(MAX_INTERIM + 1);
        assert!(refused(many.as_bytes()).contains("interim"));
        let a = ok(b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
        assert_eq!((a.head.status.code, a.reusable), (101, false));
    }

    /// Framing that two readers could take two ways is refused.
    #[test]
    fn conflicting_framing_is_refused() {
        assert!(refused(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .contains("conflicting"));
        assert!(
            refused(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n")
                .contains("differing")
        );
        assert!(refused(b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n").contains("not a number"));
        assert!(
            refused(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").contains("only chunked")
        );
        assert!(
            refused(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n")
                .contains("only chunked")
        );
        assert!(
            refused(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").contains("HTTP/1.0")
        );
        let a = ok(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok");
        assert_eq!(&a.body[..], b"ok");
    }

    /// Bytes that are not HTTP are refused from the first line, without waiting.
    #[test]
    fn not_http_is_refused_at_once() {
        for banner in [
            &b"SSH-2.0-OpenSSH_9.2\r\n"[..],
            b"\x15\x03\x03\x00\x02\x02\x28",
            b"220 mail.example ESMTP\r\n",
            b"NOT-HTTP xyz\r\n\r\n",
        ] {
            // Parsed as it stands: no more bytes are needed to know.
            assert!(
                matches!(parse_head(banner), Err(Failure::Malformed(_))),
                "{banner:?}"
            );
        }
        assert!(matches!(parse_head(b"HT"), Ok(None)));
    }

    /// Each limit, at its edge: the last size accepted and the first refused.
    #[test]
    fn limits_at_their_edges() {
        // Head: exactly MAX_HEAD_BYTES is read; one byte more is refused.
        let head = |total: usize| {
            let start = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Pad: ";
            let pad = total - start.len() - 4;
            format!("{start}{}\r\n\r\n", "a".repeat(pad))
        };
        assert_eq!(
            read(head(MAX_HEAD_BYTES).as_bytes(), 4096)
                .unwrap()
                .head
                .len,
            MAX_HEAD_BYTES
        );
        assert!(refused(head(MAX_HEAD_BYTES + 1).as_bytes()).contains("over the limit of 8192"));
        // Header fields: MAX_HEADERS are read, one more refused.
        let fields = |n: usize| {
            let mut s = "HTTP/1.1 200 OK\r\n".to_owned();
            s.push_str(&"A: b\r\n".repeat(n - 1));
            s.push_str("Content-Length: 0\r\n\r\n");
            s
        };
        assert!(read(fields(MAX_HEADERS).as_bytes(), 4096).is_ok());
        assert!(refused(fields(MAX_HEADERS + 1).as_bytes()).contains("header fields"));
        // Body by length: the cap is read, one byte more refused before reading.
        let body = |n: usize| {
            let mut v = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").into_bytes();
            v.resize(v.len() + n, b'x');
            v
        };
        assert_eq!(
            read(&body(MAX_BODY_BYTES), 65536).unwrap().body.len(),
            MAX_BODY_BYTES
        );
        assert!(refused(&body(MAX_BODY_BYTES + 1)).contains("1048577-byte body"));
        // Body to the close, and chunked: the cap is read, one more byte refused.
        let close = |n: usize| {
            let mut v = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
            v.resize(v.len() + n, b'x');
            v
        };
        assert_eq!(
            read(&close(MAX_BODY_BYTES), 65536).unwrap().body.len(),
            MAX_BODY_BYTES
        );
        assert!(refused(&close(MAX_BODY_BYTES + 1)).contains("over the limit"));
        let chunked = |n: usize| {
            let mut v = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{n:x}\r\n")
                .into_bytes();
            v.resize(v.len() + n, b'x');
            v.extend_from_slice(b"\r\n0\r\n\r\n");
            v
        };
        assert_eq!(
            read(&chunked(MAX_BODY_BYTES), 65536).unwrap().body.len(),
            MAX_BODY_BYTES
        );
        assert!(refused(&chunked(MAX_BODY_BYTES + 1)).contains("over the limit"));
        // Interim answers: MAX_INTERIM are skipped, one more refused.
        let interim = |n: usize| {
            let mut s = "HTTP/1.1 100 Continue\r\n\r\n".repeat(n);
            s.push_str("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            s
        };
        assert!(read(interim(MAX_INTERIM).as_bytes(), 4096).is_ok());
        assert!(refused(interim(MAX_INTERIM + 1).as_bytes()).contains("interim"));
        // Chunk framing: empty-looking extensions run out at the cap.
        let mut ext = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..=MAX_CHUNK_FRAMING_BYTES / 60 {
            ext.extend_from_slice(format!("1;{}\r\nx\r\n", "e".repeat(57)).as_bytes());
        }
        ext.extend_from_slice(b"0\r\n\r\n");
        assert!(refused(&ext).contains("framing"));
    }

    /// A close inside an answer is the upstream closing early, with how short it was.
    #[test]
    fn early_closes_are_closes() {
        assert!(matches!(read(b"", 10), Err(Failure::Closed(Closed::Fin))));
        assert!(matches!(
            read(b"HTTP/1.1 200 OK\r\nContent-Le", 10),
            Err(Failure::Closed(Closed::Fin))
        ));
        assert!(matches!(
            read(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", 10),
            Err(Failure::Closed(Closed::ShortBody {
                got: 4,
                announced: 10
            }))
        ));
        assert!(matches!(
            read(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                10
            ),
            Err(Failure::Closed(Closed::Fin))
        ));
    }

    /// Bytes after a complete answer stay in the buffer, and the connection is
    /// not reused: no answer was asked for them.
    #[test]
    fn bytes_after_an_answer_forbid_reuse() {
        let a = read(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n",
            4096,
        )
        .unwrap();
        assert!(!a.reusable);
    }

    /// What B quotes of an upstream is cut to [`MAX_QUOTED_BYTES`] on a
    /// character boundary, and says how long it was.
    #[test]
    fn quotes_are_cut_and_marked() {
        assert_eq!(cut("short", 64), "short");
        assert_eq!(cut(&"é".repeat(40), 5), "éé...(80 bytes)");
        let mut wire = b"HTTP/1.1 500 ".to_vec();
        wire.resize(wire.len() + 7000, b'R');
        wire.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
        let a = read(&wire, 4096).unwrap();
        assert_eq!(
            a.head.status.reason,
            format!("{}...(7000 bytes)", "R".repeat(64))
        );
        let why = refused(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
        assert!(why.ends_with(r#"line "zz""#), "{why}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any bytes, in any pieces: no panic, the buffer never grows, a body
        /// never past its cap, and every outcome is an answer or a failure.
        #[test]
        fn arbitrary_bytes_never_panic_or_grow(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
            piece in 1usize..64,
        ) {
            let mut io = Pieces { bytes, at: 0, piece };
            let mut buf = ReadBuf::default();
            let result = smol::block_on(read_answer(&mut io, &mut buf));
            proptest::prop_assert_eq!(buf.capacity(), MAX_HEAD_BYTES);
            if let Ok(a) = result {
                proptest::prop_assert!(a.body.capacity() <= MAX_BODY_BYTES);
                proptest::prop_assert!((100..=599).contains(&a.head.status.code));
            }
        }

        /// Bytes that start as an HTTP answer then go anywhere: the same.
        #[test]
        fn arbitrary_heads_and_bodies(
            head in "HTTP/1\\.[01] [0-9]{3} [a-zA-Z ]{0,8}\r\n((Content-Length: [0-9]{1,3}|Transfer-Encoding: [a-z, ]{0,10}|Connection: [a-z-]{0,10}|X: [ -~]{0,20})\r\n){0,4}\r\n",
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            piece in 1usize..64,
        ) {
            let mut bytes = head.into_bytes();
            bytes.extend(tail);
            let mut io = Pieces { bytes, at: 0, piece };
            let mut buf = ReadBuf::default();
            let result = smol::block_on(read_answer(&mut io, &mut buf));
            proptest::prop_assert_eq!(buf.capacity(), MAX_HEAD_BYTES);
            if let Ok(a) = result {
                proptest::prop_assert!(a.body.len() <= MAX_BODY_BYTES);
            }
        }
    }
}

//! The one body decoder: a request's body on the server side, an answer's
//! body on the client side, byte-exact and bounded whatever the peer sends.
//!
//! A [`Decoder`] is fed whatever its connection has buffered, in pieces of
//! any size, and says how many of those bytes were body; the rest is what
//! came after it (the next pipelined request, or bytes no one asked for).
//! Pure: bytes in, a count or a [`Refusal`] out, the data appended to a sink
//! when the caller keeps it. Guarantees, for both senders:
//!
//! - **Bounded.** The data is at most [`MAX_BODY_BYTES`]: a chunk whose size
//!   would pass it is refused before its data arrives, a close-delimited body
//!   as soon as it passes; the sink never grows past the cap. A line of the
//!   framing (a size line, a trailer) that has not ended within
//!   [`MAX_LINE_BYTES`] is refused. The framing itself is bounded as
//!   [`Sender`] says, so a body of empty chunk extensions cannot run forever.
//! - **Split-proof.** Fed in any pieces, the decoder ends at the same byte
//!   with the same data, or refuses with the same [`Refusal`], as when fed
//!   whole from a buffer no larger than a line may be, as a connection's is
//!   (`tests/reading.rs` checks it over arbitrary bytes).
//!
//! Where the two senders differ, [`Sender`] names it: a server is strict with
//! a client's framing (a proxy in front must read it the same way), a client
//! takes what `httparse` takes from its upstream.

use crate::body::grammar::{self, Why};
use crate::head::{MAX_BODY_BYTES, MAX_HEAD_BYTES};

/// Bytes a chunked body may carry beyond its data (size lines, extensions,
/// CRLFs, trailers) before it is refused: one empty-looking extension after
/// another must not run on forever. 64 KiB is far more than any real client
/// or upstream sends.
pub const MAX_CHUNK_FRAMING_BYTES: usize = 64 * 1024;

/// The longest line of a chunked body's framing, as the longest head: a
/// connection's buffer is [`MAX_HEAD_BYTES`], and a line must fit in it whole
/// to be read.
pub const MAX_LINE_BYTES: usize = MAX_HEAD_BYTES;

/// How a body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (a request without one; an answer to `HEAD`, `1xx`, `204`, `304`).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Whatever comes until the peer closes (an answer only).
    UntilClose,
}

impl From<crate::head::Framing> for Framing {
    fn from(framing: crate::head::Framing) -> Self {
        match framing {
            crate::head::Framing::Empty => Framing::Empty,
            crate::head::Framing::Length(n) => Framing::Length(n),
            crate::head::Framing::Chunked => Framing::Chunked,
        }
    }
}

/// Who sent the body, which decides how strictly its chunked framing is read
/// and what bounds the framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// A client's request, read by a service: every line of the framing ends
    /// in CRLF and follows RFC 9112's grammar (`grammar.rs`); the trailers
    /// are at most [`MAX_HEAD_BYTES`], like a head; everything on the wire,
    /// data and framing, at most [`MAX_BODY_BYTES`] + [`MAX_CHUNK_FRAMING_BYTES`],
    /// as a `Content-Length` would be.
    Client,
    /// An upstream's answer, read by a service as its client: a size line as
    /// `httparse::parse_chunk_size` takes it (extensions unchecked), a bare
    /// LF after a chunk's data or a trailer, a trailer with only a colon; and
    /// the framing, trailers included, at most [`MAX_CHUNK_FRAMING_BYTES`].
    Upstream,
}

/// Why a body was refused. The caller words it for its side (a `400`/`413`
/// to a client, a `bad_response` about an upstream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The data is over [`MAX_BODY_BYTES`], announced or sent.
    TooLarge,
    /// The chunked framing is over its bound (see [`Sender`]).
    FramingTooLarge,
    /// A line of the framing has not ended within [`MAX_LINE_BYTES`].
    LineTooLong,
    /// The framing is broken.
    Malformed {
        /// What is wrong, in words.
        why: Why,
        /// For a chunk-size line, its first bytes (at most 32, without CRLF),
        /// for a message that quotes it.
        line: Option<Vec<u8>>,
    },
}

impl Refusal {
    fn malformed(why: Why) -> Self {
        Refusal::Malformed { why, line: None }
    }
}

/// Where in the body the next byte falls.
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

/// A body being decoded.
#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
    sender: Sender,
    chunked: bool,
    /// Data announced (a length, chunk sizes) or, until the close, received.
    announced: u64,
    /// Chunked: every byte so far, framing included ([`Sender::Client`]).
    wire: u64,
    /// Chunked: framing bytes so far ([`Sender::Upstream`]).
    framing: u64,
    /// Trailer bytes so far ([`Sender::Client`]).
    trailers: usize,
}

impl Decoder {
    /// A decoder of a body with this framing, from this sender.
    pub fn new(framing: Framing, sender: Sender) -> Self {
        let (state, announced) = match framing {
            Framing::Empty | Framing::Length(0) => (State::Done, 0),
            Framing::Length(n) => (
                State::Data {
                    left: n,
                    chunked: false,
                },
                n,
            ),
            Framing::Chunked => (State::Size, 0),
            Framing::UntilClose => (State::UntilClose, 0),
        };
        Self {
            state,
            sender,
            chunked: framing == Framing::Chunked,
            announced,
            wire: 0,
            framing: 0,
            trailers: 0,
        }
    }

    /// Whether the whole body has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes still expected of a fixed-length body (for a short body's message).
    pub fn left(&self) -> Option<u64> {
        match self.state {
            State::Data {
                left,
                chunked: false,
            } => Some(left),
            _ => None,
        }
    }

    /// Consumes as much of `input` as belongs to the body and returns how
    /// much, appending the data (without the chunked framing) to `sink` when
    /// there is one.
    ///
    /// Less than all of `input` means either the body is over (the rest came
    /// after it) or a line is incomplete: feed it again with more bytes
    /// appended.
    pub fn feed(&mut self, input: &[u8], mut sink: Option<&mut Vec<u8>>) -> Result<usize, Refusal> {
        // A head parser refuses a longer `Content-Length` first; this keeps
        // the bound whoever builds the decoder.
        if self.announced > MAX_BODY_BYTES {
            return Err(Refusal::TooLarge);
        }
        let mut used = 0;
        loop {
            let rest = &input[used..];
            let step = match self.state {
                State::Done => return Ok(used),
                State::UntilClose => {
                    self.announced += rest.len() as u64;
                    if self.announced > MAX_BODY_BYTES {
                        return Err(Refusal::TooLarge);
                    }
                    keep(sink.as_deref_mut(), rest);
                    rest.len()
                }
                State::Data { left, chunked } => {
                    let take = usize::try_from(left).map_or(rest.len(), |l| l.min(rest.len()));
                    keep(sink.as_deref_mut(), &rest[..take]);
                    self.state = match left - take as u64 {
                        0 if chunked => State::DataEnd,
                        0 => State::Done,
                        left => State::Data { left, chunked },
                    };
                    take
                }
                State::Size => match rest.iter().position(|&b| b == b'\n') {
                    None => 0,
                    Some(end) => self.size_line(&rest[..=end])?,
                },
                State::DataEnd => {
                    let end = match (rest, self.sender) {
                        ([b'\r', b'\n', ..], _) => 2,
                        ([b'\n', ..], Sender::Upstream) => 1,
                        ([] | [b'\r'], _) => 0,
                        _ => return Err(Refusal::malformed("chunk data is not followed by CRLF")),
                    };
                    if end > 0 {
                        self.count_framing(end)?;
                        self.state = State::Size;
                    }
                    end
                }
                State::Trailers => match rest.iter().position(|&b| b == b'\n') {
                    None => 0,
                    Some(end) => self.trailer_line(&rest[..=end])?,
                },
            };
            if step == 0 {
                // A line is incomplete: wait for more, unless it cannot fit.
                if rest.len() >= MAX_LINE_BYTES {
                    return Err(Refusal::LineTooLong);
                }
                return Ok(used);
            }
            if self.chunked && self.sender == Sender::Client {
                self.wire += step as u64;
                if self.wire > MAX_BODY_BYTES + MAX_CHUNK_FRAMING_BYTES as u64 {
                    return Err(Refusal::FramingTooLarge);
                }
            }
            used += step;
        }
    }

    /// A complete chunk-size line, LF included: its length, with the state
    /// after it.
    fn size_line(&mut self, line: &[u8]) -> Result<usize, Refusal> {
        let bad = |why: Why| {
            let text = line.strip_suffix(b"\n").unwrap_or(line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            Refusal::Malformed {
                why,
                line: Some(text[..text.len().min(32)].to_vec()),
            }
        };
        if self.sender == Sender::Client {
            grammar::check_size_line(&line[..line.len() - 1]).map_err(bad)?;
        }
        let Ok(httparse::Status::Complete((n, size))) = httparse::parse_chunk_size(line) else {
            return Err(bad(grammar::MALFORMED_SIZE));
        };
        self.announced = self.announced.saturating_add(size);
        if self.announced > MAX_BODY_BYTES {
            return Err(Refusal::TooLarge);
        }
        self.state = match size {
            0 => State::Trailers,
            left => State::Data {
                left,
                chunked: true,
            },
        };
        self.count_framing(n)?;
        Ok(n)
    }

    /// A complete trailer line (or the empty line that ends the body), LF
    /// included: its length.
    fn trailer_line(&mut self, line: &[u8]) -> Result<usize, Refusal> {
        let text = &line[..line.len() - 1];
        let field = match self.sender {
            Sender::Client => {
                let Some(field) = text.strip_suffix(b"\r") else {
                    return Err(Refusal::malformed(grammar::BARE_LF));
                };
                self.trailers += line.len();
                if self.trailers > MAX_HEAD_BYTES {
                    return Err(Refusal::malformed("chunked trailer fields are too large"));
                }
                if !field.is_empty() {
                    grammar::check_trailer_line(field).map_err(Refusal::malformed)?;
                }
                field
            }
            Sender::Upstream => {
                self.count_framing(line.len())?;
                let field = text.strip_suffix(b"\r").unwrap_or(text);
                if !field.is_empty() && !field.contains(&b':') {
                    return Err(Refusal::malformed(grammar::MALFORMED_TRAILER));
                }
                field
            }
        };
        if field.is_empty() {
            self.state = State::Done;
        }
        Ok(line.len())
    }

    /// Counts `n` bytes of an upstream's framing against
    /// [`MAX_CHUNK_FRAMING_BYTES`] (a client's count as wire bytes in `feed`).
    fn count_framing(&mut self, n: usize) -> Result<(), Refusal> {
        if self.sender == Sender::Upstream {
            self.framing += n as u64;
            if self.framing > MAX_CHUNK_FRAMING_BYTES as u64 {
                return Err(Refusal::FramingTooLarge);
            }
        }
        Ok(())
    }
}

/// Appends `data` to the sink, if any, growing it by doubling but never past
/// [`MAX_BODY_BYTES`]: the cap bounds the allocation, not only the length.
fn keep(sink: Option<&mut Vec<u8>>, data: &[u8]) {
    let Some(sink) = sink else { return };
    let want = sink.len() + data.len();
    if want > sink.capacity() {
        let cap = usize::try_from(MAX_BODY_BYTES).unwrap_or(usize::MAX);
        let target = want.max(sink.capacity() * 2).min(cap.max(want));
        sink.reserve_exact(target - sink.len());
    }
    sink.extend_from_slice(data);
}

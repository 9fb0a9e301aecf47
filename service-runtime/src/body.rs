//! Skipping a request body, byte-exact, so the next pipelined request starts
//! where this one ends (or keeping its data, for a service that proxies it).
//!
//! Neither service reads a request body, but a client may send one, and the
//! bytes after it are the next request. [`Skip`] is fed whatever the
//! connection has buffered, in pieces of any size, and says how much of it
//! was body. Chunk sizes are read with `httparse::parse_chunk_size`, after a
//! strict check of the whole line (httparse lets a bare LF or an empty size
//! through, and a proxy in front might read those lines otherwise). Lines in
//! the chunked framing (sizes, trailers) are bounded like head lines, and
//! everything on the wire, extensions and trailers included, like a
//! `Content-Length` ([`MAX_BODY_BYTES`], plus room for the framing).

use http_types::StatusCode;

use crate::head::{Framing, MAX_BODY_BYTES, MAX_HEAD_BYTES};
use crate::http::ApiError;

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
    /// The body is over.
    Done,
}

/// A body being skipped.
#[derive(Debug, Clone)]
pub struct Skip {
    state: State,
    /// Body bytes announced so far (chunk sizes), for [`MAX_BODY_BYTES`].
    announced: u64,
    /// Trailer bytes so far, bounded like a head.
    trailers: usize,
    /// Every byte of a chunked body so far, framing included.
    wire: u64,
    /// `Transfer-Encoding: chunked` (else a fixed length).
    is_chunked: bool,
}

/// Framing bytes a chunked body may carry beyond its data (sizes,
/// extensions, CRLFs, trailers) before it is refused as too large.
const FRAMING_ALLOWANCE: u64 = 64 * 1024;

impl Skip {
    /// A skip of a body with this framing.
    pub fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Data {
                left: n,
                chunked: false,
            },
            Framing::Chunked => State::Size,
        };
        Self {
            state,
            announced: 0,
            trailers: 0,
            wire: 0,
            is_chunked: framing == Framing::Chunked,
        }
    }

    /// Whether the whole body has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes as much of `input` as belongs to the body; returns how much.
    ///
    /// Less than all of `input` means either the body is over (the rest is
    /// the next request) or a line is incomplete: feed it again with more
    /// bytes appended. A line longer than [`MAX_HEAD_BYTES`] is refused.
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, ApiError> {
        self.feed_into(input, None)
    }

    /// [`feed`](Self::feed), appending the body's data (without the chunked
    /// framing) to `sink` when there is one: a proxy passes the body on. The
    /// data is at most [`MAX_BODY_BYTES`], as announced and checked.
    pub fn feed_into(
        &mut self,
        input: &[u8],
        mut sink: Option<&mut Vec<u8>>,
    ) -> Result<usize, ApiError> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            let step = match self.state {
                State::Done => return Ok(used),
                State::Data { left, chunked } => {
                    let take = left.min(rest.len() as u64);
                    let left = left - take;
                    if left > 0 {
                        self.state = State::Data { left, chunked };
                    } else if chunked {
                        self.state = State::DataEnd;
                    } else {
                        self.state = State::Done;
                    }
                    // `take` is at most `rest.len()`, a usize.
                    let take = usize::try_from(take).unwrap_or(rest.len());
                    if let Some(sink) = sink.as_deref_mut() {
                        sink.extend_from_slice(&rest[..take]);
                    }
                    take
                }
                State::Size => match rest.iter().position(|&b| b == b'\n') {
                    None => 0,
                    Some(end) => {
                        check_size_line(&rest[..end])?;
                        self.size_line(rest)?
                    }
                },
                State::DataEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        self.state = State::Size;
                        2
                    }
                    [] | [b'\r'] => 0,
                    _ => return Err(bad("chunk data is not followed by CRLF")),
                },
                State::Trailers => match rest.iter().position(|&b| b == b'\n') {
                    None => 0,
                    Some(end) => {
                        if end == 0 || rest[end - 1] != b'\r' {
                            return Err(bad("line ends in a bare LF; HTTP needs CRLF"));
                        }
                        self.trailers += end + 1;
                        if self.trailers > MAX_HEAD_BYTES {
                            return Err(bad("chunked trailer fields are too large"));
                        }
                        if end == 1 {
                            self.state = State::Done;
                        } else {
                            check_trailer_line(&rest[..end - 1])?;
                        }
                        end + 1
                    }
                },
            };
            if step == 0 {
                // A line is incomplete: wait for more, unless it cannot fit.
                if rest.len() >= MAX_HEAD_BYTES {
                    return Err(bad("a line of the chunked body is too long"));
                }
                return Ok(used);
            }
            if self.is_chunked {
                self.wire += step as u64;
                if self.wire > MAX_BODY_BYTES + FRAMING_ALLOWANCE {
                    return Err(too_large());
                }
            }
            used += step;
        }
    }

    /// A complete, checked chunk-size line at the start of `rest`: how many
    /// bytes it takes, and the state after it.
    fn size_line(&mut self, rest: &[u8]) -> Result<usize, ApiError> {
        match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete((n, size))) => {
                self.announced = self.announced.saturating_add(size);
                if self.announced > MAX_BODY_BYTES {
                    return Err(too_large());
                }
                self.state = match size {
                    0 => State::Trailers,
                    left => State::Data {
                        left,
                        chunked: true,
                    },
                };
                Ok(n)
            }
            // The line is complete (checked): httparse must have all it needs.
            Ok(httparse::Status::Partial) | Err(_) => Err(bad("malformed chunk size line")),
        }
    }
}

/// A chunk-size line, without its LF, as RFC 9112 §7.1.1 has it:
/// `1*HEXDIG *( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] ) CR`.
/// Whitespace only around `;` and `=`, a name after every `;`: a proxy in
/// front must not be able to read the line another way.
fn check_size_line(line: &[u8]) -> Result<(), ApiError> {
    let Some((&b'\r', text)) = line.split_last() else {
        return Err(bad("line ends in a bare LF; HTTP needs CRLF"));
    };
    let malformed = || bad("malformed chunk size line");
    let digits = text.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(bad("chunk size line does not start with a hex size"));
    }
    let mut rest = &text[digits..];
    let skip_ws = |s: &mut &[u8]| {
        let n = s.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
        *s = &s[n..];
    };
    let token = |s: &mut &[u8]| -> bool {
        let n = s.iter().take_while(|b| is_tchar(**b)).count();
        *s = &s[n..];
        n > 0
    };
    while !rest.is_empty() {
        skip_ws(&mut rest);
        let Some((b';', after)) = rest.split_first() else {
            return Err(malformed());
        };
        rest = after;
        skip_ws(&mut rest);
        if !token(&mut rest) {
            return Err(malformed());
        }
        let mut look = rest;
        skip_ws(&mut look);
        if let Some((b'=', after)) = look.split_first() {
            rest = after;
            skip_ws(&mut rest);
            if rest.first() == Some(&b'"') {
                rest = quoted_string(&rest[1..]).ok_or_else(malformed)?;
            } else if !token(&mut rest) {
                return Err(malformed());
            }
        }
    }
    Ok(())
}

/// After an opening quote: the bytes past the closing one, if the string is
/// well formed (escapes with `\\`, no control bytes but tab).
fn quoted_string(mut s: &[u8]) -> Option<&[u8]> {
    loop {
        match s.split_first()? {
            (b'"', rest) => return Some(rest),
            (b'\\', rest) => s = rest.get(1..)?,
            (&b, rest) if !b.is_ascii_control() || b == b'\t' => s = rest,
            _ => return None,
        }
    }
}

/// A byte of an HTTP token (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A trailer field line, without its CRLF: `name: value`, not folded, no
/// control bytes but tab.
fn check_trailer_line(line: &[u8]) -> Result<(), ApiError> {
    let colon = line.iter().position(|&b| b == b':');
    let named = colon.is_some_and(|i| i > 0 && line[..i].iter().all(|b| b.is_ascii_graphic()));
    if !named || line.iter().any(|&b| b.is_ascii_control() && b != b'\t') {
        return Err(bad("malformed chunked trailer field"));
    }
    Ok(())
}

fn bad(message: &'static str) -> ApiError {
    ApiError::bad_request(message)
}

fn too_large() -> ApiError {
    ApiError {
        status: StatusCode::PayloadTooLarge,
        message: format!("request body is over {MAX_BODY_BYTES} bytes").into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `piece` bytes, as a socket might deliver
    /// them, into a buffer that keeps what was not consumed; returns the
    /// bytes left over once the body is done.
    fn skip_in_pieces(framing: Framing, input: &[u8], piece: usize) -> Result<Vec<u8>, ApiError> {
        let mut skip = Skip::new(framing);
        let (mut consumed, mut arrived) = (0, 0);
        while !skip.is_done() && arrived < input.len() {
            arrived = (arrived + piece.max(1)).min(input.len());
            consumed += skip.feed(&input[consumed..arrived])?;
        }
        assert!(skip.is_done(), "not done after {input:?}");
        Ok(input[consumed..].to_vec())
    }

    /// A fixed-length body ends exactly at its length.
    #[test]
    fn length_bodies_end_exactly() {
        for piece in [1, 3, 100] {
            let rest = skip_in_pieces(Framing::Length(5), b"helloGET /", piece).unwrap();
            assert_eq!(rest, b"GET /");
        }
    }

    /// A chunked body with extensions and trailers, in pieces of any size.
    #[test]
    fn chunked_bodies_end_exactly_in_any_pieces() {
        let body = b"5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\nGET /next";
        for piece in 1..body.len() {
            let rest = skip_in_pieces(Framing::Chunked, body, piece).unwrap();
            assert_eq!(rest, b"GET /next", "piece {piece}");
        }
    }

    /// Broken chunked framing and oversized bodies are refused.
    #[test]
    fn broken_chunks_are_refused() {
        let status = |input: &[u8]| {
            let mut skip = Skip::new(Framing::Chunked);
            u16::from(skip.feed(input).unwrap_err().status)
        };
        assert_eq!(status(b"zz\r\n"), 400);
        assert_eq!(status(b"5\r\nhelloXX"), 400);
        assert_eq!(status(b"0\r\nX: 1\n\r\n"), 400);
        assert_eq!(status(b"200000\r\n"), 413);
        // What httparse alone would let through.
        assert_eq!(status(b"0;\n\r\n"), 400);
        assert_eq!(status(b"\r\n"), 400);
        assert_eq!(status(b";foo\r\n"), 400);
        assert_eq!(status(b"0\r\nGET / HTTP/1.1\r\n"), 400);
        assert_eq!(status(b"0\r\n folded: x\r\n"), 400);
        assert_eq!(status(b"0\r\nX: a\rb\r\n"), 400);
        for line in [
            "5;\r\n",
            "5;;\r\n",
            "5;=\r\n",
            "5 \r\n",
            "5\t\r\n",
            "5;a=\r\n",
            "5;a=\"open\r\n",
        ] {
            assert_eq!(status(line.as_bytes()), 400, "{line:?}");
        }
        // What RFC 9112 does allow: whitespace around ; and =, quoted values.
        for line in [
            "5 ; a\r\n",
            "5;a=b\r\n",
            "5 ;a = \"b \\\" c\"\r\n",
            "5;a;b=c\r\n",
        ] {
            let mut skip = Skip::new(Framing::Chunked);
            assert!(skip.feed(line.as_bytes()).is_ok(), "{line:?}");
        }
        // Extensions count against the body's limit, not only its data.
        let mut skip = Skip::new(Framing::Chunked);
        let ext = format!("1;{}\r\nx\r\n", "e".repeat(4000));
        let err = (0..1000).find_map(|_| skip.feed(ext.as_bytes()).err());
        assert_eq!(err.map(|e| u16::from(e.status)), Some(413));
    }
}

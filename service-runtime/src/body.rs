//! Skipping a request body, byte-exact, so the next pipelined request starts
//! where this one ends.
//!
//! Neither service reads a request body, but a client may send one, and the
//! bytes after it are the next request. [`Skip`] is fed whatever the
//! connection has buffered, in pieces of any size, and says how much of it
//! was body. Chunk sizes are read with `httparse::parse_chunk_size`; lines in
//! the chunked framing (sizes, trailers) are bounded like head lines, and the
//! body's total like a `Content-Length` ([`MAX_BODY_BYTES`]).

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
}

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
                    usize::try_from(take).unwrap_or(rest.len())
                }
                State::Size => match httparse::parse_chunk_size(rest) {
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
                        n
                    }
                    Ok(httparse::Status::Partial) => 0,
                    Err(_) => return Err(bad("malformed chunk size line")),
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
            used += step;
        }
    }
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
    }
}

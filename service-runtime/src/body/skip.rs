//! A request body skipped byte-exact, so the next pipelined request starts
//! where this one ends (or kept, for a service that proxies it).
//!
//! Neither service reads a request body, but a client may send one, and the
//! bytes after it are the next request. [`Skip`] is the server's side of the
//! one decoder (`decode.rs`, [`Sender::Client`]): strict about the chunked
//! framing, and each refusal worded as the answer a client gets: `413` for a
//! body over [`MAX_BODY_BYTES`] (or framing past its allowance), `400` for
//! broken framing.

use http_types::StatusCode;

use crate::body::decode::{Decoder, Refusal, Sender};
use crate::head::{Framing, MAX_BODY_BYTES};
use crate::http::ApiError;

/// A request body being skipped.
#[derive(Debug, Clone)]
pub struct Skip(Decoder);

impl Skip {
    /// A skip of a body with this framing.
    pub fn new(framing: Framing) -> Self {
        Self(Decoder::new(framing.into(), Sender::Client))
    }

    /// Whether the whole body has been seen.
    pub fn is_done(&self) -> bool {
        self.0.is_done()
    }

    /// Consumes as much of `input` as belongs to the body; returns how much.
    ///
    /// Less than all of `input` means either the body is over (the rest is
    /// the next request) or a line is incomplete: feed it again with more
    /// bytes appended. A line longer than
    /// [`MAX_LINE_BYTES`](crate::body::MAX_LINE_BYTES) is refused.
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, ApiError> {
        self.feed_into(input, None)
    }

    /// [`feed`](Self::feed), appending the body's data (without the chunked
    /// framing) to `sink` when there is one: a proxy passes the body on. The
    /// data is at most [`MAX_BODY_BYTES`], as announced and checked.
    pub fn feed_into(
        &mut self,
        input: &[u8],
        sink: Option<&mut Vec<u8>>,
    ) -> Result<usize, ApiError> {
        self.0.feed(input, sink).map_err(to_answer)
    }
}

/// What a client is told when its body is refused.
fn to_answer(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::TooLarge | Refusal::FramingTooLarge => ApiError {
            status: StatusCode::PayloadTooLarge,
            message: format!("request body is over {MAX_BODY_BYTES} bytes").into(),
        },
        Refusal::LineTooLong => ApiError::bad_request("a line of the chunked body is too long"),
        Refusal::Malformed { why, .. } => ApiError::bad_request(why),
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

//! How an answer's body is delimited and whether its connection may be
//! reused, from its status, version and fields (RFC 9112 §6.3, §9.3).
//!
//! One framing or none: no body for `1xx`, `204` and `304`;
//! `Transfer-Encoding: chunked`; a `Content-Length` (every value equal, at
//! most [`MAX_BODY_BYTES`]); or, with neither, the body runs to the close.
//! Both `Content-Length` and `Transfer-Encoding`, differing lengths, an
//! HTTP/1.0 answer with `Transfer-Encoding`, or a coding other than chunked
//! are refused as conflicting: two readers could take them two ways.

use crate::answer::failure::{malformed, Failure};
use crate::answer::limits::{MAX_BODY_BYTES, MAX_QUOTED_BYTES};
use crate::answer::quote::cut;
use crate::body::Framing;

/// What an answer's fields say about its framing and its connection,
/// gathered one field at a time.
#[derive(Debug, Default)]
pub struct FramingFields {
    length: Option<u64>,
    encoding: bool,
    chunked: bool,
    close: bool,
    keep: bool,
}

impl FramingFields {
    /// Takes in one field; a `Content-Length` or `Transfer-Encoding` that
    /// cannot be read one way only is refused here.
    pub fn see(&mut self, name: &str, value: &[u8]) -> Result<(), Failure> {
        let quoted = || cut(&String::from_utf8_lossy(value), MAX_QUOTED_BYTES);
        if name.eq_ignore_ascii_case("content-length") {
            // `Content-Length: 5, 5` is one length; `5, 6`, `+5` or `abc` is none.
            for item in value.split(|&b| b == b',') {
                let n = decimal(item.trim_ascii()).ok_or_else(|| {
                    malformed(format!("Content-Length {:?} is not a number", quoted()))
                })?;
                if self.length.replace(n).is_some_and(|l| l != n) {
                    return Err(malformed("the answer has differing Content-Lengths"));
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            self.encoding = true;
            // Only the last coding can be chunked; anything after it is not.
            for coding in value.split(|&b| b == b',') {
                let coding = coding.trim_ascii();
                if coding.is_empty() {
                    continue;
                }
                if self.chunked || !coding.eq_ignore_ascii_case(b"chunked") {
                    return Err(malformed(format!(
                        "Transfer-Encoding {:?}: only chunked is read",
                        quoted()
                    )));
                }
                self.chunked = true;
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                self.close |= token.eq_ignore_ascii_case(b"close");
                self.keep |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        Ok(())
    }

    /// The body's framing, and whether the upstream keeps the connection
    /// open after this answer, once every field is seen.
    pub fn decide(self, code: u16, http10: bool) -> Result<(Framing, bool), Failure> {
        if self.encoding && (self.length.is_some() || http10) {
            return Err(malformed(if http10 {
                "an HTTP/1.0 answer with Transfer-Encoding (conflicting framing)"
            } else {
                "the answer has both Content-Length and Transfer-Encoding (conflicting framing)"
            }));
        }
        if self.encoding && !self.chunked {
            return Err(malformed("an empty Transfer-Encoding"));
        }
        let framing = match (code, self.chunked, self.length) {
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
        let keep_alive = code != 101
            && if http10 {
                self.keep && !self.close
            } else {
                !self.close
            };
        Ok((framing, keep_alive))
    }
}

/// A `Content-Length` item: one or more ASCII digits, no sign, no space,
/// and no more than a `u64` holds.
fn decimal(item: &[u8]) -> Option<u64> {
    if item.is_empty() {
        return None;
    }
    item.iter().try_fold(0u64, |n, &b| {
        let digit = b.is_ascii_digit().then(|| u64::from(b - b'0'))?;
        n.checked_mul(10)?.checked_add(digit)
    })
}

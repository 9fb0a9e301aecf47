//! An answer head parsed from bounded bytes: the status line and fields, by
//! `httparse`, with any status 100..=599 and its own reason phrase.
//!
//! [`parse_head`] is pure (bytes in, a [`Head`] or a [`Failure`] out): it
//! never waits for more bytes than a decision needs, so bytes that cannot
//! begin a status line (an SSH banner, a TLS alert, an SMTP greeting) are
//! refused at once. What the fields say about the body and the connection is
//! decided in `framing.rs`; skipping interim answers, in `read.rs`.

use std::mem::MaybeUninit;

use crate::answer::failure::{malformed, Failure};
use crate::answer::framing::FramingFields;
use crate::answer::limits::{MAX_HEADERS, MAX_QUOTED_BYTES};
use crate::answer::quote::{cut, first_bytes, first_word};
use crate::body::Framing;

#[cfg(doc)]
use crate::answer::limits::MAX_HEAD_BYTES;

/// The status an upstream answered, exactly: B carries it beside surf's `Response` (as an
/// extension), because http-types cannot name 420, 499, 520 or 599.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExactStatus {
    /// The three-digit code, 100..=599.
    pub code: u16,
    /// The reason phrase sent (may be empty), cut to [`MAX_QUOTED_BYTES`].
    pub reason: String,
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
    let mut framing = FramingFields::default();
    let mut headers = Vec::with_capacity(res.headers.len());
    for field in res.headers.iter() {
        framing.see(field.name, field.value)?;
        headers.push((field.name.to_owned(), field.value.to_vec()));
    }
    let (framing, keep_alive) = framing.decide(code, version == 0)?;
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

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
//!   before it is read (a `Content-Length`) or as soon as it passes the cap,
//!   and its chunked framing past [`MAX_CHUNK_FRAMING_BYTES`].
//! - **Not HTTP is seen at once.** The first bytes that cannot begin a status
//!   line (an SSH banner, a TLS alert, an SMTP greeting) are refused without
//!   waiting for more.
//! - **Any status 100..=599**, with its own reason phrase, travels as
//!   [`ExactStatus`]. `1xx` answers other than `101` are interim and skipped
//!   (at most [`MAX_INTERIM`] of them); an upstream that sends one and closes
//!   has answered with that status.
//! - **One framing** (RFC 9112 §6.3), decided from the fields; a body read by
//!   the same decoder as a request's ([`crate::body::Decoder`]).
//! - **Reuse only when safe**: only after a complete, framed answer with
//!   nothing sent after it, on a connection the upstream keeps open.
//!
//! [`parse_head`] and the body decoder are pure (bytes in, a decision out);
//! [`read_answer`] drives them over any `AsyncRead`, so the property tests run
//! them over arbitrary bytes in process.
//!
//! # Layout
//!
//! - `limits`: every bound above, a named constant with its reason.
//! - `failure`: how an exchange failed, as the socket showed it ([`Failure`], [`Closed`]).
//! - `quote`: an upstream's own words in a message, cut and escaped ([`cut`]).
//! - `buf`: one connection's fixed read buffer ([`ReadBuf`]).
//! - `head`: the status line and fields ([`parse_head`], [`Head`], [`ExactStatus`]).
//! - `framing`: the body's framing and the connection's reuse, from the fields.
//! - `read`: interim answers skipped, then head and body ([`read_answer`], [`Answer`]).
//! - `request`: the request head written to an upstream ([`start_request`], [`push_field`]).

mod buf;
mod failure;
mod framing;
mod head;
mod limits;
mod quote;
mod read;
mod request;
#[cfg(test)]
mod tests;

pub use crate::body::Framing;
pub use buf::ReadBuf;
pub use failure::{closed_early, Closed, Failure};
pub use head::{parse_head, ExactStatus, Head};
pub use limits::{
    MAX_BODY_BYTES, MAX_CHUNK_FRAMING_BYTES, MAX_HEADERS, MAX_HEAD_BYTES, MAX_INTERIM,
    MAX_QUOTED_BYTES,
};
pub use quote::cut;
pub use read::{read_answer, read_answer_to, Answer};
pub use request::{push_field, start_request};

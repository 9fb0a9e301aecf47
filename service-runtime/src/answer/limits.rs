//! The bounds on what an upstream's answer can make a service hold, each a
//! named constant with its reason, stated once here: every other module of
//! `answer` refers to them by name.
//!
//! A connection holds one buffer of [`MAX_HEAD_BYTES`] (8 KiB) for its life;
//! a head has at most [`MAX_HEADERS`] (128) fields; a body at most
//! [`MAX_BODY_BYTES`] (1 MiB) of data and [`MAX_CHUNK_FRAMING_BYTES`] (64 KiB)
//! of chunked framing; at most [`MAX_INTERIM`] (8) interim answers come
//! before the final one; at most [`MAX_QUOTED_BYTES`] (64) of an upstream's
//! own words go into a message.

pub use crate::body::MAX_CHUNK_FRAMING_BYTES;

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
// 1 MiB fits a usize on every target.
pub const MAX_BODY_BYTES: usize = crate::head::MAX_BODY_BYTES as usize;

/// Interim (`1xx`) answers skipped before a final one. RFC 9110 lets a server
/// send several (`100`, `102`, `103`); more than this is a stream of them
/// meant to keep B waiting, refused as not a sensible answer.
pub const MAX_INTERIM: usize = 8;

/// The most bytes of an upstream's own words (a reason phrase, a header
/// value) quoted in a failure's detail: every B log line and error body
/// carries the detail, and an upstream's 7 KB reason phrase must not ride along.
pub const MAX_QUOTED_BYTES: usize = 64;

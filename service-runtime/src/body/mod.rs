//! A message body read byte-exact: one decoder for a client's request body
//! (skipped, or kept by A as a proxy) and an upstream's answer body (B's
//! calls, A's proxy).
//!
//! - `decode`: the decoder itself, [`Decoder`]: `Content-Length`, chunked and
//!   close-delimited bodies, fed in pieces of any size, data at most
//!   [`MAX_BODY_BYTES`](crate::head::MAX_BODY_BYTES), framing at most
//!   [`MAX_CHUNK_FRAMING_BYTES`], a line at most [`MAX_LINE_BYTES`].
//! - `grammar`: RFC 9112's grammar for chunk-size and trailer lines, which a
//!   server checks of a client ([`Sender::Client`]).
//! - `skip`: [`Skip`], the server's side, with each refusal worded as the
//!   `400` or `413` a client gets. The client's side is `answer::read`.

mod decode;
mod grammar;
mod skip;

pub use decode::{Decoder, Framing, Refusal, Sender, MAX_CHUNK_FRAMING_BYTES, MAX_LINE_BYTES};
pub use skip::Skip;

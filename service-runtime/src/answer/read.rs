//! One whole answer read off a connection: interim answers skipped, then the
//! final head, then its body through the one body decoder
//! ([`crate::body::Decoder`], as [`Sender::Upstream`]), every refusal worded
//! as a [`Failure`] about the upstream.
//!
//! Reuse only when safe: an answer says its connection may carry another
//! request only if it was complete, framed by length or chunks, not closed
//! (`Connection: close`, or HTTP/1.0 without `keep-alive`), and nothing was
//! sent after it.

use smol::io::AsyncRead;

use crate::answer::buf::ReadBuf;
use crate::answer::failure::{malformed, Closed, Failure};
use crate::answer::head::{parse_head, Head};
use crate::answer::limits::{MAX_BODY_BYTES, MAX_CHUNK_FRAMING_BYTES, MAX_HEAD_BYTES, MAX_INTERIM};
use crate::answer::quote::first_bytes;
use crate::body::{Decoder, Framing, Refusal, Sender, MAX_LINE_BYTES};

// A full buffer reads nothing more (`ReadBuf::fill` gives 0, as at the end of
// the stream), so the decoder must refuse an unended line before the buffer is
// full of it: its line limit is at most the buffer's size.
const _: () = assert!(MAX_LINE_BYTES <= MAX_HEAD_BYTES);

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

    let mut decoder = Decoder::new(head.framing, Sender::Upstream);
    let mut body = match head.framing {
        Framing::Length(n) => Vec::with_capacity(n as usize),
        Framing::Empty => Vec::new(),
        Framing::Chunked | Framing::UntilClose => Vec::with_capacity(512),
    };
    loop {
        let used = decoder
            .feed(buf.unread(), Some(&mut body))
            .map_err(to_failure)?;
        buf.consume(used);
        if decoder.is_done() {
            break;
        }
        if buf.fill(io).await? == 0 {
            return match (head.framing, decoder.left()) {
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

/// An upstream's body refused, in words about the upstream.
fn to_failure(refusal: Refusal) -> Failure {
    match refusal {
        Refusal::TooLarge => malformed(format!(
            "the answer body is over the limit of {MAX_BODY_BYTES} bytes"
        )),
        Refusal::FramingTooLarge => malformed(format!(
            "the chunked body's framing (sizes, extensions, trailers) is over \
             {MAX_CHUNK_FRAMING_BYTES} bytes"
        )),
        // The buffer holds exactly one line's limit, so a line that has not
        // ended when it is full is refused here rather than waited on.
        Refusal::LineTooLong => malformed(format!(
            "a line of the chunked body is over {MAX_LINE_BYTES} bytes"
        )),
        Refusal::Malformed { why, line: None } => malformed(why),
        Refusal::Malformed {
            why,
            line: Some(line),
        } => malformed(format!("{why} {}", first_bytes(&line))),
    }
}

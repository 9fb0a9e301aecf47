//! What of an upstream's own words goes into a message: a reason phrase, a
//! header value, the first bytes of something that is not HTTP. Always cut
//! (to [`MAX_QUOTED_BYTES`] or 32 bytes) and escaped, because every B log line
//! and error body carries the detail and an upstream chooses these bytes.

#[cfg(doc)]
use crate::answer::limits::MAX_QUOTED_BYTES;

/// `text` cut to `max` bytes (on a character boundary), marked when cut:
/// `RRRR...(7000 bytes)`.
pub fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...({} bytes)", &text[..end], text.len())
}

/// The first word of what came back (`SSH-2.0-OpenSSH_9.2`, `220`), for a
/// message: up to a space or line end, at most 32 bytes, escaped.
pub fn first_word(buf: &[u8]) -> String {
    let end = buf
        .iter()
        .position(|b| matches!(b, b' ' | b'\r' | b'\n'))
        .unwrap_or(buf.len());
    first_bytes(&buf[..end])
}

/// The start of what came back, for a message: at most 32 bytes, escaped.
pub fn first_bytes(buf: &[u8]) -> String {
    let shown = &buf[..buf.len().min(32)];
    format!("{:?}", String::from_utf8_lossy(shown))
}

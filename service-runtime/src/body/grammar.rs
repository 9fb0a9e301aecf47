//! RFC 9112's grammar for the lines of a chunked body, to the letter: what a
//! server checks of a client's chunk-size and trailer lines before it trusts
//! them.
//!
//! `httparse::parse_chunk_size` lets a bare LF, an empty size or a lone `;`
//! through; a proxy in front of a service might read such a line another way
//! and see a different body (request smuggling). These checks are pure (a
//! line in, a verdict out) and allocate nothing; the decoder (`decode.rs`)
//! calls them only for [`Sender::Client`](crate::body::Sender::Client).

/// Why a line breaks the grammar, in words a client can act on.
pub type Why = &'static str;

/// A line that ends in LF without the CR before it.
pub const BARE_LF: Why = "line ends in a bare LF; HTTP needs CRLF";

/// A chunk-size line that is not `size *(; ext)`.
pub const MALFORMED_SIZE: Why = "malformed chunk size line";

/// A trailer line that is not `name: value`.
pub const MALFORMED_TRAILER: Why = "malformed chunked trailer field";

/// A chunk-size line, without its LF, as RFC 9112 §7.1.1 has it:
/// `1*HEXDIG *( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] ) CR`.
/// Whitespace only around `;` and `=`, a name after every `;`.
pub fn check_size_line(line: &[u8]) -> Result<(), Why> {
    let Some((&b'\r', text)) = line.split_last() else {
        return Err(BARE_LF);
    };
    let digits = text.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err("chunk size line does not start with a hex size");
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
            return Err(MALFORMED_SIZE);
        };
        rest = after;
        skip_ws(&mut rest);
        if !token(&mut rest) {
            return Err(MALFORMED_SIZE);
        }
        let mut look = rest;
        skip_ws(&mut look);
        if let Some((b'=', after)) = look.split_first() {
            rest = after;
            skip_ws(&mut rest);
            if rest.first() == Some(&b'"') {
                rest = quoted_string(&rest[1..]).ok_or(MALFORMED_SIZE)?;
            } else if !token(&mut rest) {
                return Err(MALFORMED_SIZE);
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
pub fn check_trailer_line(line: &[u8]) -> Result<(), Why> {
    let colon = line.iter().position(|&b| b == b':');
    let named = colon.is_some_and(|i| i > 0 && line[..i].iter().all(|b| b.is_ascii_graphic()));
    if !named || line.iter().any(|&b| b.is_ascii_control() && b != b'\t') {
        return Err(MALFORMED_TRAILER);
    }
    Ok(())
}

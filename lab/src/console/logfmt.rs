//! The fields of one log line, as the services write them: logfmt (the
//! timestamp first, then `key=value`, values quoted with the escapes of
//! `service_runtime::log::escape`) or JSON. Bounded: a line longer than
//! [`MAX_LINE`] is cut before it is read; a line that is neither is `None`,
//! never an error.

use std::collections::BTreeMap;

/// A line longer than this is cut before parsing: the services' lines are a
/// few hundred bytes; a runaway one must not cost the console more.
pub const MAX_LINE: usize = 16 * 1024;

/// The fields of one log line, logfmt or JSON; `None` if it is neither.
/// The first bare word of a logfmt line (its timestamp) is `ts`.
pub fn fields(line: &str) -> Option<BTreeMap<String, String>> {
    let line = cut(line, MAX_LINE).trim();
    if line.starts_with('{') {
        let json: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).ok()?;
        return Some(
            json.into_iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => (k, s),
                    other => (k, other.to_string()),
                })
                .collect(),
        );
    }
    let mut out = BTreeMap::new();
    let mut rest = line;
    let mut first = true;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let key_end = rest.find(|c: char| c == '=' || c.is_whitespace());
        let Some(eq) = key_end.filter(|&i| rest[i..].starts_with('=')) else {
            // A bare word: the timestamp first, anything else skipped.
            let end = key_end.unwrap_or(rest.len());
            if first {
                out.insert("ts".to_owned(), rest[..end].to_owned());
            }
            rest = &rest[end..];
            first = false;
            continue;
        };
        first = false;
        let key = &rest[..eq];
        let after = &rest[eq + 1..];
        let (value, used) = if let Some(quoted) = after.strip_prefix('"') {
            unquote(quoted)?
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (after[..end].to_owned(), end)
        };
        let skip = if after.starts_with('"') {
            used + 1
        } else {
            used
        };
        out.insert(key.to_owned(), value);
        rest = &after[skip..];
    }
    (!out.is_empty()).then_some(out)
}

/// A quoted logfmt value (after its opening quote): the value and how many
/// bytes it used, closing quote included. The escapes are those of
/// `service_runtime::log::escape`.
fn unquote(s: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, i + 1)),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'u' => {
                    // \u{hex}
                    let mut hex = String::new();
                    for (_, h) in chars.by_ref() {
                        match h {
                            '{' => {}
                            '}' => break,
                            h => hex.push(h),
                        }
                    }
                    let c = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                    out.push(c.unwrap_or('\u{fffd}'));
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const B_TIMEOUT: &str = r#"2026-12-02T03:00:02.001Z service=B endpoint=/call-echo status=error http_status=504 error=timeout detail="A sent no answer within 1000 ms (\"slow\")" latency_ms=1001 trace_id=bbb"#;

    /// logfmt values come back exactly as the services wrote them: bare,
    /// quoted with escapes, the timestamp as `ts`; JSON lines too.
    #[test]
    fn reads_logfmt_and_json_lines() {
        let f = fields(B_TIMEOUT).unwrap();
        assert_eq!(f["ts"], "2026-12-02T03:00:02.001Z");
        assert_eq!(f["error"], "timeout");
        assert_eq!(f["detail"], r#"A sent no answer within 1000 ms ("slow")"#);
        assert_eq!(f["trace_id"], "bbb");
        let f = fields(r#"ts service=A detail="a\\b\n\u{202e}" x=1"#).unwrap();
        assert_eq!(f["detail"], "a\\b\n\u{202e}");
        assert_eq!(f["x"], "1");
        let f = fields(r#"{"ts":"t","service":"B","latency_ms":7}"#).unwrap();
        assert_eq!(f["latency_ms"], "7");
        assert!(fields("").is_none());
        // An unterminated quote is not a line to read, and no panic.
        assert!(fields(r#"ts detail="never closed"#).is_none());
    }
}

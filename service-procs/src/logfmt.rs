//! Reading one field of a service's logfmt line (`key=value`, or
//! `key="quoted value"` with `\"` and `\\` escapes), as the services write
//! them: what the lab's demo, its experiments and the tests look up in a
//! log line (`trace_id`, `error`, `url`).

/// The value of `key=` in a logfmt line (bare or quoted, escapes undone);
/// `None` when the key is absent or its quoted value never closes.
pub fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[start..];
    if let Some(quoted) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.push(chars.next()?),
                '"' => return Some(out),
                c => out.push(c),
            }
        }
        None
    } else {
        Some(rest.split(' ').next().unwrap_or("").to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::field;

    /// Bare and quoted values, escapes undone; a key is matched whole.
    #[test]
    fn fields_bare_and_quoted() {
        let line = r#"2026-01-01T00:00:00Z service=B error=timeout detail="A took \"too\" long" my_error=x"#;
        assert_eq!(field(line, "error").as_deref(), Some("timeout"));
        assert_eq!(
            field(line, "detail").as_deref(),
            Some(r#"A took "too" long"#)
        );
        assert_eq!(field(line, "rror"), None);
        assert_eq!(field(r#" detail="never closed"#, "detail"), None);
    }
}

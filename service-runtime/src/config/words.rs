//! A config error in the words a student reads: a value as it was written,
//! a type as a person names it, a TOML syntax error as a sentence (where, the
//! line as written, what is wrong and what is allowed), and the known key a
//! typo was nearest to.
//!
//! Pure text in, text out: the loader decides what is wrong, this says it.

/// A value as the user wrote it in TOML.
pub fn show(actual: &figment::error::Actual) -> String {
    use figment::error::Actual;
    match actual {
        Actual::Str(s) => format!("{s:?}"),
        Actual::Bool(b) => b.to_string(),
        Actual::Unsigned(n) => n.to_string(),
        Actual::Signed(n) => n.to_string(),
        Actual::Float(n) => n.to_string(),
        Actual::Map => "a table".to_owned(),
        Actual::Seq => "a list".to_owned(),
        other => other.to_string(),
    }
}

/// serde's name for a type (`u64`, `a boolean`) as a student would say it.
pub fn in_words(key: &str, expected: &str) -> String {
    let unit = if key.ends_with("_ms") {
        " of milliseconds"
    } else if key.ends_with("_per_s") {
        " per second"
    } else if key.ends_with("_s") {
        " of seconds"
    } else {
        ""
    };
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => format!("a whole number{unit}"),
        "i8" | "i16" | "i32" | "i64" | "isize" => format!("a whole number{unit}"),
        "f32" | "f64" => format!("a number{unit}"),
        "a boolean" => "true or false".to_owned(),
        "a string" => "text in quotes".to_owned(),
        e if e.starts_with("struct ") || e.starts_with("a map") => {
            "a table (a [section])".to_owned()
        }
        e if e.starts_with("a sequence") => "a list, e.g. [\"a\", \"b\"]".to_owned(),
        other => other.to_owned(),
    }
}

/// The known name nearest to `typo`, if near enough to be a slip (a third
/// of its letters, at most, differ). Distance is Levenshtein's with a swap
/// of two neighbours counted as one edit (optimal string alignment).
pub fn closest<'a>(typo: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::osa_distance(typo, k), *k))
        .filter(|(d, k)| *d <= k.len().max(typo.len()).div_ceil(3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// The TOML parser's message (`TOML parse error at line 2, column 8`, an
/// excerpt, then what it expected in its own terms) as a sentence a student
/// reads: where, the line as written, what is wrong and what is allowed.
/// `None` when the message is not a syntax error's.
pub fn plain_syntax(message: &str, text: &str) -> Option<String> {
    let first = message.lines().next()?;
    let place = first.strip_prefix("TOML parse error at line ")?;
    let (line_no, col) = place.split_once(", column ")?;
    let (line_no, col): (usize, usize) = (line_no.trim().parse().ok()?, col.trim().parse().ok()?);
    let detail = one_line(message);
    let detail = detail.split_once("; ").map_or("", |(_, rest)| rest);
    let written = text
        .lines()
        .nth(line_no.checked_sub(1)?)
        .unwrap_or("")
        .trim();
    // The bare word at the column, for a did-you-mean.
    let word: String = text
        .lines()
        .nth(line_no - 1)
        .unwrap_or("")
        .chars()
        .skip(col.saturating_sub(1))
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    let what = if detail.starts_with("invalid string") {
        match closest(&word, &["true", "false"]) {
            Some(b) => format!(
                "`{word}` is not a value TOML knows; did you mean `{b}`? A value is a number, \
                 true or false, or text in quotes (\"...\")"
            ),
            None => {
                "a value must be a number, true or false, or text in quotes (\"...\")".to_owned()
            }
        }
    } else if detail.starts_with("invalid basic string") {
        "text opened with \" must be closed with \" on the same line".to_owned()
    } else if detail.starts_with("invalid literal string") {
        "text opened with ' must be closed with ' on the same line".to_owned()
    } else if detail.starts_with("invalid table header") && detail.contains("duplicate key") {
        "this section appears twice in the file; keep one and put all its keys there".to_owned()
    } else if detail.starts_with("invalid table header") {
        "a section header is a name in square brackets, closed on its line: `[fault]`".to_owned()
    } else if let Some(rest) = detail.strip_prefix("duplicate key `") {
        let key = rest.split('`').next().unwrap_or("");
        format!("`{key}` is set twice; keep one of them")
    } else if detail.starts_with("expected newline") {
        "there is more after the value; each line holds one `key = value` (a comment starts with #)"
            .to_owned()
    } else if detail.contains("expected `.`, `=`") {
        "a line must be `key = value` (or a `[section]` header)".to_owned()
    } else {
        format!("this is not valid TOML ({detail})")
    };
    Some(format!("line {line_no}, column {col}: `{written}`: {what}"))
}

/// The TOML parser's message without its source excerpt, on one line:
/// `TOML parse error at line 1, column 7; invalid table header; expected ...`.
pub fn one_line(message: &str) -> String {
    let excerpt = |l: &str| {
        l.starts_with(' ')
            || l.starts_with('|')
            || l.split_once(" |")
                .is_some_and(|(n, _)| n.trim().parse::<u32>().is_ok())
    };
    message
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !excerpt(l))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slip (a swap, a letter missing or extra) finds the key meant; a
    /// word far from every key finds none.
    #[test]
    fn closest_finds_slips_only() {
        let known = ["delay_ms", "fail", "probability"];
        assert_eq!(closest("dealy_ms", &known), Some("delay_ms"));
        assert_eq!(closest("fial", &known), Some("fail"));
        assert_eq!(closest("probabilty", &known), Some("probability"));
        assert_eq!(closest("zzz", &known), None);
        assert_eq!(closest("fals", &["true", "false"]), Some("false"));
    }

    /// serde's type names become what a person would say, with the unit the
    /// key's suffix gives.
    #[test]
    fn types_in_words() {
        assert_eq!(
            in_words("fault.delay_ms", "u64"),
            "a whole number of milliseconds"
        );
        assert_eq!(in_words("x.rate_per_s", "f64"), "a number per second");
        assert_eq!(
            in_words("x.retry_after_s", "u32"),
            "a whole number of seconds"
        );
        assert_eq!(in_words("fault.fail", "a boolean"), "true or false");
    }
}

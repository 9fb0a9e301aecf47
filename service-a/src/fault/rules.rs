//! `[[fault.rules]]`: faults for some requests only. A rule matches by
//! method, by path (a prefix, or a glob where `*` is any run of characters),
//! and by a header's value; the first rule that matches gives the request's
//! faults, with its own probability, counter and dice; a request no rule
//! matches gets the top-level `[fault]` keys. The `x-fault-*` headers still
//! go over whichever applies.
//!
//! The matching only: a rule as written, and its checks, are `[fault]`'s
//! (`settings`).

use super::settings::Rule;
use http_types::Request;

impl Rule {
    /// Whether `req` is one of this rule's requests.
    pub fn matches(&self, req: &Request) -> bool {
        let method = self.method.is_empty()
            || req
                .method()
                .as_ref()
                .eq_ignore_ascii_case(self.method.as_str());
        method && path_matches(&self.path, req.url().path()) && header_matches(&self.header, req)
    }
}

/// A prefix, or with a `*` a glob over the whole path.
fn path_matches(pattern: &str, path: &str) -> bool {
    if pattern.is_empty() {
        return true;
    }
    if !pattern.contains('*') {
        return path.starts_with(pattern);
    }
    glob(pattern.as_bytes(), path.as_bytes())
}

/// `*` is any run of bytes (none too); everything else is itself. Iterative,
/// with one backtrack point: linear in practice, never exponential.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

fn header_matches(rule: &str, req: &Request) -> bool {
    if rule.is_empty() {
        return true;
    }
    let (name, value) = match rule.split_once(':') {
        Some((name, value)) => (name.trim(), Some(value.trim())),
        None => (rule.trim(), None),
    };
    match (req.header(name), value) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(values), Some(want)) => values.iter().any(|v| v.as_str().trim() == want),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::settings::FaultSettings;

    fn rule(method: &str, path: &str, header: &str) -> Rule {
        Rule {
            method: method.to_owned(),
            path: path.to_owned(),
            header: header.to_owned(),
            fault: FaultSettings::default(),
        }
    }

    /// Method, prefix, glob and header each narrow a rule.
    #[test]
    fn rules_match_what_they_say() {
        let post = Request::post("http://a/orders/7");
        let get = Request::get("http://a/orders/7");
        assert!(rule("POST", "/orders", "").matches(&post));
        assert!(!rule("POST", "/orders", "").matches(&get));
        assert!(rule("post", "", "").matches(&post));
        assert!(rule("", "/orders/*", "").matches(&get));
        assert!(rule("", "/*/7", "").matches(&get));
        assert!(!rule("", "/*/8", "").matches(&get));
        assert!(!rule("", "/users", "").matches(&get));
        let mut tenant = Request::get("http://a/x");
        tenant.insert_header("x-tenant", "blue");
        assert!(rule("", "", "x-tenant: blue").matches(&tenant));
        assert!(rule("", "", "x-tenant").matches(&tenant));
        assert!(!rule("", "", "x-tenant: red").matches(&tenant));
        assert!(!rule("", "", "x-other").matches(&tenant));
    }

    /// The glob: `*` anywhere, backtracking, no blow-up on many stars.
    #[test]
    fn glob_edges() {
        assert!(glob(b"*", b""));
        assert!(glob(b"/a*b*c", b"/axxbyyc"));
        assert!(!glob(b"/a*b*c", b"/axxbyy"));
        assert!(glob(b"**", b"/anything"));
        let stars = "*a".repeat(30);
        let text = "a".repeat(29);
        assert!(!glob(stars.as_bytes(), text.as_bytes()));
    }

    /// A bad rule is named, with what is allowed.
    #[test]
    fn bad_rules_are_named() {
        assert_eq!(
            rule("PO ST", "", "").validate(0).unwrap_err().key,
            "fault.rules.method"
        );
        let e = rule("", "orders", "").validate(2).unwrap_err();
        assert_eq!(
            (e.key, e.value.as_str()),
            ("fault.rules.path", "rule 2: \"orders\"")
        );
        assert_eq!(
            rule("", "", ": x").validate(0).unwrap_err().key,
            "fault.rules.header"
        );
        let mut nested = rule("", "", "");
        nested.fault.rules.push(rule("", "", ""));
        assert_eq!(
            nested.validate(0).unwrap_err().key,
            "fault.rules.fault.rules"
        );
    }
}

//! What a settings value must satisfy, and the error when it does not: the
//! [`Validate`] trait every settings type implements, and [`Invalid`], one
//! value out of range with its dotted key and what is allowed.
//!
//! A leaf: it imports nothing of the crate, so every section's owner (the
//! server, the log, the trace, a service's own sections) can check its keys
//! without reaching into the loader, and the loader can report them without
//! reaching into the owners.

use std::fmt;
use std::ops::RangeInclusive;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// What the loader needs of a settings file: its defaults, its shape, and
/// a check of every value (the runtime's `[trace]` included, if it has one).
pub trait Validate: Default + Serialize + DeserializeOwned {
    /// The first key whose value is out of range, if any.
    fn validate(&self) -> Result<(), Invalid>;
}

/// One value out of range: the dotted key, the value as given, and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Dotted key, e.g. `fault.probability`.
    pub key: &'static str,
    /// The offending value as the user wrote it.
    pub value: String,
    /// What is allowed, e.g. `0.0..=1.0`.
    pub expected: String,
}

impl Invalid {
    /// `value` as a plain `http://` URL with a host and nothing after the
    /// path (no query, fragment or user); the error names `key` and shows
    /// `example`. The services speak no TLS, so `https` is refused too.
    pub fn check_http_url(key: &'static str, value: &str, example: &str) -> Result<url::Url, Self> {
        let invalid = || Self {
            key,
            value: format!("{value:?}"),
            expected: format!("an http:// URL with a host, e.g. \"{example}\""),
        };
        let url = url::Url::parse(value).map_err(|_| invalid())?;
        let plain = url.scheme() == "http"
            && url.host_str().is_some()
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty();
        if plain {
            Ok(url)
        } else {
            Err(invalid())
        }
    }

    /// Checks that `value` lies in `range`; the error names `key` and the range.
    pub fn check_range<T>(key: &'static str, value: T, range: RangeInclusive<T>) -> Result<(), Self>
    where
        T: PartialOrd + fmt::Debug,
    {
        if range.contains(&value) {
            Ok(())
        } else {
            Err(Self {
                key,
                value: format!("{value:?}"),
                expected: format!("{:?}..={:?}", range.start(), range.end()),
            })
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {}, expected {}",
            self.key, self.value, self.expected
        )
    }
}

impl std::error::Error for Invalid {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value out of range is named with its key, as written, and the range.
    #[test]
    fn a_range_names_key_value_and_bounds() {
        assert!(Invalid::check_range("fault.probability", 0.5, 0.0..=1.0).is_ok());
        let bad = Invalid::check_range("fault.probability", 1.5, 0.0..=1.0).unwrap_err();
        assert_eq!(
            bad.to_string(),
            "fault.probability = 1.5, expected 0.0..=1.0"
        );
    }

    /// Only a plain http:// URL with a host passes; the error shows an example.
    #[test]
    fn only_plain_http_urls() {
        let ok = Invalid::check_http_url("proxy.upstream", "http://[::1]:9000/x", "http://h:1");
        assert_eq!(ok.unwrap().as_str(), "http://[::1]:9000/x");
        for bad in [
            "https://h",
            "h:1",
            "http://u@h",
            "http://h/?q",
            "http://h/#f",
        ] {
            let err = Invalid::check_http_url("proxy.upstream", bad, "http://h:1").unwrap_err();
            assert!(err.expected.contains("\"http://h:1\""), "{bad}: {err}");
        }
    }
}

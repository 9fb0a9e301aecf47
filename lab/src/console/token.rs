//! Who may use the console: whoever holds this run's token, from this
//! machine's loopback, through this console's own pages.
//!
//! The rules, checked on every request before anything else (Jupyter's
//! model, tightened for a page that can break things):
//!
//! 1. **Host** must be this console's own address (`127.0.0.1:PORT`,
//!    `localhost:PORT` or `[::1]:PORT`): a page on another site that points
//!    its own name at 127.0.0.1 (DNS rebinding) sends its own name and is
//!    refused.
//! 2. **The token**: 128 random bits per run, from the OS. It comes in the
//!    printed URL (`?token=`, on a GET only), which sets a cookie
//!    (`HttpOnly; SameSite=Strict`: a browser never sends it with a request
//!    another site started), or in an `x-lab-token` header (scripts).
//!    Compared in constant time.
//! 3. **Writes** (anything but GET and HEAD) must come from this console's
//!    own pages: an `Origin` (and `Sec-Fetch-Site`, when the browser sends
//!    one) of this console; with no `Origin` at all (curl), only with the
//!    token in the header. No CORS header is ever sent, so no other site's
//!    script can read an answer either.
//!
//! Pure: the caller hands in the request's few relevant headers.

use std::fmt::Write as _;

/// Random bytes in a token: 128 bits, as Jupyter's (which uses 192 hex bits
/// of `os.urandom`; 128 is past guessing over loopback at any rate).
pub const TOKEN_BYTES: usize = 16;

/// What the console checks requests against.
#[derive(Debug, Clone)]
pub struct Guard {
    token: String,
    port: u16,
}

/// The parts of a request the rules look at.
#[derive(Debug, Clone, Copy, Default)]
pub struct Asked<'a> {
    /// GET or HEAD: reads. Anything else is a write.
    pub read_only: bool,
    pub host: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub sec_fetch_site: Option<&'a str>,
    /// The whole `Cookie` header.
    pub cookie: Option<&'a str>,
    /// `x-lab-token`.
    pub header_token: Option<&'a str>,
    /// `token=` in the query.
    pub query_token: Option<&'a str>,
}

/// How a request proved itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Cookie,
    Header,
    /// The printed URL's `?token=`: the answer sets the cookie.
    Url,
}

impl Guard {
    /// A fresh random token for a console on `port`.
    pub fn new(port: u16) -> anyhow::Result<Self> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::getrandom(&mut bytes).map_err(|e| {
            anyhow::anyhow!("no random numbers from the OS for the console's token: {e}")
        })?;
        let mut token = String::with_capacity(TOKEN_BYTES * 2);
        for b in bytes {
            let _ = write!(token, "{b:02x}");
        }
        Ok(Self::with_token(port, token))
    }

    /// A guard with a known token (tests).
    pub fn with_token(port: u16, token: String) -> Self {
        Self { token, port }
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// Per port: cookies are not, and two labs may run side by side.
    fn cookie_name(&self) -> String {
        format!("lab_console_{}", self.port)
    }

    /// The `Set-Cookie` value for a browser that came with the printed URL.
    pub fn set_cookie(&self) -> String {
        format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict",
            self.cookie_name(),
            self.token
        )
    }

    /// Whether `host` (a Host header, or an Origin without its scheme) is
    /// this console's own address.
    fn ours(&self, host: &str) -> bool {
        let port = self.port.to_string();
        ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .any(|name| host.strip_prefix(name).and_then(|r| r.strip_prefix(':')) == Some(&port))
    }

    /// Applies the rules; the refusal says which one, in words for the
    /// lab's output.
    pub fn check(&self, asked: &Asked<'_>) -> Result<Grant, String> {
        let host = asked.host.unwrap_or("");
        if !self.ours(host) {
            return Err(format!(
                "Host {host:?} is not this console's address (127.0.0.1:{})",
                self.port
            ));
        }
        if !asked.read_only {
            match asked.origin {
                Some(origin) if origin.strip_prefix("http://").is_some_and(|h| self.ours(h)) => {}
                Some(origin) => {
                    return Err(format!("a write from another origin ({origin})"));
                }
                None if asked.header_token.is_none() => {
                    return Err("a write with no Origin and no x-lab-token header".into());
                }
                None => {}
            }
            if let Some(site) = asked.sec_fetch_site {
                if site != "same-origin" && site != "none" {
                    return Err(format!(
                        "a write started by another site (Sec-Fetch-Site: {site})"
                    ));
                }
            }
        }
        if let Some(t) = asked.header_token {
            return self.matches(t, Grant::Header, "the x-lab-token header");
        }
        let name = self.cookie_name();
        let from_cookie = asked.cookie.and_then(|c| {
            c.split(';')
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v)
        });
        if let Some(t) = from_cookie {
            if equal(t.as_bytes(), self.token.as_bytes()) {
                return Ok(Grant::Cookie);
            }
        }
        match asked.query_token {
            Some(t) if asked.read_only => self.matches(t, Grant::Url, "the URL's token"),
            Some(_) => Err("a write with the token in its URL (use the page)".into()),
            None if from_cookie.is_some() => Err("a stale cookie (from an earlier run?)".into()),
            None => Err("no token (open the URL `cargo lab up` printed)".into()),
        }
    }

    fn matches(&self, given: &str, grant: Grant, from: &str) -> Result<Grant, String> {
        if equal(given.as_bytes(), self.token.as_bytes()) {
            Ok(grant)
        } else {
            Err(format!("a wrong token in {from}"))
        }
    }
}

/// Equality that takes as long whatever the first differing byte.
fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "00112233445566778899aabbccddeeff";

    fn guard() -> Guard {
        Guard::with_token(8082, T.into())
    }

    fn read(host: &str) -> Asked<'_> {
        Asked {
            read_only: true,
            host: Some(host),
            ..Asked::default()
        }
    }

    /// Tokens are fresh, 32 hex digits, and differ run to run.
    #[test]
    fn tokens_are_random() {
        let (a, b) = (Guard::new(1).unwrap(), Guard::new(1).unwrap());
        assert_eq!(a.token().len(), 32);
        assert!(a.token().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.token(), b.token());
    }

    /// The URL's token, the cookie and the header each let a read in; a
    /// wrong or missing one does not, and says why.
    #[test]
    fn reads_need_the_token() {
        let g = guard();
        let with_url = Asked {
            query_token: Some(T),
            ..read("127.0.0.1:8082")
        };
        assert_eq!(g.check(&with_url), Ok(Grant::Url));
        let cookie = format!("other=1; lab_console_8082={T}");
        let with_cookie = Asked {
            cookie: Some(&cookie),
            ..read("localhost:8082")
        };
        assert_eq!(g.check(&with_cookie), Ok(Grant::Cookie));
        let with_header = Asked {
            header_token: Some(T),
            ..read("[::1]:8082")
        };
        assert_eq!(g.check(&with_header), Ok(Grant::Header));
        assert!(g
            .check(&read("127.0.0.1:8082"))
            .unwrap_err()
            .contains("no token"));
        let wrong = Asked {
            query_token: Some("00112233445566778899aabbccddeefe"),
            ..read("127.0.0.1:8082")
        };
        assert!(g.check(&wrong).unwrap_err().contains("wrong token"));
        // Another port's cookie is another lab's.
        let other = format!("lab_console_9999={T}");
        let other_lab = Asked {
            cookie: Some(&other),
            ..read("127.0.0.1:8082")
        };
        assert!(g.check(&other_lab).is_err());
    }

    /// A name that is not ours is refused even with the token (DNS rebinding).
    #[test]
    fn host_must_be_ours() {
        let g = guard();
        for host in [
            "evil.example:8082",
            "127.0.0.1:8083",
            "127.0.0.1",
            "127.0.0.1:80820",
        ] {
            let asked = Asked {
                header_token: Some(T),
                ..read(host)
            };
            assert!(
                g.check(&asked).unwrap_err().contains("not this console"),
                "{host}"
            );
        }
    }

    /// A write needs our Origin (or, from a script, the header token): the
    /// cookie alone from another site is refused.
    #[test]
    fn writes_need_our_origin() {
        let g = guard();
        let cookie = format!("lab_console_8082={T}");
        let write = |origin, site| Asked {
            read_only: false,
            host: Some("127.0.0.1:8082"),
            origin,
            sec_fetch_site: site,
            cookie: Some(&cookie),
            ..Asked::default()
        };
        assert_eq!(
            g.check(&write(Some("http://127.0.0.1:8082"), Some("same-origin"))),
            Ok(Grant::Cookie)
        );
        assert!(g
            .check(&write(Some("http://evil.example"), Some("cross-site")))
            .unwrap_err()
            .contains("another origin"));
        assert!(g
            .check(&write(Some("http://127.0.0.1:8082"), Some("cross-site")))
            .unwrap_err()
            .contains("another site"));
        assert!(g
            .check(&write(None, None))
            .unwrap_err()
            .contains("no Origin"));
        let script = Asked {
            header_token: Some(T),
            ..write(None, None)
        };
        assert_eq!(g.check(&script), Ok(Grant::Header));
        let url_write = Asked {
            query_token: Some(T),
            cookie: None,
            ..write(Some("http://127.0.0.1:8082"), None)
        };
        assert!(g.check(&url_write).is_err());
    }

    /// The cookie never leaves for another site's requests.
    #[test]
    fn cookie_is_strict() {
        let c = guard().set_cookie();
        assert!(c.contains("SameSite=Strict") && c.contains("HttpOnly"));
        assert!(c.starts_with(&format!("lab_console_8082={T}")));
    }
}

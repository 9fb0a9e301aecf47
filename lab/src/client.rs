//! The lab's own HTTP/1.1 client (the demo's, and the bench's one call): one `GET` per connection, sent as
//! `curl -i` would send it (but for its User-Agent, which says who sent it),
//! and its answer read whole, bounded in size and time. The report shows
//! these exact bytes, so the client is small enough to show too; the head
//! of the answer is read by httparse, not by splitting on spaces.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// The longest answer the demo's client reads: B's answers are a few hundred
/// bytes; a bound keeps a broken server from growing the demo.
const MAX_ANSWER: usize = 64 * 1024;

/// `GET path` as `curl -i` sends it, but for the User-Agent, which says
/// who really sent it.
pub fn request_head(port: u16, path: &str, headers: &[(&str, &str)]) -> String {
    let mut head = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: cargo-lab-demo\r\nAccept: */*\r\n"
    );
    for (k, v) in headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    head.push_str("\r\n");
    head
}

/// The most fields the client reads in an answer's head: B's answers carry
/// a handful; more is an answer the demo does not expect, and an error.
const MAX_FIELDS: usize = 64;

/// One answer, as the demo's client received it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Every byte received, head and body, for the report to show.
    pub bytes: Vec<u8>,
    /// The status code.
    pub status: u16,
    /// The body as text.
    pub body: String,
    /// From connecting to the end of the answer.
    pub elapsed: Duration,
}

/// What the client needs of an answer's head.
struct Head {
    status: u16,
    /// The head's length in bytes, its blank line included.
    len: usize,
    content_length: Option<usize>,
}

/// Sends `head` and reads one answer (head, then its Content-Length body,
/// or to the close), at most [`MAX_ANSWER`] bytes and `patience` long.
pub fn send_and_read(port: u16, head: &str, patience: Duration) -> anyhow::Result<Answer> {
    let started = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
    s.set_read_timeout(Some(patience))
        .with_context(|| format!("setting a read timeout on 127.0.0.1:{port}"))?;
    s.write_all(head.as_bytes())
        .with_context(|| format!("sending a request to 127.0.0.1:{port}"))?;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let mut parsed: Option<Head> = None;
    loop {
        if parsed.is_none() {
            parsed = read_head(&bytes, port)?;
        }
        let whole = parsed.as_ref().is_some_and(|h| {
            h.content_length
                .is_some_and(|len| bytes.len() >= h.len + len)
        });
        if whole {
            break;
        }
        if bytes.len() > MAX_ANSWER {
            bail!("the answer from 127.0.0.1:{port} is over {MAX_ANSWER} bytes");
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) => bail!("reading the answer from 127.0.0.1:{port}: {e}"),
        }
    }
    let Some(head) = parsed else {
        bail!("127.0.0.1:{port} closed before a complete answer");
    };
    Ok(Answer {
        status: head.status,
        body: String::from_utf8_lossy(&bytes[head.len..]).into_owned(),
        bytes,
        elapsed: started.elapsed(),
    })
}

/// The answer's head once it is complete (`None` while it is not); `Err`
/// if what arrived is not an HTTP/1.x answer.
fn read_head(bytes: &[u8], port: u16) -> anyhow::Result<Option<Head>> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut answer = httparse::Response::new(&mut fields);
    let len = match answer.parse(bytes) {
        Ok(httparse::Status::Partial) => return Ok(None),
        Ok(httparse::Status::Complete(len)) => len,
        Err(e) => bail!(
            "127.0.0.1:{port} answered something that is not HTTP ({e}): {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        ),
    };
    // A complete parse has a status code; httparse says so in its docs.
    let status = answer
        .code
        .with_context(|| format!("127.0.0.1:{port} answered a head with no status code"))?;
    let content_length = answer
        .headers
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case("content-length"))
        .and_then(|f| std::str::from_utf8(f.value).ok()?.trim().parse().ok());
    Ok(Some(Head {
        status,
        len,
        content_length,
    }))
}

/// The sample lines of `/metrics` on `port` that start with one of `prefixes`.
pub fn metrics(port: u16, prefixes: &[&str]) -> anyhow::Result<Vec<String>> {
    let head = request_head(port, "/metrics", &[]);
    let answer = send_and_read(port, &head, Duration::from_secs(10))?;
    Ok(answer
        .body
        .lines()
        .filter(|l| prefixes.iter().any(|p| l.starts_with(p)))
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::net::TcpListener;

    use super::*;

    /// Serves `answer` once on a free port; returns the port.
    fn serve_once(answer: &'static [u8]) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(answer);
        });
        port
    }

    /// An answer is read to its Content-Length; its status from the head.
    #[test]
    fn reads_an_answer_by_its_length() {
        let port = serve_once(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\n{}");
        let head = request_head(port, "/x", &[]);
        let answer = send_and_read(port, &head, Duration::from_secs(10)).unwrap();
        assert_eq!(answer.status, 503);
        assert_eq!(answer.body, "{}");
    }

    /// Bytes that are not HTTP are an error that shows them, even where
    /// the second word looks like a status.
    #[test]
    fn refuses_what_is_not_http() {
        for answer in [
            &b"HTTP/1.1 2xx Maybe\r\n\r\n"[..],
            &b"XTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            &b"HTTP/1.1 200 OK\r\nbad field\r\n\r\n"[..],
        ] {
            let port = serve_once(answer);
            let head = request_head(port, "/x", &[]);
            let e = send_and_read(port, &head, Duration::from_secs(10)).unwrap_err();
            assert!(
                e.to_string()
                    .contains("answered something that is not HTTP"),
                "{e}"
            );
        }
    }
}

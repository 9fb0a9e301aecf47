//! A tiny blocking HTTP/1.1 client for tests: one request per connection
//! (`Connection: close`), timed, and a way to send raw bytes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::PATIENCE;

/// An answer, as the client saw it.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Header names (lowercase) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
    /// From connecting to the end of the body.
    pub elapsed: Duration,
}

impl Reply {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// A string field of the JSON body.
    pub fn str(&self, key: &str) -> String {
        self.json()[key]
            .as_str()
            .unwrap_or_else(|| panic!("no string {key:?} in {}", self.body))
            .to_owned()
    }
}

/// `GET url` (`http://host:port/path?query`, sent as written).
pub fn get(url: &str) -> Reply {
    get_with(url, &[])
}

/// `GET url` with extra headers.
pub fn get_with(url: &str, headers: &[(&str, &str)]) -> Reply {
    request("GET", url, headers)
}

/// Any method, for 405 tests.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Reply {
    let rest = url.strip_prefix("http://").expect("http:// URL");
    let (authority, target) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let started = Instant::now();
    let bytes = raw(authority, head.as_bytes()).expect("request failed");
    parse(&bytes, started.elapsed())
}

/// Sends `bytes` and reads until the server closes (or [`PATIENCE`] passes).
pub fn raw(authority: &str, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    stream.write_all(bytes)?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out)?;
    Ok(out)
}

/// Parses a whole answer (head and body) read until close.
pub fn parse(bytes: &[u8], elapsed: Duration) -> Reply {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete head in {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
        elapsed,
    }
}

/// Percent-encodes every byte but `A-Z a-z 0-9 - . _ ~`: safe in any query.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// One keep-alive connection, for requests that must share it.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    authority: String,
}

impl Conn {
    /// Connects to `host:port`.
    pub fn open(authority: &str) -> Self {
        let stream = TcpStream::connect(authority).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        Self {
            stream,
            authority: authority.to_owned(),
        }
    }

    /// `GET target` on this connection; reads exactly one answer (by Content-Length).
    pub fn get(&mut self, target: &str) -> Reply {
        let head = format!("GET {target} HTTP/1.1\r\nHost: {}\r\n\r\n", self.authority);
        self.send(head.as_bytes())
    }

    /// Writes `bytes` and reads nothing.
    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Writes `bytes` (a whole request, as given) and reads exactly one answer.
    pub fn send(&mut self, bytes: &[u8]) -> Reply {
        let started = Instant::now();
        self.stream.write_all(bytes).expect("write");
        let mut bytes = Vec::new();
        let mut byte = [0u8; 1];
        while !bytes.ends_with(b"\r\n\r\n") {
            let n = self.stream.read(&mut byte).expect("read head");
            assert!(
                n == 1,
                "closed mid-head: {:?}",
                String::from_utf8_lossy(&bytes)
            );
            bytes.push(byte[0]);
        }
        let len = parse(&bytes, started.elapsed())
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .expect("content-length");
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).expect("read body");
        bytes.extend_from_slice(&body);
        parse(&bytes, started.elapsed())
    }
}

//! A tiny blocking HTTP/1.1 client for tests: one request per connection
//! (`Connection: close`), timed, and a way to send raw bytes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use service_procs::PATIENCE;

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

/// The most fields a test expects in one answer's head: the services' own
/// head limit on what they read (128), so any answer they could send fits.
const MAX_FIELDS: usize = 128;

/// Parses a whole answer (head and body) read until close; the head by
/// httparse, so a status line or field that is not HTTP fails the test.
pub fn parse(bytes: &[u8], elapsed: Duration) -> Reply {
    let text = || String::from_utf8_lossy(bytes).into_owned();
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete head in {:?}", text()))
        + 4;
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut head = httparse::Response::new(&mut fields);
    match head.parse(&bytes[..end]) {
        Ok(httparse::Status::Complete(_)) => {}
        other => panic!("not an HTTP answer ({other:?}): {:?}", text()),
    }
    let status = head
        .code
        .unwrap_or_else(|| panic!("no status code in {:?}", text()));
    let headers = head
        .headers
        .iter()
        .map(|h| {
            let value = String::from_utf8_lossy(h.value);
            (h.name.to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes[end..]).into_owned(),
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

    /// The socket itself, e.g. to shut it down or set its timeouts.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Reads exactly one answer (head, then a `content-length` body) within
    /// `patience`; `Err` says what was read if the server closed or was too slow.
    pub fn read_reply(&mut self, patience: Duration) -> Result<Reply, String> {
        let started = Instant::now();
        let deadline = started + patience;
        let mut bytes = Vec::new();
        let fail = |what: String, bytes: &[u8]| {
            let so_far = String::from_utf8_lossy(bytes);
            format!(
                "{what} after {:?}; read so far: {so_far:?}",
                started.elapsed()
            )
        };
        let mut byte = [0u8; 1];
        while !bytes.ends_with(b"\r\n\r\n") {
            self.time_left(deadline);
            match self.stream.read(&mut byte) {
                Ok(1) => bytes.push(byte[0]),
                Ok(_) => return Err(fail("closed mid-head".into(), &bytes)),
                Err(e) => return Err(fail(format!("head: {e}"), &bytes)),
            }
        }
        let len = parse(&bytes, started.elapsed())
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .ok_or_else(|| fail("no content-length".into(), &bytes))?;
        let mut body = vec![0u8; len];
        self.time_left(deadline);
        if let Err(e) = self.stream.read_exact(&mut body) {
            return Err(fail(format!("body: {e}"), &bytes));
        }
        bytes.extend_from_slice(&body);
        self.stream
            .set_read_timeout(Some(PATIENCE))
            .expect("timeout");
        Ok(parse(&bytes, started.elapsed()))
    }

    /// Sets the read timeout to what is left until `deadline` (at least 1 ms).
    fn time_left(&mut self, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        let left = left.max(Duration::from_millis(1));
        self.stream.set_read_timeout(Some(left)).expect("timeout");
    }

    /// Reads until the server closes or `patience` passes; a reset counts as a close.
    pub fn read_to_close(&mut self, patience: Duration) -> Closing {
        let started = Instant::now();
        let deadline = started + patience;
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        let closed = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break false;
            }
            self.stream.set_read_timeout(Some(left)).expect("timeout");
            match self.stream.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break is_close(&e),
            }
        };
        Closing {
            bytes,
            closed,
            elapsed: started.elapsed(),
        }
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

/// What a client read on a connection until the server closed it (or the patience ran out).
#[derive(Debug, Clone)]
pub struct Closing {
    /// Every byte read.
    pub bytes: Vec<u8>,
    /// Whether the server closed (FIN or reset) within the patience.
    pub closed: bool,
    /// From the start of reading to the close (or to the end of the patience).
    pub elapsed: Duration,
}

impl Closing {
    /// The bytes as text, for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Whether a read or write error means the peer closed (reset, broken pipe).
pub fn is_close(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
    )
}

/// Splits answers written back to back (pipelined), each framed by its
/// `content-length`; a trailing incomplete answer is left out.
pub fn parse_all(bytes: &[u8]) -> Vec<Reply> {
    let mut replies = Vec::new();
    let mut rest = bytes;
    while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = parse(&rest[..end + 4], Duration::ZERO);
        let len = head
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let Some(whole) = rest.get(..end + 4 + len) else {
            break;
        };
        replies.push(parse(whole, Duration::ZERO));
        rest = &rest[whole.len()..];
    }
    replies
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::parse;

    /// Status and fields come from httparse: names lowercased, values trimmed.
    #[test]
    fn parses_status_fields_and_body() {
        let reply = parse(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type:  application/json \r\n\r\n{}",
            Duration::ZERO,
        );
        assert_eq!(reply.status, 503);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.body, "{}");
    }

    /// A status line that is not HTTP fails the test, even where its second
    /// word is a number.
    #[test]
    #[should_panic(expected = "not an HTTP answer")]
    fn refuses_a_status_line_that_is_not_http() {
        parse(b"XTTP/1.1 200 OK\r\n\r\n", Duration::ZERO);
    }
}

//! The span exporter's HTTP client: one `POST` on a blocking socket, every
//! step (connect, write, read) within one deadline, and the answer judged by
//! its status line alone, read by httparse.
//!
//! Blocking and on its own thread, so no request's executor ever waits on a
//! collector; a connection per export, closed after the status line, so
//! nothing of a collector's answer is kept.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use url::Url;

/// The largest status line read from a collector's answer.
const MAX_STATUS_LINE: usize = 1024;

/// Where the collector is, split once.
#[derive(Debug, Clone)]
pub struct Target {
    /// The host to resolve (an IPv6 address without its brackets).
    pub host: String,
    /// The port.
    pub port: u16,
    /// The request target, e.g. `/v1/traces`.
    pub path: String,
    /// The `Host` header.
    pub authority: String,
}

impl From<&Url> for Target {
    fn from(url: &Url) -> Self {
        let host = url.host_str().unwrap_or("127.0.0.1");
        let port = url.port_or_known_default().unwrap_or(80);
        Self {
            // `[::1]` in a URL, `::1` for the resolver.
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            path: url.path().to_owned(),
            authority: format!("{host}:{port}"),
        }
    }
}

/// One POST of `body`, every step within `timeout`; `Ok` on a 2xx answer.
pub fn post(target: &Target, body: &[u8], timeout: Duration) -> io::Result<()> {
    post_within(target, body, timeout).map_err(|e| match e.kind() {
        // A socket timeout reads "Resource temporarily unavailable": say what happened.
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no answer within trace.timeout_ms = {} ms",
                timeout.as_millis()
            ),
        ),
        _ => e,
    })
}

fn post_within(target: &Target, body: &[u8], timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))
    };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    let mut stream = None;
    for addr in (target.host.as_str(), target.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, left()?) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut stream = stream.ok_or(last)?;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        target.path,
        target.authority,
        body.len()
    );
    stream.set_write_timeout(Some(left()?))?;
    stream.write_all(head.as_bytes())?;
    stream.set_write_timeout(Some(left()?))?;
    stream.write_all(body)?;

    // Only the status line matters; the connection is closed after it.
    let mut head = Vec::with_capacity(64);
    let mut chunk = [0u8; 256];
    let end = loop {
        if let Some(at) = head.iter().position(|&b| b == b'\n') {
            break at + 1;
        }
        if head.len() > MAX_STATUS_LINE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the collector's status line is longer than {MAX_STATUS_LINE} bytes"),
            ));
        }
        stream.set_read_timeout(Some(left()?))?;
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the collector closed without an HTTP status line",
            ));
        }
        head.extend_from_slice(&chunk[..n]);
    };
    let line = &head[..end];
    let written = String::from_utf8_lossy(line).trim().to_owned();
    match status(line) {
        Some(code) if (200..300).contains(&code) => Ok(()),
        Some(_) => Err(io::Error::other(format!(
            "the collector answered {written:?}"
        ))),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the collector answered something that is not HTTP: {written:?}"),
        )),
    }
}

/// The status code of `line`, an HTTP/1.x status line with its line end,
/// as httparse reads it (`HTTP/1.1 204 No Content`); `None` if it is not one.
pub fn status(line: &[u8]) -> Option<u16> {
    // The line and an empty one make a whole head without fields, which
    // httparse parses completely or not at all.
    let mut head = Vec::with_capacity(line.len() + 2);
    head.extend_from_slice(line);
    head.extend_from_slice(b"\r\n");
    let mut fields = [httparse::EMPTY_HEADER; 0];
    let mut answer = httparse::Response::new(&mut fields);
    match answer.parse(&head) {
        Ok(httparse::Status::Complete(_)) => answer.code,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    /// A collector that accepts but never answers costs one timeout, not a hang.
    #[test]
    fn a_silent_collector_times_out() {
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!(
            "http://{}/v1/traces",
            silent.local_addr().unwrap()
        ))
        .unwrap();
        let started = Instant::now();
        let err = post(&Target::from(&url), b"{}", Duration::from_millis(200)).unwrap_err();
        let took = started.elapsed();
        assert!(err.to_string().contains("no answer within"), "{err}");
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(2),
            "{took:?}: {err}"
        );
    }

    /// One POST to a collector on loopback that reads the request and
    /// answers `answer`.
    fn post_to_a_collector_answering(answer: &'static [u8]) -> io::Result<()> {
        let collector = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!(
            "http://{}/v1/traces",
            collector.local_addr().unwrap()
        ))
        .unwrap();
        let collector = std::thread::spawn(move || {
            let (mut s, _) = collector.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).unwrap();
            s.write_all(answer).unwrap();
        });
        let posted = post(&Target::from(&url), b"{}", Duration::from_secs(5));
        collector.join().unwrap();
        posted
    }

    /// A non-2xx answer is an error naming the status line.
    #[test]
    fn a_refusal_is_an_error() {
        let err = post_to_a_collector_answering(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("503 Service Unavailable"), "{err}");
    }

    /// The status code is httparse's reading of the whole status line:
    /// a reason is optional, and anything else is not HTTP.
    #[test]
    fn reads_the_status_line() {
        assert_eq!(status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(status(b"HTTP/1.0 204 No Content\n"), Some(204));
        assert_eq!(status(b"HTTP/1.1 503\r\n"), Some(503));
        for bad in [
            &b"garbage\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n",
            b"HTTP/1.1 20 OK\r\n",
            b"HTTP/1.1 OK 200\r\n",
            b"200 OK\r\n",
            b"HTTP/1.1 200 OK",
        ] {
            assert_eq!(status(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    /// An answer that is not HTTP is said to be so, not taken for a refusal.
    #[test]
    fn an_answer_that_is_not_http_is_said() {
        let err = post_to_a_collector_answering(b"SSH-2.0-OpenSSH_9.6\r\n").unwrap_err();
        assert!(err.to_string().contains("not HTTP: \"SSH-2.0"), "{err}");
    }
}

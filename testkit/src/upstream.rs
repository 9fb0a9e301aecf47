//! A real HTTP/1.1 upstream for A's proxy tests, in process: it mirrors
//! what it received (as httpbin's `/anything` does), keeps connections
//! alive, and counts requests and connections, so a test sees exactly what
//! A forwarded and whether A called it at all.
//!
//! - any path: `200` with JSON `{"method", "target", "headers": [[name,
//!   value], ...], "body"}` and `x-upstream: mirror`;
//! - `/slow?ms=N`: the same after N ms;
//! - `/status/N`: status N with a short text body.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// The mirror, on a free loopback port; it lives as long as the test process.
#[derive(Debug, Clone)]
pub struct Mirror {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    requests: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

impl Mirror {
    /// Starts a mirror.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the mirror");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (r, c) = (requests.clone(), connections.clone());
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                c.fetch_add(1, Ordering::SeqCst);
                let r = r.clone();
                thread::spawn(move || serve(stream, &r));
            }
        });
        Self {
            url,
            requests,
            connections,
        }
    }

    /// Requests answered (or being answered) so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn serve(mut stream: TcpStream, requests: &AtomicUsize) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut piece = [0u8; 4096];
            match stream.read(&mut piece) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&piece[..n]),
            }
            if buf.len() > 64 * 1024 {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_owned();
        let mut words = request_line.split(' ');
        let method = words.next().unwrap_or_default().to_owned();
        let target = words.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < end + length {
            let mut piece = [0u8; 4096];
            match stream.read(&mut piece) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&piece[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buf[end..end + length]).into_owned();
        buf.drain(..end + length);
        requests.fetch_add(1, Ordering::SeqCst);

        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        if path == "/slow" {
            let ms = query
                .strip_prefix("ms=")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            thread::sleep(Duration::from_millis(ms));
        }
        let (status, text) = match path.strip_prefix("/status/") {
            Some(code) => (code.parse().unwrap_or(500), format!("status {code}")),
            None => (
                200u16,
                serde_json::json!({
                    "method": method,
                    "target": target,
                    "headers": headers,
                    "body": body,
                })
                .to_string(),
            ),
        };
        let answer = format!(
            "HTTP/1.1 {status} Mirror\r\ncontent-type: application/json\r\nx-upstream: mirror\r\n\
             content-length: {}\r\n\r\n{}",
            if method == "HEAD" { 0 } else { text.len() },
            if method == "HEAD" { "" } else { text.as_str() }
        );
        if stream.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

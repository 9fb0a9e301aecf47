//! Server limits: slow senders cut off, idle connections closed, connections capped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use testkit::http::{get, Conn};
use testkit::Launch;

fn a_with(server: &str) -> testkit::Proc {
    Launch::new(
        env!("CARGO_BIN_EXE_service-a"),
        &format!("[server]\nport = 0\n{server}\n"),
    )
    .start()
}

/// Reads until the server closes; returns how long that took.
fn closed_after(mut stream: TcpStream) -> Duration {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
    started.elapsed()
}

/// A client that sends half a head and stops is cut off after header_timeout_ms.
#[test]
fn slow_header_senders_are_cut_off() {
    let a = a_with("header_timeout_ms = 200");
    let mut slow = TcpStream::connect(a.authority()).unwrap();
    slow.write_all(b"GET /echo?msg=x HTTP/1.1\r\nHost: a\r\n")
        .unwrap();
    let took = closed_after(slow);
    assert!(
        (Duration::from_millis(150)..Duration::from_secs(2)).contains(&took),
        "{took:?}"
    );
    assert_eq!(get(&format!("{}/health", a.url)).status, 200);
}

/// Past max_connections, new connections wait; they are served once one closes.
#[test]
fn extra_connections_wait_their_turn() {
    let a = a_with("max_connections = 1");
    let mut first = Conn::open(a.authority());
    assert_eq!(first.get("/health").status, 200);

    let url = format!("{}/echo?msg=second", a.url);
    let second = std::thread::spawn(move || get(&url));
    std::thread::sleep(Duration::from_millis(200));
    assert!(!second.is_finished(), "served beyond max_connections");

    drop(first);
    let reply = second.join().unwrap();
    assert_eq!(reply.body, r#"{"echo":"second"}"#);
}

/// A head larger than async-h1's 8 KiB limit is refused, and A keeps serving.
#[test]
fn oversized_heads_are_refused() {
    let a = a_with("");
    let big_header = format!(
        "GET /echo HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "y".repeat(200_000)
    );
    let many_headers = format!("GET /echo HTTP/1.1\r\n{}\r\n", "X-A: 1\r\n".repeat(5000));
    for head in [big_header, many_headers] {
        let answer = testkit::http::raw(a.authority(), head.as_bytes()).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 2"));
    }
    assert_eq!(get(&format!("{}/health", a.url)).status, 200);
}

/// A stdout nobody reads (a full pipe) never blocks requests: lines beyond the
/// queue are dropped and their number logged once the reader catches up.
#[test]
fn stalled_stdout_never_blocks_requests() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let dir = std::env::temp_dir().join(format!("stalled-stdout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("a.toml");
    std::fs::write(&config, "[server]\nport = 0\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_service-a"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut start = String::new();
    out.read_line(&mut start).unwrap();
    let url = testkit::field(start.trim_end(), "url").unwrap();

    // Far more bytes of lines than a pipe holds (64 KiB) plus the queue
    // (4 MiB): 20 000 lines of about 400 bytes (a 404 logs its 256-byte path).
    let authority = url.trim_start_matches("http://").to_owned();
    let started = Instant::now();
    let mut conn = Conn::open(&authority);
    let path = format!("/{}", "p".repeat(255));
    for _ in 0..20_000 {
        assert_eq!(conn.get(&path).status, 404);
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );

    // Now read: the drop is reported.
    let reader = std::thread::spawn(move || {
        out.lines()
            .map_while(Result::ok)
            .any(|l| l.contains("event=log_dropped"))
    });
    for _ in 0..10 {
        conn.get("/health");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(reader.join().unwrap(), "no event=log_dropped line");
    std::fs::remove_dir_all(dir).ok();
}

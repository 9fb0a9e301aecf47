//! The lab console end to end: `cargo lab up` on free ports in a folder of
//! its own (so A's file there is the one the console edits), driven from
//! outside: by strangers without the token, and by a real headless browser.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::fake::free_port;
use testkit::http::{get, parse, raw, request};

mod common;

/// `cargo lab up`, its output waited on by content, stopped with `quit`.
struct Lab {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    dir: tempfile::TempDir,
    b_port: u16,
    /// `127.0.0.1:PORT` of the console.
    console: String,
    /// The printed URL, token and all.
    url: String,
    token: String,
}

impl Lab {
    /// Starts `lab up` with the shipped configs copied into a fresh folder.
    fn start() -> Self {
        let (a_port, b_port) = (free_port(), free_port());
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir(&config).unwrap();
        let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config");
        for file in ["service-a.toml", "service-b.toml"] {
            std::fs::copy(shipped.join(file), config.join(file)).unwrap();
        }
        let mut child = common::lab_up(dir.path(), a_port, b_port)
            .args(["--console-port", "0"])
            .stderr(Stdio::null())
            .spawn()
            .expect("start lab up");
        let stdin = child.stdin.take().unwrap();
        let lines = common::lines(child.stdout.take().unwrap());
        let mut lab = Lab {
            child,
            stdin,
            lines,
            seen: Vec::new(),
            dir,
            b_port,
            console: String::new(),
            url: String::new(),
            token: String::new(),
        };
        let line = lab.wait(&["lab | console: open http://127.0.0.1:"]);
        lab.url = line.split("open ").nth(1).unwrap().to_owned();
        let rest = lab.url.strip_prefix("http://").unwrap();
        lab.console = rest.split('/').next().unwrap().to_owned();
        lab.token = lab.url.split("token=").nth(1).unwrap().to_owned();
        lab.wait(&["A | ", "event=start"]);
        lab.wait(&["B | ", "event=start"]);
        lab
    }

    /// Waits for a line (printed at any time so far) containing every part.
    fn wait(&mut self, parts: &[&str]) -> String {
        let matches = |l: &String| parts.iter().all(|p| l.contains(p));
        if let Some(line) = self.seen.iter().find(|l| matches(l)) {
            return line.clone();
        }
        let deadline = Instant::now() + testkit::PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {parts:?} in {:#?}", self.seen),
            }
        }
    }

    /// Every line printed so far.
    fn printed(&mut self) -> Vec<String> {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.clone()
    }

    fn a_file(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("config/service-a.toml")).unwrap()
    }

    fn api(&self, method: &str, target: &str, headers: &[(&str, &str)]) -> testkit::http::Reply {
        request(method, &format!("http://{}{target}", self.console), headers)
    }
}

impl Drop for Lab {
    /// `quit`, as a student would; killed if it does not exit in time.
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let deadline = Instant::now() + testkit::PATIENCE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request that must be refused: method, target, headers, and the words
/// of the refusal.
type Attempt<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, &'a str);

/// Nobody without the run's token, and no page of another origin, changes
/// anything: each is a 403 with a line in the lab's output, A's file keeps
/// its bytes, A keeps running without faults, and no answer carries a CORS
/// header. The same write with the token from the console's own origin
/// does change the file (so the refusals are not a broken route).
#[test]
fn strangers_change_nothing() {
    let mut lab = Lab::start();
    let before = lab.a_file();
    let cookie = format!(
        "lab_console_{}={}",
        lab.console.split(':').nth(1).unwrap(),
        lab.token
    );
    let ours = format!("http://{}", lab.console);
    let evil = "http://evil.example";

    // Arrange / Act: every way in that must fail.
    let attempts: Vec<Attempt<'_>> = vec![
        ("GET", "/".into(), vec![], "no token"),
        (
            "GET",
            "/?token=0123456789abcdef0123456789abcdef".into(),
            vec![],
            "wrong token",
        ),
        (
            "GET",
            "/api/fault".into(),
            vec![("x-lab-token", "nope")],
            "wrong token",
        ),
        (
            "POST",
            "/api/fault?delay_ms=1500".into(),
            vec![
                ("cookie", &cookie),
                ("origin", evil),
                ("sec-fetch-site", "cross-site"),
            ],
            "another origin",
        ),
        (
            "POST",
            "/api/service?name=a&action=stop".into(),
            vec![("cookie", &cookie), ("origin", evil)],
            "another origin",
        ),
        (
            "POST",
            "/api/load?rate=50".into(),
            vec![
                ("cookie", &cookie),
                ("origin", &ours),
                ("sec-fetch-site", "cross-site"),
            ],
            "another site",
        ),
        (
            "POST",
            "/api/fault?delay_ms=1500".into(),
            vec![("cookie", &cookie)],
            "no Origin",
        ),
        (
            "POST",
            "/api/service?name=a&action=stop".into(),
            vec![],
            "no Origin",
        ),
        (
            "POST",
            format!("/api/fault?delay_ms=1500&token={}", lab.token),
            vec![("origin", &ours)],
            "token in its URL",
        ),
    ];
    for (method, target, headers, why) in &attempts {
        let reply = lab.api(method, target, headers);
        // Assert
        assert_eq!(reply.status, 403, "{method} {target}: {}", reply.body);
        assert!(reply.header("access-control-allow-origin").is_none());
        let path = target.split('?').next().unwrap();
        lab.wait(&[&format!("lab | console: refused {method} {path}"), why]);
    }
    // A Host that is not the console's (DNS rebinding), even with the token.
    let head = format!(
        "GET /api/fault HTTP/1.1\r\nHost: evil.example:{}\r\nx-lab-token: {}\r\nConnection: close\r\n\r\n",
        lab.console.split(':').nth(1).unwrap(),
        lab.token
    );
    let reply = parse(&raw(&lab.console, head.as_bytes()).unwrap(), Duration::ZERO);
    assert_eq!(reply.status, 403);
    lab.wait(&["refused GET /api/fault", "not this console's address"]);

    assert_eq!(lab.a_file(), before, "a refused request changed A's file");
    let call = get(&format!("http://127.0.0.1:{}/call-echo?msg=hi", lab.b_port));
    assert_eq!(call.status, 200, "A was stopped or broken: {}", call.body);
    let printed = lab.printed();
    assert!(
        !printed.iter().any(|l| l.contains("console: typed")
            || l.contains("console: wrote")
            || l.contains("steady load")),
        "{printed:#?}"
    );

    // The control: the same write from the console's own origin works.
    let ok = lab.api(
        "POST",
        "/api/fault?delay_ms=20",
        &[
            ("cookie", &cookie),
            ("origin", &ours),
            ("sec-fetch-site", "same-origin"),
        ],
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(lab.a_file().contains("delay_ms = 20 "));
    lab.wait(&["A | ", "event=config_reloaded", "delay_ms=20 "]);
}

/// The printed URL sets a strict cookie and sends the browser to `/` (the
/// token leaves the address bar); the page and its files come with the
/// cookie alone.
#[test]
fn printed_url_opens_the_page() {
    let lab = Lab::start();
    let first = get(&lab.url);
    assert_eq!(first.status, 303);
    assert_eq!(first.header("location"), Some("/"));
    let set = first.header("set-cookie").unwrap().to_owned();
    assert!(
        set.contains("SameSite=Strict") && set.contains("HttpOnly"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let page = lab.api("GET", "/", &[("cookie", &cookie)]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<title>Lab console</title>"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    for file in ["/console.js", "/console.css"] {
        let reply = lab.api("GET", file, &[("cookie", &cookie)]);
        assert_eq!(reply.status, 200, "{file}");
    }
}

/// The console reads the real services' lines: one call through the page's
/// API answers with B's KIND and both services' lines for its trace, and the
/// event stream tells of A running, B's deadline, and the call, counted.
#[test]
fn one_call_and_the_stream_read_the_real_lines() {
    let lab = Lab::start();
    let token = [("x-lab-token", lab.token.as_str())];
    let origin = format!("http://{}", lab.console);
    let write = [
        ("x-lab-token", lab.token.as_str()),
        ("origin", origin.as_str()),
    ];

    let call = lab.api("POST", "/api/call", &write).json();
    assert_eq!(call["kind"], "ok", "{call}");
    let trace = call["trace_id"].as_str().unwrap();
    for side in ["b_line", "a_line"] {
        let line = call[side]
            .as_str()
            .unwrap_or_else(|| panic!("no {side}: {call}"));
        assert!(line.contains(&format!("trace_id={trace}")), "{line}");
    }

    let event = first_event(&lab.console, &token);
    assert_eq!(event["live"]["a"]["state"], "running", "{event}");
    assert_eq!(event["deadline_ms"], 1000);
    let seconds = event["live"]["seconds"].as_array().unwrap();
    assert_eq!(seconds.len(), 60);
    let oks: u64 = seconds
        .iter()
        .filter_map(|s| s["counts"]["ok"].as_u64())
        .sum();
    assert_eq!(oks, 1, "{event}");
    assert_eq!(event["live"]["rows"][0]["trace_id"], trace);
    let kinds: Vec<&str> = event["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert!(
        kinds.starts_with(&["ok", "timeout", "connection_refused"]),
        "{kinds:?}"
    );
}

/// Sockets that send nothing and a pile of event streams cannot lock the
/// page's user out: with 40 idle connections and 40 event streams held, a
/// request with the token answers within the head timeout (2 s); streams
/// past the cap are answered 503 and the refusal is said.
#[test]
fn idle_sockets_and_streams_do_not_lock_it_out() {
    use std::io::Read as _;
    let mut lab = Lab::start();
    // Arrange: idle sockets first (they took every slot before), then streams.
    let idle: Vec<std::net::TcpStream> = (0..40)
        .map(|_| std::net::TcpStream::connect(&lab.console).unwrap())
        .collect();
    let head = format!(
        "GET /api/events HTTP/1.1\r\nHost: {}\r\nx-lab-token: {}\r\n\r\n",
        lab.console, lab.token
    );
    let mut streams: Vec<std::net::TcpStream> = (0..40)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&lab.console).unwrap();
            s.write_all(head.as_bytes()).unwrap();
            s
        })
        .collect();

    // Act
    let asked = Instant::now();
    let reply = lab.api("GET", "/api/fault", &[("x-lab-token", &lab.token)]);
    let took = asked.elapsed();

    // Assert
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        took < Duration::from_secs(2),
        "the page's request took {took:?}"
    );
    let mut statuses = Vec::new();
    for s in &mut streams {
        s.set_read_timeout(Some(testkit::PATIENCE)).unwrap();
        let mut first = [0u8; 12];
        s.read_exact(&mut first).expect("a status line");
        statuses.push(String::from_utf8_lossy(&first[9..12]).into_owned());
    }
    // A refused stream's connection is closed at once, not kept for the
    // head timeout (a flood of them would hold every slot).
    for (s, status) in streams.iter_mut().zip(&statuses) {
        if status == "503" {
            s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            let mut rest = Vec::new();
            s.read_to_end(&mut rest)
                .expect("a refused stream closed within 1 s");
        }
    }
    let served = statuses.iter().filter(|s| *s == "200").count();
    let refused = statuses.iter().filter(|s| *s == "503").count();
    assert_eq!((served, refused), (8, 32), "{statuses:?}");
    lab.wait(&["lab | console: refused an event stream", "8 are open"]);
    drop(idle);
}

/// The first Server-Sent Event of `/api/events`, its chunked framing undone.
fn first_event(console: &str, headers: &[(&str, &str)]) -> Value {
    use std::io::Read as _;
    let mut stream = std::net::TcpStream::connect(console).unwrap();
    stream.set_read_timeout(Some(testkit::PATIENCE)).unwrap();
    let mut head = format!("GET /api/events HTTP/1.1\r\nHost: {console}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).expect("an event within PATIENCE");
        assert!(
            n > 0,
            "the stream closed: {}",
            String::from_utf8_lossy(&bytes)
        );
        bytes.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let Some((head, mut rest)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        assert!(head.contains("text/event-stream"), "{head}");
        // Chunks: a hex size line, that many bytes, CRLF.
        let mut body = String::new();
        while let Some((size, after)) = rest.split_once("\r\n") {
            let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
                break;
            };
            if after.len() < size + 2 {
                break;
            }
            body.push_str(&after[..size]);
            rest = &after[size + 2..];
        }
        if let Some(end) = body.find("\n\n") {
            let data = body[..end].strip_prefix("data: ").expect("a data: line");
            return serde_json::from_str(data).unwrap();
        }
    }
}

// ---- a real browser, through WebDriver

/// A tiny WebDriver client (W3C protocol: JSON over HTTP) for chromedriver.
struct Browser {
    driver: Child,
    addr: String,
    session: String,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session.
    fn start() -> Self {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian: apt-get install chromium chromium-driver)");
        let addr = format!("127.0.0.1:{port}");
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
        };
        let deadline = Instant::now() + testkit::PATIENCE;
        let status = format!("GET /status HTTP/1.1\r\nHost: {}\r\n\r\n", browser.addr);
        while exchange(&browser.addr, status.as_bytes()).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1200", "--force-device-scale-factor=1"
            ]}
        }}});
        let created = browser.call("POST", "/session", Some(caps));
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        browser
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        let reply = exchange(&self.addr, head.as_bytes()).expect("WebDriver");
        let json = reply.json();
        assert!(reply.status < 300, "WebDriver {method} {path}: {json}");
        json["value"].clone()
    }

    fn session(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    fn open(&self, url: &str) {
        self.session("POST", "/url", Some(json!({ "url": url })));
    }

    fn find(&self, css: &str) -> String {
        let found = self.session(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no {css}"))
            .to_owned()
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.session("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// Types `text` into the input `css`, replacing what it held.
    fn fill(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.session("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.session(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn eval(&self, script: &str) -> Value {
        self.session(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Waits until `script` returns a truthy value; returns it and how long it took.
    fn until(&self, what: &str, within: Duration, script: &str) -> (Value, Duration) {
        let started = Instant::now();
        loop {
            let v = self.eval(script);
            if !(v.is_null() || v == json!(false) || v == json!("")) {
                return (v, started.elapsed());
            }
            if started.elapsed() > within {
                let page = self.eval("return document.body.innerText");
                panic!(
                    "not within {within:?}: {what}\n{}",
                    page.as_str().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&self) -> Vec<u8> {
        let b64 = self.session("GET", "/screenshot", None);
        base64_decode(b64.as_str().expect("screenshot"))
    }
}

impl Drop for Browser {
    /// Ends the session, which closes Chromium (killing chromedriver alone
    /// would leave it running), then stops chromedriver.
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // chromedriver refuses a Host that is not its own address.
            let delete = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {}\r\n\r\n",
                self.session, self.addr
            );
            let _ = exchange(&self.addr, delete.as_bytes());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// One request to chromedriver, its answer read by its Content-Length
/// (chromedriver keeps connections open whatever `Connection` says).
fn exchange(addr: &str, request: &[u8]) -> std::io::Result<testkit::http::Reply> {
    use std::io::Read as _;
    let mut stream = std::net::TcpStream::connect(addr)?;
    // Starting a browser on a busy machine can take a while.
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.write_all(request)?;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&bytes);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok());
            if length.is_some_and(|len| body.len() >= len) {
                break;
            }
        }
    }
    Ok(parse(&bytes, Duration::ZERO))
}

fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .map(value)
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, v)| acc | (u32::from(*v) << (18 - 6 * i)));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// A few seconds, as the issue says: B's 1 s deadline, the page's quarter
/// second tick, and the log writers' gathering fit in it many times over.
const FEW_SECONDS: Duration = Duration::from_secs(5);

/// The "Done when", in a real headless Chromium: open the printed
/// URL, apply delay_ms = 1500 from the page, switch the load on, see
/// `timeout` in the live view; stop A from the page, see
/// `connection_refused`; start A again, see `ok`. The screenshot is taken
/// in the middle, into the test's tmp dir; with `LAB_CONSOLE_SCREENSHOT=PATH`
/// there instead, after a few seconds of each phase (docs/console.md's picture).
#[test]
#[ignore = "needs chromium and chromium-driver"]
fn browser_breaks_a_and_watches_b() {
    let shot = std::env::var_os("LAB_CONSOLE_SCREENSHOT").map(PathBuf::from);
    // How long each phase lasts before the next: for docs/console.md's picture only.
    let dwell = |s| {
        if shot.is_some() {
            std::thread::sleep(Duration::from_secs(s));
        }
    };
    let mut lab = Lab::start();
    let browser = Browser::start();
    browser.open(&lab.url);
    browser.until(
        "A running",
        FEW_SECONDS,
        "return document.querySelector('#a-state').textContent === 'running'",
    );

    // Break A: delay_ms = 1500 from the form; A says it reloaded.
    browser.until(
        "the form filled from A's file",
        FEW_SECONDS,
        "return document.querySelector('#delay_ms').value === '0'",
    );
    browser.fill("#delay_ms", "1500");
    browser.click("#apply");
    lab.wait(&["A | ", "event=config_reloaded", "delay_ms=1500"]);
    assert!(
        lab.a_file().contains("delay_ms = 1500 "),
        "{}",
        lab.a_file()
    );
    browser.until(
        "A's config_reloaded on the page",
        FEW_SECONDS,
        "return document.querySelector('#fault-said').textContent.includes('config_reloaded: delay_ms=1500')",
    );

    // Load on: timeouts appear.
    browser.fill("#rate", "20");
    browser.click("#load");
    let (_, took) = browser.until(
        "a timeout row",
        FEW_SECONDS,
        "return document.querySelector('#rows tr[data-kind=timeout]')",
    );
    eprintln!("timeout seen {took:?} after the load was switched on");
    dwell(6);

    // Mend A with "No faults" (every field back to the defaults the server
    // gives), then stop A: connection_refused, and its exit status.
    browser.click("#clear");
    lab.wait(&["A | ", "event=config_reloaded", "delay_ms=0 "]);
    browser.until(
        "the form at the shipped defaults",
        FEW_SECONDS,
        "return ['#delay_ms', '#fail_status', '#probability'].map((s) => document.querySelector(s).value).join() === '0,500,1'",
    );
    dwell(5);
    browser.click("#a-stop");
    let (_, took) = browser.until(
        "a connection_refused row",
        FEW_SECONDS,
        "return document.querySelector('#rows tr[data-kind=connection_refused]')",
    );
    eprintln!("connection_refused seen {took:?} after A's stop");
    browser.until(
        "A stopped, with its exit",
        FEW_SECONDS,
        "return document.querySelector('#a-exit').textContent.includes('exit')",
    );
    dwell(5);
    let shot =
        shot.unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console.png"));
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
    std::fs::write(&shot, png).unwrap();
    eprintln!("screenshot: {}", shot.display());

    // Start A again: ok is the newest row.
    browser.click("#a-start");
    lab.wait(&["A | ", "event=start"]);
    let (_, took) = browser.until(
        "ok as the newest row",
        FEW_SECONDS,
        "return document.querySelector('#rows tbody tr:first-child[data-kind=ok]')",
    );
    eprintln!("ok seen {took:?} after A's start");

    // One call: B's answer and both lines.
    browser.click("#load");
    browser.click("#call");
    browser.until(
        "the one call's answer with both lines",
        FEW_SECONDS,
        "const t = document.querySelector('#answer').textContent; return t.includes('B answered 200: ok') && t.includes('endpoint=/echo')",
    );
    lab.wait(&["lab | console: steady load: 0 calls a second"]);
}

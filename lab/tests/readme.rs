//! The README's walk-through, run: its commands against the real binaries,
//! its console blocks compared with what they print now, so the README
//! cannot drift from the build. The walk-through goes on in
//! `docs/faults.md` (every `x-fault-*` header through B), whose checked
//! block runs after the README's, against the same A and B.
//!
//! Blocks under a `<!-- readme-test: ACTIONS -->` comment are checked after
//! doing ACTIONS (`set KEY = VALUE` in A's `[fault]`, `stop A`, `start A`;
//! several separated by `;`). A `console` block's `$ curl ...` lines are run
//! (with `localhost:8080/8081` pointed at this test's ports) and their output
//! compared: bodies exactly, `%{http_code} in %{time_total}s` by status and
//! time. A `text` block of log lines is compared field by field (`service`,
//! `endpoint` or `event`, `status`, `http_status`, `error`) with the lines the
//! services printed for the last call or action, A's and B's paired by
//! `trace_id`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use testkit::fake::free_port;
use testkit::http::{parse, raw};
use testkit::{binary, field, Launch, Proc};

/// One checked block: what to do first, its language and its lines.
#[derive(Debug)]
struct Block {
    actions: Vec<String>,
    lang: String,
    lines: Vec<String>,
}

fn blocks(readme: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut rest = readme;
    while let Some(at) = rest.find("<!-- readme-test") {
        rest = &rest[at + "<!-- readme-test".len()..];
        let end = rest.find("-->").expect("closed comment");
        let actions = rest[..end]
            .trim()
            .trim_start_matches(':')
            .split(';')
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect();
        let fence = rest.find("```").expect("a block after the comment");
        rest = &rest[fence + 3..];
        let (lang, body) = rest.split_once('\n').unwrap();
        let close = body.find("\n```").expect("closed block");
        out.push(Block {
            actions,
            lang: lang.trim().to_owned(),
            lines: body[..close].lines().map(str::to_owned).collect(),
        });
        rest = &body[close + 4..];
    }
    out
}

/// Shell words, with '...' and "..." quoting as the README's commands use it.
fn words(command: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut any = false;
    for c in command.chars() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, ' ') => {
                if any {
                    out.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            (_, c) => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(word);
    }
    out
}

/// The lab as the README's reader has it: A and B with the repo's configs
/// (copied, so the test can edit A's as the reader does), on free ports.
struct Lab {
    a: Option<Proc>,
    b: Proc,
    a_port: u16,
    b_port: u16,
    a_config: PathBuf,
    /// Line counts when the last call or action began: its lines come after.
    a_from: usize,
    b_from: usize,
    _dir: tempfile::TempDir,
}

impl Lab {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let a_config = dir.path().join("service-a.toml");
        let b_config = dir.path().join("service-b.toml");
        std::fs::copy(repo.join("config/service-a.toml"), &a_config).unwrap();
        std::fs::copy(repo.join("config/service-b.toml"), &b_config).unwrap();
        let (a_port, b_port) = (free_port(), free_port());
        let a = Self::launch_a(&a_config, a_port);
        let b = Launch::new(binary("service-b"), "")
            .config_file(&b_config)
            .env("SERVICE_B_SERVER__PORT", &b_port.to_string())
            .env(
                "SERVICE_B_UPSTREAM__URL",
                &format!("http://127.0.0.1:{a_port}"),
            )
            .start();
        Self {
            a: Some(a),
            b,
            a_port,
            b_port,
            a_config,
            a_from: 0,
            b_from: 0,
            _dir: dir,
        }
    }

    fn launch_a(config: &Path, port: u16) -> Proc {
        Launch::new(binary("service-a"), "")
            .config_file(config)
            .env("SERVICE_A_SERVER__PORT", &port.to_string())
            .start()
    }

    fn a(&self) -> &Proc {
        self.a.as_ref().expect("A is running")
    }

    fn mark(&mut self) {
        self.a_from = self.a.as_ref().map_or(0, Proc::line_count);
        self.b_from = self.b.line_count();
    }

    fn act(&mut self, action: &str) {
        if let Some(setting) = action.strip_prefix("set ") {
            let (key, value) = setting.split_once(" = ").expect("set KEY = VALUE");
            let text = std::fs::read_to_string(&self.a_config).unwrap();
            let mut found = false;
            let edited: Vec<String> = text
                .lines()
                .map(|l| match l.strip_prefix(&format!("{key} = ")) {
                    // Keep the comment after the value, as an editor would.
                    Some(old) if !found => {
                        found = true;
                        let comment = old.find('#').map_or("", |i| &old[i..]);
                        format!("{key} = {value}    {comment}")
                    }
                    _ => l.to_owned(),
                })
                .collect();
            assert!(found, "no `{key} = ` line in config/service-a.toml");
            self.mark();
            std::fs::write(&self.a_config, edited.join("\n") + "\n").unwrap();
            let from = self.a_from;
            self.a().wait_line_after(from, &["event=config_"]);
        } else if action == "stop A" {
            let mut a = self.a.take().expect("A runs");
            a.terminate();
            a.wait_exit();
        } else if action == "start A" {
            self.a = Some(Self::launch_a(&self.a_config, self.a_port));
        } else if action != "logs" {
            panic!("unknown action {action:?}");
        }
    }

    /// Runs one `curl` command line as curl would, returning what it prints.
    fn curl(&mut self, command: &str) -> String {
        let words = words(command);
        assert_eq!(words[0], "curl", "{command}");
        let (mut headers, mut format, mut url) = (Vec::new(), None, None);
        let mut it = words[1..].iter();
        while let Some(w) = it.next() {
            match w.as_str() {
                "-s" => {}
                "-H" => headers.push(it.next().expect("-H value").clone()),
                "-w" => format = Some(it.next().expect("-w value").clone()),
                u if !u.starts_with('-') => url = Some(u.to_owned()),
                other => panic!("the README test's curl knows no {other}"),
            }
        }
        let url = url.expect("a URL");
        let target = url.find('/').map_or("/", |i| &url[i..]);
        let mut head = format!(
            "GET {target} HTTP/1.1\r\nHost: localhost:{}\r\nUser-Agent: curl/8\r\nAccept: */*\r\nConnection: close\r\n",
            self.b_port
        );
        for h in &headers {
            head.push_str(h);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        assert!(url.starts_with("localhost:8081"), "{url}");
        self.mark();
        let started = Instant::now();
        let bytes = raw(&format!("127.0.0.1:{}", self.b_port), head.as_bytes()).expect("B answers");
        let reply = parse(&bytes, started.elapsed());
        let mut out = reply
            .body
            .replace(&format!("127.0.0.1:{}", self.a_port), "127.0.0.1:8080");
        if let Some(f) = format {
            out.push_str(
                &f.replace("\\n", "\n")
                    .replace("%{http_code}", &reply.status.to_string())
                    .replace(
                        "%{time_total}",
                        &format!("{:.6}", reply.elapsed.as_secs_f64()),
                    ),
            );
        } else {
            out.push('\n');
        }
        out
    }

    /// The actual line for an expected one: the same service and endpoint (of
    /// the last call) or event (since the last action).
    fn actual_line(&self, expected: &str) -> String {
        let service = field(&format!(" {expected}"), "service").expect("service=");
        let proc_ = if service == "A" { self.a() } else { &self.b };
        let from = if service == "A" {
            self.a_from
        } else {
            self.b_from
        };
        let key = if expected.contains(" endpoint=") {
            "endpoint"
        } else {
            "event"
        };
        let value = field(&format!(" {expected}"), key).expect("endpoint= or event=");
        proc_.wait_line_after(
            from,
            &[&format!("service={service} "), &format!(" {key}={value}")],
        )
    }
}

/// Compares what the page shows with what the build prints.
fn same_output(expected: &str, actual: &str) {
    let (exp, act): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    assert_eq!(
        exp.len(),
        act.len(),
        "the page shows\n{expected}\nthe build prints\n{actual}"
    );
    for (e, a) in exp.iter().zip(&act) {
        let timed = |l: &str| {
            let (code, time) = l.split_once(" in ")?;
            Some((
                code.to_owned(),
                time.strip_suffix('s')?.parse::<f64>().ok()?,
            ))
        };
        match (timed(e), timed(a)) {
            (Some((ec, et)), Some((ac, at))) => {
                assert_eq!(ec, ac, "status: page {e:?}, build {a:?}");
                // A deadline shows as itself; anything quick stays quick.
                if et >= 0.5 {
                    assert!(
                        (et - 0.05..et + 0.1).contains(&at),
                        "time: page {e:?}, build {a:?}"
                    );
                } else {
                    assert!(at < 0.25, "time: page {e:?}, build {a:?}");
                }
            }
            _ => assert_eq!(
                e, a,
                "the page shows\n{expected}\nthe build prints\n{actual}"
            ),
        }
    }
}

/// The pages whose checked blocks make the walk-through, in the order they
/// run, each with the fewest checked blocks it holds (so a block whose
/// comment was lost is missed, not skipped).
const WALK: [(&str, usize); 2] = [("README.md", 7), ("docs/faults.md", 1)];

/// The README's walk-through, run against the real binaries: each checked
/// block prints what the page shows (statuses, bodies, KINDs, timings, the
/// log lines' status fields, A and B paired by trace_id).
#[test]
fn readme_walk_through_matches_the_build() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut all = Vec::new();
    for (page, fewest) in WALK {
        let text = std::fs::read_to_string(repo.join(page)).unwrap();
        let found = blocks(&text);
        assert!(
            found.len() >= fewest,
            "{page}'s checked blocks, {fewest} at least: {found:#?}"
        );
        all.extend(found);
    }
    let mut lab = Lab::start();
    let mut ran = 0;
    for block in &all {
        for action in &block.actions {
            lab.act(action);
        }
        match block.lang.as_str() {
            "console" => {
                let mut i = 0;
                while i < block.lines.len() {
                    let command = block.lines[i].strip_prefix("$ ").expect("a $ command");
                    let end = block.lines[i + 1..]
                        .iter()
                        .position(|l| l.starts_with("$ "))
                        .map_or(block.lines.len(), |p| i + 1 + p);
                    let expected = block.lines[i + 1..end].join("\n");
                    let actual = lab.curl(command);
                    same_output(&expected, &actual);
                    ran += 1;
                    i = end;
                }
            }
            "text" => {
                let mut traces = Vec::new();
                for expected in &block.lines {
                    let actual = lab.actual_line(expected);
                    let fields = [
                        "service",
                        "endpoint",
                        "event",
                        "status",
                        "http_status",
                        "error",
                    ];
                    for key in fields {
                        let want = field(&format!(" {expected}"), key);
                        let got = field(&format!(" {actual}"), key).map(|v| {
                            v.replace(&lab.a_config.display().to_string(), "config/service-a.toml")
                        });
                        assert_eq!(want, got, "{key}: page\n{expected}\nbuild\n{actual}");
                    }
                    if expected.contains(" endpoint=") {
                        traces.push(field(&actual, "trace_id").expect("trace_id"));
                    }
                    ran += 1;
                }
                traces.dedup();
                assert!(
                    traces.len() <= 1,
                    "one call's lines share a trace_id: {traces:?}"
                );
            }
            other => panic!("a checked block must be console or text, not {other}"),
        }
    }
    assert!(ran >= 20, "{ran} commands and lines checked");
}

//! The Windows build, run under Wine: the `.exe`s that `bash .ci/cross
//! windows` cross-builds (with the stub DLL Wine 8 needs beside them), driven
//! as a student on Windows would, through `lab.exe up` and its TOML files.
//!
//! Ignored by `cargo test --workspace` (it needs Wine and those `.exe`s);
//! `.ci/run` builds them and runs it with `--ignored`. Where it looks:
//! `LAB_WINDOWS_BIN` (default `target/cross/x86_64-pc-windows-gnu/debug`),
//! `WINE` (default `wine64` on the PATH, else Debian's `/usr/lib/wine/wine64`)
//! and `WINEPREFIX` (default `target/cross/wine-prefix`).

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use testkit::fake::free_port;
use testkit::http::get;

/// Wine starts a process in about a second on this machine, much more the
/// first time in a prefix: each wait on the launcher allows this much.
const WINE_PATIENCE: Duration = Duration::from_secs(60);

/// One test at a time in the Wine prefix: each ends with `wineserver -k`,
/// which ends every process of the prefix, the other test's too.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Where the Windows build and Wine are.
struct Windows {
    bin: PathBuf,
    wine: PathBuf,
    wineserver: PathBuf,
    prefix: PathBuf,
}

impl Windows {
    /// Finds them; panics with what to run if the build is not there.
    fn find() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let bin = std::env::var_os("LAB_WINDOWS_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/cross/x86_64-pc-windows-gnu/debug"));
        for exe in [
            "lab.exe",
            "service-a.exe",
            "service-b.exe",
            "bcryptprimitives.dll",
        ] {
            assert!(
                bin.join(exe).exists(),
                "{} is missing: `bash .ci/cross windows` builds it",
                bin.join(exe).display()
            );
        }
        let wine = std::env::var_os("WINE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let on_path = Command::new("wine64").arg("--version").output().is_ok();
                PathBuf::from(if on_path {
                    "wine64"
                } else {
                    "/usr/lib/wine/wine64"
                })
            });
        let wineserver = wine.with_file_name("wineserver");
        let prefix = std::env::var_os("WINEPREFIX")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/cross/wine-prefix"));
        Self {
            bin,
            wine,
            wineserver,
            prefix,
        }
    }

    /// `wine lab.exe ARGS` in `dir`, quiet, with the lab's build step off.
    fn lab(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.wine);
        cmd.arg(self.bin.join("lab.exe"))
            .args(args)
            .current_dir(dir)
            .env("LAB_NO_BUILD", "1")
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all");
        cmd
    }

    /// Ends every process of this Wine prefix (a launcher and its services).
    fn end_all(&self) {
        let _ = Command::new(&self.wineserver)
            .arg("-k")
            .env("WINEPREFIX", &self.prefix)
            .status();
    }
}

/// `lab.exe up` under Wine, and its output line by line.
struct Lab {
    child: Child,
    windows: Windows,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    from: usize,
}

impl Lab {
    fn start(dir: &Path) -> Self {
        let windows = Windows::find();
        let mut child = windows
            .lab(dir, &["up"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", windows.wine.display()));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line.trim_end_matches('\r').to_owned());
            }
        });
        Self {
            child,
            windows,
            lines,
            seen: Vec::new(),
            from: 0,
        }
    }

    /// Types a command, as a student would; lines before it are not waited on.
    fn type_line(&mut self, line: &str) {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        self.from = self.seen.len();
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for a line since the last command that contains every one of
    /// `parts`.
    fn wait(&mut self, parts: &[&str]) -> String {
        self.wait_any(&[parts])
    }

    /// Waits for a line since the last command that matches one of
    /// `choices` (each: every part in it).
    fn wait_any(&mut self, choices: &[&[&str]]) -> String {
        let matches = |l: &String| choices.iter().any(|c| c.iter().all(|p| l.contains(p)));
        if let Some(line) = self.seen[self.from..].iter().find(|l| matches(l)) {
            return line.clone();
        }
        let deadline = Instant::now() + WINE_PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    eprintln!("{line}");
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {choices:?} in {:#?}", self.seen),
            }
        }
    }
}

impl Drop for Lab {
    /// Whatever happened, nothing is left running: `wineserver -k` ends
    /// every process of this Wine prefix (the launcher and both services).
    fn drop(&mut self) {
        self.windows.end_all();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// On Windows (Wine 8 here): A and B start from their TOML files under
/// `lab.exe up`; B's success proof; the 1 s timeout after A's `delay_ms` is
/// edited (hot reload); `a stop` stops A (gracefully by Ctrl+Break where Wine
/// delivers it, else killed, and the lab says which) and B answers
/// `connection_refused`; `quit` ends everything.
#[test]
#[ignore = "needs wine and the .exe's that `bash .ci/cross windows` builds"]
fn windows_exes_under_wine_answer_time_out_refuse_and_stop() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // Arrange: the course's two TOML files, on free ports.
    let (a_port, b_port) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).unwrap();
    let a_toml = config.join("service-a.toml");
    std::fs::write(&a_toml, format!("[server]\nport = {a_port}\n")).unwrap();
    std::fs::write(
        config.join("service-b.toml"),
        format!("[server]\nport = {b_port}\n\n[upstream]\nurl = \"http://127.0.0.1:{a_port}\"\n"),
    )
    .unwrap();
    let mut lab = Lab::start(dir.path());
    lab.wait(&[
        "A | ",
        "event=start",
        &format!(":{a_port}"),
        "service-a.toml",
    ]);
    lab.wait(&[
        "B | ",
        "event=start",
        &format!(":{b_port}"),
        "service-b.toml",
    ]);
    let call = format!("http://127.0.0.1:{b_port}/call-echo?msg=hello");

    // The success proof.
    let ok = get(&call);
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        ok.json(),
        serde_json::json!({"service_a": {"echo": "hello"}, "service_b": "ok"})
    );

    // The timeout: A's delay_ms edited in its file, B gives up at 1 s.
    lab.type_line("status");
    std::fs::write(
        &a_toml,
        format!("[server]\nport = {a_port}\n\n[fault]\ndelay_ms = 1500\n"),
    )
    .unwrap();
    lab.wait(&["A | ", "event=config_reloaded", "delay_ms=1500"]);
    let asked = Instant::now();
    let late = get(&call);
    let took = asked.elapsed();
    assert_eq!(late.status, 503, "{}", late.body);
    assert_eq!(late.json()["error"], "timeout");
    assert_eq!(late.json()["http_status"], 504);
    let line = lab.wait(&["B | ", "error=timeout"]);
    let latency: u64 = testkit::field(&line, "latency_ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!((1000..=1050).contains(&latency), "{line}");
    assert!(took >= Duration::from_secs(1), "answered after {took:?}");

    // A stopped: gracefully if Wine delivers Ctrl+Break, else killed, and
    // the lab says which. Then B answers connection_refused.
    lab.type_line("a stop");
    let how = lab.wait_any(&[&["lab | stopping A (Ctrl+Break)"], &["lab | A (killed"]]);
    let exited = lab.wait(&["lab | A exited"]);
    if how.contains("stopping A") {
        lab.wait(&["A | ", "event=stopping"]);
        lab.wait(&["A | ", "event=stopped"]);
        assert!(exited.contains("exit code: 0"), "{exited}");
        eprintln!("Wine delivered Ctrl+Break: A drained and exited 0");
    } else {
        eprintln!("Wine could not deliver Ctrl+Break here; the lab killed A and said so: {how}");
    }
    let refused = get(&call);
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.json()["error"], "connection_refused");

    // quit: the launcher stops B and exits.
    lab.type_line("quit");
    lab.wait(&["lab | B exited"]);
    let deadline = Instant::now() + WINE_PATIENCE;
    let status = loop {
        if let Some(status) = lab.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "lab.exe up did not quit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}

/// On Windows (Wine 8 here): `lab.exe demo` runs its whole walk-through and
/// writes its report, A stopped included (killed where Wine cannot deliver
/// Ctrl+Break, and the report says so).
#[test]
#[ignore = "needs wine and the .exe's that `bash .ci/cross windows` builds"]
fn windows_lab_demo_under_wine_writes_its_report() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let windows = Windows::find();
    let dir = tempfile::tempdir().unwrap();
    let out = windows
        .lab(
            dir.path(),
            &[
                "demo",
                "--free-ports",
                "--timeout-ms",
                "200",
                "--report",
                "report.md",
            ],
        )
        .stdin(Stdio::null())
        .output();
    windows.end_all();
    let out = out.expect("run wine lab.exe demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    for kind in [
        "timeout",
        "connection_refused",
        "upstream_status",
        "circuit_open",
    ] {
        assert!(
            report.contains(&format!("\"error\":\"{kind}\"")),
            "{kind}:\n{report}"
        );
    }
    let stopped = report.contains("A was killed: Ctrl+Break could not be delivered here")
        || report.contains("event=stopped drained=true");
    assert!(stopped, "how A stopped is not said:\n{report}");
}

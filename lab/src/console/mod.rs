//! The lab console: `cargo lab up` also serves a page on loopback where a
//! student breaks A and watches B, live.
//!
//! # Layout
//!
//! - [`live`]: the live state, built from the lines the launcher prints (no
//!   new instrumentation): outcomes per second by KIND, p50/p99, recent calls
//!   with A's line beside B's, A's config events, both services' lives.
//! - [`fault`]: the fault form written into A's TOML file as an editor would.
//! - [`token`]: who may use the console (the run's token, loopback, same origin).
//! - [`traffic`]: one call, and a steady open-loop load, with the
//!   experiment's generator.
//! - [`server`]: the routes, served by `service-runtime`'s own HTTP loop,
//!   and the Server-Sent Events stream.
//! - `lab/console/`: the page itself, plain HTML, CSS and JavaScript,
//!   compiled into the binary (no CDN, no fonts, no build step).
//!
//! How it meets `up`: every line the launcher prints (the services' lines
//! and its own) is also handed to [`tee`], which never blocks: a bounded
//! queue of [`QUEUE_LINES`], the newest dropped when it is full. The page's
//! buttons send `up` the same typed commands a student types (`a stop`, ...),
//! so the console can do nothing the terminal cannot.

pub mod fault;
pub mod live;
pub mod server;
pub mod token;
pub mod traffic;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use anyhow::Context as _;

use live::Live;
use token::Guard;
use traffic::Steady;

/// The console's port when none is asked for: next to B's (8081). If it is
/// taken the OS picks a free one, and the printed URL says which.
pub const DEFAULT_PORT: u16 = 8082;

/// Lines waiting for the console before new ones are dropped: the console
/// must never slow the launcher, whose loop also carries the services' output.
pub const QUEUE_LINES: usize = 4096;

/// B's deadline when neither its file nor its environment says otherwise
/// (the contract's default `upstream.timeout_ms`).
const DEFAULT_DEADLINE_MS: u64 = 1000;

/// `cargo lab up`'s console options.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// The console's port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = DEFAULT_PORT, value_name = "PORT")]
    pub console_port: u16,
    /// Do not serve the console.
    #[arg(long)]
    pub no_console: bool,
}

/// Where [`tee`] sends lines, once a console runs.
static TEE: OnceLock<SyncSender<String>> = OnceLock::new();
/// Lines [`tee`] dropped because the console was behind.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Hands the console one line as the launcher printed it (`A | ...`,
/// `B | ...`, `lab | ...`). Never blocks; does nothing without a console.
pub fn tee(printed: &str) {
    if let Some(tx) = TEE.get() {
        if let Err(TrySendError::Full(_)) = tx.try_send(printed.to_owned()) {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Prints a line of the console's own, as the launcher's are, and shows it
/// on the page too.
fn say(text: &str) {
    use std::io::Write as _;
    let line = format!("lab | console: {text}");
    let _ = writeln!(std::io::stdout(), "{line}");
    tee(&line);
}

/// What the server's handlers share.
pub struct Shared {
    guard: Guard,
    live: Mutex<Live>,
    started: Instant,
    /// Types a command into `up`, as the student would; false once `up` is gone.
    commands: Box<dyn Fn(String) -> bool + Send + Sync>,
    steady: Steady,
    deadline_ms: AtomicU64,
    /// Event streams open now (at most [`server::MAX_STREAMS`]).
    streams: AtomicUsize,
    /// A stream was refused since one last closed (the refusal was said).
    streams_refusing: AtomicBool,
}

impl Shared {
    /// Seconds since the console started: the live view's clock.
    fn now_s(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A's config file, as A's start line named it (relative to the
    /// launcher's folder, which is A's too).
    fn a_config(&self) -> PathBuf {
        let said = self.live().snapshot(0).a.config.clone();
        config_path(said.as_deref(), "config/service-a.toml")
    }

    /// Where B listens, from its start line.
    fn b_addr(&self) -> Option<SocketAddr> {
        let url = self.live().snapshot(0).b.url.clone()?;
        url.strip_prefix("http://")?.parse().ok()
    }
}

/// The file a start line's `config=` names: the path itself, or the path in
/// `none (PATH not found, built-in defaults)`; `default` if nothing was said.
fn config_path(said: Option<&str>, default: &str) -> PathBuf {
    match said {
        Some(s) => match s.strip_prefix("none (") {
            Some(rest) => PathBuf::from(rest.split(" not found").next().unwrap_or(default)),
            None => PathBuf::from(s),
        },
        None => PathBuf::from(default),
    }
}

/// B's deadline: `SERVICE_B_UPSTREAM__TIMEOUT_MS`, else B's file's
/// `upstream.timeout_ms`, else the default (figment's order, env first).
fn b_deadline(config: Option<&str>) -> u64 {
    if let Some(ms) = std::env::var("SERVICE_B_UPSTREAM__TIMEOUT_MS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return ms;
    }
    let path = config_path(config, "config/service-b.toml");
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|t| t.get("upstream")?.get("timeout_ms")?.as_integer())
        .and_then(|ms| u64::try_from(ms).ok())
        .unwrap_or(DEFAULT_DEADLINE_MS)
}

/// Starts the console (unless `--no-console`) and returns its URL with the
/// token, for the launcher to print. `commands` types a command into `up`.
/// A console that cannot start is said, and the lab runs without it.
pub fn start(
    options: &Options,
    commands: impl Fn(String) -> bool + Send + Sync + 'static,
) -> Option<String> {
    if options.no_console {
        return None;
    }
    match try_start(options.console_port, Box::new(commands)) {
        Ok(url) => Some(url),
        Err(e) => {
            say(&format!("not started: {e:#}"));
            None
        }
    }
}

fn try_start(
    port: u16,
    commands: Box<dyn Fn(String) -> bool + Send + Sync>,
) -> anyhow::Result<String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .or_else(|e| {
            if port == DEFAULT_PORT {
                // Taken (another lab?): any free port will do.
                TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            } else {
                Err(e)
            }
        })
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    let port = listener.local_addr()?.port();
    let shared = std::sync::Arc::new(Shared {
        guard: Guard::new(port)?,
        live: Mutex::new(Live::default()),
        started: Instant::now(),
        commands,
        steady: Steady::default(),
        deadline_ms: AtomicU64::new(DEFAULT_DEADLINE_MS),
        streams: AtomicUsize::new(0),
        streams_refusing: AtomicBool::new(false),
    });
    let (tx, rx) = sync_channel(QUEUE_LINES);
    if TEE.set(tx).is_err() {
        anyhow::bail!("a console already runs in this process");
    }
    let pump = shared.clone();
    std::thread::Builder::new()
        .name("console-lines".into())
        .spawn(move || lines(&pump, &rx))?;
    let url = format!("http://127.0.0.1:{port}/?token={}", shared.guard.token());
    server::spawn(listener, shared)?;
    Ok(url)
}

/// Feeds every printed line into the live state.
fn lines(shared: &Shared, rx: &Receiver<String>) {
    while let Ok(printed) = rx.recv() {
        let Some((who, line)) = printed.split_once(" | ") else {
            continue;
        };
        let now = shared.now_s();
        let mut live = shared.live();
        let dropped = DROPPED.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            live.line(
                "lab",
                &format!("console: {dropped} lines dropped (the console fell behind)"),
                now,
            );
        }
        live.line(who, line, now);
        if who == "B" && line.contains("event=start") {
            let config = live.snapshot(now).b.config.clone();
            drop(live);
            shared
                .deadline_ms
                .store(b_deadline(config.as_deref()), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config file is found in what the start line says, with or
    /// without a file.
    #[test]
    fn config_path_from_start_line() {
        assert_eq!(
            config_path(Some("config/service-a.toml"), "d"),
            PathBuf::from("config/service-a.toml")
        );
        assert_eq!(
            config_path(
                Some("none (config/service-a.toml not found, built-in defaults)"),
                "d"
            ),
            PathBuf::from("config/service-a.toml")
        );
        assert_eq!(config_path(None, "d"), PathBuf::from("d"));
    }
}

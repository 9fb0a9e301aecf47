//! The lab console: `cargo lab up` also serves a page on loopback where a
//! student breaks A and watches B, live.
//!
//! # Layout
//!
//! - [`live`]: the live state, built from the lines the launcher prints (no
//!   new instrumentation): outcomes per second by KIND, p50/p99, recent calls
//!   with A's line beside B's, A's config events, both services' lives.
//! - [`fault`]: the fault form written into A's TOML file as an editor would.
//! - [`save`]: a file saved as a careful editor saves it.
//! - [`token`]: who may use the console (the run's token, loopback, same origin).
//! - [`traffic`]: one call, and a steady open-loop load, with the
//!   experiment's generator.
//! - [`server`]: the routes, served by `service-runtime`'s own HTTP loop.
//! - [`stream`]: the Server-Sent Events stream of the live state.
//! - [`shared`]: what those parts share; where the services' files are.
//! - [`tee`](mod@tee): the launcher's lines in, the console's own lines out.
//! - [`logfmt`]: the fields of a service's log line.
//! - [`view`]: what the page sees of the live state.
//! - `lab/console/`: the page itself, plain HTML, CSS and JavaScript,
//!   compiled into the binary (no CDN, no fonts, no build step).
//!
//! How it meets `up`: every line the launcher prints (the services' lines
//! and its own) is also handed to [`tee`](fn@tee), which never blocks: a bounded
//! queue of [`QUEUE_LINES`], the newest dropped when it is full. The page's
//! buttons send `up` the same typed commands a student types (`a stop`, ...),
//! so the console can do nothing the terminal cannot.

pub mod fault;
pub mod live;
pub mod logfmt;
pub mod save;
pub mod server;
pub mod shared;
pub mod stream;
pub mod tee;
pub mod token;
pub mod traffic;
pub mod view;

use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context as _;

use live::Live;
use shared::{b_deadline, Shared, DEFAULT_DEADLINE_MS};
use tee::say;
pub use tee::tee;
use token::Guard;
use traffic::Steady;

/// The console's port when none is asked for: next to B's (8081). If it is
/// taken the OS picks a free one, and the printed URL says which.
pub const DEFAULT_PORT: u16 = 8082;

/// Lines waiting for the console before new ones are dropped: the console
/// must never slow the launcher, whose loop also carries the services' output.
pub const QUEUE_LINES: usize = 4096;

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
    if !tee::install(tx) {
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
        let dropped = tee::take_dropped();
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

//! The server loop: the executor threads, accept, a task per connection,
//! the connection limit, and a graceful stop.
//!
//! What happens on one connection is `connection.rs`'s job; this module
//! decides how many are served at once (the rest wait in the listen backlog),
//! and how requests in flight finish, or are cut, when the service stops.
//!
//! **Out of descriptors is said and survived.** When `accept` fails for want
//! of a resource (file descriptors, kernel memory), the loop says so once per
//! episode (`event=accept_failed` with the reason), counts every failure
//! (`accept_failures_total`), waits (new clients wait in the backlog) and
//! retries; once no accept has failed for [`RECOVERED_FOR`] (1 s), the
//! episode ends with `event=accept_recovered` (`failures`, and `lasted_ms`
//! from the first failure to the last). Accepts that fail and work in turn
//! near the limit are one episode, said once. At start, [`descriptor_limit`]
//! raises the soft descriptor limit to what `max_connections` needs (within
//! the hard limit) and says so, or warns when even the hard limit is too low,
//! with an estimate of the connections that fit ([`fits`]): `server/descriptors.rs`.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use http_types::Request;
use smol::future::FutureExt as _;
use smol::lock::Semaphore;
use smol::net::TcpListener;
use smol::{Async, Executor, LocalExecutor, Timer};

use crate::connection::{self, Context, SystemClock};
use crate::http::Reply;
use crate::log::Line;
use crate::metrics::ACCEPT_FAILURES;
use crate::telemetry;

mod descriptors;
mod settings;

pub use descriptors::{
    descriptor_limit, descriptor_line, fits, DescriptorLimit, DESCRIPTOR_BASELINE,
    DESCRIPTOR_RESERVE,
};
pub use settings::{Limits, ServerSettings};

/// The executor every task of a service runs on; [`block_on`] gives it threads.
///
/// smol's global executor runs one thread unless `SMOL_THREADS` says otherwise;
/// ours runs `server.threads` on purpose (default: one per core).
pub static EXECUTOR: Executor<'static> = Executor::new();

/// Exit code when the service cannot start for a reason other than its config
/// (e.g. the port is taken).
pub const EXIT_START_FAILED: i32 = 1;

/// Runs `main` to completion on this thread, with `threads - 1` more threads
/// helping to run every task spawned on [`EXECUTOR`].
pub fn block_on<T>(threads: usize, main: impl Future<Output = T>) -> T {
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    std::thread::scope(|scope| {
        for i in 1..threads.max(1) {
            let stopped = stopped.clone();
            std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn_scoped(scope, move || {
                    smol::block_on(run_tasks(async { stopped.recv().await.ok() }))
                })
                .expect("spawning an executor thread at start-up");
        }
        let out = smol::block_on(run_tasks(main));
        drop(stop);
        out
    })
}

/// The longest an executor thread runs tasks without looking at the sockets,
/// while tasks keep coming: below async-io's helper thread's first nap (50 µs).
const REACTOR_EVERY: Duration = Duration::from_micros(40);

/// Runs [`EXECUTOR`]'s tasks on this thread until `main` is done, polling the
/// reactor (without blocking) at least every [`REACTOR_EVERY`].
///
/// `Executor::run` does so only every 200 tasks. Under load that leaves the
/// reactor untouched for milliseconds; async-io's helper thread, which naps
/// 50 µs and then takes the reactor if nobody polled it meanwhile, takes it and
/// keeps it, and every socket event becomes two context switches (helper, then
/// executor). Invariant kept here: the reactor is polled at least every
/// [`REACTOR_EVERY`] of task work, so the helper thread never takes it over
/// (docs/performance.md has the measurements behind this).
///
/// `main` runs as a task of a local executor, so it is polled only when woken:
/// polled inline it would be polled after every batch, and the accept loop in
/// it would try `accept()` (a syscall, and a re-arm of the listener) each time.
async fn run_tasks<T>(main: impl Future<Output = T>) -> T {
    let local = LocalExecutor::new();
    let main = local.spawn(main);
    let forever = async {
        loop {
            let started = Instant::now();
            let mut busy = false;
            while local.try_tick() || EXECUTOR.try_tick() {
                busy = started.elapsed() >= REACTOR_EVERY;
                if busy {
                    break;
                }
            }
            if busy {
                // Back to `block_on`, which polls the reactor without blocking.
                smol::future::yield_now().await;
            } else {
                EXECUTOR.tick().or(local.tick()).await;
            }
        }
    };
    main.or(forever).await
}

/// Connections the kernel queues for us before it drops new SYNs. std's
/// default (128) is far below `max_connections`: under a flood of idle
/// connections, new clients' SYNs were dropped and retried a second later.
const BACKLOG: i32 = 4096;

/// Binds the listening socket, naming the address if that fails (port taken).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let listen = || -> std::io::Result<TcpListener> {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        // Unix: a restarted service binds at once though the old one's
        // connections linger in TIME_WAIT. Windows: SO_REUSEADDR would let a
        // second process bind the same port (a hijack, not a restart), and
        // its bind already ignores TIME_WAIT; std never sets it there either.
        #[cfg(not(windows))]
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG)?;
        socket.set_nonblocking(true)?;
        TcpListener::try_from(std::net::TcpListener::from(socket))
    };
    listen().with_context(|| format!("cannot listen on {addr}"))
}

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every request in flight finished.
    Drained,
    /// The grace ran out with requests still in flight; each was logged
    /// `status=aborted`.
    GraceExpired,
}

/// How long, after the grace, the cut connections get to write their lines.
const ABORT_WAIT: Duration = Duration::from_millis(200);

/// Serves `listener` until `shutdown` completes, then stops accepting, lets
/// requests in flight finish within the grace, cuts the rest, and returns.
///
/// `handler` answers each request with a [`Reply`];
/// refused requests (see `connection.rs`) are counted in `metrics` and
/// logged as `service`.
pub async fn serve<H, Fut>(
    listener: TcpListener,
    ctx: Context<H>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> Stopped
where
    H: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let listener: Arc<Async<std::net::TcpListener>> = listener.into();
    let ctx = Arc::new(ctx);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    // Closed (never sent to) when it is time to stop: every clone sees it.
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    // Closed when the grace has run out: connections still open are cut.
    let (abort_tx, abort_rx) = smol::channel::bounded::<()>(1);
    // Each connection holds a sender; recv() fails once all of them are gone.
    let (alive_tx, alive_rx) = smol::channel::bounded::<()>(1);

    let accept_loop = async {
        let mut backoff = ACCEPT_BACKOFF_MIN;
        // The episode under way: accepts failed less than RECOVERED_FOR ago.
        let mut episode: Option<Episode> = None;
        loop {
            // An episode ends once no accept has failed for RECOVERED_FOR.
            let quiet_at = episode.as_ref().map(|e| e.last_failure + RECOVERED_FOR);
            if let (Some(at), Some(e)) = (quiet_at, &episode) {
                if Instant::now() >= at {
                    e.recovered();
                    episode = None;
                    continue;
                }
            }
            let next = async {
                let permit = permits.acquire_arc().await;
                Some((permit, listener.accept().await))
            };
            let quiet = async {
                match quiet_at {
                    Some(at) => {
                        Timer::at(at).await;
                        None
                    }
                    None => std::future::pending().await,
                }
            };
            // The timer cuts a wait for a permit or a client: both are safe to
            // drop (the client stays in the backlog).
            let Some((permit, accepted)) = next.or(quiet).await else {
                continue;
            };
            match accepted {
                Ok((socket, _peer)) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    let (ctx, stop, abort) = (ctx.clone(), stop_rx.clone(), abort_rx.clone());
                    let held = (permit, alive_tx.clone());
                    let conn = async move {
                        // Answers are one write each; without this each would wait
                        // for the peer's delayed ACK (~40 ms) whenever a write is split.
                        let _ = socket.get_ref().set_nodelay(true);
                        let served = connection::serve(socket, SystemClock, &ctx, &stop);
                        let served = AssertUnwindSafe(served)
                            .catch_unwind()
                            .or(async {
                                let _ = abort.recv().await;
                                Ok(())
                            })
                            .await;
                        if served.is_err() {
                            // A bug, not a client's doing: the connection is
                            // closed, the service goes on, and it is said.
                            Line::event("connection_panicked")
                                .str("error", "a bug closed this connection; please report it")
                                .emit();
                        }
                        drop(held);
                    };
                    EXECUTOR.spawn(conn).detach();
                }
                // The peer gave up before we accepted: nothing to do.
                Err(e) if is_transient(&e) => {}
                // Out of file descriptors and the like: say it once, wait, retry.
                Err(e) => {
                    drop(permit);
                    ACCEPT_FAILURES.inc();
                    match &mut episode {
                        Some(e) => {
                            e.failures += 1;
                            e.last_failure = Instant::now();
                        }
                        None => {
                            Line::event("accept_failed")
                                .str("error", &accept_error(&e))
                                .num(
                                    "open_connections",
                                    limits.max_connections - permits_free(&permits),
                                )
                                .str(
                                    "detail",
                                    "new connections wait in the listen backlog; retrying until \
                                     descriptors free up (event=accept_recovered)",
                                )
                                .emit();
                            let now = Instant::now();
                            episode = Some(Episode {
                                since: now,
                                failures: 1,
                                last_failure: now,
                            });
                        }
                    }
                    Timer::after(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
            }
        }
    };
    accept_loop.or(shutdown).await;

    drop(listener);
    drop(stop_tx);
    drop(alive_tx);
    let drained = async {
        let _ = alive_rx.recv().await;
        Stopped::Drained
    };
    let expired = async {
        Timer::after(limits.shutdown_grace).await;
        Stopped::GraceExpired
    };
    let stopped = drained.or(expired).await;
    if stopped == Stopped::GraceExpired {
        // Cut what is left; each request cut logs its own `status=aborted`.
        telemetry::grace_expired();
        drop(abort_tx);
        let _ = alive_rx
            .recv()
            .or(async {
                Timer::after(ABORT_WAIT).await;
                Ok(())
            })
            .await;
    }
    stopped
}

/// How long no accept may fail before an episode of failures is over and
/// `event=accept_recovered` is said: near the limit, accepts fail and work
/// in turn every few milliseconds (19 turns in 200 ms were seen), and each
/// turn is not news.
pub const RECOVERED_FOR: Duration = Duration::from_secs(1);

/// An episode of failing accepts, from the first failure until none has
/// failed for [`RECOVERED_FOR`].
struct Episode {
    since: Instant,
    /// Accepts that failed in it.
    failures: u64,
    last_failure: Instant,
}

impl Episode {
    /// Says the episode is over.
    fn recovered(&self) {
        Line::event("accept_recovered")
            .num("failures", self.failures)
            .num(
                "lasted_ms",
                self.last_failure.duration_since(self.since).as_millis(),
            )
            .emit();
    }
}

/// The first wait after a failed accept; it doubles while accepts fail.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);

/// The longest wait between two tries while accepts fail: once descriptors
/// free up, a waiting client is accepted within this.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(250);

/// Permits not held by a connection.
fn permits_free(permits: &Semaphore) -> usize {
    // smol's Semaphore does not say; count what can be taken without waiting.
    let mut held = Vec::new();
    while let Some(p) = permits.try_acquire() {
        held.push(p);
    }
    held.len()
}

/// Why an accept failed, in words a reader can act on.
fn accept_error(e: &std::io::Error) -> String {
    #[cfg(unix)]
    {
        use rustix::io::Errno;
        match Errno::from_io_error(e) {
            Some(Errno::MFILE) => {
                return format!(
                    "out of file descriptors: the process's limit (ulimit -n) is reached ({e})"
                )
            }
            Some(Errno::NFILE) => {
                return format!(
                    "out of file descriptors: the whole system's limit is reached ({e})"
                )
            }
            Some(Errno::NOBUFS | Errno::NOMEM) => {
                return format!("the kernel is out of memory for sockets ({e})")
            }
            _ => {}
        }
    }
    format!("cannot accept a connection: {e}")
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionAborted
            | ErrorKind::ConnectionReset
            | ErrorKind::Interrupted
    )
}

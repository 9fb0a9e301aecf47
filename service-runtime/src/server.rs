//! The server loop: accept, a task per connection, limits, and a graceful stop.
//!
//! async-h1 parses and writes HTTP/1.1; this module decides everything around it:
//! how many connections are served at once, how long a client may take to send a
//! request head, what happens to a handler that panics, and how requests in
//! flight finish when the service is told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_h1::server::{decode, Encoder};
use http_types::headers::CONNECTION;
use http_types::{Request, Response};
use smol::channel::{Receiver, Sender};
use smol::future::FutureExt as _;
use smol::io::{self, AsyncReadExt as _, AsyncWriteExt as _};
use smol::lock::{Semaphore, SemaphoreGuardArc};
use smol::net::{TcpListener, TcpStream};
use smol::{Async, Executor, LocalExecutor, Timer};

use crate::config::ServerSettings;
use crate::http::ApiError;

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
/// executor). Measured on one core with A beside it: B at 1.4 context switches
/// and ~100 µs of CPU per call that way, 0.4 and ~45 µs this way.
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

/// Binds the listening socket, naming the address if that fails (port taken).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// The limits the loop enforces, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A connection must deliver a request head within this (slow clients, idle keep-alive).
    pub header_timeout: Duration,
    /// Connections served at once; others wait in the listen backlog.
    pub max_connections: usize,
    /// On shutdown, how long requests in flight may take to finish.
    pub shutdown_grace: Duration,
}

impl From<&ServerSettings> for Limits {
    fn from(s: &ServerSettings) -> Self {
        Self {
            header_timeout: s.header_timeout(),
            max_connections: s.max_connections as usize,
            shutdown_grace: s.shutdown_grace(),
        }
    }
}

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every request in flight finished.
    Drained,
    /// The grace ran out with requests still in flight.
    GraceExpired,
}

/// Serves `listener` with `handler` until `shutdown` completes, then stops
/// accepting, lets requests in flight finish within the grace, and returns.
///
/// `handler` answers each request. Its `Err` closes the connection without an
/// answer (async-h1's behaviour): only a deliberate `drop` fault should use it;
/// every other error must already be a response.
pub async fn serve<H, Fut>(
    listener: TcpListener,
    handler: H,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> Stopped
where
    H: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = http_types::Result<Response>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    // Closed (not sent to) when it is time to stop: every clone sees it.
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    // Each connection holds a sender; recv() fails once all of them are gone.
    let (alive_tx, alive_rx) = smol::channel::bounded::<()>(1);

    let accept_loop = async {
        let mut backoff = Duration::from_millis(5);
        loop {
            let permit = permits.acquire_arc().await;
            match listener.accept().await {
                Ok((stream, _peer)) => {
                    backoff = Duration::from_millis(5);
                    let conn = connection(
                        stream,
                        handler.clone(),
                        limits.header_timeout,
                        stop_rx.clone(),
                        (permit, alive_tx.clone()),
                    );
                    EXECUTOR.spawn(conn).detach();
                }
                // The peer gave up before we accepted: nothing to do.
                Err(e) if is_transient(&e) => {}
                // Out of file descriptors and the like: wait, then try again.
                Err(_) => {
                    Timer::after(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
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
    drained.or(expired).await
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

/// Serves one connection's requests in turn until the client closes, is too
/// slow to send a head, or the service stops (after the request in flight).
///
/// This is async-h1's own `accept` loop (`decode`, the handler, `Encoder`)
/// with our limits: async-h1 2.3 has no setter for its header timeout, and
/// arms a timer of the older async-io reactor for every request, which wakes
/// that reactor's thread each time (a context switch per request).
async fn connection<H, Fut>(
    mut stream: TcpStream,
    handler: H,
    header_timeout: Duration,
    stop: Receiver<()>,
    _held_until_done: (SemaphoreGuardArc, Sender<()>),
) where
    H: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = http_types::Result<Response>> + Send + 'static,
{
    // async-h1 writes head and body separately: without this each answer waits
    // for the peer's delayed ACK (~40 ms).
    let _ = stream.set_nodelay(true);
    // One timer per connection, re-armed only when it fires early: arming a
    // timer per request costs a reactor wake-up per request.
    let mut last_activity = Instant::now();
    let mut timer = Timer::at(last_activity + header_timeout);
    let mut stopped = std::pin::pin!(stop.recv());
    let socket: Arc<Async<std::net::TcpStream>> = stream.clone().into();
    let mut answered = false;

    loop {
        // Wait for a head: give up after the header timeout or at shutdown.
        let idle = async {
            loop {
                (&mut timer).await;
                let deadline = last_activity + header_timeout;
                if Instant::now() >= deadline {
                    return;
                }
                timer.set_at(deadline);
            }
        };
        let head = async {
            if answered {
                // The client sends its next request only after our answer: wait
                // for it instead of reading now, which would fail (a syscall).
                socket.readable().await?;
            }
            decode(stream.clone()).await.map(Some)
        }
        .or(async {
            idle.or(async {
                let _ = stopped.as_mut().await;
            })
            .await;
            Ok(None)
        })
        .await;
        // Err: not HTTP (answered by closing); None: EOF, too slow, or stopping.
        let Ok(Some(Some((req, mut body)))) = head else {
            break;
        };

        let method = req.method();
        // No Content-Length and no chunked body: async-h1 reads none (len 0).
        let has_body = req.len() != Some(0);
        let mut close = req
            .header(CONNECTION)
            .is_some_and(|c| c.as_str().eq_ignore_ascii_case("close"));
        let handled = AssertUnwindSafe(handler(req)).catch_unwind().await;
        let mut res = match handled {
            Ok(Ok(res)) => res,
            // A deliberate `drop` fault: close without an answer.
            Ok(Err(_)) => break,
            Err(_) => panicked(),
        };
        close |= res
            .header(CONNECTION)
            .is_some_and(|c| c.as_str().eq_ignore_ascii_case("close"));
        if stop.is_closed() {
            close = true;
            res.insert_header(CONNECTION, "close");
        }
        let streamed = res.ext().get::<Streamed>().is_some();
        let mut encoder = Encoder::new(res, method);
        let written = if streamed {
            // Head now, body as it comes (e.g. a stalled body): one write each.
            io::copy(&mut encoder, &mut stream).await.map(drop)
        } else {
            // Head and body in one write: one packet, one wake-up of the client.
            let mut bytes = Vec::with_capacity(256);
            match encoder.read_to_end(&mut bytes).await {
                Ok(_) => stream.write_all(&bytes).await,
                Err(e) => Err(e),
            }
        };
        if written.is_err() {
            break;
        }
        // The handler may not have read the body: skip it to reach the next head.
        // (Most requests have none; io::copy would allocate a buffer regardless.)
        if close || has_body && io::copy(&mut body, &mut io::sink()).await.is_err() {
            break;
        }
        last_activity = Instant::now();
        answered = true;
    }
}

/// Marks a response whose body must be sent as it is produced (a stalled or
/// slow body), not gathered first: `res.ext_mut().insert(Streamed)`.
#[derive(Debug, Clone, Copy)]
pub struct Streamed;

/// The answer to a request whose handler panicked: a 500, and the service lives on.
fn panicked() -> Response {
    ApiError::internal("internal error").into_response()
}

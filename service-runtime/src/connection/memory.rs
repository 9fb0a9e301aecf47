//! For the loop's unit tests: an in-memory duplex ([`duplex`]: the server's
//! end is a [`Transport`], the test holds the client's) and a clock that
//! moves only when the test says so ([`ManualClock`]).
//!
//! Like async-h1's `TestIO` and hyper's mock IO, but with the two things this
//! loop needs beyond bytes: a half-close and a reset the test can see, and
//! backpressure (each direction holds at most `capacity` bytes, so a client
//! that reads nothing stalls the server's writes as a full socket would).
//! Everything wakes synchronously: after the test acts, running the
//! executor until no task is ready leaves the loop exactly where it waits.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use smol::io::{AsyncRead, AsyncWrite};

use crate::connection::clock::Clock;
use crate::connection::transport::Transport;

/// One direction of the duplex.
#[derive(Default)]
struct Pipe {
    bytes: VecDeque<u8>,
    /// The writer sent its FIN (or went away): once `bytes` is empty, EOF.
    shut: bool,
    /// The reader went away: writes fail.
    gone: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Pipe {
    fn wake_reader(&mut self) {
        if let Some(w) = self.reader.take() {
            w.wake();
        }
    }

    fn wake_writer(&mut self) {
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }
}

/// Both directions and how the server ended.
#[derive(Default)]
struct Wire {
    to_server: Pipe,
    to_client: Pipe,
    capacity: usize,
    reset: bool,
}

type Shared = Arc<Mutex<Wire>>;

fn lock(wire: &Shared) -> MutexGuard<'_, Wire> {
    wire.lock().unwrap_or_else(|p| p.into_inner())
}

/// A connected pair; each direction buffers at most `capacity` bytes.
pub fn duplex(capacity: usize) -> (ServerEnd, ClientEnd) {
    let wire = Arc::new(Mutex::new(Wire {
        capacity,
        ..Wire::default()
    }));
    (ServerEnd(wire.clone()), ClientEnd(wire))
}

/// The server's end: what the loop serves.
pub struct ServerEnd(Shared);

/// The test's end: it writes requests, reads answers and closes.
pub struct ClientEnd(Shared);

impl AsyncRead for ServerEnd {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut wire = lock(&self.0);
        let pipe = &mut wire.to_server;
        if pipe.bytes.is_empty() && !pipe.shut {
            pipe.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(pipe.bytes.len());
        for (slot, byte) in buf.iter_mut().zip(pipe.bytes.drain(..n)) {
            *slot = byte;
        }
        pipe.wake_writer();
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for ServerEnd {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut wire = lock(&self.0);
        let capacity = wire.capacity;
        let pipe = &mut wire.to_client;
        if pipe.gone {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if pipe.shut {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        }
        let room = capacity.saturating_sub(pipe.bytes.len());
        if room == 0 {
            pipe.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = room.min(buf.len());
        pipe.bytes.extend(&buf[..n]);
        pipe.wake_reader();
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shutdown_write())
    }
}

impl Transport for ServerEnd {
    fn readable(&self) -> impl std::future::Future<Output = io::Result<()>> {
        std::future::poll_fn(|cx| {
            let mut wire = lock(&self.0);
            let pipe = &mut wire.to_server;
            if pipe.bytes.is_empty() && !pipe.shut {
                pipe.reader = Some(cx.waker().clone());
                return Poll::Pending;
            }
            Poll::Ready(Ok(()))
        })
    }

    fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let wire = lock(&self.0);
        let pipe = &wire.to_server;
        if pipe.bytes.is_empty() {
            return if pipe.shut {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = buf.len().min(pipe.bytes.len());
        for (slot, byte) in buf.iter_mut().zip(pipe.bytes.iter()) {
            *slot = *byte;
        }
        Ok(n)
    }

    fn peer_gone(&self) -> io::Result<bool> {
        Ok(lock(&self.0).to_server.shut)
    }

    fn shutdown_write(&self) -> io::Result<()> {
        let mut wire = lock(&self.0);
        wire.to_client.shut = true;
        wire.to_client.wake_reader();
        Ok(())
    }

    fn reset(self) {
        lock(&self.0).reset = true;
    }
}

impl Drop for ServerEnd {
    /// The server closed: the client reads EOF after what was written.
    fn drop(&mut self) {
        let mut wire = lock(&self.0);
        wire.to_client.shut = true;
        wire.to_client.wake_reader();
        wire.to_server.gone = true;
        wire.to_server.wake_writer();
    }
}

impl ClientEnd {
    /// Sends `bytes` (all of them: the test's writes do not wait).
    pub fn send(&self, bytes: &[u8]) {
        let mut wire = lock(&self.0);
        wire.to_server.bytes.extend(bytes);
        wire.to_server.wake_reader();
    }

    /// Takes everything the server has written so far.
    pub fn take(&self) -> Vec<u8> {
        let mut wire = lock(&self.0);
        let bytes = wire.to_client.bytes.drain(..).collect();
        wire.to_client.wake_writer();
        bytes
    }

    /// Half-closes: sends the client's FIN, still reading.
    pub fn shutdown(&self) {
        let mut wire = lock(&self.0);
        wire.to_server.shut = true;
        wire.to_server.wake_reader();
    }

    /// Leaves: a FIN, and nothing more is read (the server's writes fail).
    pub fn close(&self) {
        self.shutdown();
        let mut wire = lock(&self.0);
        wire.to_client.gone = true;
        wire.to_client.wake_writer();
    }

    /// Whether the server has closed its side (a FIN or its end dropped).
    pub fn server_closed(&self) -> bool {
        lock(&self.0).to_client.shut
    }

    /// Whether the server closed with an RST.
    pub fn was_reset(&self) -> bool {
        lock(&self.0).reset
    }
}

/// Time that moves only by [`ManualClock::advance`]; its timers fire then.
#[derive(Clone)]
pub struct ManualClock(Arc<Mutex<ClockState>>);

struct ClockState {
    now: Instant,
    /// Timers waiting, with when they fire.
    waiting: Vec<(Instant, Waker)>,
}

impl ManualClock {
    /// A clock stopped at the real now.
    pub fn new() -> Self {
        Self(Arc::new(Mutex::new(ClockState {
            now: Instant::now(),
            waiting: Vec::new(),
        })))
    }

    fn state(&self) -> MutexGuard<'_, ClockState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves time on by `by`, waking the timers that fire by then.
    pub fn advance(&self, by: Duration) {
        let due: Vec<Waker> = {
            let mut state = self.state();
            state.now += by;
            let now = state.now;
            let (due, left) = state.waiting.drain(..).partition(|(at, _)| *at <= now);
            state.waiting = left;
            due.into_iter().map(|(_, w)| w).collect()
        };
        due.into_iter().for_each(Waker::wake);
    }
}

/// A timer of a [`ManualClock`]: fires once, when the clock reaches `at`.
pub struct ManualTimer {
    clock: ManualClock,
    at: Option<Instant>,
}

impl std::future::Future for ManualTimer {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(at) = self.at else {
            return Poll::Pending;
        };
        let mut state = self.clock.state();
        if state.now >= at {
            drop(state);
            self.at = None;
            return Poll::Ready(());
        }
        state.waiting.push((at, cx.waker().clone()));
        Poll::Pending
    }
}

impl Clock for ManualClock {
    type Timer = ManualTimer;

    fn now(&self) -> Instant {
        self.state().now
    }

    fn timer_at(&self, at: Instant) -> ManualTimer {
        ManualTimer {
            clock: self.clone(),
            at: Some(at),
        }
    }

    fn set_at(&self, timer: &mut ManualTimer, at: Instant) {
        timer.at = Some(at);
    }
}

//! One connection's buffer and every wait on its client: reading into the
//! buffer, skipping a body, writing an answer, noticing a client that
//! leaves, and the two ways to close (a lingering FIN, an RST).
//!
//! Each wait here is bounded by the connection's [`Watchdog`], and what is
//! read is kept in one buffer of [`MAX_HEAD_BYTES`] (see the guarantees in
//! the module doc of `connection`). What the bytes mean, and what to log, is
//! the loop's job (`serve.rs`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use async_h1::server::Encoder;
use http_types::headers::CONNECTION;
use http_types::{Method, Response};
use smol::future::FutureExt as _;
use smol::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::body::Skip;
use crate::connection::clock::{Clock, Watchdog};
use crate::connection::transport::Transport;
use crate::head::{Framing, MAX_HEAD_BYTES};
use crate::http::ApiError;

/// How often a connection whose buffer is full checks whether its client
/// has gone (see [`Conn::until_hangup`]).
pub const RDHUP_EVERY: Duration = Duration::from_millis(20);

/// After a refusal, how long the loop keeps reading (and dropping) what the
/// client still sends before it closes, so that the close is a FIN the
/// client can read the answer before, not an RST that destroys it (nginx's
/// `lingering_time`, much shortened: the slot is held meanwhile).
pub const LINGER: Duration = Duration::from_millis(500);

/// The largest piece of a streamed answer written at once.
const PIECE_BYTES: usize = 8 * 1024;

/// The outcome of one wait on the client.
pub enum Wait<T> {
    /// The wait ended with this.
    Done(T),
    /// The watchdog's deadline passed first.
    TimedOut,
    /// The loop was told to stop first.
    Stopped,
}

/// Why an answer could not be written.
pub enum Cut {
    /// The client read none of it for a whole timeout.
    TimedOut,
    /// The client closed or reset the connection.
    Closed,
}

/// Why a body could not be skipped.
pub enum BodyError {
    /// Its framing broke a rule, or it is too large.
    Refused(ApiError),
    /// It did not arrive before the watchdog's deadline.
    TimedOut,
    /// The client closed before its end.
    Closed,
}

/// An answer ready to write.
pub enum Answer {
    /// Head and body in one write.
    Whole(Response),
    /// The head, then the body piece by piece as it is produced.
    Streamed(Response),
}

impl Answer {
    /// The response, whichever way it is written.
    pub fn get(&self) -> &Response {
        match self {
            Answer::Whole(res) | Answer::Streamed(res) => res,
        }
    }
}

/// A connection and its buffer: `buf[start..end]` is read but unused.
pub struct Conn<S, C: Clock> {
    io: S,
    buf: Box<[u8]>,
    /// Where the unused bytes start.
    pub start: usize,
    /// Where the unused bytes end.
    pub end: usize,
    /// The deadline of every wait on the client.
    pub watchdog: Watchdog<C>,
}

impl<S: Transport, C: Clock> Conn<S, C> {
    /// A connection with an empty buffer, whose first wait ends `timeout` from now.
    pub fn new(io: S, clock: C, timeout: Duration) -> Self {
        Self {
            io,
            buf: vec![0; MAX_HEAD_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
            watchdog: Watchdog::new(clock, timeout),
        }
    }

    /// The bytes read but not used yet.
    pub fn unused(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Moves unused bytes to the front, so the buffer has room to read into.
    pub fn compact(&mut self) {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
    }

    /// One read into the free end of the buffer, within the watchdog; when
    /// `wait_readable`, waits until a read would not block before trying
    /// one (an idle keep-alive client: the try would only fail).
    pub async fn read(
        &mut self,
        stop: Option<Pin<&mut impl Future<Output = ()>>>,
        wait_readable: bool,
    ) -> Wait<io::Result<usize>> {
        let Conn {
            io,
            buf,
            end,
            watchdog,
            ..
        } = self;
        let read = async {
            if wait_readable {
                io.readable().await?;
            }
            io.read(&mut buf[*end..]).await
        };
        let stopped = async {
            match stop {
                Some(stop) => {
                    stop.await;
                    Wait::Stopped
                }
                None => std::future::pending().await,
            }
        };
        async { Wait::Done(read.await) }
            .or(async {
                watchdog.expired().await;
                Wait::TimedOut
            })
            .or(stopped)
            .await
    }

    /// Skips a body of `framing` before the watchdog's deadline; its data,
    /// when `keep` (else nothing is kept).
    pub async fn skip_body(&mut self, framing: Framing, keep: bool) -> Result<Vec<u8>, BodyError> {
        let mut skip = Skip::new(framing);
        let mut body = Vec::new();
        loop {
            let used = skip
                .feed_into(&self.buf[self.start..self.end], keep.then_some(&mut body))
                .map_err(BodyError::Refused)?;
            self.start += used;
            if skip.is_done() {
                return Ok(body);
            }
            self.compact();
            match self
                .read(None::<Pin<&mut std::future::Pending<()>>>, false)
                .await
            {
                Wait::Done(Ok(0) | Err(_)) => return Err(BodyError::Closed),
                Wait::Done(Ok(n)) => self.end += n,
                Wait::TimedOut | Wait::Stopped => return Err(BodyError::TimedOut),
            }
        }
    }

    /// Completes when the client closes (EOF or error). Bytes it sends
    /// meanwhile (the next pipelined request) are kept while there is room;
    /// with the buffer full, a close is watched for by [`Self::until_hangup`].
    pub async fn until_closed(&mut self) {
        loop {
            self.compact();
            if self.end == self.buf.len() {
                return self.until_hangup().await;
            }
            if self.io.readable().await.is_err() {
                return;
            }
            match self.io.peek(&mut [0u8; 1]) {
                Ok(0) => return,
                Ok(_) => match self.io.read(&mut self.buf[self.end..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => self.end += n,
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    }

    /// Completes when the peer has shut its side, though unread bytes wait
    /// before its FIN: [`Transport::peer_gone`], asked every [`RDHUP_EVERY`]
    /// (there is no wait for it; this runs only while the buffer is full).
    async fn until_hangup(&self) {
        let clock = self.watchdog.clock();
        loop {
            clock.sleep(RDHUP_EVERY).await;
            match self.io.peer_gone() {
                Ok(true) => return,
                Ok(false) => {}
                // A connection that cannot be asked is not a client that
                // left: the handler runs to its end, as on a platform
                // without this.
                Err(_) => return std::future::pending().await,
            }
        }
    }

    /// Writes all of `bytes` before the watchdog's deadline (the caller
    /// marks when the answer was ready).
    pub async fn write_all(&mut self, bytes: &[u8]) -> Result<(), Cut> {
        let mut pos = 0;
        while pos < bytes.len() {
            let Conn { io, watchdog, .. } = self;
            let wrote = async { Some(io.write(&bytes[pos..]).await) }
                .or(async {
                    watchdog.expired().await;
                    None
                })
                .await;
            match wrote {
                Some(Ok(0) | Err(_)) => return Err(Cut::Closed),
                Some(Ok(n)) => pos += n,
                None => return Err(Cut::TimedOut),
            }
        }
        Ok(())
    }

    /// Writes an answer: whole in one write, or streamed piece by piece.
    pub async fn answer(
        &mut self,
        answer: Answer,
        method: Method,
        close: bool,
        http10: bool,
    ) -> Result<(), Cut> {
        let (mut res, streamed) = match answer {
            Answer::Whole(res) => (res, false),
            Answer::Streamed(res) => (res, true),
        };
        if close {
            res.insert_header(CONNECTION, "close");
        } else if http10 {
            res.insert_header(CONNECTION, "keep-alive");
        }
        if !streamed {
            // Head and body in one write: one packet, one wake-up of the client.
            let bytes = crate::http::encode(res, method)
                .await
                .map_err(|_| Cut::Closed)?;
            self.watchdog.progress();
            return self.write_all(&bytes).await;
        }
        let mut encoder = Encoder::new(res, method);
        // Each piece as it comes; a client that leaves during a stall is noticed.
        let mut piece = vec![0u8; PIECE_BYTES];
        loop {
            let read = async { Some(encoder.read(&mut piece).await) }.or(async {
                self.until_closed().await;
                None
            });
            match read.await {
                Some(Ok(0)) => return Ok(()),
                Some(Ok(n)) => {
                    self.watchdog.progress();
                    self.write_all(&piece[..n]).await?;
                }
                Some(Err(_)) | None => return Err(Cut::Closed),
            }
        }
    }

    /// Closes with an RST instead of a FIN.
    pub fn reset(self) {
        self.io.reset();
    }

    /// Closes after an answer with `Connection: close`, lingering only if
    /// the client sent bytes we did not read (else the close would be an RST).
    pub async fn linger_if_unread(self) {
        if self.start < self.end {
            self.linger().await;
        }
    }

    /// Half-closes, then reads and drops what the client still sends, for at
    /// most [`LINGER`], so the close does not destroy the answer in flight.
    pub async fn linger(mut self) {
        let _ = self.io.shutdown_write();
        let Conn { io, watchdog, .. } = &mut self;
        let drain = async {
            let mut sink = [0u8; 4096];
            while matches!(io.read(&mut sink).await, Ok(n) if n > 0) {}
        };
        drain
            .or(async {
                watchdog.clock().sleep(LINGER).await;
            })
            .await;
    }
}

//! One connection's life: read a head, skip its body, ask the handler, write
//! the answer; again, until either side is done.
//!
//! async-h1 writes our answers (its `Encoder` is sound); reading is done
//! here, because its server `decode` is not (see `head.rs`). What this loop
//! guarantees, whatever a client sends:
//!
//! 1. **Bounded memory.** Each connection has one buffer of
//!    [`MAX_HEAD_BYTES`](crate::head::MAX_HEAD_BYTES), allocated once and kept across its requests. Heads
//!    are parsed in it; bodies pass through it and are dropped (or, for a
//!    service that keeps them, A as a proxy, kept up to `MAX_BODY_BYTES`); bytes read
//!    ahead stay in it for the next request, so pipelined requests are
//!    answered in order and nothing read is lost.
//! 2. **Bounded waits.** Each wait on the client has the timeout
//!    (`server.client_timeout_ms`) in all, not per read: a head, from the
//!    moment the loop starts waiting for it (an idle keep-alive connection is
//!    closed then); the rest of a request (a `100 Continue` and the body),
//!    from the end of its head; an answer, or each piece of a streamed one,
//!    from when it is ready to send. A client that trickles a byte now and
//!    then holds a slot no longer than one that sends nothing. One timer per
//!    connection does all this ([`Watchdog`](clock::Watchdog)), on a
//!    [`Clock`] the unit tests advance by hand.
//! 3. **Nothing closes in silence.** A refused head or body gets its status
//!    (400, 408, 413, 414, 431, 501, 505) with a JSON error, one log line and
//!    a count in `http_requests_total`; then the connection is closed after
//!    a short linger, so the client can read the answer.
//! 4. **A client that leaves is noticed.** While the handler works, the
//!    connection is watched: on EOF or an error the handler's future is dropped
//!    at once (its telemetry logs `status=client_closed http_status=499`).
//!    A half-close (the client shuts its sending side) counts as leaving, as
//!    in nginx. When pipelined bytes fill the buffer, the peer's FIN is
//!    still seen, by polling for `POLLRDHUP` every `RDHUP_EVERY` (20 ms) (where
//!    the platform has no `POLLRDHUP`, only a full close or a reset is seen
//!    then: see [`HUNG_UP`](transport::HUNG_UP)).
//! 5. **The handler says what it wants** with a [`Reply`](crate::http::Reply); a handler that
//!    panics is answered 500 and the service lives on.
//!
//! # Layout (`connection/`)
//!
//! - `serve.rs`: the loop, a request at a time: what the bytes mean, what
//!   to answer, what to log ([`serve`], [`Context`]).
//! - `conn.rs`: the buffer and every wait on the client (read, skip a body,
//!   write, watch for a client that leaves, linger, reset).
//! - `transport.rs`: what the loop needs of a connection ([`Transport`]),
//!   and its implementation for a TCP socket, per platform.
//! - `clock.rs`: its time ([`Clock`], [`SystemClock`]) and the one timer per
//!   connection ([`Watchdog`](clock::Watchdog)).
//! - `memory.rs`, `tests.rs` (tests only): an in-memory duplex and a clock
//!   the test advances, and the loop's guarantees proved over them.
//!
//! The loop is generic over [`Transport`] and [`Clock`] (static dispatch;
//! the service's instance is `Async<TcpStream>` on [`SystemClock`]).

pub mod clock;
mod conn;
mod serve;
pub mod transport;

#[cfg(test)]
mod memory;
#[cfg(test)]
mod tests;

pub use self::clock::{Clock, SystemClock};
pub use self::serve::{serve, Context};
pub use self::transport::Transport;

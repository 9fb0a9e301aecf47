//! Answer bodies that take their time: stalled (`body_delay_ms`: nothing for
//! a while after the head), then trickled (`body_bytes_per_s`: a few bytes at
//! a time). Every read returns quickly, but the whole body takes long: the
//! case a per-read timeout misses and a whole-call deadline catches.
//!
//! The request's log line is written when the last byte is handed over, with
//! the real latency; a body the client leaves half read (or that a shutdown
//! cuts) is logged as such by its telemetry instead (499, or aborted).

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use service_runtime::telemetry::RequestTelemetry;
use smol::future::Future as _;
use smol::io::AsyncRead;
use smol::stream::Stream as _;
use smol::Timer;

/// The shortest gap between two pieces of a trickle: faster rates send
/// bigger pieces rather than waking more often.
const MIN_TICK: Duration = Duration::from_millis(10);

/// The longest a trickle may take, whatever the body's length and the rate
/// asked: past it the rate rises, so no request parks a connection for
/// longer than this on account of its own length.
pub const MAX_TRICKLE: Duration = Duration::from_secs(60);

/// The request's line, written when the body is done.
#[derive(Debug)]
pub struct Ending {
    /// The request's bookkeeping.
    pub telemetry: RequestTelemetry,
    /// Its `status=`.
    pub status: &'static str,
    /// Its `http_status=`.
    pub http_status: u16,
    /// The request's place in the budget of header-slowed requests, given
    /// back when the body is done.
    pub slot: Option<crate::fault::SlowSlot>,
}

/// A body that waits, then sends `bytes` at a bounded rate.
#[derive(Debug)]
pub struct SlowBody {
    stall: Option<Timer>,
    /// Fires once per piece; `None` when the body goes out at once.
    tick: Option<Timer>,
    /// Bytes per second, raised so the trickle ends within [`MAX_TRICKLE`].
    rate: f64,
    /// When the trickle began (after the stall).
    began: Option<Instant>,
    bytes: Vec<u8>,
    sent: usize,
    /// Locked only to take it at the end (a body must be `Sync`).
    ending: Mutex<Option<Ending>>,
}

impl SlowBody {
    /// `bytes`, after `stall`, at `bytes_per_s` (0: all at once); `ending`
    /// is written when the last byte is read.
    pub fn new(bytes: Vec<u8>, stall: Duration, bytes_per_s: u64, ending: Ending) -> Self {
        let (tick, rate) = if bytes_per_s == 0 {
            (None, f64::INFINITY)
        } else {
            let fastest_needed = bytes.len() as f64 / MAX_TRICKLE.as_secs_f64();
            let rate = (bytes_per_s as f64).max(fastest_needed);
            let gap = Duration::from_secs_f64(1.0 / rate).max(MIN_TICK);
            (Some(Timer::interval(gap)), rate)
        };
        Self {
            stall: (!stall.is_zero()).then(|| Timer::after(stall)),
            tick,
            rate,
            began: None,
            bytes,
            sent: 0,
            ending: Mutex::new(Some(ending)),
        }
    }

    /// The trickle ends within `limit` (when headers asked for it, what the
    /// one-minute header cap leaves): the rate rises if it must.
    pub fn trickle_within(mut self, limit: Duration) -> Self {
        if self.tick.is_some() {
            let limit = limit.clamp(MIN_TICK, MAX_TRICKLE);
            let fastest_needed = self.bytes.len() as f64 / limit.as_secs_f64();
            if fastest_needed > self.rate {
                self.rate = fastest_needed;
                let gap = Duration::from_secs_f64(1.0 / self.rate).max(MIN_TICK);
                self.tick = Some(Timer::interval(gap));
            }
        }
        self
    }

    /// Bytes the trickle may have sent by now: the first at once, then at
    /// the rate, fractions carried over (so 149 B/s is 149, not 100).
    fn allowed(&self, now: Instant) -> usize {
        let Some(began) = self.began else {
            return 0;
        };
        if self.tick.is_none() {
            return self.bytes.len();
        }
        let by_rate = (self.rate * now.duration_since(began).as_secs_f64()) as usize + 1;
        by_rate.min(self.bytes.len())
    }

    fn finish(&self) {
        let ending = self.ending.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(Ending {
            telemetry,
            status,
            http_status,
            slot,
        }) = ending
        {
            telemetry.finish(status, http_status, http_status, |line| line);
            // The body is done: the slot is free for another slow request.
            drop(slot);
        }
    }
}

impl AsyncRead for SlowBody {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(stall) = self.stall.as_mut() {
            if Pin::new(stall).poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.stall = None;
        }
        if self.began.is_none() {
            self.began = Some(Instant::now());
        }
        if self.sent == self.bytes.len() {
            self.finish();
            return Poll::Ready(Ok(0));
        }
        loop {
            let due = self.allowed(Instant::now()) - self.sent;
            if due > 0 {
                let n = due.min(buf.len());
                buf[..n].copy_from_slice(&self.bytes[self.sent..self.sent + n]);
                self.sent += n;
                if self.sent == self.bytes.len() {
                    // The encoder knows the length: it may never read the EOF.
                    self.finish();
                }
                return Poll::Ready(Ok(n));
            }
            let Some(tick) = self.tick.as_mut() else {
                return Poll::Ready(Ok(0));
            };
            if Pin::new(tick).poll_next(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_types::Request;
    use service_runtime::metrics::{HttpMetrics, Registry};
    use smol::io::AsyncReadExt as _;

    fn ending() -> Ending {
        let metrics = HttpMetrics::register(&mut Registry::default());
        Ending {
            telemetry: RequestTelemetry::begin("A", &Request::get("http://a/echo"), &metrics),
            status: "ok",
            http_status: 200,
            slot: None,
        }
    }

    /// Reads the whole body; returns the pieces' sizes and the time taken.
    fn drain(mut body: SlowBody) -> (Vec<usize>, Duration) {
        smol::block_on(async {
            let started = Instant::now();
            let mut pieces = Vec::new();
            let mut buf = [0u8; 64];
            loop {
                let n = body.read(&mut buf).await.unwrap();
                if n == 0 {
                    return (pieces, started.elapsed());
                }
                pieces.push(n);
            }
        })
    }

    /// A trickle sends every byte at the rate asked, fractions carried over:
    /// 150 B/s is 150, not rounded to a piece size.
    #[test]
    fn trickles_at_the_rate() {
        let (pieces, took) = drain(SlowBody::new(vec![b'x'; 30], Duration::ZERO, 150, ending()));
        assert_eq!(pieces.iter().sum::<usize>(), 30);
        // 29 bytes after the first, at 150 B/s: about 193 ms.
        assert!(
            (Duration::from_millis(170)..Duration::from_millis(400)).contains(&took),
            "{took:?}"
        );
    }

    /// However slow the rate asked, a trickle ends within MAX_TRICKLE: the
    /// rate rises with the body's length.
    #[test]
    fn a_long_body_trickles_faster() {
        let body = SlowBody::new(vec![b'x'; 6000], Duration::ZERO, 1, ending());
        assert!(body.rate >= 100.0, "{}", body.rate);
    }

    /// Without a trickle, the body waits out the stall and comes whole.
    #[test]
    fn stalls_then_sends_whole() {
        let (pieces, took) = drain(SlowBody::new(
            b"hello".to_vec(),
            Duration::from_millis(50),
            0,
            ending(),
        ));
        assert_eq!(pieces, [5]);
        assert!(took >= Duration::from_millis(50));
    }
}

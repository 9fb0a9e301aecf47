//! Answer bodies that take their time: stalled (`body_delay_ms`: nothing for
//! a while after the head), then trickled (`body_bytes_per_s`: a few bytes at
//! a time). Every read returns quickly, but the whole body takes long: the
//! case a per-read timeout misses and a whole-call deadline catches.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use smol::future::Future as _;
use smol::io::AsyncRead;
use smol::stream::Stream as _;
use smol::Timer;

/// The shortest gap between two pieces of a trickle: faster rates send
/// bigger pieces rather than waking more often.
const MIN_TICK: Duration = Duration::from_millis(10);

/// A body that waits, then sends `bytes` at a bounded rate.
#[derive(Debug)]
pub struct SlowBody {
    stall: Option<Timer>,
    /// Fires once per piece; `None` when the body goes out at once.
    tick: Option<Timer>,
    /// Bytes per piece (the whole body when not trickling).
    piece: usize,
    /// Whether the current tick's piece is still to be sent.
    due: bool,
    bytes: Vec<u8>,
    sent: usize,
}

impl SlowBody {
    /// `bytes`, after `stall`, at `bytes_per_s` (0: all at once).
    pub fn new(bytes: Vec<u8>, stall: Duration, bytes_per_s: u64) -> Self {
        let (tick, piece) = if bytes_per_s == 0 {
            (None, bytes.len().max(1))
        } else {
            let gap = Duration::from_secs_f64(1.0 / bytes_per_s as f64).max(MIN_TICK);
            let piece = (bytes_per_s as f64 * gap.as_secs_f64()).round().max(1.0) as usize;
            (Some(Timer::interval(gap)), piece)
        };
        Self {
            stall: (!stall.is_zero()).then(|| Timer::after(stall)),
            tick,
            piece,
            due: true,
            bytes,
            sent: 0,
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
        if self.sent == self.bytes.len() {
            return Poll::Ready(Ok(0));
        }
        if !self.due {
            let Some(tick) = self.tick.as_mut() else {
                return Poll::Ready(Ok(0));
            };
            if Pin::new(tick).poll_next(cx).is_pending() {
                return Poll::Pending;
            }
            self.due = true;
        }
        let n = self.piece.min(buf.len()).min(self.bytes.len() - self.sent);
        buf[..n].copy_from_slice(&self.bytes[self.sent..self.sent + n]);
        self.sent += n;
        self.due = self.tick.is_none();
        Poll::Ready(Ok(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smol::io::AsyncReadExt as _;
    use std::time::Instant;

    /// A trickle sends every byte, in pieces, at about the rate asked.
    #[test]
    fn trickles_at_the_rate() {
        smol::block_on(async {
            let started = Instant::now();
            let mut body = SlowBody::new(b"0123456789".to_vec(), Duration::ZERO, 50);
            let mut out = Vec::new();
            let mut reads = 0;
            let mut buf = [0u8; 64];
            loop {
                let n = body.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                reads += 1;
                out.extend_from_slice(&buf[..n]);
            }
            assert_eq!(out, b"0123456789");
            assert_eq!(reads, 10, "one byte per piece at 50 B/s");
            // Nine gaps of 20 ms after the first byte.
            assert!(
                started.elapsed() >= Duration::from_millis(170),
                "{:?}",
                started.elapsed()
            );
        });
    }

    /// Without a trickle, the body waits out the stall and comes whole.
    #[test]
    fn stalls_then_sends_whole() {
        smol::block_on(async {
            let started = Instant::now();
            let mut body = SlowBody::new(b"hello".to_vec(), Duration::from_millis(50), 0);
            let mut out = Vec::new();
            body.read_to_end(&mut out).await.unwrap();
            assert_eq!(out, b"hello");
            assert!(started.elapsed() >= Duration::from_millis(50));
        });
    }
}

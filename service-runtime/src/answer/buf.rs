//! One connection's read buffer: [`MAX_HEAD_BYTES`] allocated when the
//! connection opens and kept for its life, so no upstream can make a
//! connection hold more; bytes read past one answer stay for the next.

use smol::io::{AsyncRead, AsyncReadExt as _};

use crate::answer::failure::{closed_early, Failure};
use crate::answer::limits::MAX_HEAD_BYTES;

/// One connection's read buffer: [`MAX_HEAD_BYTES`] allocated once, the
/// unread bytes at `start..end`.
#[derive(Debug)]
pub struct ReadBuf {
    bytes: Box<[u8]>,
    start: usize,
    end: usize,
    /// Bytes read into it over the connection's life.
    received: u64,
}

impl Default for ReadBuf {
    fn default() -> Self {
        Self {
            bytes: vec![0; MAX_HEAD_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
            received: 0,
        }
    }
}

impl ReadBuf {
    /// Bytes read and not yet used.
    pub fn unread(&self) -> &[u8] {
        &self.bytes[self.start..self.end]
    }

    /// Bytes read from the connection so far: the pool compares it before and
    /// after an exchange to know whether any byte of the answer came.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The buffer's fixed size: what a connection holds however its peer behaves.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads more bytes after the unread ones; `Ok(0)` is end of stream, and a
    /// full buffer reads nothing (the caller refuses what does not fit).
    pub(crate) async fn fill(
        &mut self,
        io: &mut (impl AsyncRead + Unpin),
    ) -> Result<usize, Failure> {
        if self.end == self.bytes.len() && self.start > 0 {
            self.bytes.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.bytes.len() {
            return Ok(0);
        }
        match io.read(&mut self.bytes[self.end..]).await {
            Ok(n) => {
                self.end += n;
                self.received += n as u64;
                Ok(n)
            }
            Err(e) => Err(match closed_early(e.kind()) {
                Some(how) => Failure::Closed(how),
                None => Failure::Read(e),
            }),
        }
    }

    pub(crate) fn is_full(&self) -> bool {
        self.start == 0 && self.end == self.bytes.len()
    }
}

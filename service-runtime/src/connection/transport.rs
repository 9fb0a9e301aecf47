//! What the connection loop needs of its connection, and the real one: a
//! TCP socket.
//!
//! Reading and writing are `AsyncRead` and `AsyncWrite`; [`Transport`] adds
//! the four things a byte stream does not say: when a read would not block,
//! what waits unread, whether the peer has gone though bytes wait before its
//! FIN, and the two ways to end (half-close, reset). The loop is generic over
//! it, so it runs unchanged over the in-memory duplex its unit tests use
//! (`memory.rs`), and each call is static dispatch: no box, no virtual call
//! per read.
//!
//! The peer-gone probe is per platform, as the kernels differ: see
//! [`HUNG_UP`] and [`WATCH`].

use std::future::Future;
use std::io;
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use rustix::event::PollFlags;
use smol::io::{AsyncRead, AsyncWrite};
use smol::Async;

/// A connection the loop can serve.
pub trait Transport: AsyncRead + AsyncWrite + Unpin {
    /// Completes when a read would not block: bytes, an EOF or an error
    /// wait. Only news counts: a wait begun after the last read completes on
    /// the next event, not on one that read already used.
    fn readable(&self) -> impl Future<Output = io::Result<()>>;

    /// Copies what waits unread into `buf` without taking it, never waiting:
    /// `Ok(0)` is the peer's EOF, `WouldBlock` means nothing waits yet.
    fn peek(&self, buf: &mut [u8]) -> io::Result<usize>;

    /// Whether the peer has shut its sending side (or closed, or reset),
    /// though unread bytes may wait before its FIN; never waits. An error
    /// means it cannot be told (the loop then lets the handler finish).
    fn peer_gone(&self) -> io::Result<bool>;

    /// Half-closes: sends our FIN; reading goes on.
    fn shutdown_write(&self) -> io::Result<()>;

    /// Closes with an RST instead of a FIN.
    fn reset(self);
}

/// What `poll` reports when a client has gone though unread bytes wait
/// before its FIN. `POLLRDHUP` (the peer shut its sending side) exists on
/// Linux, Android, FreeBSD and illumos. Elsewhere (macOS, Windows) only
/// `POLLHUP` is there: a client that closes or resets is seen where the
/// platform reports that as `POLLHUP` or `POLLERR`; one that only
/// half-closes behind a full buffer may be seen only when the handler has
/// finished. Not checked there by CI (macOS cannot run here, and Wine's poll
/// is Linux's underneath); docs/robustness.md says so.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "illumos"
))]
pub const HUNG_UP: PollFlags = PollFlags::RDHUP.union(PollFlags::HUP);
/// What `poll` reports when a client has gone (see the Linux doc above):
/// only `POLLHUP` on this platform.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "illumos"
)))]
pub const HUNG_UP: PollFlags = PollFlags::HUP;

/// The events asked of `poll`; only [`HUNG_UP`] and `POLLERR` in the answer
/// count. `POLLHUP` and `POLLERR` are reported whether asked or not, but
/// macOS's poll is built on kqueue, which watches a socket only for the
/// events asked and carries a peer's EOF on a read watch: so reading is
/// asked too (the buffered bytes make it true at once; ignored). Windows'
/// `WSAPoll` refuses a request for `POLLHUP` (`WSAEINVAL`): there only
/// readable data is asked.
#[cfg(not(windows))]
pub const WATCH: PollFlags = HUNG_UP.union(PollFlags::IN);
/// The events asked of `poll` (see the non-Windows doc): only readable data,
/// as `WSAPoll` refuses a request for `POLLHUP`.
#[cfg(windows)]
pub const WATCH: PollFlags = PollFlags::RDNORM;

impl Transport for Async<TcpStream> {
    fn readable(&self) -> impl Future<Output = io::Result<()>> {
        Async::readable(self)
    }

    fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.get_ref().peek(buf)
    }

    /// `poll` with no wait (async-io has no wait for `POLLRDHUP`; the loop
    /// asks only while its buffer is full).
    fn peer_gone(&self) -> io::Result<bool> {
        use rustix::event::{poll, PollFd, Timespec};
        let mut fds = [PollFd::new(self.get_ref(), WATCH)];
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match poll(&mut fds, Some(&now)) {
            Ok(_) => Ok(fds[0].revents().intersects(HUNG_UP | PollFlags::ERR)),
            Err(rustix::io::Errno::INTR) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn shutdown_write(&self) -> io::Result<()> {
        self.get_ref().shutdown(Shutdown::Write)
    }

    /// `SO_LINGER` of zero, then close.
    fn reset(self) {
        let _ = socket2::SockRef::from(self.get_ref()).set_linger(Some(Duration::ZERO));
    }
}

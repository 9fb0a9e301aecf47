//! How an exchange with an upstream failed, as the client saw it on the
//! socket: a fact ([`Failure`], [`Closed`]), kept apart from what a service
//! makes of it (B's KINDs, A's `upstream_error`). A leaf: it imports nothing
//! of its siblings, so every part of `answer` can name a failure.

use std::io;

/// A fact about a failed exchange with an upstream, as the client saw it on the socket.
#[derive(Debug)]
pub enum Failure {
    /// No connection could be opened (refused, no route, out of descriptors).
    Connect(io::Error),
    /// The connection ended before a complete answer.
    Closed(Closed),
    /// Reading or writing the connection failed otherwise.
    Read(io::Error),
    /// What came back was not a valid HTTP answer.
    Malformed(String),
}

/// How a connection ended before a complete answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The peer closed it cleanly (FIN): end of stream.
    Fin,
    /// The peer reset it (RST): "connection reset by peer".
    Reset,
    /// The peer closed it after part of a body whose length it had announced.
    ShortBody {
        /// Body bytes received.
        got: usize,
        /// The `Content-Length` announced.
        announced: usize,
    },
}

impl Closed {
    /// In words, with `peer` (`A`, `the upstream`) as the one who closed.
    pub fn describe(&self, peer: &str) -> String {
        match self {
            Closed::Fin => format!("{peer} closed the connection (FIN) before a complete answer"),
            Closed::Reset => format!(
                "{peer} reset the connection (RST, reset by peer) before a complete answer"
            ),
            Closed::ShortBody { got, announced } => format!(
                "{peer} closed the connection after {got} of the {announced} body bytes it announced \
                 (Content-Length): the body was short"
            ),
        }
    }
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe("the upstream"))
    }
}

impl Failure {
    /// In words, with `peer` (`A`, `the upstream`) as the other side.
    pub fn describe(&self, peer: &str) -> String {
        match self {
            Failure::Connect(e) => format!("cannot connect: {e}"),
            Failure::Closed(how) => how.describe(peer),
            Failure::Read(e) => format!("the connection to {peer} failed: {e}"),
            Failure::Malformed(why) => format!("not a valid HTTP answer: {why}"),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe("the upstream"))
    }
}

impl std::error::Error for Failure {}

/// How the peer ended the connection, if this io error means it did.
pub fn closed_early(kind: io::ErrorKind) -> Option<Closed> {
    use io::ErrorKind::*;
    match kind {
        ConnectionReset | ConnectionAborted => Some(Closed::Reset),
        BrokenPipe | UnexpectedEof => Some(Closed::Fin),
        _ => None,
    }
}

/// A [`Failure::Malformed`] with this reason.
pub fn malformed(why: impl Into<String>) -> Failure {
    Failure::Malformed(why.into())
}

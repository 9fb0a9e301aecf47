//! What one request gets ([`Plan`]), how faults that cannot go together
//! are settled, and the one name of each fault.

use std::time::Duration;

/// What happens instead of a well-formed echo (at most one per request).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Broken {
    /// Nothing: the answer is what it should be.
    #[default]
    No,
    /// Closed without an answer: FIN.
    Drop,
    /// Reset without an answer: RST.
    Reset,
    /// Bytes that are not HTTP, then closed.
    Garbage,
    /// The head, then half the announced body, then closed.
    Truncate,
    /// A 200 whose body is not the echo's JSON.
    BadBody,
}

impl Broken {
    pub(super) fn name(self) -> Option<&'static str> {
        match self {
            Broken::No => None,
            Broken::Drop => Some("drop"),
            Broken::Reset => Some("reset"),
            Broken::Garbage => Some("garbage"),
            Broken::Truncate => Some("truncate"),
            Broken::BadBody => Some("bad_body"),
        }
    }

    /// Whether any answer head goes out at all.
    pub fn answers(self) -> bool {
        !matches!(self, Broken::Drop | Broken::Reset | Broken::Garbage)
    }
}

/// What one request gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Wait before answering (or breaking the connection).
    pub delay: Duration,
    /// Answer this status instead of the echo.
    pub fail: Option<u16>,
    /// With a 429 or 503 failure, `Retry-After` in seconds.
    pub retry_after: Option<u64>,
    /// What breaks the answer, if anything.
    pub broken: Broken,
    /// Seeds the garbage bytes, so a seed replays them too.
    pub garbage_seed: u64,
    /// Stall the body after the head.
    pub body_delay: Duration,
    /// Send the body at this many bytes per second (0: at once).
    pub bytes_per_s: u64,
    /// What the request's own headers made slow: counted against the
    /// budget of [`HEADER_SLOW_SHARE_PERCENT`](super::headers::HEADER_SLOW_SHARE_PERCENT).
    pub slowed_by_headers: bool,
    /// The longest the trickle may take: what the header cap
    /// ([`MAX_HEADER_DELAY_MS`](super::headers::MAX_HEADER_DELAY_MS)) leaves after the delays, when a header
    /// asked for the trickle.
    pub trickle_within: Option<Duration>,
}

impl Plan {
    /// Drops what cannot apply alongside the rest, so the names say what
    /// happened: no answer, no failure status; a failure's body is not
    /// replaced by a bad one; a cut body goes out at once; an answer to HEAD
    /// has no body to slow or cut.
    pub(super) fn settled(mut self, head: bool) -> Self {
        if head {
            self.body_delay = Duration::ZERO;
            self.bytes_per_s = 0;
            if matches!(self.broken, Broken::Truncate | Broken::BadBody) {
                self.broken = Broken::No;
            }
        }
        if self.broken == Broken::Truncate {
            self.body_delay = Duration::ZERO;
            self.bytes_per_s = 0;
        }
        if !self.broken.answers() {
            self.fail = None;
            self.retry_after = None;
            self.body_delay = Duration::ZERO;
            self.bytes_per_s = 0;
        }
        if self.fail.is_some() && self.broken == Broken::BadBody {
            self.broken = Broken::No;
        }
        if !matches!(self.fail, Some(429 | 503)) {
            self.retry_after = None;
        }
        if self.bytes_per_s == 0 {
            self.trickle_within = None;
        }
        if self.delay.is_zero() && self.body_delay.is_zero() && self.bytes_per_s == 0 {
            self.slowed_by_headers = false;
        }
        self
    }

    /// The name of every fault this plan injects, in one order everywhere:
    /// `delay`, `fail`, then what broke the answer, then `body_delay`, `trickle`.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        [
            (!self.delay.is_zero()).then_some("delay"),
            self.fail.is_some().then_some("fail"),
            self.broken.name(),
            (!self.body_delay.is_zero()).then_some("body_delay"),
            (self.bytes_per_s > 0).then_some("trickle"),
        ]
        .into_iter()
        .flatten()
    }

    /// The `x-fault-injected` value (and the log's `fault=`), e.g. `delay,fail`;
    /// none when the request was untouched.
    pub fn label(&self) -> Option<String> {
        let names: Vec<&str> = self.names().collect();
        (!names.is_empty()).then(|| names.join(","))
    }
}

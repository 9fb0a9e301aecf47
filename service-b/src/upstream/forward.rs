//! What a call to A carries from B's request (the trace, the caller's
//! `x-fault-*` headers), and whether the request to A fits A's limits on a
//! request head: if not, B refuses it itself (414/431) rather than send
//! what A would refuse and then blame A.

use fastrace::collector::SpanContext;
use http_types::{Request, StatusCode};
use service_runtime::head::{MAX_HEADERS, MAX_HEAD_BYTES};
use service_runtime::http::ApiError;
use service_runtime::wire;
use url::Url;

/// Header fields B adds to each request to A besides forwarded ones (host,
/// content-length, date, traceparent, x-request-timeout-ms, and a spare).
const OWN_HEADERS: usize = 6;

/// Bytes of a request head to A kept for the fields B adds itself.
const HEAD_ROOM: usize = 256;

/// What a call to A carries from B's request besides the URL, and the trace
/// id for B's own log lines about the call.
#[derive(Debug, Default, Clone)]
pub struct Forward {
    /// The trace id of B's request, for attempt and breaker log lines.
    pub trace_id: String,
    /// B's request span: each attempt's client span is its child, and A's
    /// request span the child of that (its `traceparent`).
    pub parent: Option<SpanContext>,
    /// The caller's `x-fault-*` headers, passed on untouched.
    pub faults: Vec<(String, String)>,
}

impl Forward {
    /// Copies the `x-fault-*` headers of B's incoming request.
    pub fn faults_of(req: &Request) -> Vec<(String, String)> {
        req.iter()
            .filter(|(name, _)| name.as_str().starts_with(wire::FAULT_PREFIX))
            .map(|(name, values)| (name.as_str().to_owned(), values.last().as_str().to_owned()))
            .collect()
    }

    /// Whether a GET of `url` carrying these headers fits A's limits on a
    /// request head, with room for the fields B adds; else B's own 414 or 431.
    pub fn fits_a_head(&self, url: &Url) -> Result<(), ApiError> {
        // "GET " + path and query + " HTTP/1.1\r\n"
        let line = 4 + url.path().len() + url.query().map_or(0, |q| q.len() + 1) + 11;
        if line > MAX_HEAD_BYTES - HEAD_ROOM {
            return Err(ApiError {
                status: StatusCode::UriTooLong,
                message: format!(
                    "msg is too long to forward: the request to A would have a {line}-byte \
                     request line, over A's limit of {MAX_HEAD_BYTES} bytes for a whole head"
                )
                .into(),
            });
        }
        let fields: usize = self.faults.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
        if self.faults.len() + OWN_HEADERS > MAX_HEADERS
            || line + fields > MAX_HEAD_BYTES - HEAD_ROOM
        {
            return Err(ApiError {
                status: StatusCode::RequestHeaderFieldsTooLarge,
                message: format!(
                    "too many or too large x-fault-* headers to forward: A takes at most \
                     {MAX_HEADERS} header fields and {MAX_HEAD_BYTES} bytes of head, and B adds \
                     {OWN_HEADERS} fields of its own"
                )
                .into(),
            });
        }
        Ok(())
    }
}

//! Property tests of what reads a client's bytes (`head.rs`, `body.rs`):
//! any bytes, cut anywhere, give an answer or a refusal; never a panic, never
//! memory past the cap, and the same outcome however the bytes are split.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use proptest::prelude::*;
use service_runtime::body::Skip;
use service_runtime::head::{self, Framing, MAX_HEAD_BYTES};

/// Counts this thread's live heap bytes and their peak, so a test can bound
/// what one call allocates (other test threads do not disturb the count).
struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// counters are plain thread-local cells that never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.with(|l| {
            l.set(l.get() + layout.size());
            l.get()
        });
        PEAK.with(|p| p.set(p.get().max(live)));
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.with(|l| l.set(l.get().saturating_sub(layout.size())));
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most one parse of a full buffer may allocate: the request it builds
/// (URL, header names and values, http-types' own parts) from at most
/// [`MAX_HEAD_BYTES`] of input, with room for maps and copies.
const PARSE_BUDGET: usize = 8 * MAX_HEAD_BYTES;

/// Bytes that look like the start of a request often enough to reach deep.
fn head_like() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just(b"GET /echo?msg=x HTTP/1.1\r\n".to_vec()),
        Just(b"GET http://a/health HTTP/1.0\r\n".to_vec()),
        Just(b"Host: a\r\n".to_vec()),
        any::<String>().prop_map(|target| format!("GET {target} HTTP/1.1\r\n").into_bytes()),
        Just(b"Content-Length: 5\r\n".to_vec()),
        Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        prop::collection::vec(any::<u8>(), 0..64),
        (0..2 * MAX_HEAD_BYTES).prop_map(|n| vec![b'a'; n]),
    ];
    prop::collection::vec(line, 0..24).prop_map(|lines| lines.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any bytes, as the loop hands them over (at most a full buffer): a head,
    /// a request for more (only while the buffer has room), or a refusal with
    /// one of the defined statuses; never a panic, never memory past the cap.
    #[test]
    fn any_head_is_parsed_or_refused(bytes in head_like()) {
        let buf = &bytes[..bytes.len().min(MAX_HEAD_BYTES)];
        PEAK.with(|p| p.set(0));
        let before = LIVE.with(Cell::get);
        let parsed = head::parse(buf);
        let peak = PEAK.with(Cell::get).saturating_sub(before);
        prop_assert!(peak <= PARSE_BUDGET, "parse allocated {peak} bytes");
        match parsed {
            Ok(Some(head)) => prop_assert!(head.len <= buf.len()),
            Ok(None) => prop_assert!(buf.len() < MAX_HEAD_BYTES),
            Err(refusal) => {
                let status = u16::from(refusal.error.status);
                prop_assert!([400, 413, 414, 431, 501, 505].contains(&status), "{status}");
            }
        }
    }

    /// A head cut anywhere asks for more, or is refused exactly as the whole
    /// head is: no prefix of a good head is refused, and refusals come early.
    #[test]
    fn a_head_cut_anywhere_waits_or_is_refused_alike(bytes in head_like(), cut in any::<prop::sample::Index>()) {
        let whole = &bytes[..bytes.len().min(MAX_HEAD_BYTES)];
        let prefix = &whole[..cut.index(whole.len() + 1)];
        match (head::parse(prefix), head::parse(whole)) {
            (Ok(Some(early)), Ok(Some(late))) => prop_assert_eq!(early.len, late.len),
            (Ok(Some(_)), other) => prop_assert!(false, "prefix complete, whole {other:?}"),
            (Err(early), Err(late)) => prop_assert_eq!(early.error.status, late.error.status),
            (Err(early), Ok(_)) => prop_assert!(false, "prefix refused: {early:?}"),
            (Ok(None), _) => {}
        }
    }

    /// A body fed in pieces of any size ends at the same byte, or is refused
    /// with the same status, as when fed whole.
    #[test]
    fn bodies_end_alike_however_split(
        body in prop::collection::vec(prop_oneof![
            Just(b"5\r\nhello\r\n".to_vec()),
            Just(b"0\r\n\r\n".to_vec()),
            Just(b"0\r\nX-T: 1\r\n\r\n".to_vec()),
            Just(b"a;ext=\"x\"\r\n0123456789\r\n".to_vec()),
            prop::collection::vec(any::<u8>(), 0..16),
        ], 0..8).prop_map(|parts| parts.concat()),
        chunked in any::<bool>(),
        length in 0u64..64,
        piece in 1usize..17,
    ) {
        let framing = if chunked { Framing::Chunked } else { Framing::Length(length) };
        let whole = Skip::new(framing).feed(&body).map_err(|e| e.status);
        let mut skip = Skip::new(framing);
        let (mut used, mut arrived) = (0, 0);
        let split = loop {
            arrived = (arrived + piece).min(body.len());
            match skip.feed(&body[used..arrived]) {
                Err(e) => break Err(e.status),
                Ok(n) => used += n,
            }
            if skip.is_done() || arrived == body.len() {
                break Ok(used);
            }
        };
        match (whole, split) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            other => prop_assert!(false, "{other:?}"),
        }
    }
}

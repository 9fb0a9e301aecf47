//! Property tests of what reads a peer's bytes (`head.rs`, `body/`): any
//! bytes, cut anywhere, give an answer or a refusal; never a panic, never
//! memory past the cap, and the same outcome however the bytes are split. The
//! one body decoder reads a well-formed body exactly from either sender, and
//! an upstream's body as a client's wherever a client's is accepted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use proptest::prelude::*;
use service_runtime::body::{self, Decoder, Refusal, Sender, Skip, MAX_LINE_BYTES};
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

/// What a decoder made of `input`, fed as a connection feeds it: `piece`
/// more bytes each time, after whatever it left unread. Where the body
/// ended (if it did) and its data, or the refusal.
fn decode(
    framing: body::Framing,
    sender: Sender,
    input: &[u8],
    piece: usize,
) -> Result<(Option<usize>, Vec<u8>), Refusal> {
    let mut decoder = Decoder::new(framing, sender);
    let (mut used, mut arrived, mut data) = (0, 0, Vec::new());
    loop {
        arrived = (arrived + piece).min(input.len());
        used += decoder.feed(&input[used..arrived], Some(&mut data))?;
        if decoder.is_done() {
            return Ok((Some(used), data));
        }
        if arrived == input.len() {
            return Ok((None, data));
        }
    }
}

/// Bytes that are often chunked framing, right or wrong in each way the two
/// senders' rules tell apart (bare LFs, loose extensions, unnamed trailers),
/// and often not. Shorter than a line may be, as a connection's buffer is.
fn chunked_like() -> impl Strategy<Value = Vec<u8>> {
    let part = prop_oneof![
        Just(b"5\r\nhello\r\n".to_vec()),
        Just(b"3\nabc\n".to_vec()),
        Just(b"2\r\nab".to_vec()),
        Just(b"0\r\n".to_vec()),
        Just(b"0\r\n\r\n".to_vec()),
        Just(b"X-T: 1\r\n".to_vec()),
        Just(b"X-T: 1\n".to_vec()),
        Just(b"no colon\r\n".to_vec()),
        Just(b"a;ext=\"x\"\r\n0123456789\r\n".to_vec()),
        Just(b"1 ; a = b\r\nx\r\n".to_vec()),
        Just(b"1;\r\nx\r\n".to_vec()),
        Just(b"100001\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        prop::collection::vec(
            prop::sample::select(b"09afAF;= \t\"\\\r\nx:".to_vec()),
            0..12
        ),
        prop::collection::vec(any::<u8>(), 0..12),
    ];
    prop::collection::vec(part, 0..24).prop_map(|parts| {
        let bytes = parts.concat();
        assert!(bytes.len() < MAX_LINE_BYTES);
        bytes
    })
}

/// A well-formed chunked body by RFC 9112 (chunks with or without
/// extensions, trailers or none), its data, and bytes after it.
fn well_formed() -> impl Strategy<Value = (Vec<u8>, Vec<u8>, Vec<u8>)> {
    let chunk = (
        prop::collection::vec(any::<u8>(), 1..40),
        prop_oneof![
            Just(String::new()),
            Just(";a".to_owned()),
            Just(" ; name = value".to_owned()),
            Just(";q=\"x \\\" y\";z".to_owned()),
        ],
    );
    let trailer = "[A-Za-z-]{1,10}: [ -~]{0,20}";
    (
        prop::collection::vec(chunk, 0..8),
        prop::collection::vec(trailer, 0..3),
        prop::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(|(chunks, trailers, after)| {
            let (mut wire, mut data) = (Vec::new(), Vec::new());
            for (bytes, ext) in chunks {
                wire.extend_from_slice(format!("{:x}{ext}\r\n", bytes.len()).as_bytes());
                wire.extend_from_slice(&bytes);
                wire.extend_from_slice(b"\r\n");
                data.extend_from_slice(&bytes);
            }
            wire.extend_from_slice(b"0\r\n");
            for field in trailers {
                wire.extend_from_slice(format!("{field}\r\n").as_bytes());
            }
            wire.extend_from_slice(b"\r\n");
            (wire, data, after)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Either sender, any framing: fed in pieces of any size, the one decoder
    /// ends at the same byte with the same data, or refuses alike, as fed whole.
    #[test]
    fn the_decoder_reads_alike_however_split(
        input in chunked_like(),
        framing in prop_oneof![
            Just(body::Framing::Chunked),
            (0u64..64).prop_map(body::Framing::Length),
            Just(body::Framing::UntilClose),
        ],
        client in any::<bool>(),
        piece in 1usize..17,
    ) {
        let sender = if client { Sender::Client } else { Sender::Upstream };
        prop_assert_eq!(
            decode(framing, sender, &input, input.len().max(1)),
            decode(framing, sender, &input, piece)
        );
    }

    /// A well-formed chunked body is read exactly, from either sender, in
    /// pieces of any size: its data, and not a byte of what follows it.
    #[test]
    fn well_formed_bodies_are_read_exactly(
        (wire, data, after) in well_formed(),
        piece in 1usize..64,
    ) {
        let mut input = wire.clone();
        input.extend_from_slice(&after);
        for sender in [Sender::Client, Sender::Upstream] {
            prop_assert_eq!(
                decode(body::Framing::Chunked, sender, &input, piece),
                Ok((Some(wire.len()), data.clone())),
                "{:?}", sender
            );
        }
    }

    /// What a service takes from a client it takes from an upstream too,
    /// read the same way: the upstream's rules are only looser.
    #[test]
    fn a_client_body_reads_the_same_from_an_upstream(input in chunked_like(), piece in 1usize..17) {
        let client = decode(body::Framing::Chunked, Sender::Client, &input, piece);
        if let Ok((Some(end), data)) = client {
            prop_assert_eq!(
                decode(body::Framing::Chunked, Sender::Upstream, &input, piece),
                Ok((Some(end), data))
            );
        }
    }
}

/// Where the two senders' rules differ: an upstream may end a chunk's data
/// or the trailers with a bare LF, send an extension without a name, or a
/// trailer that only has a colon; a client may not. A well-formed body is
/// read from both.
#[test]
fn senders_differ_where_documented() {
    let done = |input: &[u8], sender| matches!(decode(body::Framing::Chunked, sender, input, 1), Ok((Some(n), _)) if n == input.len());
    for loose in [
        &b"3\r\nabc\n0\r\n\r\n"[..],
        b"0\r\n\n",
        b"0\r\n :x\r\n\r\n",
        b"5;\r\nhello\r\n0\r\n\r\n",
    ] {
        assert!(done(loose, Sender::Upstream), "{loose:?}");
        assert!(!done(loose, Sender::Client), "{loose:?}");
    }
    let strict = b"5 ; a = \"b\"\r\nhello\r\n0\r\nX-T: 1\r\n\r\n";
    assert!(done(strict, Sender::Client) && done(strict, Sender::Upstream));
}

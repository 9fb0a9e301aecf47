//! The answer reader's tests: each framing, status, limit at its edge and
//! early close over bytes fed in pieces of any size, and property tests over
//! arbitrary bytes (no panic, the buffer never grows, a body never past its cap).

use smol::io::AsyncRead;

use super::*;

/// Reads one answer from `bytes`, fed in pieces of `piece` bytes.
fn read(bytes: &[u8], piece: usize) -> Result<Answer, Failure> {
    let mut io = Pieces {
        bytes: bytes.to_vec(),
        at: 0,
        piece,
    };
    let mut buf = ReadBuf::default();
    smol::block_on(read_answer(&mut io, &mut buf))
}

/// An `AsyncRead` that gives out its bytes a few at a time, then EOF.
struct Pieces {
    bytes: Vec<u8>,
    at: usize,
    piece: usize,
}

impl AsyncRead for Pieces {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        out: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let n = self
            .piece
            .max(1)
            .min(out.len())
            .min(self.bytes.len() - self.at);
        out[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        std::task::Poll::Ready(Ok(n))
    }
}

fn ok(bytes: &[u8]) -> Answer {
    for piece in [1, 3, 7, 4096] {
        if let Err(e) = read(bytes, piece) {
            panic!("piece {piece}: {e}");
        }
    }
    read(bytes, 4096).unwrap()
}

fn refused(bytes: &[u8]) -> String {
    match read(bytes, 4096) {
        Err(Failure::Malformed(why)) => why,
        Err(other) => panic!("expected a refusal, got {other:?}"),
        Ok(a) => panic!(
            "expected a refusal, got {:?} with {} body bytes",
            a.head,
            a.body.len()
        ),
    }
}

/// An answer's status, body and reuse, to compare at once.
fn seen(a: &Answer) -> (u16, &[u8], bool) {
    (a.head.status.code, &a.body, a.reusable)
}

/// Each framing reads exactly its body, in pieces of any size.
#[test]
fn framings_read_their_bodies() {
    let a = ok(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(seen(&a), (200, &b"hello"[..], true));
    let a = ok(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nhel\r\n2\r\nlo\r\n0\r\nX-T: 1\r\n\r\n");
    assert_eq!((&a.body[..], a.reusable), (&b"hello"[..], true));
    let a = ok(b"HTTP/1.0 404 File not found\r\nContent-Type: text/html\r\n\r\n<html>gone</html>");
    assert_eq!(
        (a.head.status.code, a.head.status.reason.as_str()),
        (404, "File not found")
    );
    assert_eq!(
        (&a.body[..], a.reusable),
        (&b"<html>gone</html>"[..], false)
    );
    let a = ok(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok");
    assert!(
        a.reusable,
        "HTTP/1.0 with keep-alive and a length may be reused"
    );
    let a = ok(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    assert!(!a.reusable);
    let a = ok(b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n");
    assert!(a.body.is_empty());
}

/// Statuses http-types has no name for are read with their own reason.
#[test]
fn any_status_is_read_exactly() {
    for code in [420, 499, 520, 527, 599, 299, 103] {
        let wire = format!("HTTP/1.1 {code} Whatever\r\nContent-Length: 0\r\n\r\n");
        let a = read(wire.as_bytes(), 4096).unwrap();
        assert_eq!(a.head.status.code, code);
    }
    assert!(refused(b"HTTP/1.1 600 No\r\n\r\n").contains("outside 100..=599"));
    assert!(refused(b"HTTP/1.1 099 No\r\n\r\n").contains("outside 100..=599"));
}

/// `100 Continue` (and other 1xx) are skipped; the final answer counts;
/// only a 1xx then a close is answered with the 1xx.
#[test]
fn interim_answers_are_skipped() {
    let a = ok(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none");
    assert_eq!(seen(&a), (200, &b"one"[..], true));
    let a = ok(b"HTTP/1.1 103 Early Hints\r\nConnection: close\r\n\r\n");
    assert_eq!((a.head.status.code, a.reusable), (103, false));
    let many = "HTTP/1.1 100 Continue\r\n\r\n".repeat(MAX_INTERIM + 1);
    assert!(refused(many.as_bytes()).contains("interim"));
    let a = ok(b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
    assert_eq!((a.head.status.code, a.reusable), (101, false));
}

/// Framing that two readers could take two ways is refused.
#[test]
fn conflicting_framing_is_refused() {
    assert!(
        refused(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n")
            .contains("conflicting")
    );
    assert!(
        refused(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n")
            .contains("differing")
    );
    assert!(refused(b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n").contains("not a number"));
    assert!(
        refused(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").contains("only chunked")
    );
    assert!(
        refused(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n")
            .contains("only chunked")
    );
    assert!(refused(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").contains("HTTP/1.0"));
    assert!(
        refused(b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n")
            .contains("not a number")
    );
    assert!(refused(b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n").contains("not a number"));
    let a = ok(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok");
    assert_eq!(&a.body[..], b"ok");
}

/// Bytes that are not HTTP are refused from the first line, without waiting.
#[test]
fn not_http_is_refused_at_once() {
    for banner in [
        &b"SSH-2.0-OpenSSH_9.2\r\n"[..],
        b"\x15\x03\x03\x00\x02\x02\x28",
        b"220 mail.example ESMTP\r\n",
        b"NOT-HTTP xyz\r\n\r\n",
    ] {
        // Parsed as it stands: no more bytes are needed to know.
        assert!(
            matches!(parse_head(banner), Err(Failure::Malformed(_))),
            "{banner:?}"
        );
    }
    assert!(matches!(parse_head(b"HT"), Ok(None)));
}

/// Each limit, at its edge: the last size accepted and the first refused.
#[test]
fn limits_at_their_edges() {
    // Head: exactly MAX_HEAD_BYTES is read; one byte more is refused.
    let head = |total: usize| {
        let start = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Pad: ";
        let pad = total - start.len() - 4;
        format!("{start}{}\r\n\r\n", "a".repeat(pad))
    };
    assert_eq!(
        read(head(MAX_HEAD_BYTES).as_bytes(), 4096)
            .unwrap()
            .head
            .len,
        MAX_HEAD_BYTES
    );
    assert!(refused(head(MAX_HEAD_BYTES + 1).as_bytes()).contains("over the limit of 8192"));
    // Header fields: MAX_HEADERS are read, one more refused.
    let fields = |n: usize| {
        let mut s = "HTTP/1.1 200 OK\r\n".to_owned();
        s.push_str(&"A: b\r\n".repeat(n - 1));
        s.push_str("Content-Length: 0\r\n\r\n");
        s
    };
    assert!(read(fields(MAX_HEADERS).as_bytes(), 4096).is_ok());
    assert!(refused(fields(MAX_HEADERS + 1).as_bytes()).contains("header fields"));
    // Bodies, each framing: the cap is read, one byte more refused (before
    // reading, for a length).
    for (framing, refusal) in [
        (Framing::Length(0), "1048577-byte body"),
        (Framing::UntilClose, "over the limit"),
        (Framing::Chunked, "over the limit"),
    ] {
        let at_cap = read(&with_body(framing, MAX_BODY_BYTES), 65536).unwrap();
        assert_eq!(at_cap.body.len(), MAX_BODY_BYTES, "{framing:?}");
        let why = refused(&with_body(framing, MAX_BODY_BYTES + 1));
        assert!(why.contains(refusal), "{framing:?}: {why}");
    }
    // Interim answers: MAX_INTERIM are skipped, one more refused.
    let interim = |n: usize| {
        let mut s = "HTTP/1.1 100 Continue\r\n\r\n".repeat(n);
        s.push_str("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        s
    };
    assert!(read(interim(MAX_INTERIM).as_bytes(), 4096).is_ok());
    assert!(refused(interim(MAX_INTERIM + 1).as_bytes()).contains("interim"));
    // Chunk framing: empty-looking extensions run out at the cap.
    let mut ext = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..=MAX_CHUNK_FRAMING_BYTES / 60 {
        ext.extend_from_slice(format!("1;{}\r\nx\r\n", "e".repeat(57)).as_bytes());
    }
    ext.extend_from_slice(b"0\r\n\r\n");
    assert!(refused(&ext).contains("framing"));
    // A line of the chunked framing: a whole buffer is read, one byte more
    // refused (a size line, and a trailer).
    let lines = |n: usize| {
        let size = format!("1;{}\r\n", "e".repeat(n - 4));
        let trailer = format!("X: {}\r\n", "t".repeat(n - 5));
        [(size, "x\r\n0\r\n\r\n"), (trailer, "\r\n")].map(|(line, tail)| {
            assert_eq!(line.len(), n);
            let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
            let mut bytes = head.to_vec();
            if line.starts_with('X') {
                bytes.extend_from_slice(b"0\r\n");
            }
            bytes.extend_from_slice(line.as_bytes());
            bytes.extend_from_slice(tail.as_bytes());
            bytes
        })
    };
    for bytes in lines(MAX_HEAD_BYTES) {
        ok(&bytes);
    }
    for bytes in lines(MAX_HEAD_BYTES + 1) {
        let why = refused(&bytes);
        assert!(
            why.contains("a line of the chunked body is over 8192 bytes"),
            "{why}"
        );
    }
}

/// An answer with a body of `n` bytes, framed as `framing` says (any length
/// given is replaced by `n`).
fn with_body(framing: Framing, n: usize) -> Vec<u8> {
    let (head, tail) = match framing {
        Framing::UntilClose => ("HTTP/1.0 200 OK\r\n\r\n".to_owned(), ""),
        Framing::Chunked => (
            format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{n:x}\r\n"),
            "\r\n0\r\n\r\n",
        ),
        _ => (
            format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n"),
            "",
        ),
    };
    let mut bytes = head.into_bytes();
    bytes.resize(bytes.len() + n, b'x');
    bytes.extend_from_slice(tail.as_bytes());
    bytes
}

/// A close inside an answer is the upstream closing early, with how short it was.
#[test]
fn early_closes_are_closes() {
    assert!(matches!(read(b"", 10), Err(Failure::Closed(Closed::Fin))));
    assert!(matches!(
        read(b"HTTP/1.1 200 OK\r\nContent-Le", 10),
        Err(Failure::Closed(Closed::Fin))
    ));
    assert!(matches!(
        read(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", 10),
        Err(Failure::Closed(Closed::ShortBody {
            got: 4,
            announced: 10
        }))
    ));
    assert!(matches!(
        read(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            10
        ),
        Err(Failure::Closed(Closed::Fin))
    ));
}

/// Bytes after a complete answer stay in the buffer, and the connection is
/// not reused: no answer was asked for them.
#[test]
fn bytes_after_an_answer_forbid_reuse() {
    let a = read(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n",
        4096,
    )
    .unwrap();
    assert!(!a.reusable);
}

/// What B quotes of an upstream is cut to [`MAX_QUOTED_BYTES`] on a
/// character boundary, and says how long it was.
#[test]
fn quotes_are_cut_and_marked() {
    assert_eq!(cut("short", 64), "short");
    assert_eq!(cut(&"é".repeat(40), 5), "éé...(80 bytes)");
    let mut wire = b"HTTP/1.1 500 ".to_vec();
    wire.resize(wire.len() + 7000, b'R');
    wire.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
    let a = read(&wire, 4096).unwrap();
    assert_eq!(
        a.head.status.reason,
        format!("{}...(7000 bytes)", "R".repeat(64))
    );
    let why = refused(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    assert!(why.ends_with(r#"line "zz""#), "{why}");
}

/// Reads `bytes` in pieces of `piece`: whatever the outcome, the buffer kept
/// its size, and an answer has a status in range and a body within its cap.
fn stays_bounded(bytes: Vec<u8>, piece: usize) -> Result<(), proptest::test_runner::TestCaseError> {
    let mut io = Pieces {
        bytes,
        at: 0,
        piece,
    };
    let mut buf = ReadBuf::default();
    let result = smol::block_on(read_answer(&mut io, &mut buf));
    proptest::prop_assert_eq!(buf.capacity(), MAX_HEAD_BYTES);
    if let Ok(a) = result {
        proptest::prop_assert!(a.body.capacity() <= MAX_BODY_BYTES);
        proptest::prop_assert!((100..=599).contains(&a.head.status.code));
    }
    Ok(())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    /// Any bytes, in any pieces: no panic, the buffer never grows, a body
    /// never past its cap, and every outcome is an answer or a failure.
    #[test]
    fn arbitrary_bytes_never_panic_or_grow(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
        piece in 1usize..64,
    ) {
        stays_bounded(bytes, piece)?;
    }

    /// Bytes that start as an HTTP answer then go anywhere: the same.
    #[test]
    fn arbitrary_heads_and_bodies(
        head in "HTTP/1\\.[01] [0-9]{3} [a-zA-Z ]{0,8}\r\n((Content-Length: [0-9]{1,3}|Transfer-Encoding: [a-z, ]{0,10}|Connection: [a-z-]{0,10}|X: [ -~]{0,20})\r\n){0,4}\r\n",
        tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
        piece in 1usize..64,
    ) {
        let mut bytes = head.into_bytes();
        bytes.extend(tail);
        stays_bounded(bytes, piece)?;
    }
}

//! A soak: tens of thousands of calls through B at concurrency 32 while A fails
//! a share of them. Every answer must be right and classified, and B's memory
//! and open files must stay flat.

use std::time::{Duration, Instant};

use testkit::http::{encode, Conn};
use testkit::{open_fds, rss_kib};

use crate::{start_a, start_b};

const THREADS: usize = 32;
const WARM_UP: usize = 2_000;
const CALLS: usize = 20_000;

/// Runs `calls` calls spread over [`THREADS`] keep-alive connections to B,
/// checking each answer.
fn load(authority: &str, calls: usize, round: usize) {
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let authority = authority.to_owned();
            std::thread::spawn(move || {
                let mut conn = Conn::open(&authority);
                for i in 0..calls / THREADS {
                    let msg = format!("r{round} t{t} #{i} & é");
                    let reply = conn.get(&format!("/call-echo?msg={}", encode(&msg)));
                    match reply.status {
                        200 => assert_eq!(reply.json()["service_a"]["echo"], msg.as_str()),
                        503 => {
                            let body = reply.json();
                            assert_eq!(body["error"], "upstream_status", "{}", reply.body);
                            assert_eq!(body["http_status"], 503, "{}", reply.body);
                        }
                        other => panic!("unexpected {other}: {}", reply.body),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a worker saw a wrong answer");
    }
}

/// Every answer right under sustained load with failures; memory and fds flat
/// (measured from /proc: where there is none, the bounds are skipped and the
/// test says so on stderr).
#[test]
fn soak_through_b() {
    let _alone = crate::exclusive();
    let a = start_a("fail = true\nprobability = 0.2\nfail_status = 503\nseed = 1");
    let b = start_b(&a.url, 2000);
    let started = Instant::now();

    load(b.authority(), WARM_UP, 0);
    let (rss_warm, fds_warm) = (rss_kib(b.pid()), open_fds(b.pid()));
    load(b.authority(), CALLS, 1);
    let (rss_end, fds_end) = (rss_kib(b.pid()), open_fds(b.pid()));

    eprintln!(
        "soak: {} calls in {:?}; B's RSS {rss_warm:?} → {rss_end:?} KiB, fds {fds_warm:?} → {fds_end:?}",
        WARM_UP + CALLS,
        started.elapsed()
    );
    match (rss_warm, rss_end) {
        (Some(warm), Some(end)) => {
            assert!(end <= warm + 4096, "B's memory grew: {warm} → {end} KiB")
        }
        _ => testkit::skipped("B's memory bound"),
    }
    match (fds_warm, fds_end) {
        (Some(warm), Some(end)) => assert!(end <= warm + 8, "B's open files grew: {warm} → {end}"),
        _ => testkit::skipped("B's open-files bound"),
    }
    assert!(started.elapsed() < Duration::from_secs(120));
}

//! The fault tree's unit and property tests.

use std::time::Duration;

use http_types::Request;
use service_runtime::wire;

use super::headers::MAX_HEADER_DELAY_MS;
use super::plan::{Broken, Plan};
use super::*;

fn get() -> Request {
    Request::get("http://a/echo")
}

fn draws(faults: &Faults, n: usize) -> Vec<Plan> {
    (0..n).map(|_| faults.plan(&get()).unwrap()).collect()
}

/// No settings, no faults, no header on the answer.
#[test]
fn defaults_touch_nothing() {
    let plan = Faults::new(FaultSettings::default()).plan(&get()).unwrap();
    assert_eq!(plan, Plan::default());
    assert_eq!(plan.label(), None);
}

/// A header's random draws do not shift the seeded sequence of the file's.
#[test]
fn headers_leave_the_seeded_sequence_alone() {
    let settings = FaultSettings {
        fail: true,
        probability: 0.5,
        seed: Some(42),
        ..FaultSettings::default()
    };
    let plain = draws(&Faults::new(settings.clone()), 40);
    let faults = Faults::new(settings);
    let mixed: Vec<Plan> = (0..40)
        .map(|i| {
            let mut req = get();
            if i % 5 == 0 {
                req.insert_header(wire::FAULT_DELAY_P50_MS, "5");
                req.insert_header(wire::FAULT_DELAY_P99_MS, "50");
            }
            faults.plan(&req).unwrap()
        })
        .collect();
    let fails = |plans: &[Plan]| plans.iter().map(|p| p.fail).collect::<Vec<_>>();
    assert_eq!(fails(&plain), fails(&mixed));
}

/// The same seed gives the same sequence of faults, afresh at each load.
#[test]
fn seed_replays_the_same_sequence() {
    let settings = FaultSettings {
        delay_ms: 10,
        jitter_ms: 50,
        fail: true,
        fail_statuses: [("503".to_owned(), 3), ("500".to_owned(), 1)].into(),
        garbage: true,
        probability: 0.5,
        seed: Some(42),
        ..FaultSettings::default()
    };
    let first = draws(&Faults::new(settings.clone()), 50);
    let again = draws(&Faults::new(settings.clone()), 50);
    assert_eq!(first, again);
    let hit = first.iter().filter(|p| p.broken == Broken::Garbage).count();
    assert!((10..=40).contains(&hit), "{hit} of 50 affected at p=0.5");
    let other = draws(
        &Faults::new(FaultSettings {
            seed: Some(43),
            ..settings
        }),
        50,
    );
    assert_ne!(first, other);
}

/// `fail_first` fails exactly the first N, then answers normally.
#[test]
fn fail_first_then_succeed() {
    let faults = Faults::new(FaultSettings {
        fail_first: 2,
        fail_status: 503,
        ..FaultSettings::default()
    });
    let fails: Vec<_> = draws(&faults, 4).into_iter().map(|p| p.fail).collect();
    assert_eq!(fails, [Some(503), Some(503), None, None]);
}

/// Weighted statuses come out in about their proportions.
#[test]
fn weighted_statuses() {
    let faults = Faults::new(FaultSettings {
        fail: true,
        fail_statuses: [("503".to_owned(), 3), ("500".to_owned(), 1)].into(),
        retry_after_s: 7,
        seed: Some(1),
        ..FaultSettings::default()
    });
    let plans = draws(&faults, 400);
    let n503 = plans.iter().filter(|p| p.fail == Some(503)).count();
    let n500 = plans.iter().filter(|p| p.fail == Some(500)).count();
    assert_eq!(n503 + n500, 400);
    assert!((260..=340).contains(&n503), "{n503} of 400 were 503 at 3:1");
    assert!(plans
        .iter()
        .all(|p| (p.retry_after == Some(7)) == (p.fail == Some(503))));
}

/// The lognormal delay has the median and 99th percentile asked for.
#[test]
fn lognormal_delay_percentiles() {
    let faults = Faults::new(FaultSettings {
        delay_p50_ms: 100,
        delay_p99_ms: 1000,
        seed: Some(7),
        ..FaultSettings::default()
    });
    let mut ms: Vec<f64> = draws(&faults, 20_000)
        .iter()
        .map(|p| p.delay.as_secs_f64() * 1000.0)
        .collect();
    ms.sort_by(f64::total_cmp);
    let (p50, p99) = (ms[10_000], ms[19_800]);
    assert!((90.0..110.0).contains(&p50), "p50 {p50}");
    assert!((900.0..1100.0).contains(&p99), "p99 {p99}");
}

/// Headers take precedence, are capped, and a bad value is the client's 400.
#[test]
fn header_faults() {
    let faults = Faults::new(FaultSettings::default());
    let mut req = get();
    req.insert_header(wire::FAULT_DELAY_MS, "999999");
    req.insert_header(wire::FAULT_STATUS, "418");
    let plan = faults.plan(&req).unwrap();
    assert_eq!(plan.delay, Duration::from_millis(MAX_HEADER_DELAY_MS));
    assert_eq!(plan.fail, Some(418));
    assert_eq!(plan.label().as_deref(), Some("delay,fail"));

    req.insert_header(wire::FAULT_RESET, "1");
    let plan = faults.plan(&req).unwrap();
    assert_eq!((plan.broken, plan.fail), (Broken::Reset, None));
    assert_eq!(plan.label().as_deref(), Some("delay,reset"));

    // Several breakers: the first in the file's order wins, as there.
    let mut both = get();
    both.insert_header(wire::FAULT_GARBAGE, "1");
    both.insert_header(wire::FAULT_RESET, "1");
    both.insert_header(wire::FAULT_TRUNCATE, "1");
    assert_eq!(faults.plan(&both).unwrap().broken, Broken::Reset);

    // A cut body goes out at once: no trickle to name.
    let mut cut = get();
    cut.insert_header(wire::FAULT_TRUNCATE, "1");
    cut.insert_header(wire::FAULT_BODY_BYTES_PER_S, "5");
    assert_eq!(
        faults.plan(&cut).unwrap().label().as_deref(),
        Some("truncate")
    );

    for (name, bad) in [
        (wire::FAULT_STATUS, "600"),
        (wire::FAULT_STATUS, "503:x"),
        (wire::FAULT_RESET, "yes"),
        (wire::FAULT_BODY_BYTES_PER_S, "-1"),
        (wire::FAULT_DELAY_P50_MS, "10"),
    ] {
        let mut req = get();
        req.insert_header(name, bad);
        let err = faults.plan(&req).unwrap_err();
        assert_eq!(
            err.status,
            http_types::StatusCode::BadRequest,
            "{name}: {bad}"
        );
    }

    let off = Faults::new(FaultSettings {
        allow_headers: false,
        ..FaultSettings::default()
    });
    assert_eq!(off.plan(&req).unwrap(), Plan::default());
}

/// The headers of one request share one minute: delay, then body delay,
/// then what is left for the trickle; the file's own delays are not capped.
#[test]
fn header_faults_share_one_cap() {
    let faults = Faults::new(FaultSettings::default());
    let mut req = get();
    req.insert_header(wire::FAULT_DELAY_MS, "40000");
    req.insert_header(wire::FAULT_BODY_DELAY_MS, "40000");
    req.insert_header(wire::FAULT_BODY_BYTES_PER_S, "1");
    let plan = faults.plan(&req).unwrap();
    assert_eq!(plan.delay, Duration::from_secs(40));
    assert_eq!(plan.body_delay, Duration::from_secs(20));
    assert_eq!(plan.trickle_within, Some(Duration::ZERO));
    assert!(plan.slowed_by_headers);

    let mut quick = get();
    quick.insert_header(wire::FAULT_STATUS, "503");
    assert!(!faults.plan(&quick).unwrap().slowed_by_headers);

    let file = Faults::new(FaultSettings {
        delay_ms: 120_000,
        body_delay_ms: 120_000,
        ..FaultSettings::default()
    });
    let plan = file.plan(&quick).unwrap();
    assert_eq!(plan.delay + plan.body_delay, Duration::from_secs(240));
    assert!(
        !plan.slowed_by_headers,
        "the file's delays are the operator's"
    );
}

/// One name per fault, the same in the header, the log and the metric.
#[test]
fn names_are_one_list() {
    let plan = Plan {
        delay: Duration::from_millis(1),
        body_delay: Duration::from_millis(1),
        bytes_per_s: 5,
        broken: Broken::Truncate,
        ..Plan::default()
    };
    assert_eq!(
        plan.label().as_deref(),
        Some("delay,truncate,body_delay,trickle")
    );
}

proptest::proptest! {
    /// Whatever a client puts in the fault headers: a plan or a 400, never a panic.
    #[test]
    fn any_fault_header_is_handled(values in proptest::collection::vec(".*", 12)) {
        let names = [
            wire::FAULT_DELAY_MS, wire::FAULT_STATUS, wire::FAULT_DROP, wire::FAULT_RESET,
            wire::FAULT_GARBAGE, wire::FAULT_BAD_BODY, wire::FAULT_TRUNCATE,
            wire::FAULT_BODY_DELAY_MS, wire::FAULT_BODY_BYTES_PER_S,
            wire::FAULT_DELAY_P50_MS, wire::FAULT_DELAY_P99_MS, wire::FAULT_RETRY_AFTER_S,
        ];
        let mut req = get();
        for (name, value) in names.iter().zip(&values) {
            if let Ok(value) = http_types::headers::HeaderValue::from_bytes(value.clone().into_bytes()) {
                req.insert_header(*name, value);
            }
        }
        match Faults::new(FaultSettings::default()).plan(&req) {
            Ok(plan) => {
                proptest::prop_assert!(plan.delay + plan.body_delay <= Duration::from_millis(MAX_HEADER_DELAY_MS));
                proptest::prop_assert!(plan.fail.is_none_or(|c| (100..=599).contains(&c)));
            }
            Err(e) => proptest::prop_assert_eq!(e.status, http_types::StatusCode::BadRequest),
        }
    }
}

/// Every out-of-range key is named with what is allowed.
#[test]
fn validation_names_the_key() {
    let bad = |s: FaultSettings| s.validate().unwrap_err();
    let p = bad(FaultSettings {
        probability: 1.5,
        ..FaultSettings::default()
    });
    assert_eq!(
        (p.key, p.value.as_str(), p.expected.as_str()),
        ("fault.probability", "1.5", "0.0..=1.0")
    );
    let s = bad(FaultSettings {
        fail_status: 600,
        ..FaultSettings::default()
    });
    assert_eq!(s.key, "fault.fail_status");
    assert_eq!(s.expected, "100..=599");
    for code in [100, 103, 200, 420, 499, 520, 599] {
        let unnamed = FaultSettings {
            fail_status: code,
            ..FaultSettings::default()
        };
        assert!(unnamed.validate().is_ok(), "{code} is sendable");
    }
    let nan = bad(FaultSettings {
        probability: f64::NAN,
        ..FaultSettings::default()
    });
    assert_eq!(nan.key, "fault.probability");
    let weights = bad(FaultSettings {
        fail_statuses: [("99".to_owned(), 1)].into(),
        ..FaultSettings::default()
    });
    assert_eq!(weights.key, "fault.fail_statuses");
    let both = bad(FaultSettings {
        delay_ms: 5,
        delay_p50_ms: 10,
        delay_p99_ms: 20,
        ..FaultSettings::default()
    });
    assert_eq!(both.key, "fault.delay_p50_ms");
}

/// The first rule that matches gives the faults, with its own counter; a
/// request no rule matches gets the top level's; headers go over both.
#[test]
fn rules_first_match_wins() {
    use super::settings::Rule;
    let rule = |method: &str, path: &str, status: u32| Rule {
        method: method.to_owned(),
        path: path.to_owned(),
        header: String::new(),
        fault: FaultSettings {
            fail_first: 1,
            fail_status: status,
            ..FaultSettings::default()
        },
    };
    let faults = Faults::new(FaultSettings {
        delay_ms: 5,
        rules: vec![rule("POST", "/orders", 503), rule("", "/orders", 429)],
        ..FaultSettings::default()
    });
    let post = || Request::post("http://a/orders/1");
    let get_orders = || Request::get("http://a/orders");
    assert_eq!(faults.plan(&post()).unwrap().fail, Some(503));
    assert_eq!(
        faults.plan(&post()).unwrap().fail,
        None,
        "its own fail_first"
    );
    assert_eq!(faults.plan(&get_orders()).unwrap().fail, Some(429));
    let other = faults.plan(&get()).unwrap();
    assert_eq!((other.fail, other.delay), (None, Duration::from_millis(5)));
    let mut asked = post();
    asked.insert_header(wire::FAULT_STATUS, "418");
    assert_eq!(faults.plan(&asked).unwrap().fail, Some(418));
}

/// `wire::FAULT_HEADERS` is exactly what the parser reads: each listed
/// header is read (a value it cannot take is refused with a 400), and the
/// parser names no fault header the list lacks (it names each through a
/// `wire::FAULT_*` constant, one per listed header, and spells none itself).
#[test]
fn fault_headers_are_the_parsers() {
    let faults = Faults::new(FaultSettings::default());
    for name in wire::FAULT_HEADERS {
        let mut req = get();
        req.insert_header(name, "not-a-value");
        assert!(
            faults.plan(&req).is_err(),
            "{name} is in wire::FAULT_HEADERS but A's parser ignores it"
        );
    }
    let source = include_str!("headers.rs");
    let mut named: Vec<&str> = source
        .match_indices("wire::FAULT_")
        .map(|(at, _)| {
            let rest = &source[at + "wire::".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    named.sort_unstable();
    named.dedup();
    assert_eq!(
        named.len(),
        wire::FAULT_HEADERS.len(),
        "headers.rs reads {named:?}; wire::FAULT_HEADERS lists {:?}",
        wire::FAULT_HEADERS
    );
    assert!(
        !source.contains("\"x-fault-"),
        "headers.rs spells a header name itself: name it in wire.rs"
    );
}

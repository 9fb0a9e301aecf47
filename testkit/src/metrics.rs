//! Reading one sample from a service's `/metrics` text (Prometheus 0.0.4),
//! as a test asserts on it.

/// The value of a sample in Prometheus text, e.g.
/// `metric(&text, "upstream_calls_total{kind=\"timeout\"}")`; 0 when absent.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

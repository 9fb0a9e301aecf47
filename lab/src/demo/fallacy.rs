//! The Eight Fallacies of Distributed Computing (Deutsch, Gosling), the
//! course's optional reading, and which one each failure the demo shows
//! proves false: one table, so the report and docs/faults.md's table "Which
//! fallacy each failure shows" can be checked against one list.

/// The Eight Fallacies of Distributed Computing (Deutsch, Gosling), the
/// course's optional reading: what a failure shows to be false.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallacy {
    Reliable,
    Latency,
    Bandwidth,
    Secure,
    Topology,
    /// No failure here shows it; kept so that the list is whole.
    #[allow(dead_code)]
    Administrator,
    TransportCost,
    Homogeneous,
}

impl Fallacy {
    /// The fallacy as the list words it.
    pub fn words(self) -> &'static str {
        match self {
            Self::Reliable => "The network is reliable",
            Self::Latency => "Latency is zero",
            Self::Bandwidth => "Bandwidth is infinite",
            Self::Secure => "The network is secure",
            Self::Topology => "Topology doesn't change",
            Self::Administrator => "There is one administrator",
            Self::TransportCost => "Transport cost is zero",
            Self::Homogeneous => "The network is homogeneous",
        }
    }
}

/// Each failure the demo shows: (situation, fallacy, why, in one line).
/// docs/faults.md's table "Which fallacy each failure shows" says the same.
pub const FALLACIES: &[(&str, Fallacy, &str)] = &[
    ("A slowed past B's deadline", Fallacy::Latency, "a call that took 1 ms can take longer than the caller will wait"),
    ("A stopped", Fallacy::Reliable, "the other end can be gone while the caller runs on"),
    ("A restarted", Fallacy::Topology, "A came back as a new process; B must not trust connections to the old one"),
    ("A stalls its body", Fallacy::Latency, "the headers arrived at once, the body did not: a deadline must cover the whole answer"),
    ("A answers 500", Fallacy::Reliable, "a connection that works does not mean the call does"),
    ("A resets the connection (RST)", Fallacy::Reliable, "a connection can break mid-call"),
    ("A closes the connection (FIN)", Fallacy::Reliable, "an answer can simply never come"),
    ("A sends half its body", Fallacy::Reliable, "part of an answer is no answer"),
    ("A answers bytes that are not HTTP", Fallacy::Homogeneous, "the other end may not speak your protocol"),
    ("A answers an HTML page", Fallacy::Homogeneous, "a 200 can come from something that is not the service you expect"),
    ("A trickles its body", Fallacy::Bandwidth, "an answer a few bytes a second never arrives in time"),
    ("A delayed by a header", Fallacy::Secure, "A obeys any caller's `x-fault-*` header: whoever can reach a service can make it misbehave"),
    ("B's circuit breaker opens", Fallacy::TransportCost, "every call to a failing A costs; the breaker stops paying"),
];

/// The fallacy line for `situation`.
pub fn fallacy(situation: &str) -> String {
    FALLACIES
        .iter()
        .find(|(s, _, _)| *s == situation)
        .map(|(_, f, why)| format!("Fallacy shown: *{}*: {why}.", f.words()))
        // Every situation the demo names is in the table (a unit test
        // checks): an empty line here would be a typo in a situation's name.
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every situation the demo shows has its fallacy line.
    #[test]
    fn every_failure_names_a_fallacy() {
        for (situation, _, _) in FALLACIES {
            assert!(fallacy(situation).starts_with("Fallacy shown: *"));
        }
    }
}

//! What a call to B came to, in one vocabulary: `ok`, one of B's KINDs, or
//! `no_answer` (B gave the load generator no HTTP answer: B's own failure).
//!
//! B's KINDs are B's (`service_b::kind`), not a copy: a new KIND is added to
//! B alone, and the lab's list of outcomes, its checks of an experiment's
//! `expect.share_*` keys, the matrix's rules and every colour follow. Where
//! an outcome is matched (its colour here, the matrix in `join`), the match
//! is exhaustive, so a new KIND does not compile until it has a colour and a
//! rule. Leaf module: it imports none of its siblings.

use service_b::kind::Kind;

/// `ok`, a KIND, or `no_answer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// B answered 200 with A's echo.
    Ok,
    /// B answered with a KIND: what went wrong with its call to A.
    Failed(Kind),
    /// B gave no HTTP answer, or one without a KIND.
    NoAnswer,
}

impl Outcome {
    /// Every outcome, in the contract's order: `ok`, the KINDs, `no_answer`.
    pub fn all() -> impl Iterator<Item = Outcome> {
        std::iter::once(Outcome::Ok)
            .chain(Kind::ALL.into_iter().map(Outcome::Failed))
            .chain(std::iter::once(Outcome::NoAnswer))
    }

    /// Every outcome's name, in that order (for messages: "allowed: ...").
    pub fn names() -> Vec<&'static str> {
        Self::all().map(Outcome::as_str).collect()
    }

    /// Its name in B's answers, the report, `calls.csv` and the console.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed(kind) => kind.as_str(),
            Outcome::NoAnswer => "no_answer",
        }
    }

    /// The outcome named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Outcome> {
        Self::all().find(|o| o.as_str() == name)
    }

    /// One fixed colour per outcome (red, green, blue), so pictures of
    /// different runs compare and the console's live view matches them.
    pub fn colour(self) -> (u8, u8, u8) {
        match self {
            Outcome::Ok => (0x2c, 0xa0, 0x2c),
            Outcome::Failed(kind) => match kind {
                Kind::Timeout => (0xff, 0x7f, 0x0e),
                Kind::ConnectionRefused => (0xd6, 0x27, 0x28),
                Kind::ConnectionReset => (0x94, 0x67, 0xbd),
                Kind::UpstreamStatus => (0x8c, 0x56, 0x4b),
                Kind::BadResponse => (0xe3, 0x77, 0xc2),
                Kind::Unreachable => (0x7f, 0x7f, 0x7f),
                Kind::CircuitOpen => (0xbc, 0xbd, 0x22),
                Kind::BOverloaded => (0x17, 0xbe, 0xcf),
            },
            Outcome::NoAnswer => (0, 0, 0),
        }
    }
}

/// The colour of the outcome named `name`; black for a name the lab does not
/// know (a B of another version), as for `no_answer`.
pub fn colour_of(name: &str) -> (u8, u8, u8) {
    Outcome::from_name(name).map_or((0, 0, 0), Outcome::colour)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every outcome once, `ok` first and `no_answer` last, each name read
    /// back as itself; every KIND of B's among them.
    #[test]
    fn every_kind_is_an_outcome() {
        let names = Outcome::names();
        assert_eq!(names.first(), Some(&"ok"));
        assert_eq!(names.last(), Some(&"no_answer"));
        assert_eq!(names.len(), Kind::ALL.len() + 2);
        for kind in Kind::ALL {
            assert!(names.contains(&kind.as_str()), "{kind:?}");
        }
        for o in Outcome::all() {
            assert_eq!(Outcome::from_name(o.as_str()), Some(o));
        }
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
    }

    /// Colours tell outcomes apart: no two outcomes share one.
    #[test]
    fn colours_are_distinct() {
        let mut colours: Vec<(u8, u8, u8)> = Outcome::all().map(Outcome::colour).collect();
        colours.sort_unstable();
        colours.dedup();
        assert_eq!(colours.len(), Outcome::all().count());
    }
}

//! figment's errors as the lines a user reads: each names where the value
//! came from (the file or the env variable), the key, and what is allowed
//! there, with the range the settings type itself enforces.

use figment::providers::Serialized;
use figment::Figment;

use crate::config::invalid::Validate;
use crate::config::source::{relative, ConfigError, ConfigSource};
use crate::config::words::{closest, in_words, one_line, plain_syntax, show};

/// A TOML syntax error in plain words (line, column, what was written
/// and what is allowed there, in a sentence); any other error as
/// [`describe`] words it.
pub fn syntax<T: Validate>(source: &ConfigSource, err: figment::Error, text: &str) -> ConfigError {
    let plain = match &err.kind {
        figment::error::Kind::Message(m) => plain_syntax(m, text),
        _ => None,
    };
    match plain {
        Some(words) => ConfigError(format!("{}: {words}", relative(&source.path).display())),
        None => describe::<T>(source, err),
    }
}

/// Turns figment's error into one line per problem naming file, key and reason.
pub fn describe<T: Validate>(source: &ConfigSource, err: figment::Error) -> ConfigError {
    let lines: Vec<String> = err
        .into_iter()
        .map(|e| describe_one::<T>(source, &e))
        .collect();
    ConfigError(lines.join("\n"))
}

/// One problem in words: `config/service-a.toml: fault.delay_ms = "abc":
/// expected a whole number of milliseconds, 0..=3600000`.
pub fn describe_one<T: Validate>(source: &ConfigSource, e: &figment::Error) -> String {
    use figment::error::Kind;
    let key = e.path.join(".");
    let origin = match &e.metadata {
        Some(md) => source.origin(md, &key),
        None => source.path.display().to_string(),
    };
    let reason = match &e.kind {
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            let range = allowed_range::<T>(&key, expected)
                .map(|r| format!(", {r}"))
                .unwrap_or_default();
            return format!(
                "{origin}: {key} = {}: expected {}{range}",
                show(actual),
                in_words(&key, expected)
            );
        }
        Kind::UnknownField(field, known) => {
            let hint = match closest(field, known) {
                Some(near) => format!("; did you mean `{near}`?"),
                None => String::new(),
            };
            let known: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
            format!("unknown field{hint} (known here: {})", known.join(", "))
        }
        Kind::UnknownVariant(value, known) => {
            let known: Vec<String> = known.iter().map(|k| format!("\"{k}\"")).collect();
            return format!(
                "{origin}: {key} = \"{value}\": expected one of {}",
                known.join(", ")
            );
        }
        Kind::MissingField(name) => format!("`{name}` is missing"),
        other => one_line(&other.to_string()),
    };
    if key.is_empty() {
        format!("{origin}: {reason}")
    } else {
        format!("{origin}: {key}: {reason}")
    }
}

/// The range `validate` allows for `key`, found by asking it about a value
/// far out of any range: the settings type is the one place that knows it.
fn allowed_range<T: Validate>(key: &str, expected: &str) -> Option<String> {
    use figment::value::Value;
    let probes: Vec<Value> = match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => vec![
            Value::from(u64::MAX),
            Value::from(u64::from(u32::MAX)),
            Value::from(u64::from(u16::MAX)),
        ],
        "f32" | "f64" => vec![Value::from(f64::MAX), Value::from(-f64::MAX)],
        _ => return None,
    };
    probes.into_iter().find_map(|probe| {
        let settings: T = Figment::from(Serialized::defaults(T::default()))
            .merge(Serialized::default(key, probe))
            .extract()
            .ok()?;
        match settings.validate() {
            Err(bad) if bad.key == key => Some(bad.expected),
            _ => None,
        }
    })
}

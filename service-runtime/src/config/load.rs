//! The loader: built-in defaults, then the TOML file, then env, into a
//! service's settings type, with every problem reported at once.
//!
//! Each round merges the layers with figment and extracts the settings; a
//! problem found (a wrong type, an unknown key, a value out of range) is
//! written down in words naming where it came from (the file, or the env
//! variable), and the culprit taken out so the next round finds the next.

use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider, Source};

use crate::config::file::{self, ReadError, Snapshot, Stamp};
use crate::config::invalid::Validate;
use crate::config::words::{closest, in_words, one_line, plain_syntax, show};

/// Exit code for a config the service refuses to start with.
pub const EXIT_BAD_CONFIG: i32 = 2;

/// Where the settings come from: a TOML file and an env prefix.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    /// The TOML file.
    pub path: PathBuf,
    /// Given with `--config`: then a missing file is an error, not defaults.
    pub explicit: bool,
    /// e.g. `SERVICE_A_`; `__` separates section and key.
    pub env_prefix: &'static str,
}

/// Settings as loaded, with whether the file was there.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// The validated settings.
    pub settings: T,
    /// False when the default file was missing and built-in defaults were used.
    pub file_found: bool,
    /// The file as read for these settings: a watcher compares against it, so
    /// an edit made right after start is not missed.
    pub snapshot: Option<Snapshot>,
}

/// A config the service will not run with; its `Display` is the whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigSource {
    /// Loads defaults, then the file, then env; rejects unknown keys and bad values.
    ///
    /// The file is read once ([`read`](Self::read)) and exactly those bytes
    /// are parsed ([`parse`](Self::parse)), as a live reload does.
    pub fn load<T: Validate>(&self) -> Result<Loaded<T>, ConfigError> {
        let snapshot = match self.read() {
            Ok(snapshot) => Some(snapshot),
            Err(ReadError::Missing) if !self.explicit => None,
            Err(e) => return Err(self.unreadable(&e)),
        };
        let settings = self.parse(snapshot.as_ref().map(|s| s.bytes.as_slice()))?;
        Ok(Loaded {
            settings,
            file_found: snapshot.is_some(),
            snapshot,
        })
    }

    /// The stamp of what the path leads to now (following symlinks), without
    /// opening it: a watcher compares it with the last version read and does
    /// not read an unchanged file again.
    pub fn stamp(&self) -> Result<Stamp, ReadError> {
        file::stamp(&self.path)
    }

    /// The file read once, like an untrusted one (see [`file::read`]).
    pub fn read(&self) -> Result<Snapshot, ReadError> {
        file::read(&self.path)
    }

    /// Why the file could not be read, naming it: `PATH: no such file (given
    /// with --config)` or `PATH: REASON`.
    pub fn unreadable(&self, e: &ReadError) -> ConfigError {
        match e {
            ReadError::Missing => ConfigError(format!(
                "{}: no such file (given with --config)",
                self.path.display()
            )),
            e => ConfigError(format!("{}: {e}", self.path.display())),
        }
    }

    /// Settings from defaults, then `file` (the bytes of [`path`](Self::path);
    /// `None` when it is missing), then env. Errors name the file or env
    /// variable, the key and what is allowed, in words, as at start-up; every
    /// problem is reported at once, not only the first.
    pub fn parse<T: Validate>(&self, file: Option<&[u8]>) -> Result<T, ConfigError> {
        let mut file_layer = match file {
            None => None,
            Some(bytes) => {
                let text = std::str::from_utf8(bytes).map_err(|e| {
                    ConfigError(format!(
                        "{}: not UTF-8 text ({e}); TOML files are UTF-8",
                        self.path.display()
                    ))
                })?;
                let dict = Toml::string(text)
                    .data()
                    .map_err(|e| self.syntax::<T>(e, text))?
                    .remove(&Profile::Default)
                    .unwrap_or_default();
                Some(Layer {
                    metadata: Metadata::from("TOML file", self.path.as_path()),
                    dict,
                })
            }
        };
        let env = Env::prefixed(self.env_prefix).split("__");
        let mut env_layer = Layer {
            metadata: Metadata::named(ENV_LAYER),
            dict: env
                .data()
                .map_err(|e| self.describe::<T>(e))?
                .remove(&Profile::Default)
                .unwrap_or_default(),
        };

        // Each round reports what is wrong and takes the culprit out (its
        // default stands in), so the next round can find the next problem.
        // Bounded: a file has few keys, and a key that stays wrong stops it.
        let mut problems: Vec<String> = Vec::new();
        let mut renamed = Vec::new();
        for layer in file_layer.iter_mut().chain([&mut env_layer]) {
            for &(old, new) in RENAMED {
                match rename_key(&mut layer.dict, old, new) {
                    Renamed::No => {}
                    Renamed::Yes => renamed.push((old, new)),
                    Renamed::Both => problems.push(format!(
                        "{}: {new} is set twice, as {} and as {} (its old name); keep {}",
                        self.origin(&layer.metadata, old),
                        last(new),
                        last(old),
                        last(new),
                    )),
                }
            }
        }
        for _ in 0..MAX_PROBLEMS {
            let mut figment = Figment::from(Serialized::defaults(T::default()));
            if let Some(layer) = &file_layer {
                figment = figment.merge(layer.clone());
            }
            let figment = figment.merge(env_layer.clone());
            let fixed = match figment.extract::<T>() {
                Err(errors) => {
                    let mut fixed = false;
                    for e in errors {
                        let line = self.describe_one::<T>(&e);
                        if problems.contains(&line) {
                            continue;
                        }
                        problems.push(line);
                        let layer = match e.metadata.as_ref().map(|md| md.name.as_ref()) {
                            Some(ENV_LAYER) => Some(&mut env_layer),
                            Some(_) => file_layer.as_mut(),
                            None => None,
                        };
                        fixed |= layer.is_some_and(|l| remove_path(&mut l.dict, &e.path));
                    }
                    fixed
                }
                Ok(settings) => match settings.validate() {
                    Ok(()) if problems.is_empty() => return Ok(settings),
                    Ok(()) => false,
                    Err(bad) => {
                        let md = figment.find_metadata(bad.key);
                        let origin = md
                            .map(|md| self.origin(md, bad.key))
                            .unwrap_or_else(|| "built-in default".to_owned());
                        let line = format!("{origin}: {bad}");
                        let repeated = problems.contains(&line);
                        problems.push(line);
                        let path: Vec<String> = bad.key.split('.').map(str::to_owned).collect();
                        let layer = match md.map(|md| md.name.as_ref()) {
                            Some(ENV_LAYER) => Some(&mut env_layer),
                            Some("TOML file") => file_layer.as_mut(),
                            _ => None,
                        };
                        !repeated && layer.is_some_and(|l| remove_path(&mut l.dict, &path))
                    }
                },
            };
            if !fixed {
                break;
            }
        }
        problems.dedup();
        // A value given under a key's old name is reported under its new
        // one, which the user may not know: say both.
        for line in &mut problems {
            for (old, new) in &renamed {
                if line.contains(&format!("{new} ")) || line.contains(&format!("{new}:")) {
                    line.push_str(&format!(" ({old} is its old name)"));
                }
            }
        }
        Err(ConfigError(match problems.as_slice() {
            [one] => one.clone(),
            many => format!("{} problems:\n  {}", many.len(), many.join("\n  ")),
        }))
    }

    /// How the start line names the config: the path, or that defaults are in use.
    pub fn describe_origin(&self, file_found: bool) -> String {
        if file_found {
            self.path.display().to_string()
        } else {
            format!(
                "none ({} not found, built-in defaults)",
                self.path.display()
            )
        }
    }

    /// "config/service-a.toml" or "env SERVICE_A_FAULT__DELAY_MS": where a key's value came from.
    fn origin(&self, md: &figment::Metadata, key: &str) -> String {
        match &md.source {
            Some(Source::File(path)) => relative(path).display().to_string(),
            Some(Source::Code(_)) => "built-in default".to_owned(),
            _ if key.is_empty() => md.name.to_string(),
            _ => format!(
                "env {}{}",
                self.env_prefix,
                key.replace('.', "__").to_ascii_uppercase()
            ),
        }
    }

    /// A TOML syntax error in plain words (line, column, what was written
    /// and what is allowed there, in a sentence); any other error as
    /// [`describe`](Self::describe) words it.
    fn syntax<T: Validate>(&self, err: figment::Error, text: &str) -> ConfigError {
        let plain = match &err.kind {
            figment::error::Kind::Message(m) => plain_syntax(m, text),
            _ => None,
        };
        match plain {
            Some(words) => ConfigError(format!("{}: {words}", relative(&self.path).display())),
            None => self.describe::<T>(err),
        }
    }

    /// Turns figment's error into one line per problem naming file, key and reason.
    fn describe<T: Validate>(&self, err: figment::Error) -> ConfigError {
        let lines: Vec<String> = err
            .into_iter()
            .map(|e| self.describe_one::<T>(&e))
            .collect();
        ConfigError(lines.join("\n"))
    }

    /// One problem in words: `config/service-a.toml: fault.delay_ms = "abc":
    /// expected a whole number of milliseconds, 0..=3600000`.
    fn describe_one<T: Validate>(&self, e: &figment::Error) -> String {
        use figment::error::Kind;
        let key = e.path.join(".");
        let origin = match &e.metadata {
            Some(md) => self.origin(md, &key),
            None => self.path.display().to_string(),
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
}

/// Keys of the runtime's own sections that were renamed, as (old, new): a
/// file or env that still says the old name loads, and means the same.
///
/// The field carries `#[serde(alias)]` too, for a reader that deserializes
/// a section by itself; through figment the alias alone is not enough,
/// because the defaults are merged as a layer of their own under the new
/// name, and serde, seeing both names in one table, refuses the second
/// (`duplicate field`). So each layer is given the new name before merging.
const RENAMED: &[(&str, &str)] = &[("server.header_timeout_ms", "server.client_timeout_ms")];

/// What [`rename_key`] found in a layer.
#[derive(Debug, PartialEq, Eq)]
enum Renamed {
    /// The old key is not there.
    No,
    /// The old key was there and now has the new name.
    Yes,
    /// Both names are set in this layer: the old one is taken out, and
    /// the new one stands.
    Both,
}

/// Gives `old` (a dotted key) its `new` name in `dict`, if it is there.
fn rename_key(dict: &mut Dict, old: &str, new: &str) -> Renamed {
    let (Some((section, old_key)), Some((new_section, new_key))) =
        (old.split_once('.'), new.split_once('.'))
    else {
        return Renamed::No;
    };
    debug_assert_eq!(section, new_section, "a rename stays in its section");
    let Some(figment::value::Value::Dict(_, table)) = dict.get_mut(section) else {
        return Renamed::No;
    };
    let Some(value) = table.remove(old_key) else {
        return Renamed::No;
    };
    if table.contains_key(new_key) {
        return Renamed::Both;
    }
    table.insert(new_key.to_owned(), value);
    Renamed::Yes
}

/// The last part of a dotted key: `client_timeout_ms` of `server.client_timeout_ms`.
fn last(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

/// The name of the env layer's metadata, which tells its errors from the file's.
const ENV_LAYER: &str = "environment variable";

/// How many problems one load reports at most (each costs a parse).
const MAX_PROBLEMS: usize = 32;

/// Values from one place (the file, or the environment), as a dictionary the
/// loader can take a bad key out of and parse again.
#[derive(Clone)]
struct Layer {
    metadata: Metadata,
    dict: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// Takes `path` (section, key) out of `dict`; false if it was not there.
fn remove_path(dict: &mut Dict, path: &[String]) -> bool {
    match path {
        [] => false,
        [key] => dict.remove(key).is_some(),
        [section, rest @ ..] => match dict.get_mut(section) {
            Some(figment::value::Value::Dict(_, inner)) => remove_path(inner, rest),
            // The section itself is not a table: it is the culprit.
            Some(_) => dict.remove(section).is_some(),
            None => false,
        },
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

/// figment makes file paths absolute; users typed them relative to the working dir.
fn relative(path: &Path) -> &Path {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok())
        .unwrap_or(path)
}

#[cfg(test)]
// figment's Jail closures return its (large) error type; that is its API.
#[allow(clippy::result_large_err)]
mod tests {
    use std::time::Duration;

    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::config::invalid::Invalid;

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Demo {
        server: DemoServer,
        fault: DemoFault,
    }

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct DemoFault {
        delay_ms: u64,
        fail: bool,
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct DemoServer {
        port: u32,
    }

    impl Default for DemoServer {
        fn default() -> Self {
            Self { port: 8080 }
        }
    }

    impl Validate for Demo {
        fn validate(&self) -> Result<(), Invalid> {
            Invalid::check_range("server.port", self.server.port, 0..=65535)?;
            Invalid::check_range("fault.delay_ms", self.fault.delay_ms, 0..=3_600_000)
        }
    }

    fn source(path: &str, explicit: bool) -> ConfigSource {
        ConfigSource {
            path: path.into(),
            explicit,
            env_prefix: "DEMO_",
        }
    }

    /// TOML syntax errors are said in a sentence: where, the line as
    /// written, what is wrong and what is allowed; never the parser's terms.
    #[test]
    fn syntax_errors_in_plain_words() {
        let src = source("config/demo.toml", true);
        let cases = [
            ("[fault]\nfail = fals\n", "line 2, column 8: `fail = fals`: `fals` is not a value TOML knows; did you mean `false`?"),
            ("[fault]\ndelay_ms = 15 00\n", "line 2, column 15: `delay_ms = 15 00`: there is more after the value"),
            ("[fault\n", "a section header is a name in square brackets"),
            ("[fault]\ndelay_ms = \"abc\n", "must be closed with \" on the same line"),
            ("[fault]\ndelay_ms = 1\ndelay_ms = 2\n", "`delay_ms` is set twice"),
            ("[fault]\nx y\n", "a line must be `key = value`"),
            ("[fault]\n[fault]\n", "this section appears twice"),
        ];
        for (toml, expected) in cases {
            let err = src.parse::<Demo>(Some(toml.as_bytes())).unwrap_err().0;
            assert!(
                err.starts_with("config/demo.toml: line "),
                "{toml:?}: {err}"
            );
            assert!(err.contains(expected), "{toml:?}: {err}");
            for jargon in ["TOML parse error", "expected `", "invalid string"] {
                assert!(!err.contains(jargon), "{toml:?}: {err}");
            }
        }
    }

    /// A missing default file means built-in defaults; a missing explicit one is an error.
    #[test]
    fn missing_file() {
        figment::Jail::expect_with(|_| {
            let loaded: Loaded<Demo> = source("nope.toml", false).load().unwrap();
            assert!(!loaded.file_found);
            assert_eq!(loaded.settings.server.port, 8080);
            let err = source("nope.toml", true).load::<Demo>().unwrap_err();
            assert_eq!(err.0, "nope.toml: no such file (given with --config)");
            Ok(())
        });
    }

    /// Env beats the file, and an out-of-range env value names the variable.
    #[test]
    fn env_beats_file_and_is_named() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("demo.toml", "[server]\nport = 9000\n")?;
            jail.set_env("DEMO_SERVER__PORT", "9001");
            let loaded: Loaded<Demo> = source("demo.toml", true).load().unwrap();
            assert_eq!(loaded.settings.server.port, 9001);
            jail.set_env("DEMO_SERVER__PORT", "70000");
            let err = source("demo.toml", true).load::<Demo>().unwrap_err();
            assert_eq!(
                err.0,
                "env DEMO_SERVER__PORT: server.port = 70000, expected 0..=65535"
            );
            Ok(())
        });
    }

    /// Unknown keys and out-of-range values in the file name the file and the key.
    #[test]
    fn file_errors_name_file_and_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("demo.toml", "[server]\nprot = 1\n")?;
            let err = source("demo.toml", true).load::<Demo>().unwrap_err();
            assert!(
                err.0.starts_with("demo.toml: server.prot: unknown field"),
                "{err}"
            );
            jail.create_file("demo.toml", "[server]\nport = 65536\n")?;
            let err = source("demo.toml", true).load::<Demo>().unwrap_err();
            assert_eq!(err.0, "demo.toml: server.port = 65536, expected 0..=65535");
            jail.create_file("demo.toml", "[server\nport = 1\n")?;
            let err = source("demo.toml", true).load::<Demo>().unwrap_err();
            assert!(err.0.contains("demo.toml"), "{err}");
            assert!(err.0.contains("line 1"), "{err}");
            Ok(())
        });
    }

    /// `parse` reads only the bytes given, not the file, and its errors still
    /// name the file and the key.
    #[test]
    fn parse_uses_the_bytes_given() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("demo.toml", "[server]\nport = 9000\n")?;
            let src = source("demo.toml", true);
            let demo: Demo = src.parse(Some(b"[server]\nport = 9001\n")).unwrap();
            assert_eq!(demo.server.port, 9001);
            let err = src
                .parse::<Demo>(Some(b"[server]\nport = 65536\n"))
                .unwrap_err();
            assert_eq!(err.0, "demo.toml: server.port = 65536, expected 0..=65535");
            let err = src
                .parse::<Demo>(Some(b"[server]\nprot = 1\n"))
                .unwrap_err();
            assert!(
                err.0.starts_with("demo.toml: server.prot: unknown field"),
                "{err}"
            );
            let err = src.parse::<Demo>(Some(b"[server\n")).unwrap_err();
            assert!(err.0.starts_with("demo.toml: "), "{err}");
            assert!(err.0.contains("line 1"), "{err}");
            let err = src.parse::<Demo>(Some(b"\xff")).unwrap_err();
            assert!(err.0.starts_with("demo.toml: not UTF-8"), "{err}");
            assert_eq!(src.parse::<Demo>(None).unwrap().server.port, 8080);
            Ok(())
        });
    }

    /// A save with the same bytes still changes the stamp; `load` keeps the snapshot it parsed.
    #[test]
    fn same_bytes_saved_again_have_a_new_stamp() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("demo.toml", "[server]\nport = 9000\n")?;
            let src = source("demo.toml", true);
            let loaded: Loaded<Demo> = src.load().unwrap();
            let first = loaded.snapshot.expect("file was read");
            assert_eq!(first.bytes, b"[server]\nport = 9000\n");
            let file = std::fs::File::options()
                .write(true)
                .open("demo.toml")
                .unwrap();
            let later = first.stamp.modified.unwrap() + Duration::from_secs(1);
            file.set_modified(later).unwrap();
            let again = src.read().unwrap();
            assert_eq!(again.bytes, first.bytes);
            assert_ne!(again.stamp, first.stamp);
            Ok(())
        });
    }

    /// A value of the wrong type is described in words, with the range the
    /// settings allow, and the value as the user wrote it.
    #[test]
    fn wrong_types_in_words() {
        figment::Jail::expect_with(|_| {
            let src = source("demo.toml", true);
            let err = src
                .parse::<Demo>(Some(b"[fault]\ndelay_ms = \"abc\"\n"))
                .unwrap_err();
            assert_eq!(
                err.0,
                "demo.toml: fault.delay_ms = \"abc\": expected a whole number of milliseconds, 0..=3600000"
            );
            let err = src.parse::<Demo>(Some(b"[fault]\nfail = 1\n")).unwrap_err();
            assert_eq!(err.0, "demo.toml: fault.fail = 1: expected true or false");
            Ok(())
        });
    }

    /// An unknown key gets the nearest known one; a far-off one gets none.
    #[test]
    fn unknown_keys_get_a_did_you_mean() {
        figment::Jail::expect_with(|_| {
            let src = source("demo.toml", true);
            let err = src
                .parse::<Demo>(Some(b"[fault]\ndealy_ms = 5\n"))
                .unwrap_err();
            assert!(
                err.0.starts_with(
                    "demo.toml: fault.dealy_ms: unknown field; did you mean `delay_ms`?"
                ),
                "{err}"
            );
            assert!(!err.0.contains("``"), "{err}");
            let err = src.parse::<Demo>(Some(b"[faults]\n")).unwrap_err();
            assert!(err.0.contains("did you mean `fault`?"), "{err}");
            let err = src.parse::<Demo>(Some(b"[fault]\nzzz = 5\n")).unwrap_err();
            assert!(!err.0.contains("did you mean"), "{err}");
            Ok(())
        });
    }

    /// Every problem in a file is reported at once: a type error, an unknown
    /// key and an out-of-range value, each on its own line.
    #[test]
    fn all_errors_together() {
        figment::Jail::expect_with(|jail| {
            let src = source("demo.toml", true);
            let text = b"[server]\nport = 70000\n[fault]\ndelay_ms = \"abc\"\nfial = true\n";
            let err = src.parse::<Demo>(Some(text)).unwrap_err();
            assert!(err.0.starts_with("3 problems:\n"), "{err}");
            for part in [
                "demo.toml: fault.delay_ms = \"abc\": expected a whole number of milliseconds",
                "demo.toml: fault.fial: unknown field; did you mean `fail`?",
                "demo.toml: server.port = 70000, expected 0..=65535",
            ] {
                assert!(err.0.contains(part), "{part} not in {err}");
            }
            // The file's problems and the environment's, together.
            jail.set_env("DEMO_FAULT__DELAY_MS", "4000000");
            let err = src
                .parse::<Demo>(Some(b"[server]\nport = 70000\n"))
                .unwrap_err();
            assert!(
                err.0
                    .contains("env DEMO_FAULT__DELAY_MS: fault.delay_ms = 4000000"),
                "{err}"
            );
            assert!(err.0.contains("demo.toml: server.port = 70000"), "{err}");
            Ok(())
        });
    }
}

//! The loader: built-in defaults, then the TOML file, then env, into a
//! service's settings type, with every problem reported at once.
//!
//! Each round merges the layers with figment and extracts the settings; a
//! problem found (a wrong type, an unknown key, a value out of range) is
//! written down in words naming where it came from (the file, or the env
//! variable), and the culprit taken out so the next round finds the next.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::{Figment, Metadata, Profile, Provider};

use crate::config::file::ReadError;
use crate::config::invalid::Validate;
use crate::config::layer::{last, remove_path, rename_key, Layer, Renamed, ENV_LAYER, RENAMED};
use crate::config::report::{describe, describe_one, syntax};
use crate::config::source::{ConfigError, ConfigSource, Loaded};

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
                    .map_err(|e| syntax::<T>(self, e, text))?
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
                .map_err(|e| describe::<T>(self, e))?
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
                        let line = describe_one::<T>(self, &e);
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
}

/// How many problems one load reports at most (each costs a parse).
const MAX_PROBLEMS: usize = 32;

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

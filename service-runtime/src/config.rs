//! Loading a service's settings: built-in defaults, then the TOML file, then env.
//!
//! Every way a user can get the config wrong ends here, in one [`ConfigError`]
//! whose message names the file (or env variable), the key and what is allowed,
//! e.g. `config/service-a.toml: fault.probability = 1.5, expected 0.0..=1.0`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider, Source};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::log::LogSettings;
use crate::trace::TraceSettings;

/// Exit code for a config the service refuses to start with.
pub const EXIT_BAD_CONFIG: i32 = 2;

/// A service's settings type: defaults, serde, and a check of every value.
pub trait Settings: Validate {
    /// The `[server]` section.
    fn server(&self) -> &ServerSettings;

    /// The `[log]` section.
    fn log(&self) -> &LogSettings;

    /// The `[trace]` section.
    fn trace(&self) -> &TraceSettings;
}

/// What the loader needs of a settings file: its defaults, its shape, and
/// a check of every value (the runtime's `[trace]` included, if it has one).
pub trait Validate: Default + Serialize + DeserializeOwned {
    /// The first key whose value is out of range, if any.
    fn validate(&self) -> Result<(), Invalid>;
}

/// One value out of range: the dotted key, the value as given, and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Dotted key, e.g. `fault.probability`.
    pub key: &'static str,
    /// The offending value as the user wrote it.
    pub value: String,
    /// What is allowed, e.g. `0.0..=1.0`.
    pub expected: String,
}

impl Invalid {
    /// `value` as a plain `http://` URL with a host and nothing after the
    /// path (no query, fragment or user); the error names `key` and shows
    /// `example`. The services speak no TLS, so `https` is refused too.
    pub fn check_http_url(key: &'static str, value: &str, example: &str) -> Result<url::Url, Self> {
        let invalid = || Self {
            key,
            value: format!("{value:?}"),
            expected: format!("an http:// URL with a host, e.g. \"{example}\""),
        };
        let url = url::Url::parse(value).map_err(|_| invalid())?;
        let plain = url.scheme() == "http"
            && url.host_str().is_some()
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty();
        if plain {
            Ok(url)
        } else {
            Err(invalid())
        }
    }

    /// Checks that `value` lies in `range`; the error names `key` and the range.
    pub fn check_range<T>(key: &'static str, value: T, range: RangeInclusive<T>) -> Result<(), Self>
    where
        T: PartialOrd + fmt::Debug,
    {
        if range.contains(&value) {
            Ok(())
        } else {
            Err(Self {
                key,
                value: format!("{value:?}"),
                expected: format!("{:?}..={:?}", range.start(), range.end()),
            })
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {}, expected {}",
            self.key, self.value, self.expected
        )
    }
}

impl std::error::Error for Invalid {}

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

/// One read of the config file: its bytes, and what says which save they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The file's whole content.
    pub bytes: Vec<u8>,
    /// Its modification time and identity when it was read.
    pub stamp: Stamp,
}

/// What changes when a file is saved, even with the same bytes: its
/// modification time, its length, or which file the path leads to (a rename
/// over it, or a swapped symlink as Kubernetes does for a ConfigMap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Last modification; `None` where the platform does not say.
    pub modified: Option<SystemTime>,
    /// Device and inode of the file read (0, 0 off Unix).
    pub file: (u64, u64),
    /// Length in bytes.
    pub len: u64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let file = {
            use std::os::unix::fs::MetadataExt as _;
            (meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let file = (0, 0);
        Self {
            modified: meta.modified().ok(),
            file,
            len: meta.len(),
        }
    }

    /// Whether two stamps surely name the same version of the file: only
    /// when the platform gives a modification time to compare.
    pub fn same_version(&self, other: &Stamp) -> bool {
        self.modified.is_some() && self == other
    }
}

/// The largest config file read: the shipped TOML is a few KiB, so 1 MiB is
/// generous, and it bounds what a mistaken path (a log file, a link to
/// `/dev/zero`) can make a service allocate.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Why the config file could not be read; its `Display` is the reason in words.
#[derive(Debug)]
pub enum ReadError {
    /// Nothing at the path.
    Missing,
    /// Something other than a regular file: a FIFO would block the read for
    /// good, a device (`/dev/zero`) never ends, a directory has no text.
    NotRegular(&'static str),
    /// Over [`MAX_CONFIG_BYTES`]: its length.
    TooLarge(u64),
    /// Any other failure of the system (permissions, out of descriptors).
    Io(std::io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("no such file"),
            Self::NotRegular(what) => write!(
                f,
                "is a {what}, not a regular file; a config must be a regular file \
                 (a symlink to one is fine)"
            ),
            Self::TooLarge(len) => write!(
                f,
                "is {len} bytes, over the {} KiB a config file may be",
                MAX_CONFIG_BYTES / 1024
            ),
            Self::Io(e) if out_of_descriptors(e) => write!(
                f,
                "cannot open it: the process is out of file descriptors ({e}); \
                 it is read again once descriptors free up"
            ),
            Self::Io(e) => write!(f, "cannot read: {e}"),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::NotFound {
            Self::Missing
        } else {
            Self::Io(e)
        }
    }
}

/// EMFILE or ENFILE: the read fails for the process's sake, not the file's.
fn out_of_descriptors(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        use rustix::io::Errno;
        matches!(Errno::from_io_error(e), Some(Errno::MFILE | Errno::NFILE))
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

/// What a path leads to, in words, when it is not a regular file.
fn not_regular(kind: std::fs::FileType) -> Option<&'static str> {
    if kind.is_file() {
        return None;
    }
    if kind.is_dir() {
        return Some("directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if kind.is_fifo() {
            return Some("FIFO (named pipe)");
        }
        if kind.is_char_device() || kind.is_block_device() {
            return Some("device");
        }
        if kind.is_socket() {
            return Some("socket");
        }
    }
    Some("special file")
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
        Ok(Stamp::of(&std::fs::metadata(&self.path)?))
    }

    /// Opens the path afresh (following symlinks as they are now) and reads
    /// the file once, with its stamp taken from the same open file.
    ///
    /// The file is read like an untrusted one: anything but a regular file
    /// is refused before it is opened (a FIFO would block `open` for good),
    /// and checked again on the open file (on Unix it is opened
    /// non-blocking, so a FIFO swapped in meanwhile cannot block either);
    /// more than [`MAX_CONFIG_BYTES`] is refused, and never read past.
    pub fn read(&self) -> Result<Snapshot, ReadError> {
        use std::io::Read as _;
        if let Some(what) = not_regular(std::fs::metadata(&self.path)?.file_type()) {
            return Err(ReadError::NotRegular(what));
        }
        let mut options = std::fs::File::options();
        options.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
        }
        let file = options.open(&self.path)?;
        let meta = file.metadata()?;
        if let Some(what) = not_regular(meta.file_type()) {
            return Err(ReadError::NotRegular(what));
        }
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(ReadError::TooLarge(meta.len()));
        }
        let stamp = Stamp::of(&meta);
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        // A file that grows while read is still cut at the cap.
        file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(ReadError::TooLarge(bytes.len() as u64));
        }
        Ok(Snapshot { bytes, stamp })
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

/// A value as the user wrote it in TOML.
fn show(actual: &figment::error::Actual) -> String {
    use figment::error::Actual;
    match actual {
        Actual::Str(s) => format!("{s:?}"),
        Actual::Bool(b) => b.to_string(),
        Actual::Unsigned(n) => n.to_string(),
        Actual::Signed(n) => n.to_string(),
        Actual::Float(n) => n.to_string(),
        Actual::Map => "a table".to_owned(),
        Actual::Seq => "a list".to_owned(),
        other => other.to_string(),
    }
}

/// serde's name for a type (`u64`, `a boolean`) as a student would say it.
fn in_words(key: &str, expected: &str) -> String {
    let unit = if key.ends_with("_ms") {
        " of milliseconds"
    } else if key.ends_with("_per_s") {
        " per second"
    } else if key.ends_with("_s") {
        " of seconds"
    } else {
        ""
    };
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => format!("a whole number{unit}"),
        "i8" | "i16" | "i32" | "i64" | "isize" => format!("a whole number{unit}"),
        "f32" | "f64" => format!("a number{unit}"),
        "a boolean" => "true or false".to_owned(),
        "a string" => "text in quotes".to_owned(),
        e if e.starts_with("struct ") || e.starts_with("a map") => {
            "a table (a [section])".to_owned()
        }
        e if e.starts_with("a sequence") => "a list, e.g. [\"a\", \"b\"]".to_owned(),
        other => other.to_owned(),
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

/// The known name nearest to `typo`, if near enough to be a slip (a third
/// of its letters, at most, differ).
fn closest<'a>(typo: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(typo, k), *k))
        .filter(|(d, k)| *d <= k.len().max(typo.len()).div_ceil(3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance, counting a swap of two neighbours as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// The TOML parser's message (`TOML parse error at line 2, column 8`, an
/// excerpt, then what it expected in its own terms) as a sentence a student
/// reads: where, the line as written, what is wrong and what is allowed.
/// `None` when the message is not a syntax error's.
fn plain_syntax(message: &str, text: &str) -> Option<String> {
    let first = message.lines().next()?;
    let place = first.strip_prefix("TOML parse error at line ")?;
    let (line_no, col) = place.split_once(", column ")?;
    let (line_no, col): (usize, usize) = (line_no.trim().parse().ok()?, col.trim().parse().ok()?);
    let detail = one_line(message);
    let detail = detail.split_once("; ").map_or("", |(_, rest)| rest);
    let written = text
        .lines()
        .nth(line_no.checked_sub(1)?)
        .unwrap_or("")
        .trim();
    // The bare word at the column, for a did-you-mean.
    let word: String = text
        .lines()
        .nth(line_no - 1)
        .unwrap_or("")
        .chars()
        .skip(col.saturating_sub(1))
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    let what = if detail.starts_with("invalid string") {
        match closest(&word, &["true", "false"]) {
            Some(b) => format!(
                "`{word}` is not a value TOML knows; did you mean `{b}`? A value is a number, \
                 true or false, or text in quotes (\"...\")"
            ),
            None => {
                "a value must be a number, true or false, or text in quotes (\"...\")".to_owned()
            }
        }
    } else if detail.starts_with("invalid basic string") {
        "text opened with \" must be closed with \" on the same line".to_owned()
    } else if detail.starts_with("invalid literal string") {
        "text opened with ' must be closed with ' on the same line".to_owned()
    } else if detail.starts_with("invalid table header") && detail.contains("duplicate key") {
        "this section appears twice in the file; keep one and put all its keys there".to_owned()
    } else if detail.starts_with("invalid table header") {
        "a section header is a name in square brackets, closed on its line: `[fault]`".to_owned()
    } else if let Some(rest) = detail.strip_prefix("duplicate key `") {
        let key = rest.split('`').next().unwrap_or("");
        format!("`{key}` is set twice; keep one of them")
    } else if detail.starts_with("expected newline") {
        "there is more after the value; each line holds one `key = value` (a comment starts with #)"
            .to_owned()
    } else if detail.contains("expected `.`, `=`") {
        "a line must be `key = value` (or a `[section]` header)".to_owned()
    } else {
        format!("this is not valid TOML ({detail})")
    };
    Some(format!("line {line_no}, column {col}: `{written}`: {what}"))
}

/// The TOML parser's message without its source excerpt, on one line:
/// `TOML parse error at line 1, column 7; invalid table header; expected ...`.
fn one_line(message: &str) -> String {
    let excerpt = |l: &str| {
        l.starts_with(' ')
            || l.starts_with('|')
            || l.split_once(" |")
                .is_some_and(|(n, _)| n.trim().parse::<u32>().is_ok())
    };
    message
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !excerpt(l))
        .collect::<Vec<_>>()
        .join("; ")
}

/// figment makes file paths absolute; users typed them relative to the working dir.
fn relative(path: &Path) -> &Path {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok())
        .unwrap_or(path)
}

/// `[server]`: where and how a service listens. Changes need a restart.
///
/// No serde `default`: the service's own defaults are merged first by [`ConfigSource::load`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to bind; loopback by default so a lab never listens on a network.
    pub host: String,
    /// Port to bind; 0 lets the OS pick (the start line gives the real one).
    pub port: u32,
    /// Executor threads; 0 means one per core.
    pub threads: u32,
    /// On SIGINT/SIGTERM, how long requests in flight may take to finish.
    pub shutdown_grace_ms: u64,
    /// A client must send a request's head within this, or the connection is closed.
    /// Also how long an idle keep-alive connection is kept.
    pub header_timeout_ms: u64,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: u32,
}

impl ServerSettings {
    /// The defaults, listening on 127.0.0.1:`port`.
    pub fn on_port(port: u32) -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port,
            threads: 0,
            shutdown_grace_ms: 5000,
            header_timeout_ms: 10_000,
            max_connections: 1024,
        }
    }

    /// Checks every `[server]` key.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.host.parse::<IpAddr>().is_err() {
            return Err(Invalid {
                key: "server.host",
                value: format!("{:?}", self.host),
                expected: "an IP address such as \"127.0.0.1\" or \"::1\"".to_owned(),
            });
        }
        Invalid::check_range("server.port", self.port, 0..=65535)?;
        Invalid::check_range("server.threads", self.threads, 0..=256)?;
        Invalid::check_range(
            "server.shutdown_grace_ms",
            self.shutdown_grace_ms,
            0..=600_000,
        )?;
        Invalid::check_range(
            "server.header_timeout_ms",
            self.header_timeout_ms,
            1..=600_000,
        )?;
        Invalid::check_range(
            "server.max_connections",
            self.max_connections,
            1..=1_000_000,
        )?;
        Ok(())
    }

    /// The address to bind (valid once [`validate`](Self::validate) passed).
    pub fn addr(&self) -> SocketAddr {
        let ip = self.host.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]));
        SocketAddr::new(ip, self.port as u16)
    }

    /// Executor threads to run: `threads`, or one per core when 0.
    pub fn thread_count(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        }
    }

    /// The header timeout as a `Duration`.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }

    /// The shutdown grace as a `Duration`.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

#[cfg(test)]
// figment's Jail closures return its (large) error type; that is its API.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Demo {
        server: DemoServer,
        #[serde(skip)]
        trace: TraceSettings,
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
            Invalid::check_range("fault.delay_ms", self.fault.delay_ms, 0..=3_600_000)?;
            self.trace.validate()
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

//! Loading a service's settings: built-in defaults, then the TOML file, then env.
//!
//! Every way a user can get the config wrong ends here, in one [`ConfigError`]
//! whose message names the file (or env variable), the key and what is allowed,
//! e.g. `config/service-a.toml: fault.probability = 1.5, expected 0.0..=1.0`.
//!
//! # Layout
//!
//! - `invalid`: [`Validate`] and [`Invalid`], what every settings section
//!   checks against; a leaf, so a section's owner needs nothing else of this.
//! - `file`: the file read like an untrusted one, with its [`Stamp`].
//! - `source`: [`ConfigSource`] (where settings come from), [`Loaded`],
//!   [`ConfigError`], and how a value's origin is named.
//! - `load`: `ConfigSource::load` and `parse`, the figment loader.
//! - `layer`: the file's and env's values as layers the loader can mend
//!   (old key names, a bad key taken out).
//! - `report`: figment's errors as lines naming origin, key and what is allowed.
//! - `words`: the error prose (types, TOML syntax, did-you-mean).
//!
//! Each section's type lives beside its owner (`[server]` in
//! `server::ServerSettings`, `[log]` in `log`, `[trace]` in `trace`), and
//! the trait a service's whole settings implement for the runtime beside
//! its one user, `service::Settings`.

mod file;
mod invalid;
mod layer;
mod load;
mod report;
mod source;
mod words;

pub use file::{ReadError, Snapshot, Stamp, MAX_CONFIG_BYTES};
pub use invalid::{Invalid, Validate};
pub use source::{ConfigError, ConfigSource, Loaded, EXIT_BAD_CONFIG};

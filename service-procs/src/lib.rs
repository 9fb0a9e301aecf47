//! The services as child processes, for the lab (a tool for people) and the
//! test kit (for tests) alike: find a built binary, launch it with a config,
//! wait for its ready line, read its log lines, stop it per platform.
//!
//! Nothing here panics: every step that can fail returns [`Error`], whose
//! message names the service, what was waited for and what to do
//! ("service-a did not print its ready line within 10 s; its last output:
//! ..."; "no built binary at PATH: run `cargo build -p service-a`"). The
//! lab shows that message and exits non-zero; the test kit wraps these
//! functions in ones that panic with it, as tests want.
//!
//! # Layout
//!
//! - [`error`]: [`Error`], the one failure type, and its words.
//! - [`binary`]: where a built binary of this workspace is.
//! - [`launch`]: [`Launch`], how to start a service; [`Launch::start`] waits
//!   for its ready line.
//! - [`service`]: [`Service`], a running service: its log lines, waits on
//!   them (events, never sleeps), its config file, stopping it.
//! - [`stop`]: asking a child to stop as Ctrl+C would (SIGTERM; Ctrl+Break on
//!   Windows), with [`Stop`] saying how it went.
//! - [`logfmt`]: reading one `key=value` field of a log line.
//! - [`measure`]: resident memory and open descriptors where the platform
//!   can tell (`None` elsewhere, never `0`).
//! - [`nginx`]: the config of an nginx instance of its own (the bench's
//!   baselines, the proxy tests' upstream).
//! - `output` (private): a child's lines as they arrive, and waiting on them
//!   (for up to [`PATIENCE`]).

// Two `unsafe` blocks: `launch`'s `pre_exec` for the descriptor limit (unix)
// and `stop`'s Ctrl+Break (Windows); none elsewhere.
#![deny(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms)]

pub mod binary;
pub mod error;
pub mod launch;
pub mod logfmt;
pub mod measure;
pub mod nginx;
pub mod service;
pub mod stop;

mod output;

pub use binary::binary;
pub use error::Error;
pub use launch::Launch;
pub use logfmt::field;
pub use measure::{open_fds, rss_kib};
pub use output::PATIENCE;
pub use service::Service;
pub use stop::{command, terminate, Stop};

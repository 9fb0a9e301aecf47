//! Property tests of the pure parts a client or a config file can feed anything:
//! no input may panic, and what is encoded comes back unchanged.

use proptest::prelude::*;
use service_runtime::config::{ConfigSource, Invalid, Validate};
use service_runtime::http::query_param;
use service_runtime::log::{escape, LogSettings};
use service_runtime::server::ServerSettings;
use service_runtime::trace::TraceSettings;
use testkit::http::encode;

/// Undoes [`escape`]: what a logfmt parser would read back.
fn unescape(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return v.to_owned();
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let code: String = chars.by_ref().skip(1).take_while(|c| *c != '}').collect();
                out.push(char::from_u32(u32::from_str_radix(&code, 16).unwrap()).unwrap());
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

proptest! {
    /// Any query string is decoded or refused with a 400; never a panic.
    #[test]
    fn any_query_is_handled(query in ".*") {
        if let Err(e) = query_param(Some(&query), "msg") {
            prop_assert_eq!(u16::from(e.status), 400);
        }
    }

    /// Any UTF-8 message, form-encoded, decodes to itself (and the first one wins).
    #[test]
    fn messages_round_trip(msg in any::<String>()) {
        let query = format!("other=1&msg={}&msg=second", encode(&msg));
        prop_assert_eq!(query_param(Some(&query), "msg").unwrap(), Some(msg));
    }

    /// An escaped log value is one line and reads back as the original.
    #[test]
    fn log_values_stay_on_one_line(value in any::<String>()) {
        let escaped = escape(&value);
        prop_assert!(!escaped.chars().any(|c| c.is_control() || (c.is_whitespace() && c != ' ')));
        prop_assert!(!escaped.is_empty());
        prop_assert_eq!(unescape(&escaped), value);
    }
}

/// Settings with only the shared sections, for feeding the loader anything.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Shared {
    server: Option<ServerSettings>,
    log: LogSettings,
    trace: TraceSettings,
}

impl Validate for Shared {
    fn validate(&self) -> Result<(), Invalid> {
        self.server
            .as_ref()
            .map_or(Ok(()), ServerSettings::validate)?;
        self.trace.validate()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any file content is loaded or refused with a message naming the file.
    #[test]
    fn any_config_file_is_handled(
        text in "(\\[(server|log|trace)\\]\n)?([a-z_]{1,12} = (-?[0-9]{1,12}|\"[ -~]{0,12}\"|true|[\\[\\]{}=\"]{1,3})\n){0,4}"
    ) {
        let dir = temp_dir();
        let path = dir.join("c.toml");
        std::fs::write(&path, &text).unwrap();
        let source = ConfigSource { path, explicit: true, env_prefix: "PROPTEST_NONE_" };
        if let Err(e) = source.load::<Shared>() {
            prop_assert!(e.0.contains("c.toml"), "{}", e.0);
        }
        std::fs::remove_dir_all(dir).ok();
    }
}

fn temp_dir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("props-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

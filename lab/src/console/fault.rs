//! The fault form and A's TOML file: the page's controls written into the
//! file exactly as a student's editor would, so the page teaches the file.
//!
//! What it guarantees:
//!
//! - **Only the values change.** The file is edited with `toml_edit`: its
//!   comments, order, spacing and other sections stay byte for byte; a key
//!   changes only if the form's value differs from the file's, and keeps the
//!   comment beside it. A key the file lacks is added to `[fault]`.
//! - **A judges the values.** The form's values are checked for their type
//!   and kept in its range only (a whole number from 0 to `u32::MAX`,
//!   true/false, a share from 0.0 to 1.0), so the file never holds garbage;
//!   whether 3 600 001 ms is a valid delay is A's
//!   to say, in its own `event=config_error`, which the page shows: the same
//!   lesson as a bad edit in an editor.
//! - **A never reads a half-written file.** The new text is written to a
//!   temporary file beside it and renamed over it, as careful editors save
//!   ([`save`](super::save)).
//! - The form's keys are the common `[fault]` keys of the shipped
//!   `config/service-a.toml`, each one of A's own (`FaultSettings::KEYS`),
//!   and the page's inputs: the page's script takes them from the server,
//!   and a test fails if one drifts from the file, from A or from the page.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use toml_edit::{DocumentMut, Item, Table, Value};

use super::save::save;

/// The shipped file, whose values are the defaults (it shows each key with
/// its default) and whose comments a newly created file gets.
const SHIPPED: &str = include_str!("../../../config/service-a.toml");

/// What a form field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// A whole number (milliseconds, a status, bytes per second), from 0 to
    /// `u32::MAX`: every such key of A is unsigned, and its own limits lie
    /// well within.
    Integer,
    /// `true` or `false` (a checkbox).
    Bool,
    /// A share from 0.0 to 1.0 (the probability): outside it a float's text
    /// can be garbage (`1e308` is written as 309 digits).
    Share,
}

/// The form's fields, in the page's order: A's common `[fault]` keys.
pub const FIELDS: &[(&str, Type)] = &[
    ("delay_ms", Type::Integer),
    ("jitter_ms", Type::Integer),
    ("fail", Type::Bool),
    ("fail_status", Type::Integer),
    ("reset", Type::Bool),
    ("drop", Type::Bool),
    ("garbage", Type::Bool),
    ("truncate", Type::Bool),
    ("bad_body", Type::Bool),
    ("body_delay_ms", Type::Integer),
    ("body_bytes_per_s", Type::Integer),
    ("probability", Type::Share),
];

/// The form as the page sent it, checked for types: `(key, value)` in
/// [`FIELDS`] order. Unknown keys and values of the wrong type are refused
/// with a message naming the key and what it takes.
pub fn parse_form(pairs: &[(String, String)]) -> Result<Vec<(&'static str, Value)>, String> {
    let mut out = Vec::new();
    for (key, raw) in pairs {
        let Some(&(name, ty)) = FIELDS.iter().find(|(k, _)| k == key) else {
            let known: Vec<&str> = FIELDS.iter().map(|(k, _)| *k).collect();
            return Err(format!(
                "{key:?} is not a fault the console sets; it sets {}",
                known.join(", ")
            ));
        };
        // A key given twice: the first wins, as on A's echo and `/api/load`.
        if out.iter().any(|(k, _): &(&str, Value)| *k == name) {
            continue;
        }
        let raw = raw.trim();
        let value = match ty {
            Type::Integer => match raw.parse::<u32>() {
                Ok(n) => Value::from(i64::from(n)),
                Err(_) => {
                    return Err(format!(
                        "fault.{name} = {raw:?}: expected a whole number from 0 to {}",
                        u32::MAX
                    ))
                }
            },
            Type::Bool => match raw {
                "true" | "on" => Value::from(true),
                "false" | "off" => Value::from(false),
                _ => return Err(format!("fault.{name} = {raw:?}: expected true or false")),
            },
            Type::Share => match raw.parse::<f64>() {
                Ok(f) if (0.0..=1.0).contains(&f) => Value::from(f),
                _ => {
                    return Err(format!(
                        "fault.{name} = {raw:?}: expected a number from 0.0 to 1.0, like 0.5"
                    ))
                }
            },
        };
        out.push((name, value));
    }
    Ok(out)
}

/// `text` (A's file) with `changes` applied to `[fault]`, everything else
/// kept; an error if `text` is not TOML (the student fixes it first).
pub fn apply(text: &str, changes: &[(&'static str, Value)]) -> Result<String, String> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e| format!("the file is not valid TOML, so the console left it alone: {e}"))?;
    if !doc.contains_key("fault") {
        let mut table = Table::new();
        table.decor_mut().set_prefix("\n");
        doc.insert("fault", Item::Table(table));
    }
    let Some(fault) = doc.get_mut("fault").and_then(Item::as_table_like_mut) else {
        return Err("`fault` in the file is not a table, so the console left it alone".into());
    };
    for (key, new) in changes {
        match fault.get_mut(key).and_then(Item::as_value_mut) {
            Some(old) if same(old, new) => {}
            Some(old) => {
                // The comment after the value lives in its decor: keep it.
                let decor = old.decor().clone();
                *old = new.clone();
                *old.decor_mut() = decor;
            }
            None => {
                fault.insert(key, Item::Value(new.clone()));
            }
        }
    }
    Ok(doc.to_string())
}

/// Whether two values mean the same (1 and 1.0 do): unchanged keys are not
/// rewritten, so `1.0` stays as the student typed it.
fn same(a: &Value, b: &Value) -> bool {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a.as_bool().is_some() && a.as_bool() == b.as_bool(),
    }
}

fn number(v: &Value) -> Option<f64> {
    v.as_integer().map(|i| i as f64).or_else(|| v.as_float())
}

/// The shipped file's `[fault]` values: the defaults.
fn defaults() -> &'static BTreeMap<String, String> {
    static DEFAULTS: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    DEFAULTS.get_or_init(|| values(SHIPPED).unwrap_or_default())
}

/// `[fault]`'s values in `text`, each as its TOML text (`1500`, `true`, `1.0`).
fn values(text: &str) -> Option<BTreeMap<String, String>> {
    let doc: DocumentMut = text.parse().ok()?;
    let fault = doc.get("fault")?.as_table_like()?;
    Some(
        fault
            .iter()
            .filter_map(|(k, v)| {
                // The value alone, without the spaces and comment around it.
                let mut v = v.as_value()?.clone();
                v.decor_mut().clear();
                Some((k.to_owned(), v.to_string()))
            })
            .collect(),
    )
}

/// Whether A's logged value for `key` (as in `event=config_reloaded`) is the
/// default: such keys are left out of the page's summary of A's faults.
pub fn is_default(key: &str, logged: &str) -> bool {
    match defaults().get(key) {
        Some(d) => match (d.parse::<f64>(), logged.parse::<f64>()) {
            (Ok(x), Ok(y)) => x == y,
            _ => d == logged || (d == "{}" && logged.is_empty()),
        },
        // Keys the shipped file leaves commented out (seed): "none" is off.
        None => logged == "none" || logged.is_empty(),
    }
}

/// The form's values as they are in A's file (the default where the file
/// has no such key), for the page to start from.
pub fn current(text: Option<&str>) -> serde_json::Map<String, serde_json::Value> {
    let file = text.and_then(values).unwrap_or_default();
    FIELDS
        .iter()
        .map(|(key, ty)| {
            let raw = file.get(*key).or_else(|| defaults().get(*key));
            let raw = raw.map(String::as_str).unwrap_or("0");
            let value = match ty {
                Type::Bool => serde_json::Value::Bool(raw == "true"),
                Type::Integer | Type::Share => raw
                    .parse::<f64>()
                    .ok()
                    .and_then(|f| serde_json::Number::from_f64(f).map(serde_json::Value::Number))
                    .unwrap_or(serde_json::Value::Null),
            };
            ((*key).to_owned(), value)
        })
        .collect()
}

/// Why A's file was not written.
#[derive(Debug)]
pub enum WriteError {
    /// The file is not TOML (a half-done edit?): the student's to fix; the
    /// console leaves it alone.
    NotToml(String),
    /// Reading or saving failed (permissions, a full disk).
    Io(anyhow::Error),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::NotToml(e) => f.write_str(e),
            WriteError::Io(e) => write!(f, "{e:#}"),
        }
    }
}

/// Applies the form to A's file at `path` and saves it as a careful editor
/// does (a temporary file renamed over it). A missing file is created from
/// the shipped one, comments and all. Returns the new `[fault]` section.
pub fn write(path: &Path, changes: &[(&'static str, Value)]) -> Result<String, WriteError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => SHIPPED.to_owned(),
        Err(e) => {
            let e = anyhow::Error::new(e).context(format!("reading {}", path.display()));
            return Err(WriteError::Io(e));
        }
    };
    let new = apply(&text, changes)
        .map_err(|e| WriteError::NotToml(format!("{}: {e}", path.display())))?;
    save(path, &text, &new).map_err(WriteError::Io)?;
    Ok(section(&new))
}

/// The `[fault]` section's text, comments and all, as the page shows it.
fn section(text: &str) -> String {
    let start = if text.starts_with("[fault]") {
        0
    } else {
        match text.find("\n[fault]") {
            Some(i) => i + 1,
            None => return String::new(),
        }
    };
    let rest = &text[start..];
    let end = rest[1..].find("\n[").map_or(rest.len(), |i| i + 1);
    rest[..end].trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(&'static str, Value)> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        parse_form(&pairs).unwrap()
    }

    /// Every form field is a `[fault]` key of the shipped file, of the same
    /// type: the form cannot drift from what A reads.
    #[test]
    fn fields_match_the_shipped_file() {
        let doc: DocumentMut = SHIPPED.parse().unwrap();
        let fault = doc["fault"].as_table().unwrap();
        for (key, ty) in FIELDS {
            let v = fault.get(key).and_then(Item::as_value);
            let v = v.unwrap_or_else(|| panic!("fault.{key} is not in config/service-a.toml"));
            let ok = match ty {
                Type::Integer => v.as_integer().is_some(),
                Type::Bool => v.as_bool().is_some(),
                Type::Share => v.as_float().is_some(),
            };
            assert!(ok, "fault.{key} is {v} in the shipped file, not a {ty:?}");
            assert!(
                service_a::fault::FaultSettings::KEYS.contains(key),
                "fault.{key} is not one of A's [fault] keys"
            );
        }
    }

    /// The page's form has one input per field, named as the field, in
    /// [`FIELDS`] order: the page and the server speak of the same keys.
    #[test]
    fn fields_are_the_pages_inputs() {
        let page = include_str!("../../console/index.html");
        let form = page
            .split_once("<form id=\"fault\">")
            .and_then(|(_, rest)| rest.split_once("</form>"))
            .map(|(form, _)| form)
            .expect("index.html has <form id=\"fault\">");
        let inputs: Vec<&str> = form
            .split("<input ")
            .skip(1)
            .filter_map(|input| input.split_once("name=\"")?.1.split_once('"'))
            .map(|(name, _)| name)
            .collect();
        let fields: Vec<&str> = FIELDS.iter().map(|(key, _)| *key).collect();
        assert_eq!(inputs, fields, "the inputs of index.html's fault form");
    }

    /// Only the changed value changes: every comment, the other sections,
    /// and the spaces and comment beside the value stay byte for byte (as
    /// typing 1500 over the 0 in an editor leaves them).
    #[test]
    fn writes_the_file_as_an_editor_would() {
        let new = apply(
            SHIPPED,
            &form(&[
                ("delay_ms", "1500"),
                ("probability", "1"),
                ("fail", "false"),
            ]),
        )
        .unwrap();
        let old_lines: Vec<&str> = SHIPPED.lines().collect();
        let new_lines: Vec<&str> = new.lines().collect();
        assert_eq!(old_lines.len(), new_lines.len());
        let changed: Vec<(&&str, &&str)> = old_lines
            .iter()
            .zip(&new_lines)
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(changed.len(), 1, "{changed:#?}");
        assert_eq!(
            *changed[0].1,
            "delay_ms = 1500            # wait this long before answering (0..=3600000)"
        );
    }

    /// A file without `[fault]`, or without the key, gets them; a file
    /// that is not TOML is left alone with a message.
    #[test]
    fn adds_what_is_missing_and_refuses_broken_files() {
        let text = "[server]\nport = 8080 # mine\n";
        let new = apply(text, &form(&[("delay_ms", "20"), ("drop", "true")])).unwrap();
        assert!(new.starts_with(text), "{new}");
        assert!(
            new.contains("[fault]\ndelay_ms = 20\ndrop = true\n"),
            "{new}"
        );
        let err = apply("[fault\n", &form(&[("delay_ms", "1")])).unwrap_err();
        assert!(err.contains("not valid TOML"), "{err}");
    }

    /// The form is checked for types only, naming the key and what it takes.
    #[test]
    fn form_values_are_typed() {
        let bad = |k: &str, v: &str| parse_form(&[(k.to_owned(), v.to_owned())]).unwrap_err();
        assert!(
            bad("delay_ms", "soon").contains("fault.delay_ms = \"soon\": expected a whole number")
        );
        assert!(bad("fail", "yes").contains("expected true or false"));
        assert!(bad("probability", "NaN").contains("expected a number"));
        assert!(bad("port", "1").contains("not a fault the console sets"));
        // A's finer ranges are A's to judge: 3600001 ms passes here, A
        // answers config_error.
        assert_eq!(
            form(&[("delay_ms", "3600001")])[0].1.as_integer(),
            Some(3_600_001)
        );
    }

    /// The page starts from the file's values, defaults for the rest; A's
    /// logged defaults are recognised as such.
    #[test]
    fn current_values_and_defaults() {
        let now = current(Some("[fault]\ndelay_ms = 250\nfail = true\n"));
        assert_eq!(now["delay_ms"], 250.0);
        assert_eq!(now["fail"], true);
        assert_eq!(now["probability"], 1.0);
        assert_eq!(now["fail_status"], 500.0);
        assert!(is_default("probability", "1"));
        assert!(is_default("delay_ms", "0"));
        assert!(!is_default("delay_ms", "1500"));
        assert!(is_default("seed", "none"));
        assert!(is_default("fail_statuses", ""));
    }

    /// Saving: a missing file is created from the shipped one; a broken
    /// one is left byte for byte, with the reason; no temporary file stays.
    #[test]
    fn saves_through_a_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config/service-a.toml");
        let section = write(&path, &form(&[("drop", "true")])).unwrap();
        assert!(section.contains("drop = true "), "{section}");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), SHIPPED.lines().count());
        std::fs::write(&path, "[fault\n").unwrap();
        let err = write(&path, &form(&[("drop", "false")])).unwrap_err();
        assert!(matches!(err, WriteError::NotToml(_)), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "[fault\n");
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1);
    }

    /// A symlinked file is written through the link, as an editor does: the
    /// link stays a link and its target gets the new text.
    #[cfg(unix)]
    #[test]
    fn writes_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real/service-a.toml");
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, SHIPPED).unwrap();
        let link = dir.path().join("config/service-a.toml");
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink("../real/service-a.toml", &link).unwrap();

        write(&link, &form(&[("delay_ms", "1500")])).unwrap();

        let meta = std::fs::symlink_metadata(&link).unwrap();
        assert!(meta.file_type().is_symlink(), "the link was replaced");
        let text = std::fs::read_to_string(&target).unwrap();
        assert!(text.contains("delay_ms = 1500 "), "{text}");
        let left = std::fs::read_dir(target.parent().unwrap()).unwrap().count();
        assert_eq!(left, 1, "a temporary file stayed beside the target");
    }

    /// The file keeps its permissions (a private 600 stays 600).
    #[cfg(unix)]
    #[test]
    fn keeps_the_mode() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("service-a.toml");
        std::fs::write(&path, SHIPPED).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();

        write(&path, &form(&[("fail", "true")])).unwrap();

        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "mode {mode:o}");
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("fail = true "));
    }

    /// A key given twice: the first wins, as on A's echo and `/api/load`.
    #[test]
    fn repeated_key_first_wins() {
        let f = form(&[("delay_ms", "10"), ("delay_ms", "20")]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].1.as_integer(), Some(10));
    }

    /// Numbers stay in the form's range, so the file never holds garbage
    /// such as a 309-digit probability.
    #[test]
    fn numbers_stay_in_range() {
        let bad = |k: &str, v: &str| parse_form(&[(k.to_owned(), v.to_owned())]).unwrap_err();
        assert!(
            bad("probability", "1e308").contains("fault.probability = \"1e308\": expected"),
            "{}",
            bad("probability", "1e308")
        );
        assert!(bad("probability", "-0.5").contains("0.0 to 1.0"));
        assert!(bad("delay_ms", "-1").contains("from 0"));
        assert!(bad("delay_ms", "99999999999999").contains("from 0"));
        assert_eq!(form(&[("probability", "0.25")])[0].1.as_float(), Some(0.25));
    }

    /// The page shows the `[fault]` section alone.
    #[test]
    fn section_is_the_fault_table() {
        let s = section(SHIPPED);
        assert!(s.starts_with("[fault]"));
        assert!(s.contains("allow_headers"));
        assert!(!s.contains("[server]"));
    }
}

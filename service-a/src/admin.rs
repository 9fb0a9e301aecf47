//! The control API (`[admin] listen`): test suites read and change A's
//! faults over HTTP, in the style of Toxiproxy's API, on a listener of its
//! own (off unless configured; loopback only, since it has no
//! authentication).
//!
//! - `GET /faults`: `{"source": "file"|"api", "faults": {...}}`, the faults
//!   in force (every `[fault]` key, rules included) and where they came from.
//! - `PUT /faults`: replace them all (keys left out take their defaults).
//! - `PATCH /faults`: change only the keys given.
//! - `DELETE /faults`: clear them: no faults at all.
//!
//! Each change is whole or nothing: bad JSON, an unknown key or a value out
//! of range is a 400 naming it, and the faults in force stay as they were. A
//! change applies to the next request, on any connection, kept-alive ones
//! too (each request reads the faults in force as it starts); it is logged
//! (`event=faults_changed source=api`), and counted in A's `/metrics`
//! (`faults_changes_total{source}`, `faults_source{source}`). Like a saved
//! edit, it restarts `fail_first` and the seeded sequence.
//!
//! **The file and the API.** Whichever changed last is in force: the API's
//! set stands until the config file is next saved with a change (the file
//! is applied then, `source` back to `file`), and the file's stands until
//! the next API change. A restart starts from the file.

use std::net::SocketAddr;
use std::sync::Arc;

use http_types::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use service_runtime::config::Invalid;
use service_runtime::http::{self, json, ApiError, Reply};
use service_runtime::log::Line;

use crate::app::{App, Source};
use crate::fault::{FaultSettings, Faults};

/// Connections the control API serves at once: a test suite needs one or two.
pub const MAX_ADMIN_CONNECTIONS: u32 = 16;

/// `[admin]`: where the control API listens; empty, it is off.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// `127.0.0.1:8474` (Toxiproxy's port), a loopback address and a port
    /// (0: any free one, said in `event=admin_start`); empty: no control API.
    pub listen: String,
}

impl AdminSettings {
    /// Checks `listen`: empty, or a loopback address with a port.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.addr().map(|_| ())
    }

    /// The address to listen on, if the API is on.
    pub fn addr(&self) -> Result<Option<SocketAddr>, Invalid> {
        if self.listen.is_empty() {
            return Ok(None);
        }
        match self.listen.parse::<SocketAddr>() {
            Ok(addr) if addr.ip().is_loopback() => Ok(Some(addr)),
            _ => Err(Invalid {
                key: "admin.listen",
                value: format!("{:?}", self.listen),
                expected: "a loopback address and port, e.g. \"127.0.0.1:8474\" (the control API \
                           has no authentication), or \"\" for none"
                    .to_owned(),
            }),
        }
    }
}

/// What `GET /faults` and every change answer.
#[derive(Serialize)]
struct State<'a> {
    source: &'static str,
    faults: &'a FaultSettings,
}

/// Answers one request to the control API.
pub async fn handle(app: Arc<App>, mut req: Request) -> Reply {
    let path = req.url().path().to_owned();
    let method = req.method();
    let res = match (path.as_str(), method) {
        ("/health", Method::Get | Method::Head) => http::health(),
        ("/faults", Method::Get | Method::Head) => state(&app),
        ("/faults", Method::Put | Method::Patch | Method::Delete) => {
            let body = req.take_body().into_bytes().await.unwrap_or_default();
            match change(&app, method, &body) {
                Ok(res) => res,
                Err(e) => e.into_response(),
            }
        }
        ("/faults", other) => {
            let mut res = ApiError {
                status: StatusCode::MethodNotAllowed,
                message: format!(
                    "method {other} not allowed on /faults; allowed: GET, PUT, PATCH, DELETE"
                )
                .into(),
            }
            .into_response();
            res.insert_header("Allow", "GET, PUT, PATCH, DELETE");
            res
        }
        _ => ApiError {
            status: StatusCode::NotFound,
            message:
                "not found; the control API serves /faults (GET, PUT, PATCH, DELETE) and /health"
                    .into(),
        }
        .into_response(),
    };
    Line::new("A")
        .str("event", "admin_request")
        .str("method", method.as_ref())
        .client("endpoint", &path)
        .num("http_status", u16::from(res.status()))
        .emit();
    Reply::Send(res)
}

fn state(app: &App) -> Response {
    let faults = app.faults.load();
    json(
        StatusCode::Ok,
        &State {
            source: app.source().name(),
            faults: &faults.settings,
        },
    )
}

/// The faults a change asks for, checked whole before anything changes.
fn change(app: &App, method: Method, body: &[u8]) -> Result<Response, ApiError> {
    let settings = match method {
        Method::Delete => FaultSettings::default(),
        Method::Put => parse(body)?,
        _ => {
            let patch: serde_json::Value = serde_json::from_slice(body).map_err(not_json)?;
            let serde_json::Value::Object(patch) = patch else {
                return Err(ApiError::bad_request(
                    "a PATCH body is a JSON object of [fault] keys, e.g. {\"delay_ms\": 200}; \
                     nothing changed",
                ));
            };
            let current = app.faults.load();
            let mut merged = serde_json::to_value(&current.settings)
                .map_err(|e| ApiError::internal(format!("cannot read the faults in force: {e}")))?;
            if let serde_json::Value::Object(fields) = &mut merged {
                fields.extend(patch);
            }
            let text = merged.to_string();
            parse(text.as_bytes())?
        }
    };
    settings
        .validate()
        .map_err(|e| ApiError::bad_request(format!("{e}; nothing changed")))?;
    // In force before it is said: whoever reads the line finds it applied.
    app.put_faults(Faults::new(settings.clone()), Source::Api);
    settings
        .log_fields(
            Line::new("A")
                .str("event", "faults_changed")
                .str("source", "api")
                .str("method", method.as_ref()),
        )
        .emit();
    Ok(state(app))
}

/// A JSON body of `[fault]` keys; an unknown key or a wrong type is named.
fn parse(body: &[u8]) -> Result<FaultSettings, ApiError> {
    serde_json::from_slice(body).map_err(not_json)
}

fn not_json(e: serde_json::Error) -> ApiError {
    let what = if e.is_syntax() || e.is_eof() {
        "the body is not JSON"
    } else {
        "the body is not a set of [fault] keys"
    };
    ApiError::bad_request(format!("{what}: {e}; nothing changed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only loopback addresses, or nothing.
    #[test]
    fn listen_is_loopback_or_nothing() {
        let at = |s: &str| {
            AdminSettings {
                listen: s.to_owned(),
            }
            .validate()
        };
        assert!(at("").is_ok());
        assert!(at("127.0.0.1:8474").is_ok());
        assert!(at("[::1]:0").is_ok());
        for bad in ["0.0.0.0:8474", "10.0.0.1:1", "localhost:8474", "8474"] {
            assert_eq!(at(bad).unwrap_err().key, "admin.listen", "{bad}");
        }
    }

    fn send(app: &Arc<App>, method: Method, body: &str) -> (u16, serde_json::Value) {
        smol::block_on(async {
            let mut req = Request::new(method, "http://a/faults");
            req.set_body(body);
            let Reply::Send(mut res) = handle(app.clone(), req).await else {
                panic!("no answer")
            };
            let text = res.body_string().await.unwrap();
            (
                u16::from(res.status()),
                serde_json::from_str(&text).unwrap(),
            )
        })
    }

    /// Put, patch, read, clear; a bad change names what is wrong and changes nothing.
    #[test]
    fn put_patch_get_delete() {
        let app = Arc::new(App::new(Faults::new(FaultSettings::default()), 64));
        let (code, got) = send(&app, Method::Get, "");
        assert_eq!((code, got["source"].as_str()), (200, Some("file")));
        let (code, got) = send(&app, Method::Put, r#"{"fail": true, "fail_status": 503}"#);
        assert_eq!(code, 200, "{got}");
        assert_eq!(got["source"], "api");
        assert_eq!(got["faults"]["fail_status"], 503);
        let (_, got) = send(&app, Method::Patch, r#"{"delay_ms": 20}"#);
        assert_eq!(
            (
                got["faults"]["delay_ms"].as_u64(),
                got["faults"]["fail"].as_bool()
            ),
            (Some(20), Some(true))
        );
        for (bad, says) in [
            ("{\"fail\": tru", "not JSON"),
            (r#"{"nope": 1}"#, "unknown field `nope`"),
            (r#"{"probability": 1.5}"#, "fault.probability"),
            (r#"{"delay_ms": "x"}"#, "invalid type"),
            ("[1]", "JSON object"),
        ] {
            let (code, got) = send(&app, Method::Patch, bad);
            assert_eq!(code, 400, "{bad}");
            let error = got["error"].as_str().unwrap();
            assert!(
                error.contains(says) && error.contains("nothing changed"),
                "{bad}: {error}"
            );
        }
        assert_eq!(
            app.faults.load().settings.delay_ms,
            20,
            "unchanged by bad requests"
        );
        let (_, got) = send(&app, Method::Delete, "");
        assert_eq!(got["faults"]["fail"], false);
        assert_eq!(app.faults.load().settings, FaultSettings::default());
    }
}

//! The HTTP edge both services share: what a handler answers ([`Reply`]),
//! JSON answers, the one error type, routing by method, and form decoding of
//! query strings.

use std::borrow::Cow;

use http_types::{mime, Body, Method, Response, StatusCode};
use serde::Serialize;

/// What a handler wants done with its connection: the loop (`connection.rs`)
/// does exactly this, and nothing is signalled any other way.
#[derive(Debug)]
pub enum Reply {
    /// Send this answer, head and body in one write.
    Send(Response),
    /// Send the head now and the body as it is produced (a stalled or slow
    /// body): each piece is written as soon as it is read.
    Stream(Response),
    /// Close the connection without an answer (the `drop` fault): a clean
    /// close, FIN, as a crashed or overloaded peer might.
    Close,
    /// Reset the connection without an answer (the `reset` fault): an RST,
    /// as a peer that crashed mid-request or a middlebox might.
    Reset,
    /// Write these bytes as they are, then close: an answer no encoder would
    /// write (bytes that are not HTTP, a body cut short, a status line
    /// http-types has no name for).
    Raw(Vec<u8>),
}

impl From<Response> for Reply {
    fn from(res: Response) -> Self {
        Reply::Send(res)
    }
}

/// `res` as it goes on the wire (head and body), for a request of `method`:
/// async-h1's encoder, which also writes the answers the loop sends.
pub async fn encode(res: Response, method: Method) -> std::io::Result<Vec<u8>> {
    use smol::io::AsyncReadExt as _;
    let mut bytes = Vec::with_capacity(256);
    async_h1::server::Encoder::new(res, method)
        .read_to_end(&mut bytes)
        .await?;
    Ok(bytes)
}

/// Methods every endpoint answers; HEAD is GET without the body (async-h1 drops it).
pub const ALLOW: &str = "GET, HEAD";

/// A JSON answer: `status`, `Content-Type: application/json`, `body` serialized.
pub fn json(status: StatusCode, body: &impl Serialize) -> Response {
    let mut res = Response::new(status);
    // Serializing plain structs of strings and numbers cannot fail.
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    // The body carries its type; a Mime parsed from text would cost a parse per answer.
    let mut body = Body::from_bytes(bytes);
    body.set_mime(mime::JSON);
    res.set_body(body);
    res
}

/// A request the service refuses: a status and a message, answered as
/// `{"error": message}`. Handlers return it; [`ApiError::into_response`] turns
/// it into an answer at the boundary, so no error ever drops a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status to answer with.
    pub status: StatusCode,
    /// What the client did wrong, in words.
    pub message: Cow<'static, str>,
}

impl ApiError {
    /// 400 with a message naming what was wrong.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status: StatusCode::BadRequest,
            message: message.into(),
        }
    }

    /// 500: the service's own fault, never the client's.
    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status: StatusCode::InternalServerError,
            message: message.into(),
        }
    }

    /// 404 for a path no endpoint serves.
    pub fn not_found() -> Self {
        Self {
            status: StatusCode::NotFound,
            message: "not found".into(),
        }
    }

    /// 405 for a known path and another method; the answer carries `Allow`.
    pub fn method_not_allowed(method: Method) -> Self {
        Self {
            status: StatusCode::MethodNotAllowed,
            message: format!("method {method} not allowed; allowed: {ALLOW}").into(),
        }
    }

    /// The JSON answer for this error.
    pub fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a str,
        }
        let mut res = json(
            self.status,
            &Body {
                error: &self.message,
            },
        );
        if self.status == StatusCode::MethodNotAllowed {
            res.insert_header("Allow", ALLOW);
        }
        res
    }
}

/// `200 {"status":"ok"}`: the service itself is alive.
pub fn health() -> Response {
    #[derive(Serialize)]
    struct Health {
        status: &'static str,
    }
    json(StatusCode::Ok, &Health { status: "ok" })
}

/// A service's endpoints: each path once, with the endpoint that answers it.
/// The path is also the endpoint's name in metrics.
pub type Routes<E> = &'static [(&'static str, E)];

/// The endpoint for a GET or HEAD of `path`; a 404 for a path no endpoint
/// serves, a 405 (with `Allow`) for another method on a known path.
pub fn route<E: Copy>(
    routes: Routes<E>,
    method: Method,
    path: &str,
) -> Result<(&'static str, E), ApiError> {
    let &(name, endpoint) = routes
        .iter()
        .find(|(p, _)| *p == path)
        .ok_or_else(ApiError::not_found)?;
    match method {
        Method::Get | Method::Head => Ok((name, endpoint)),
        other => Err(ApiError::method_not_allowed(other)),
    }
}

/// `GET /`: `{"service":"A","endpoints":["/","/health",...]}`.
pub fn index<E>(service: &str, routes: Routes<E>) -> Response {
    #[derive(Serialize)]
    struct Index<'a> {
        service: &'a str,
        endpoints: Vec<&'a str>,
    }
    let endpoints = routes.iter().map(|(path, _)| *path).collect();
    json(StatusCode::Ok, &Index { service, endpoints })
}

/// The first value of `name` in a form-encoded query (`+` is a space, `%XX` a byte),
/// as Flask's `request.args.get` finds it. Bytes that do not decode to UTF-8 are a 400.
pub fn query_param(query: Option<&str>, name: &str) -> Result<Option<String>, ApiError> {
    let Some(query) = query else {
        return Ok(None);
    };
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if form_decode(key).as_deref() != Ok(name) {
            continue;
        }
        return form_decode(value).map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "query parameter {name:?} is not UTF-8 after percent-decoding"
            ))
        });
    }
    Ok(None)
}

/// `application/x-www-form-urlencoded` decoding of one key or value.
fn form_decode(raw: &str) -> Result<String, std::string::FromUtf8Error> {
    let spaced: Cow<'_, str> = if raw.contains('+') {
        Cow::Owned(raw.replace('+', " "))
    } else {
        Cow::Borrowed(raw)
    };
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(&spaced).collect();
    String::from_utf8(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decoding matches Flask: `+` is a space, `%XX` bytes, first value wins.
    #[test]
    fn query_decoding_matches_flask() {
        let q = |s| query_param(Some(s), "msg");
        assert_eq!(
            q("msg=a%20b+c%26d%C3%A9").unwrap().as_deref(),
            Some("a b c&dé")
        );
        assert_eq!(
            q("x=1&msg=first&msg=second").unwrap().as_deref(),
            Some("first")
        );
        assert_eq!(q("msg").unwrap().as_deref(), Some(""));
        assert_eq!(q("msg=").unwrap().as_deref(), Some(""));
        assert_eq!(
            q("m%73g=encoded+key").unwrap().as_deref(),
            Some("encoded key")
        );
        assert_eq!(q("msg=100%").unwrap().as_deref(), Some("100%"));
        assert_eq!(q("msg=a=b").unwrap().as_deref(), Some("a=b"));
        assert_eq!(q("other=1").unwrap(), None);
        assert_eq!(query_param(None, "msg").unwrap(), None);
    }

    /// Bytes that are not UTF-8 after decoding are the client's error, a 400.
    #[test]
    fn non_utf8_is_a_bad_request() {
        let err = query_param(Some("msg=%FF%FE"), "msg").unwrap_err();
        assert_eq!(err.status, StatusCode::BadRequest);
        assert!(err.message.contains("not UTF-8"));
    }

    /// A 405 names the method and carries `Allow`.
    #[test]
    fn method_not_allowed_has_allow() {
        let res = ApiError::method_not_allowed(Method::Post).into_response();
        assert_eq!(res.status(), StatusCode::MethodNotAllowed);
        assert_eq!(res["Allow"].as_str(), ALLOW);
        assert_eq!(res.content_type().unwrap().essence(), "application/json");
    }
}

//! HTTP building blocks shared by the resource handlers ([`crate::server`]) and the exec
//! upgrade ([`crate::exec`]): the response body type, JSON, `metav1.Status` and plain-text
//! responses, and query-string decoding. No routing and no state: everything here takes values
//! and returns values.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::Value;

/// Response body type used everywhere.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// A JSON response.
pub(crate) fn json_response(code: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())).boxed());
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A `metav1.Status` response whose HTTP code is the Status's `code`.
pub(crate) fn status_response(status: &Value) -> Response<Body> {
    let code = status
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, status)
}

/// A plain-text response.
pub(crate) fn text_response(code: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_string())).boxed());
    *response.status_mut() = code;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Go's `strconv.ParseBool` truthy spellings, as the API server accepts them.
pub(crate) fn is_true(value: Option<&str>) -> bool {
    matches!(value, Some("1" | "t" | "T" | "true" | "TRUE" | "True"))
}

/// Decodes an `application/x-www-form-urlencoded` query (`+` is a space). Empty segments, like
/// the stray `?&` kube-rs sends, are skipped.
pub(crate) fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            (decode_component(key), decode_component(value))
        })
        .collect()
}

fn decode_component(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        index += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first value of `key` among decoded query pairs.
pub(crate) fn query_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding_matches_what_clients_send() {
        let pairs = parse_query(Some(
            "&stdout=true&command=sh&command=-c&command=echo+out2%3B+exit+2&bad=%zz&end=%4",
        ));
        assert_eq!(
            pairs,
            vec![
                ("stdout".into(), "true".into()),
                ("command".into(), "sh".into()),
                ("command".into(), "-c".into()),
                ("command".into(), "echo out2; exit 2".into()),
                ("bad".into(), "%zz".into()),
                ("end".into(), "%4".into()),
            ]
        );
    }
}

//! Runs one Bundle entry as the interaction its request names, through the same routes as an
//! HTTP request (so a batch entry behaves exactly as the request would on its own), and turns
//! the answer into a response entry.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

use super::{Entry, Method, response_entry};
use crate::fhir::instant::{format_instant, parse_http_date};
use crate::fhir::outcome::{Issue, IssueType, operation_outcome};
use crate::rest::ApiError;
use crate::rest::response::FhirBody;

/// Headers of the Bundle request that every entry's request carries too.
const INHERITED: [&str; 2] = ["prefer", "authorization"];

/// Runs `entry` on `routes` and answers with its response entry.
pub async fn run(routes: &Router, entry: &Entry, outer: &HeaderMap) -> Value {
    match request(entry, outer) {
        Ok(request) => answer(routes, request, entry.method).await,
        Err(error) => failure(error),
    }
}

/// The response entry of an error.
pub fn failure(error: ApiError) -> Value {
    let outcome = operation_outcome(error.issues());
    response_entry(error.status(), None, None, None, None, None, Some(outcome))
}

/// The HTTP request an entry stands for.
fn request(entry: &Entry, outer: &HeaderMap) -> Result<Request<Body>, ApiError> {
    let path = entry.url.split('?').next().unwrap_or_default();
    if path.is_empty() {
        return Err(entry.error(
            StatusCode::BAD_REQUEST,
            IssueType::NotSupported,
            "an entry cannot post another batch or transaction to the base",
        ));
    }
    if entry.url.contains("://") {
        return Err(entry.error(
            StatusCode::BAD_REQUEST,
            IssueType::NotSupported,
            "the entry's URL names another server",
        ));
    }
    let uri = format!("/fhir/{}", escape(&entry.url));
    let mut builder = Request::builder()
        .method(entry.method.as_str())
        .uri(uri.as_str())
        .header(header::ACCEPT, "application/fhir+json");
    for name in INHERITED {
        for value in outer.get_all(name) {
            builder = builder.header(name, value);
        }
    }
    for (name, value) in [
        (header::IF_MATCH, &entry.if_match),
        (header::IF_NONE_MATCH, &entry.if_none_match),
        (header::IF_MODIFIED_SINCE, &entry.if_modified_since),
    ] {
        if let Some(value) = value {
            builder = builder.header(name, http_value(entry, value)?);
        }
    }
    if let Some(criteria) = &entry.if_none_exist {
        builder = builder.header("if-none-exist", http_value(entry, criteria)?);
    }
    let (content_type, body) = match (&entry.resource, entry.method) {
        (Some(resource), Method::Patch) => patch_body(entry, resource)?,
        (Some(resource), Method::Post | Method::Put) => (
            "application/fhir+json".to_owned(),
            serde_json::to_vec(resource).unwrap_or_default(),
        ),
        _ => (String::new(), Vec::new()),
    };
    if !content_type.is_empty() {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    builder.body(Body::from(body)).map_err(|e| {
        entry.error(
            StatusCode::BAD_REQUEST,
            IssueType::Invalid,
            format!("the entry's request is not a valid HTTP request: {e}"),
        )
    })
}

/// The entry's URL with the characters a request line cannot hold (spaces, `|`, quotes,
/// braces) percent-encoded, as a client would have sent them.
fn escape(url: &str) -> String {
    let mut escaped = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            ' ' | '|' | '"' | '<' | '>' | '`' | '{' | '}' | '^' | '\\' => {
                escaped.push_str(&format!("%{:02X}", c as u32));
            }
            c if !c.is_ascii() => {
                let mut buffer = [0u8; 4];
                for byte in c.encode_utf8(&mut buffer).bytes() {
                    escaped.push_str(&format!("%{byte:02X}"));
                }
            }
            c => escaped.push(c),
        }
    }
    escaped
}

/// An entry's `ifModifiedSince` is a FHIR instant; the header wants an HTTP date.
fn http_value(entry: &Entry, value: &str) -> Result<HeaderValue, ApiError> {
    let value = match crate::fhir::instant::parse_range(value) {
        Some((start, _)) if value.contains('T') => crate::fhir::instant::format_http_date(start),
        _ => value.to_owned(),
    };
    HeaderValue::from_str(&value).map_err(|_| {
        entry.error(
            StatusCode::BAD_REQUEST,
            IssueType::Value,
            format!("'{value}' is not a valid request condition"),
        )
    })
}

/// The body of a PATCH entry: a Binary holding a JSON Patch document, or Parameters (FHIRPath
/// Patch).
pub fn patch_body(entry: &Entry, resource: &Value) -> Result<(String, Vec<u8>), ApiError> {
    match resource.get("resourceType").and_then(Value::as_str) {
        Some("Binary") => {
            let content_type = resource
                .get("contentType")
                .and_then(Value::as_str)
                .unwrap_or("application/json-patch+json")
                .to_owned();
            let data = resource
                .get("data")
                .and_then(Value::as_str)
                .unwrap_or_default();
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| {
                    entry.error(
                        StatusCode::BAD_REQUEST,
                        IssueType::Value,
                        format!("the Binary's data is not base64: {e}"),
                    )
                })?;
            Ok((content_type, bytes))
        }
        Some("Parameters") => Ok((
            "application/fhir+json".to_owned(),
            serde_json::to_vec(resource).unwrap_or_default(),
        )),
        _ => Err(entry.error(
            StatusCode::BAD_REQUEST,
            IssueType::Invalid,
            "a PATCH entry's resource is a Binary holding a JSON Patch, or a Parameters resource (FHIRPath Patch)",
        )),
    }
}

async fn answer(routes: &Router, request: Request<Body>, method: Method) -> Value {
    let response = match routes.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    let headers = response.headers();
    let header_text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let location = header_text(header::LOCATION).or_else(|| header_text(header::CONTENT_LOCATION));
    let etag = header_text(header::ETAG);
    let last_modified = header_text(header::LAST_MODIFIED)
        .and_then(|date| parse_http_date(&date))
        .map(format_instant);
    let body = match response.extensions().get::<FhirBody>() {
        Some(FhirBody::Value(value)) => Some(value.clone()),
        Some(FhirBody::Stored(bytes)) => serde_json::from_slice(bytes).ok(),
        None if status.is_client_error() || status.is_server_error() => {
            let issue = if status == StatusCode::METHOD_NOT_ALLOWED {
                crate::rest::edge::method_not_allowed(headers)
            } else {
                Issue::error(
                    IssueType::Invalid,
                    status.canonical_reason().unwrap_or("error"),
                )
            };
            Some(operation_outcome(&[issue]))
        }
        None => None,
    };
    let is_outcome = body
        .as_ref()
        .and_then(|b| b.get("resourceType"))
        .and_then(Value::as_str)
        == Some("OperationOutcome");
    let (resource, outcome) = match method {
        _ if !status.is_success() => (None, body),
        Method::Head => (None, None),
        Method::Get => (body, None),
        _ if is_outcome => (None, body),
        _ => (body, None),
    };
    let full_url = location
        .as_deref()
        .and_then(|l| l.split("/_history/").next())
        .map(str::to_owned);
    response_entry(
        status,
        full_url.filter(|_| status.is_success()),
        resource,
        location,
        etag,
        last_modified,
        outcome,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn entry_urls_are_escaped_for_the_request_line() {
        assert_eq!(
            super::escape("Patient?name=peter james&identifier=urn:mrn|1&given=Zoë"),
            "Patient?name=peter%20james&identifier=urn:mrn%7C1&given=Zo%C3%AB"
        );
        let uri = format!("/fhir/{}", super::escape("Patient?name=a b"));
        assert!(uri.parse::<axum::http::Uri>().is_ok());
    }
}

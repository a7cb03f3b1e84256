//! The edge of the FHIR API, one middleware around every `/fhir` route: it negotiates the
//! response format, renders FHIR bodies (JSON as stored, pretty JSON or XML), turns every error
//! that did not come from a handler (unknown route, wrong method, body too large, bad path) into
//! an OperationOutcome, and logs the detail of 5xx errors once with a request id while the
//! client gets a generic message carrying that id.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;

use super::error::{ApiError, InternalDetail};
use super::format::{Negotiated, content_type, negotiate};
use super::response::FhirBody;
use crate::fhir::outcome::{Issue, IssueType, operation_outcome};
use crate::fhir::{Format, json_to_xml};

/// The request id header, set on every response.
pub const REQUEST_ID: &str = "x-request-id";

/// A request id unique across nodes and restarts: a random prefix per process and a counter
/// (cheaper than a random UUID per request).
fn new_request_id() -> String {
    static PREFIX: LazyLock<String> =
        LazyLock::new(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_owned());
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    format!("{}-{}", *PREFIX, COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// True for paths of the FHIR API.
fn is_fhir_path(path: &str) -> bool {
    path == "/fhir" || path.starts_with("/fhir/")
}

/// The middleware; see the module documentation.
pub async fn fhir_edge(mut request: Request, next: Next) -> Response {
    if !is_fhir_path(request.uri().path()) {
        return next.run(request).await;
    }
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(new_request_id, str::to_owned);
    let negotiated = match negotiate(request.headers(), request.uri().query()) {
        Ok(n) => n,
        Err(error) => {
            return finish(error.into_response(), Negotiated::default(), &request_id).await;
        }
    };
    request.extensions_mut().insert(negotiated);
    let response = next.run(request).await;
    finish(response, negotiated, &request_id).await
}

async fn finish(mut response: Response, negotiated: Negotiated, request_id: &str) -> Response {
    let status = response.status();
    let mut body = response.extensions_mut().remove::<FhirBody>();
    if let Some(InternalDetail(detail)) = response.extensions_mut().remove::<InternalDetail>() {
        tracing::error!(request_id, %status, detail, "request failed");
        body = Some(FhirBody::Value(operation_outcome(&[Issue::error(
            if status == StatusCode::SERVICE_UNAVAILABLE {
                IssueType::Transient
            } else {
                IssueType::Exception
            },
            format!(
                "{}; request id {request_id}",
                status.canonical_reason().unwrap_or("internal error")
            ),
        )])));
    } else if body.is_none() && (status.is_client_error() || status.is_server_error()) {
        body = Some(FhirBody::Value(
            outcome_for_framework_error(&mut response).await,
        ));
        if status.is_server_error() {
            tracing::error!(request_id, %status, "request failed without detail");
        }
    }
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let Some(body) = body else { return response };
    match render(body, negotiated) {
        Ok(bytes) => {
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(negotiated.format)),
            );
            response.headers_mut().remove(header::CONTENT_LENGTH);
            *response.body_mut() = Body::from(bytes);
            response
        }
        Err(issue) => {
            tracing::error!(
                request_id,
                detail = issue.diagnostics,
                "response could not be rendered"
            );
            let outcome = operation_outcome(&[Issue::error(
                IssueType::Exception,
                format!("the response could not be written as requested; request id {request_id}"),
            )]);
            let bytes = serde_json::to_vec(&outcome).unwrap_or_default();
            let mut failed = (StatusCode::INTERNAL_SERVER_ERROR, bytes).into_response();
            failed.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(Format::Json)),
            );
            failed
        }
    }
}

/// An OperationOutcome for an error axum produced itself (its plain-text body becomes the
/// diagnostic for 4xx; 5xx text is never shown).
async fn outcome_for_framework_error(response: &mut Response) -> Value {
    let status = response.status();
    let text = match axum::body::to_bytes(std::mem::take(response.body_mut()), 4096).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let issue = match status {
        StatusCode::NOT_FOUND => Issue::error(
            IssueType::NotFound,
            "no FHIR interaction is defined at this URL",
        ),
        StatusCode::METHOD_NOT_ALLOWED => method_not_allowed(response.headers()),
        StatusCode::PAYLOAD_TOO_LARGE => Issue::error(
            IssueType::TooLong,
            "the request body is larger than this server accepts",
        ),
        s if s.is_server_error() => Issue::error(IssueType::Exception, "internal error"),
        _ if text.is_empty() => Issue::error(
            IssueType::Invalid,
            status.canonical_reason().unwrap_or("bad request"),
        ),
        _ => Issue::error(IssueType::Invalid, text),
    };
    operation_outcome(&[issue])
}

/// The issue of a 405, naming the methods of its response's `Allow` header.
pub(super) fn method_not_allowed(headers: &axum::http::HeaderMap) -> Issue {
    let allow = headers
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    Issue::error(
        IssueType::NotSupported,
        format!("this method is not supported at this URL (allowed: {allow})"),
    )
}

fn render(body: FhirBody, negotiated: Negotiated) -> Result<Bytes, Issue> {
    let parse = |bytes: &[u8]| {
        serde_json::from_slice::<Value>(bytes)
            .map_err(|e| Issue::error(IssueType::Exception, e.to_string()))
    };
    match (negotiated.format, negotiated.pretty, body) {
        (Format::Json, false, FhirBody::Stored(bytes)) => Ok(bytes),
        (Format::Json, false, FhirBody::Value(value)) => serde_json::to_vec(&value)
            .map(Bytes::from)
            .map_err(|e| Issue::error(IssueType::Exception, e.to_string())),
        (Format::Json, true, body) => {
            let value = match body {
                FhirBody::Stored(bytes) => parse(&bytes)?,
                FhirBody::Value(value) => value,
            };
            serde_json::to_vec_pretty(&value)
                .map(Bytes::from)
                .map_err(|e| Issue::error(IssueType::Exception, e.to_string()))
        }
        (Format::Xml, _, body) => {
            let value = match body {
                FhirBody::Stored(bytes) => parse(&bytes)?,
                FhirBody::Value(value) => value,
            };
            json_to_xml(&value).map(Bytes::from)
        }
    }
}

/// The fallback for URLs under `/fhir` that name no interaction.
pub async fn unknown_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        IssueType::NotFound,
        "no FHIR interaction is defined at this URL",
    )
}

//! Successful FHIR responses: status, FHIR headers and a body that the edge middleware renders
//! in the negotiated format.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;

use crate::fhir::instant::format_http_date;
use crate::storage::StoredVersion;

/// A FHIR body waiting to be rendered in the negotiated format.
#[derive(Debug, Clone)]
pub enum FhirBody {
    /// Canonical JSON exactly as stored.
    Stored(Bytes),
    /// A resource built or changed in memory.
    Value(Value),
}

/// A FHIR response under construction.
#[derive(Debug)]
pub struct FhirResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Option<FhirBody>,
}

impl FhirResponse {
    /// A response with `status` and no body yet.
    pub fn new(status: StatusCode) -> Self {
        FhirResponse {
            status,
            headers: HeaderMap::new(),
            body: None,
        }
    }

    /// Sets the body.
    pub fn body(mut self, body: FhirBody) -> Self {
        self.body = Some(body);
        self
    }

    /// Adds a header; values that are not valid header text are skipped.
    pub fn header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.insert(name, value);
        }
        self
    }

    /// Adds a header, keeping others of the same name.
    pub fn append_header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.append(name, value);
        }
        self
    }

    /// Adds `ETag` and `Last-Modified` for a version.
    pub fn version_headers(self, version: &StoredVersion) -> Self {
        self.header(header::ETAG, &etag(version.version_id)).header(
            header::LAST_MODIFIED,
            &format_http_date(version.last_updated),
        )
    }
}

/// The weak ETag of a version: `W/"3"`.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

impl IntoResponse for FhirResponse {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.headers).into_response();
        if let Some(body) = self.body {
            response.extensions_mut().insert(body);
        }
        response
    }
}

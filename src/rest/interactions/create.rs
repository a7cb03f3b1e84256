//! `create`: POST [base]/[type] (R4 http §3.1.0.8). The server assigns the id; an id in the
//! body is ignored.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;

use super::written;
use crate::fhir::outcome::IssueType;
use crate::fhir::parse_resource;
use crate::rest::format::body_format;
use crate::rest::response::FhirResponse;
use crate::rest::{ApiError, RestState, known_type};

/// Creates a resource.
#[utoipa::path(post, path = "/fhir/{type}", tag = "FHIR",
    params(("type" = String, Path, description = "Resource type")),
    request_body(content = String, content_type = "application/fhir+json", description = "The resource (JSON or XML)"),
    responses((status = 201, description = "Created; Location names the new version"),
        (status = 400, description = "Invalid resource"), (status = 413, description = "Body too large"),
        (status = 415, description = "Unsupported Content-Type")))]
pub async fn create_resource(
    State(state): State<RestState>,
    Path(resource_type): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<FhirResponse, ApiError> {
    known_type(&resource_type)?;
    if headers.contains_key("if-none-exist") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            IssueType::NotSupported,
            "conditional create (If-None-Exist) is not supported by this server version; nothing was created",
        ));
    }
    let format = body_format(&headers)?;
    let resource = parse_resource(&body, format, Some(&resource_type))?;
    let version = state.storage.create(&resource_type, resource).await?;
    Ok(written(&state.base, version, &headers))
}

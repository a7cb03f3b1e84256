//! `create`: `POST [base]/[type]` (R4 http §3.1.0.8). The server assigns the id; an id in the
//! body is ignored.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;

use super::written;
use crate::fhir::outcome::IssueType;
use crate::fhir::parse_resource;
use crate::rest::format::body_format;
use crate::rest::response::FhirResponse;
use crate::rest::{ApiError, Prepared, RestState, known_type};
use crate::storage::Conditional;

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
    let criteria = match headers.get("if-none-exist") {
        Some(value) => Some(super::conditional_criteria(
            &state,
            &resource_type,
            value.to_str().ok(),
            "If-None-Exist",
        )?),
        None => None,
    };
    let format = body_format(&headers)?;
    let resource = parse_resource(&body, format, Some(&resource_type))?;
    let Some((query, key)) = criteria else {
        let (version, warnings) = state.create_through_hooks(&resource_type, resource).await?;
        return Ok(written(&state.base, version, &headers, &warnings));
    };
    let Prepared {
        resource,
        index,
        warnings,
    } = state.prepare(
        &resource_type,
        resource,
        None,
        crate::auth::Interaction::Create,
    )?;
    match state
        .storage
        .create_if_none(query, key, resource, index)
        .await?
    {
        Conditional::Written(version) => {
            state.after_store(&resource_type, &version);
            Ok(written(&state.base, version, &headers, &warnings))
        }
        Conditional::Matched(ids) if ids.len() == 1 => {
            // One match: nothing is created and the existing resource is the answer.
            let id = crate::rest::url_id(&ids[0])?;
            let mut existing = state
                .storage
                .find_current(&resource_type, &id)
                .await?
                .ok_or_else(|| ApiError::internal("a matched resource vanished"))?;
            let location = format!(
                "{}/{resource_type}/{id}/_history/{}",
                state.base, existing.version_id
            );
            existing.created = false;
            Ok(written(&state.base, existing, &headers, &[])
                .header(axum::http::header::LOCATION, &location))
        }
        Conditional::Matched(_) | Conditional::IdMismatch(_) => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            IssueType::MultipleMatches,
            "If-None-Exist matched more than one resource; nothing was created",
        )),
    }
}

//! `update`: `PUT [base]/[type]/[id]` (R4 http §3.1.0.4), with update-as-create for new ids,
//! restore of deleted resources, and `If-Match` for version-aware updates.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use bytes::Bytes;

use super::written;
use crate::fhir::outcome::IssueType;
use crate::fhir::parse_resource;
use crate::rest::format::body_format;
use crate::rest::preconditions::if_match;
use crate::rest::response::FhirResponse;
use crate::rest::{ApiError, Prepared, RestState, known_type, url_id};
use crate::storage::Conditional;

/// Updates (or creates) a resource with a client-chosen id.
#[utoipa::path(put, path = "/fhir/{type}/{id}", tag = "FHIR",
    params(("type" = String, Path, description = "Resource type"), ("id" = String, Path, description = "Logical id")),
    request_body(content = String, content_type = "application/fhir+json", description = "The resource, with the same id"),
    responses((status = 200, description = "Updated"), (status = 201, description = "Created"),
        (status = 400, description = "Invalid resource or id mismatch"), (status = 412, description = "If-Match failed")))]
pub async fn update_resource(
    State(state): State<RestState>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<FhirResponse, ApiError> {
    known_type(&resource_type)?;
    let id = url_id(&id)?;
    let expected = if_match(&headers)?;
    let format = body_format(&headers)?;
    let resource = parse_resource(&body, format, Some(&resource_type))?;
    match resource.get("id").and_then(|v| v.as_str()) {
        Some(body_id) if body_id == id.as_str() => {}
        Some(body_id) => {
            return Err(ApiError::bad_request(
                IssueType::Invalid,
                format!(
                    "the id in the body ('{body_id}') does not match the id in the URL ('{id}')"
                ),
            ));
        }
        None => {
            return Err(ApiError::bad_request(
                IssueType::Required,
                format!("an update must carry the resource id in the body (expected '{id}')"),
            ));
        }
    }
    let (version, warnings) = state
        .update_through_hooks(&resource_type, &id, resource, expected)
        .await?;
    Ok(written(&state.base, version, &headers, &warnings))
}

/// Conditional update: `PUT [base]/[type]?criteria` updates the one match, creates when none
/// matches, and fails with 412 when several do.
#[utoipa::path(put, path = "/fhir/{type}", tag = "FHIR",
    params(("type" = String, Path, description = "Resource type")),
    request_body(content = String, content_type = "application/fhir+json", description = "The resource"),
    responses((status = 200, description = "Updated"), (status = 201, description = "Created"),
        (status = 400, description = "Invalid resource or criteria"), (status = 412, description = "Several matches")))]
pub async fn conditional_update(
    State(state): State<RestState>,
    Path(resource_type): Path<String>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<FhirResponse, ApiError> {
    known_type(&resource_type)?;
    let (query, key) =
        super::conditional_criteria(&state, &resource_type, uri.query(), "a conditional update")?;
    let expected = if_match(&headers)?;
    let format = body_format(&headers)?;
    let resource = parse_resource(&body, format, Some(&resource_type))?;
    if let Some(id) = resource.get("id").and_then(|v| v.as_str()) {
        url_id(id)?;
    }
    if state.hooked(&resource_type) {
        // The hooks need the version the update replaces: find the match first, then update it
        // by id (guarded by its version).
        let ids = state.storage.matching(query.clone(), 2).await?;
        if let [found] = ids.as_slice() {
            let found = url_id(found)?;
            if let Some(body_id) = resource.get("id").and_then(|v| v.as_str())
                && body_id != found.as_str()
            {
                return Err(ApiError::bad_request(
                    IssueType::Invalid,
                    format!(
                        "the criteria match {resource_type}/{found}, but the body carries another id"
                    ),
                ));
            }
            let mut resource = resource;
            resource["id"] = serde_json::json!(found.as_str());
            let (version, warnings) = state
                .update_through_hooks(&resource_type, &found, resource, expected)
                .await?;
            return Ok(written(&state.base, version, &headers, &warnings));
        }
    }
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
        .update_matching(query, key, resource, index, expected)
        .await?
    {
        Conditional::Written(version) => {
            state.after_store(&resource_type, &version);
            Ok(written(&state.base, version, &headers, &warnings))
        }
        Conditional::IdMismatch(found) => Err(ApiError::bad_request(
            IssueType::Invalid,
            format!("the criteria match {resource_type}/{found}, but the body carries another id"),
        )),
        Conditional::Matched(_) => Err(ApiError::new(
            axum::http::StatusCode::PRECONDITION_FAILED,
            IssueType::MultipleMatches,
            "the criteria match more than one resource; nothing was updated",
        )),
    }
}

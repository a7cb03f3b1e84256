//! `patch`: `PATCH [base]/[type]/[id]` and `PATCH [base]/[type]?criteria` (R4 http §3.1.0.6) with a
//! JSON Patch body (RFC 6902, `application/json-patch+json`) or a FHIRPath Patch (a
//! `Parameters` resource, `application/fhir+json` or `application/fhir+xml`). The patch is applied to the
//! current version; the result must still be a valid resource of the same type and id (else
//! 422), and is written only if that version is still current: a concurrent write makes the
//! patch apply again to the newer version, or, with `If-Match`, answers 412.

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use serde_json::Value;

use super::written;
use crate::fhir::outcome::IssueType;
use crate::fhir::{Format, ResourceId, check_value, parse_resource};
use crate::rest::preconditions::if_match;
use crate::rest::response::FhirResponse;
use crate::rest::{ApiError, RestState, known_type, url_id};
use crate::storage::StorageError;

/// How often a patch is applied again after losing a race to another writer.
const RETRIES: usize = 5;

/// Patches a resource.
#[utoipa::path(patch, path = "/fhir/{type}/{id}", tag = "FHIR",
    params(("type" = String, Path, description = "Resource type"), ("id" = String, Path, description = "Logical id")),
    request_body(content = String, content_type = "application/json-patch+json", description = "A JSON Patch document (RFC 6902), or a FHIRPath Patch Parameters resource as application/fhir+json or application/fhir+xml"),
    responses((status = 200, description = "Patched"), (status = 404, description = "Unknown resource"),
        (status = 410, description = "Deleted"), (status = 412, description = "If-Match failed"),
        (status = 415, description = "Not a JSON Patch"), (status = 422, description = "The patch cannot be applied, or its result is not a valid resource")))]
pub async fn patch_resource(
    State(state): State<RestState>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<FhirResponse, ApiError> {
    known_type(&resource_type)?;
    let id = url_id(&id)?;
    let patch = patch_body(&headers, &body)?;
    patch_by_id(&state, &resource_type, &id, &patch, &headers).await
}

/// Conditional patch: patches the one resource the criteria match.
#[utoipa::path(patch, path = "/fhir/{type}", tag = "FHIR",
    params(("type" = String, Path, description = "Resource type")),
    request_body(content = String, content_type = "application/json-patch+json", description = "A JSON Patch document (RFC 6902), or a FHIRPath Patch Parameters resource as application/fhir+json or application/fhir+xml"),
    responses((status = 200, description = "Patched"), (status = 404, description = "No match"),
        (status = 412, description = "Several matches, or If-Match failed"), (status = 422, description = "The patch cannot be applied")))]
pub async fn conditional_patch(
    State(state): State<RestState>,
    Path(resource_type): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<FhirResponse, ApiError> {
    known_type(&resource_type)?;
    let (query, _) =
        super::conditional_criteria(&state, &resource_type, uri.query(), "a conditional patch")?;
    let patch = patch_body(&headers, &body)?;
    let ids = state.storage.matching(query, 2).await?;
    match ids.as_slice() {
        [] => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            IssueType::NotFound,
            format!("no {resource_type} matches the criteria; nothing was patched"),
        )),
        [found] => {
            let id = url_id(found)?;
            patch_by_id(&state, &resource_type, &id, &patch, &headers).await
        }
        _ => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            IssueType::MultipleMatches,
            "the criteria match more than one resource; nothing was patched",
        )),
    }
}

/// What a PATCH body holds.
pub(crate) enum PatchDocument {
    /// RFC 6902 (`application/json-patch+json`).
    Json(json_patch::Patch),
    /// FHIRPath Patch: a `Parameters` resource (`application/fhir+json` or `+xml`).
    FhirPath(Value),
}

/// The patch document of the request, by its Content-Type.
fn patch_body(headers: &HeaderMap, body: &[u8]) -> Result<PatchDocument, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json-patch+json" => parse_json_patch(body).map(PatchDocument::Json),
        "application/fhir+json"
        | "application/json"
        | "application/fhir+xml"
        | "application/xml" => {
            let format = if media.ends_with("xml") {
                crate::fhir::Format::Xml
            } else {
                crate::fhir::Format::Json
            };
            let parameters = parse_resource(body, format, Some("Parameters"))?;
            Ok(PatchDocument::FhirPath(parameters))
        }
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IssueType::NotSupported,
            format!(
                "PATCH takes a JSON Patch document (Content-Type: application/json-patch+json) or a FHIRPath Patch Parameters resource (application/fhir+json or application/fhir+xml), not '{content_type}'"
            ),
        )),
    }
}

/// A JSON Patch document.
pub(crate) fn parse_json_patch(body: &[u8]) -> Result<json_patch::Patch, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            IssueType::Structure,
            format!("the body is not a JSON Patch document (an array of operations): {e}"),
        )
    })
}

async fn patch_by_id(
    state: &RestState,
    resource_type: &str,
    id: &ResourceId,
    patch: &PatchDocument,
    headers: &HeaderMap,
) -> Result<FhirResponse, ApiError> {
    let expected = if_match(headers)?;
    for _ in 0..RETRIES {
        let Some(stored) = state.storage.find_current(resource_type, id).await? else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                IssueType::NotFound,
                format!("{resource_type}/{id} does not exist"),
            ));
        };
        if stored.deleted {
            return Err(ApiError::new(
                StatusCode::GONE,
                IssueType::Deleted,
                format!("{resource_type}/{id} was deleted"),
            ));
        }
        state.check_stored(
            resource_type,
            &stored.content,
            crate::auth::Interaction::Update,
        )?;
        if let Some(expected) = expected
            && expected != stored.version_id
        {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                IssueType::Conflict,
                format!(
                    "If-Match expects version {expected}, but the current version of {resource_type}/{id} is {}",
                    stored.version_id
                ),
            ));
        }
        let current: Value = serde_json::from_slice(&stored.content)
            .map_err(|e| ApiError::internal(format!("stored JSON unreadable: {e}")))?;
        let patched = apply(resource_type, id, current, patch)?;
        match state
            .update_through_hooks(resource_type, id, patched, Some(stored.version_id))
            .await
        {
            Ok((version, warnings)) => {
                return Ok(written(&state.base, version, headers, &warnings));
            }
            Err(e) if expected.is_none() && is_conflict(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StorageError::Contention.into())
}

fn is_conflict(error: &ApiError) -> bool {
    error.status() == StatusCode::PRECONDITION_FAILED
}

/// Applies `patch` to `current`; the result is checked like a client's resource.
pub(crate) fn apply(
    resource_type: &str,
    id: &ResourceId,
    mut current: Value,
    patch: &PatchDocument,
) -> Result<Value, ApiError> {
    // Server-owned: the next version sets them again.
    crate::fhir::strip_version_meta(&mut current);
    match patch {
        PatchDocument::Json(patch) => json_patch::patch(&mut current, patch).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                IssueType::Processing,
                format!(
                    "the patch cannot be applied to {resource_type}/{id}: {e}; nothing was changed"
                ),
            )
        })?,
        PatchDocument::FhirPath(parameters) => {
            let fits = |candidate: &Value| check_value(candidate, Some(resource_type)).is_ok();
            crate::fhir::fhirpath_patch::apply(&mut current, parameters, &fits).map_err(
                |mut issue| {
                    let status = if issue.code == IssueType::Invalid {
                        StatusCode::BAD_REQUEST
                    } else {
                        StatusCode::UNPROCESSABLE_ENTITY
                    };
                    issue.diagnostics = format!(
                        "the FHIRPath Patch cannot be applied to {resource_type}/{id}: {}; nothing was changed",
                        issue.diagnostics
                    );
                    ApiError::with_issues(status, vec![issue])
                },
            )?;
        }
    }
    if current.get("resourceType").and_then(Value::as_str) != Some(resource_type)
        || current.get("id").and_then(Value::as_str) != Some(id.as_str())
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            IssueType::Processing,
            "a patch may not change resourceType or id",
        ));
    }
    let bytes = serde_json::to_vec(&current)
        .map_err(|e| ApiError::internal(format!("cannot serialize the patched resource: {e}")))?;
    parse_resource(&bytes, Format::Json, Some(resource_type)).map_err(|issues| {
        let issues = issues
            .into_iter()
            .map(|mut issue| {
                issue.diagnostics =
                    format!("the patched resource is not valid: {}", issue.diagnostics);
                issue
            })
            .collect();
        ApiError::with_issues(StatusCode::UNPROCESSABLE_ENTITY, issues)
    })
}

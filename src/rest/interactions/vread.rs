//! `vread`: `GET [base]/[type]/[id]/_history/[vid]` (R4 http §3.1.0.3).

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};

use super::serve_version;
use crate::fhir::outcome::IssueType;
use crate::rest::response::FhirResponse;
use crate::rest::{ApiError, RestState, known_type, url_id};

/// Reads one version of a resource.
#[utoipa::path(get, path = "/fhir/{type}/{id}/_history/{vid}", tag = "FHIR",
    params(("type" = String, Path, description = "Resource type"), ("id" = String, Path, description = "Logical id"),
        ("vid" = i64, Path, description = "Version id")),
    responses((status = 200, description = "The version"), (status = 404, description = "Unknown version"),
        (status = 410, description = "The version is a delete")))]
pub async fn vread_resource(
    State(state): State<RestState>,
    Path((resource_type, id, version)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<FhirResponse, ApiError> {
    known_type(&resource_type)?;
    let id = url_id(&id)?;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            IssueType::NotFound,
            format!("{resource_type}/{id} has no version '{version}'"),
        )
    };
    let Some(number) = version.parse::<i64>().ok().filter(|v| *v > 0) else {
        return Err(not_found());
    };
    let Some(stored) = state
        .storage
        .find_version(&resource_type, &id, number)
        .await?
    else {
        return Err(not_found());
    };
    if !stored.deleted {
        state.check_read(&resource_type, &stored.content).await?;
    }
    serve_version(stored, &headers, query.as_deref())
}

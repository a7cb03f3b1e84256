//! `read`: `GET [base]/[type]/[id]` (R4 http §3.1.0.2).

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};

use super::serve_version;
use crate::fhir::outcome::IssueType;
use crate::rest::response::FhirResponse;
use crate::rest::{ApiError, RestState, known_type, url_id};

/// Reads the current version of a resource.
#[utoipa::path(get, path = "/fhir/{type}/{id}", tag = "FHIR",
    params(("type" = String, Path, description = "Resource type"), ("id" = String, Path, description = "Logical id"),
        ("_summary" = Option<String>, Query, description = "true | text | data | false"),
        ("_elements" = Option<String>, Query, description = "Comma-separated top-level elements")),
    responses((status = 200, description = "The resource"), (status = 304, description = "Not modified"),
        (status = 404, description = "Unknown resource"), (status = 410, description = "Deleted")))]
pub async fn read_resource(
    State(state): State<RestState>,
    Path((resource_type, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<FhirResponse, ApiError> {
    known_type(&resource_type)?;
    let id = url_id(&id)?;
    let Some(version) = state.storage.find_current(&resource_type, &id).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            IssueType::NotFound,
            format!("{resource_type}/{id} is not known"),
        ));
    };
    if !version.deleted {
        state.check_read(&resource_type, &version.content).await?;
    }
    serve_version(version, &headers, query.as_deref())
}

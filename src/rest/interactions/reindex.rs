//! `$reindex` at system, type and instance level: rebuilds the search index rows of stored
//! resources with the current search parameters (needed after a SearchParameter is added, for
//! the resources written before it). Answers an OperationOutcome with the count.

use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::fhir::outcome::{Issue, operation_outcome};
use crate::rest::response::{FhirBody, FhirResponse};
use crate::rest::{ApiError, RestState, known_type, url_id};

/// Reindexes every resource.
#[utoipa::path(post, path = "/fhir/$reindex", tag = "FHIR",
    responses((status = 200, description = "OperationOutcome with the number of resources reindexed")))]
pub async fn reindex_system(State(state): State<RestState>) -> Result<FhirResponse, ApiError> {
    run(&state, None, None).await
}

/// Reindexes every resource of a type.
#[utoipa::path(post, path = "/fhir/{type}/$reindex", tag = "FHIR",
    params(("type" = String, Path, description = "Resource type")),
    responses((status = 200, description = "OperationOutcome with the number of resources reindexed")))]
pub async fn reindex_type(
    State(state): State<RestState>,
    Path(resource_type): Path<String>,
) -> Result<FhirResponse, ApiError> {
    known_type(&resource_type)?;
    run(&state, Some(resource_type), None).await
}

/// Reindexes one resource.
#[utoipa::path(post, path = "/fhir/{type}/{id}/$reindex", tag = "FHIR",
    params(("type" = String, Path, description = "Resource type"), ("id" = String, Path, description = "Logical id")),
    responses((status = 200, description = "OperationOutcome"), (status = 404, description = "No such live resource")))]
pub async fn reindex_instance(
    State(state): State<RestState>,
    Path((resource_type, id)): Path<(String, String)>,
) -> Result<FhirResponse, ApiError> {
    known_type(&resource_type)?;
    let id = url_id(&id)?;
    run(&state, Some(resource_type), Some(id.to_string())).await
}

async fn run(
    state: &RestState,
    only_type: Option<String>,
    only_id: Option<String>,
) -> Result<FhirResponse, ApiError> {
    let registry = state.registry.clone();
    let base = state.base.clone();
    let instance = only_id.is_some();
    let count = state
        .storage
        .reindex(only_type.clone(), only_id.clone(), move |resource| {
            crate::search::extract(&registry.current(), resource, &base)
        })
        .await?;
    if instance && count == 0 {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            crate::fhir::outcome::IssueType::NotFound,
            format!(
                "{}/{} is not a live resource",
                only_type.unwrap_or_default(),
                only_id.unwrap_or_default()
            ),
        ));
    }
    let message = format!("reindexed {count} resource(s)");
    Ok(
        FhirResponse::new(StatusCode::OK).body(FhirBody::Value(operation_outcome(&[
            Issue::information(message),
        ]))),
    )
}

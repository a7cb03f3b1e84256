//! `delete`: `DELETE [base]/[type]/[id]` (R4 http §3.1.0.7). A delete writes a tombstone version;
//! history keeps every earlier version and a later PUT restores the resource. Deleting a deleted
//! or unknown resource succeeds without writing anything, as the spec asks.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use crate::fhir::outcome::IssueType;
use crate::fhir::outcome::{Issue, operation_outcome};
use crate::rest::preconditions::{PreferReturn, if_match, prefer_return};
use crate::rest::response::{FhirBody, FhirResponse};
use crate::rest::{ApiError, RestState, known_type, url_id};
use crate::storage::{DeleteOutcome, MAX_CONDITIONAL_DELETES};

/// Deletes a resource.
#[utoipa::path(delete, path = "/fhir/{type}/{id}", tag = "FHIR",
    params(("type" = String, Path, description = "Resource type"), ("id" = String, Path, description = "Logical id")),
    responses((status = 200, description = "Deleted (OperationOutcome)"), (status = 204, description = "Deleted (Prefer: return=minimal)"),
        (status = 412, description = "If-Match failed")))]
pub async fn delete_resource(
    State(state): State<RestState>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<FhirResponse, ApiError> {
    known_type(&resource_type)?;
    let id = url_id(&id)?;
    let expected = if_match(&headers)?;
    state
        .check_existing(&resource_type, &id, crate::auth::Interaction::Delete)
        .await?;
    let parameter = if resource_type == "SearchParameter" {
        state
            .storage
            .find_current(&resource_type, &id)
            .await?
            .filter(|v| !v.deleted)
            .and_then(|v| serde_json::from_slice::<serde_json::Value>(&v.content).ok())
    } else {
        None
    };
    let outcome = state.storage.delete(&resource_type, &id, expected).await?;
    if let (Some(parameter), DeleteOutcome::Deleted(_)) = (&parameter, &outcome) {
        crate::rest::search_parameters::deleted(&state, parameter);
    }
    let (message, response) = match outcome {
        DeleteOutcome::NotFound => (
            format!("{resource_type}/{id} does not exist; nothing to delete"),
            None,
        ),
        DeleteOutcome::AlreadyDeleted(tombstone) => (
            format!("{resource_type}/{id} was already deleted"),
            Some(tombstone),
        ),
        DeleteOutcome::Deleted(tombstone) => (
            format!(
                "deleted {resource_type}/{id} (version {})",
                tombstone.version_id
            ),
            Some(tombstone),
        ),
    };
    let minimal = prefer_return(&headers) == PreferReturn::Minimal;
    let mut answer = FhirResponse::new(if minimal {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::OK
    });
    if let Some(tombstone) = &response {
        answer = answer.version_headers(tombstone);
    }
    if !minimal {
        answer = answer.body(FhirBody::Value(operation_outcome(&[Issue::information(
            message,
        )])));
    }
    Ok(answer)
}

/// Conditional delete: `DELETE [base]/[type]?criteria` deletes every match (up to
/// [`MAX_CONDITIONAL_DELETES`]; more is a 412).
#[utoipa::path(delete, path = "/fhir/{type}", tag = "FHIR",
    params(("type" = String, Path, description = "Resource type")),
    responses((status = 200, description = "Deleted (OperationOutcome)"), (status = 204, description = "Deleted (Prefer: return=minimal)"),
        (status = 412, description = "Too many matches")))]
pub async fn conditional_delete(
    State(state): State<RestState>,
    Path(resource_type): Path<String>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    headers: HeaderMap,
) -> Result<FhirResponse, ApiError> {
    known_type(&resource_type)?;
    let (query, key) =
        super::conditional_criteria(&state, &resource_type, uri.query(), "a conditional delete")?;
    let deleted = match state.storage.delete_matching(query, key).await? {
        Ok(deleted) if resource_type == "SearchParameter" && !deleted.is_empty() => {
            // Deleted SearchParameters leave the registry: rebuild it from what is stored.
            let registry = crate::rest::search_parameters::rebuild(&state.storage).await?;
            state.registry.replace(registry);
            state.refresh_capabilities();
            deleted
        }
        Ok(deleted) => deleted,
        Err(count) => {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                IssueType::MultipleMatches,
                format!(
                    "the criteria match {count} or more resources; a conditional delete removes at most {MAX_CONDITIONAL_DELETES}"
                ),
            ));
        }
    };
    let message = match deleted.as_slice() {
        [] => "no resource matched; nothing was deleted".to_owned(),
        [one] => format!(
            "deleted {resource_type}/{} (version {})",
            one.id, one.version_id
        ),
        many => format!("deleted {} {resource_type} resources", many.len()),
    };
    if prefer_return(&headers) == PreferReturn::Minimal {
        return Ok(FhirResponse::new(StatusCode::NO_CONTENT));
    }
    Ok(
        FhirResponse::new(StatusCode::OK).body(FhirBody::Value(operation_outcome(&[
            Issue::information(message),
        ]))),
    )
}

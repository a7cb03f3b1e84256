//! FHIR operations of the echo triage service, one file each. They read and write through the
//! same write path as the interactions, so the triage hook checks every result.

pub mod deadline;
pub mod extend_deadline;
pub mod triage;
pub mod triage_stats;

use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use serde_json::Value;

use super::format::body_format;
use super::preconditions::if_match;
use super::response::FhirResponse;
use super::{ApiError, RestState, url_id};
use crate::fhir::outcome::IssueType;
use crate::fhir::parse_resource;
use crate::hooks::Refusal;
use crate::storage::StorageError;

/// How often an operation is retried when another write changed the request meanwhile.
const RETRIES: usize = 5;

/// The operations exist on ServiceRequest only.
fn service_request_only(resource_type: &str, operation: &str) -> Result<(), ApiError> {
    if resource_type == "ServiceRequest" {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        IssueType::NotSupported,
        format!("${operation} is defined on ServiceRequest only, not on {resource_type}"),
    ))
}

/// Applies `change` to the current version of a ServiceRequest and stores the result (guarded
/// by `If-Match` when given, otherwise retried if another write came first). Answers the
/// updated resource.
async fn change_request(
    state: &RestState,
    id: &str,
    headers: &HeaderMap,
    body: &Bytes,
    change: impl Fn(&RestState, &mut Value, &Value) -> Result<(), Refusal>,
) -> Result<FhirResponse, ApiError> {
    let id = url_id(id)?;
    let expected = if_match(headers)?;
    let parameters = parse_resource(body, body_format(headers)?, Some("Parameters"))?;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let Some((mut resource, version)) = state.current_value("ServiceRequest", &id).await?
        else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                IssueType::NotFound,
                format!("ServiceRequest/{id} does not exist"),
            ));
        };
        if let Some(expected) = expected
            && expected != version
        {
            return Err(StorageError::VersionConflict {
                expected,
                current: Some(version),
            }
            .into());
        }
        change(state, &mut resource, &parameters)?;
        match state
            .update_through_hooks("ServiceRequest", &id, resource, Some(version))
            .await
        {
            Ok((stored, warnings)) => {
                return Ok(super::interactions::written(
                    &state.base,
                    stored,
                    headers,
                    &warnings,
                ));
            }
            Err(e)
                if expected.is_none()
                    && attempts < RETRIES
                    && e.status() == StatusCode::PRECONDITION_FAILED => {}
            Err(e) => return Err(e),
        }
    }
}

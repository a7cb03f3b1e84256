//! `$extend-deadline`: `POST [base]/ServiceRequest/[id]/$extend-deadline` with a Parameters
//! (`hours` or `until`, and a mandatory `reason`). Answers the updated ServiceRequest; the
//! earlier deadline stays in the extension and in the history.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use bytes::Bytes;

use crate::rest::response::FhirResponse;
use crate::rest::{ApiError, RestState};

/// Extends the deadline of an echo request.
#[utoipa::path(post, path = "/fhir/ServiceRequest/{id}/$extend-deadline", tag = "Triage",
    params(("id" = String, Path, description = "Logical id of the echo request")),
    request_body(content = String, content_type = "application/fhir+json", description = "Parameters: hours (working hours to add) or until (instant), reason (mandatory), author"),
    responses((status = 200, description = "The ServiceRequest with the new deadline"),
        (status = 400, description = "Malformed hours or until"),
        (status = 404, description = "No such ServiceRequest"),
        (status = 409, description = "No deadline in force"),
        (status = 422, description = "No reason, or a deadline that is not later")))]
pub async fn extend_deadline(
    State(state): State<RestState>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<FhirResponse, ApiError> {
    super::service_request_only(&resource_type, "extend-deadline")?;
    super::change_request(
        &state,
        &id,
        &headers,
        &body,
        |state, resource, parameters| {
            let now = state.clock.now_millis();
            state
                .triage
                .extend_deadline(resource, parameters, now, None)
        },
    )
    .await
}

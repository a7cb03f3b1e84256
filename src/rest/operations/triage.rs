//! `$triage`: `POST [base]/ServiceRequest/[id]/$triage` with a Parameters (`pathway`, optional
//! `sentence`, `reason`, `author`). Answers the triaged ServiceRequest.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use bytes::Bytes;

use crate::rest::response::FhirResponse;
use crate::rest::{ApiError, RestState};

/// Triages an echo request.
#[utoipa::path(post, path = "/fhir/ServiceRequest/{id}/$triage", tag = "Triage",
    params(("id" = String, Path, description = "Logical id of the echo request")),
    request_body(content = String, content_type = "application/fhir+json", description = "Parameters: pathway (valueCode purple|red|amber|green), sentence, reason, author"),
    responses((status = 200, description = "The triaged ServiceRequest, with its deadline"),
        (status = 400, description = "Unknown or missing pathway, malformed Parameters"),
        (status = 404, description = "No such ServiceRequest"),
        (status = 409, description = "The request is completed"),
        (status = 422, description = "Not an echo request")))]
pub async fn triage_request(
    State(state): State<RestState>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<FhirResponse, ApiError> {
    super::service_request_only(&resource_type, "triage")?;
    super::change_request(
        &state,
        &id,
        &headers,
        &body,
        |state, resource, parameters| {
            let now = state.clock.now_millis();
            state.triage.triage(resource, parameters, now, None)
        },
    )
    .await
}

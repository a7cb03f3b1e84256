//! `$deadline`: `GET [base]/ServiceRequest/$deadline?start=INSTANT&pathway=CODE` (or `hours=N`),
//! the deadline engine as a calculator; it gives exactly what the write hook stores.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;

use crate::rest::response::{FhirBody, FhirResponse};
use crate::rest::{ApiError, RestState};

/// Computes a deadline.
#[utoipa::path(get, path = "/fhir/ServiceRequest/$deadline", tag = "Triage",
    params(("start" = String, Query, description = "Triage instant with a time zone"),
        ("pathway" = Option<String>, Query, description = "purple, red or amber"),
        ("hours" = Option<f64>, Query, description = "Working hours, instead of a pathway")),
    responses((status = 200, description = "Parameters with deadline (valueInstant, UTC)"),
        (status = 400, description = "Malformed or zone-less start, unknown pathway, bad hours")))]
pub async fn compute_deadline(
    State(state): State<RestState>,
    Path(resource_type): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<FhirResponse, ApiError> {
    super::service_request_only(&resource_type, "deadline")?;
    let query: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let parameters = state.triage.deadline_preview(&query)?;
    Ok(FhirResponse::new(StatusCode::OK).body(FhirBody::Value(parameters)))
}

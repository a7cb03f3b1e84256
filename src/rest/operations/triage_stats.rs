//! `$triage-stats`: `GET [base]/ServiceRequest/$triage-stats?days=15`. The echo requests that can
//! count (active ones, and those received, triaged or completed in the window) are found by
//! ordinary search criteria, and their pathway, status and times are read from the search
//! index in one projection; the figures are computed by `triage::stats`.

use std::collections::HashMap;

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;

use crate::fhir::outcome::IssueType;
use crate::rest::interactions::search::parse_search;
use crate::rest::response::{FhirBody, FhirResponse};
use crate::rest::{ApiError, RestState};
use crate::triage::request::{ECHO_CODE, SNOMED, format_utc};
use crate::triage::stats::{self, MAX_DAYS, RequestFacts};

/// Days in the series when not asked.
const DEFAULT_DAYS: u32 = 15;

/// Echo triage statistics.
#[utoipa::path(get, path = "/fhir/ServiceRequest/$triage-stats", tag = "Triage",
    params(("days" = Option<u32>, Query, description = "Days in the series, 1 to 90 (default 15)")),
    responses((status = 200, description = "Parameters: today, day (one per day), pathway (time to completion against target)"),
        (status = 400, description = "days outside 1 to 90")))]
pub async fn triage_stats(
    State(state): State<RestState>,
    Path(resource_type): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<FhirResponse, ApiError> {
    super::service_request_only(&resource_type, "triage-stats")?;
    let mut days = DEFAULT_DAYS;
    for (name, value) in form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "days" => {
                days = value
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|d| (1..=MAX_DAYS).contains(d))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            IssueType::Value,
                            format!(
                                "'days' must be a whole number from 1 to {MAX_DAYS} (got '{value}')"
                            ),
                        )
                    })?;
            }
            other => {
                return Err(ApiError::bad_request(
                    IssueType::NotSupported,
                    format!("unknown parameter '{other}'; $triage-stats takes days"),
                ));
            }
        }
    }
    let started = std::time::Instant::now();
    let now = state.clock.now_millis();
    let since = format_utc(stats::window_start(now, days));
    let echo = format!("{SNOMED}|{ECHO_CODE}");
    let mut queries = Vec::new();
    for (name, value) in [
        ("status", "active".to_owned()),
        ("authored", format!("ge{since}")),
        ("triaged", format!("ge{since}")),
        ("completed", format!("ge{since}")),
    ] {
        // The window or the status drives: echo requests of every year are many more.
        let params = vec![(name.to_owned(), value), ("code".to_owned(), echo.clone())];
        queries.push(parse_search(
            &state,
            vec!["ServiceRequest".to_owned()],
            &params,
            true,
        )?);
    }
    let values = state
        .storage
        .project(
            "ServiceRequest",
            queries,
            vec!["pathway".into(), "status".into()],
            vec![
                "authored".into(),
                "triaged".into(),
                "deadline".into(),
                "completed".into(),
            ],
        )
        .await?;
    let read = started.elapsed();
    let mut facts: HashMap<String, RequestFacts> = HashMap::new();
    for value in values {
        let f = facts.entry(value.resource_id).or_default();
        match value.code.as_str() {
            "pathway" => f.pathway = Some(value.token),
            "status" => f.status = value.token,
            "authored" => f.received = Some(value.start_ms),
            "triaged" => f.triaged = Some(value.start_ms),
            "deadline" => f.deadline = Some(value.start_ms),
            "completed" => f.completed = Some(value.start_ms),
            _ => {}
        }
    }
    let facts: Vec<RequestFacts> = facts.into_values().collect();
    let triage = &state.triage;
    let parameters = stats::compute(&facts, now, days, triage.calendar(), &triage.pathways());
    tracing::debug!(
        requests = facts.len(),
        read_ms = read.as_millis(),
        total_ms = started.elapsed().as_millis(),
        "triage statistics"
    );
    Ok(FhirResponse::new(StatusCode::OK).body(FhirBody::Value(parameters)))
}

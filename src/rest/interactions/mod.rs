//! One file per FHIR interaction, plus what reads and writes share.

pub mod capabilities;
pub mod create;
pub mod delete;
pub mod history;
pub mod patch;
pub mod read;
pub mod reindex;
pub mod search;
pub mod update;
pub mod vread;

use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use serde_json::Value;

use super::error::ApiError;
use super::preconditions::{PreferReturn, if_none_match_hits, not_modified_since, prefer_return};
use super::response::{FhirBody, FhirResponse};
use crate::fhir::outcome::{Issue, IssueType, operation_outcome};
use crate::fhir::view::{Summary, select_elements, summarize};
use crate::storage::StoredVersion;

/// Parses the criteria of a conditional interaction (the query of `If-None-Exist`, or of a
/// conditional update or delete URL). Criteria are strict: an unknown parameter would
/// otherwise match everything. Returns the query and a key naming the criteria.
pub fn conditional_criteria(
    state: &crate::rest::RestState,
    resource_type: &str,
    criteria: Option<&str>,
    what: &str,
) -> Result<(crate::search::query::SearchQuery, String), ApiError> {
    let text = criteria.unwrap_or_default();
    let text = text
        .strip_prefix(&format!("{resource_type}?"))
        .unwrap_or(text);
    let text = text.strip_prefix('?').unwrap_or(text);
    let params = search::query_params(Some(text));
    let mut query = search::parse_search(state, vec![resource_type.to_owned()], &params, true)?;
    if query.clauses.is_empty() {
        return Err(ApiError::bad_request(
            IssueType::Invalid,
            format!("{what} needs search criteria (such as identifier=system|value)"),
        ));
    }
    query.sort.clear();
    let mut sorted = params;
    sorted.sort();
    let key = format!("{resource_type}?{sorted:?}");
    Ok((query, key))
}

/// `_summary` and `_elements` of a read.
struct View {
    summary: Option<Summary>,
    elements: Option<Vec<String>>,
}

impl View {
    fn from_query(query: Option<&str>) -> Result<View, ApiError> {
        let mut view = View {
            summary: None,
            elements: None,
        };
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "_summary" => {
                    view.summary = Some(Summary::parse(&value).filter(|s| *s != Summary::Count).ok_or_else(|| {
                        ApiError::bad_request(
                            IssueType::Value,
                            format!("_summary '{value}' is not valid on a read; use true, text, data or false"),
                        )
                    })?);
                }
                "_elements" => {
                    let names: Vec<String> = value
                        .split(',')
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .map(str::to_owned)
                        .collect();
                    view.elements = Some(names);
                }
                _ => {}
            }
        }
        Ok(view)
    }

    fn apply(&self, content: Vec<u8>) -> Result<FhirBody, ApiError> {
        if self.summary.is_none() && self.elements.is_none() {
            return Ok(FhirBody::Stored(Bytes::from(content)));
        }
        let mut value: Value =
            serde_json::from_slice(&content).map_err(|e| ApiError::internal(e.to_string()))?;
        if let Some(summary) = self.summary
            && let Some(subset) = summarize(&value, summary)
        {
            value = subset;
        }
        if let Some(elements) = &self.elements {
            value = select_elements(&value, elements);
        }
        Ok(FhirBody::Value(value))
    }
}

/// Answers a read or vread of `version`: 410 for a tombstone, 304 when the client's copy is
/// current, otherwise the resource (subsetted when asked).
fn serve_version(
    mut version: StoredVersion,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<FhirResponse, ApiError> {
    let view = View::from_query(query)?;
    if version.deleted {
        let gone = ApiError::new(
            StatusCode::GONE,
            IssueType::Deleted,
            format!(
                "{}/{} was deleted (version {})",
                version.resource_type, version.id, version.version_id
            ),
        );
        return Err(gone);
    }
    if if_none_match_hits(headers, version.version_id)
        || (headers.get(header::IF_NONE_MATCH).is_none()
            && not_modified_since(headers, version.last_updated))
    {
        return Ok(FhirResponse::new(StatusCode::NOT_MODIFIED).version_headers(&version));
    }
    let body = view.apply(std::mem::take(&mut version.content))?;
    Ok(FhirResponse::new(StatusCode::OK)
        .version_headers(&version)
        .body(body))
}

/// Answers a successful create or update as `Prefer: return=…` asks. Warnings from the write
/// hooks are in the OperationOutcome (`Prefer: return=OperationOutcome`) and, whatever the
/// preference, in `Warning` headers.
pub(crate) fn written(
    base: &str,
    version: StoredVersion,
    headers: &HeaderMap,
    warnings: &[Issue],
) -> FhirResponse {
    let status = if version.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!(
        "{base}/{}/{}/_history/{}",
        version.resource_type, version.id, version.version_id
    );
    let mut response = FhirResponse::new(status).version_headers(&version);
    if version.created {
        response = response.header(header::LOCATION, &location);
    } else {
        response = response.header(header::CONTENT_LOCATION, &location);
    }
    for warning in warnings {
        let text: String = warning
            .diagnostics
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .filter(|c| *c != '"')
            .collect();
        response = response.append_header(header::WARNING, &format!("199 hearth \"{text}\""));
    }
    match prefer_return(headers) {
        PreferReturn::Minimal => response,
        PreferReturn::Representation => {
            response.body(FhirBody::Stored(Bytes::from(version.content)))
        }
        PreferReturn::OperationOutcome => {
            let verb = if version.created {
                "created"
            } else {
                "updated"
            };
            let message = format!(
                "{verb} {}/{} version {}",
                version.resource_type, version.id, version.version_id
            );
            let mut issues = vec![Issue::information(message)];
            issues.extend(warnings.iter().cloned());
            response.body(FhirBody::Value(operation_outcome(&issues)))
        }
    }
}

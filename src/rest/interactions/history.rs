//! `history` at instance, type and system level (R4 http §3.1.0.10): a `history` Bundle, newest
//! first, with `_since`, `_at`, `_count` and `next` links that stay correct while new versions
//! are written (the cursor is a position in the write order, not an offset).

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::fhir::ResourceId;
use crate::fhir::instant::{format_instant, parse_range};
use crate::fhir::outcome::IssueType;
use crate::rest::response::{FhirBody, FhirResponse, etag};
use crate::rest::{ApiError, RestState, known_type, url_id};
use crate::storage::{HistoryQuery, HistoryScope, StoredVersion, WriteMethod};

const DEFAULT_COUNT: i64 = 50;
const MAX_COUNT: i64 = 1000;
const CURSOR: &str = "_cursor";

/// History of every resource.
#[utoipa::path(get, path = "/fhir/_history", tag = "FHIR",
    params(("_count" = Option<i64>, Query, description = "Page size (max 1000)"),
        ("_since" = Option<String>, Query, description = "Only versions written at or after this instant"),
        ("_at" = Option<String>, Query, description = "Only versions current at some point in this period")),
    responses((status = 200, description = "A history Bundle")))]
pub async fn system_history(
    State(state): State<RestState>,
    OriginalUri(uri): OriginalUri,
) -> Result<FhirResponse, ApiError> {
    respond(&state, HistoryScope::System, &uri).await
}

/// History of every resource of a type.
#[utoipa::path(get, path = "/fhir/{type}/_history", tag = "FHIR",
    params(("type" = String, Path, description = "Resource type"),
        ("_count" = Option<i64>, Query, description = "Page size (max 1000)"),
        ("_since" = Option<String>, Query, description = "Only versions written at or after this instant"),
        ("_at" = Option<String>, Query, description = "Only versions current at some point in this period")),
    responses((status = 200, description = "A history Bundle")))]
pub async fn type_history(
    State(state): State<RestState>,
    Path(resource_type): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<FhirResponse, ApiError> {
    known_type(&resource_type)?;
    respond(&state, HistoryScope::Type(resource_type), &uri).await
}

/// History of one resource.
#[utoipa::path(get, path = "/fhir/{type}/{id}/_history", tag = "FHIR",
    params(("type" = String, Path, description = "Resource type"), ("id" = String, Path, description = "Logical id"),
        ("_count" = Option<i64>, Query, description = "Page size (max 1000)"),
        ("_since" = Option<String>, Query, description = "Only versions written at or after this instant"),
        ("_at" = Option<String>, Query, description = "Only versions current at some point in this period")),
    responses((status = 200, description = "A history Bundle"), (status = 404, description = "Unknown resource")))]
pub async fn instance_history(
    State(state): State<RestState>,
    Path((resource_type, id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
) -> Result<FhirResponse, ApiError> {
    known_type(&resource_type)?;
    let id: ResourceId = url_id(&id)?;
    let Some(current) = state.storage.find_current(&resource_type, &id).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            IssueType::NotFound,
            format!("{resource_type}/{id} is not known"),
        ));
    };
    if !current.deleted {
        state.check_stored(
            &resource_type,
            &current.content,
            crate::auth::Interaction::Read,
        )?;
    }
    respond(&state, HistoryScope::Instance(resource_type, id), &uri).await
}

fn parse_query(scope: HistoryScope, query: Option<&str>) -> Result<HistoryQuery, ApiError> {
    let mut q = HistoryQuery {
        scope,
        since: None,
        at: None,
        before_seq: None,
        count: DEFAULT_COUNT,
    };
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let invalid = |what: &str| {
            ApiError::bad_request(IssueType::Value, format!("{key} '{value}' is not {what}"))
        };
        match key.as_ref() {
            "_count" => {
                let count = value
                    .parse::<i64>()
                    .ok()
                    .filter(|c| *c >= 0)
                    .ok_or_else(|| invalid("a whole number"))?;
                q.count = count.min(MAX_COUNT);
            }
            "_since" => {
                q.since = Some(
                    parse_range(&value)
                        .ok_or_else(|| invalid("a FHIR instant"))?
                        .0,
                )
            }
            "_at" => {
                q.at = Some(parse_range(&value).ok_or_else(|| invalid("a FHIR date or dateTime"))?)
            }
            CURSOR => {
                q.before_seq = Some(
                    value
                        .parse()
                        .map_err(|_| invalid("a page cursor from a next link"))?,
                )
            }
            _ => {}
        }
    }
    Ok(q)
}

async fn respond(
    state: &RestState,
    scope: HistoryScope,
    uri: &axum::http::Uri,
) -> Result<FhirResponse, ApiError> {
    let query = parse_query(scope, uri.query())?;
    let mut versions = state.storage.history(query.clone()).await?;
    // Paging follows the versions read, before any are withheld below.
    let full_page = versions.len() as i64 == query.count;
    let last_read = versions.last().map(|v| v.seq);
    if crate::rest::guard::caller().is_some() {
        // A confined token sees the versions within its permit; deletes carry no content to
        // check, so a confined token does not see them.
        versions.retain(|v| {
            match crate::rest::guard::current_permit(
                &v.resource_type,
                crate::auth::Interaction::Read,
            ) {
                Ok(p) if p.compartment.is_none() && p.filters.is_empty() => true,
                Ok(_) => {
                    !v.deleted
                        && state
                            .check_stored(
                                &v.resource_type,
                                &v.content,
                                crate::auth::Interaction::Read,
                            )
                            .is_ok()
                }
                Err(_) => false,
            }
        });
    }
    let path = uri.path().strip_prefix("/fhir").unwrap_or(uri.path());
    let self_link = match uri.query() {
        Some(q) => format!("{}{path}?{q}", state.base),
        None => format!("{}{path}", state.base),
    };
    let mut links = vec![json!({"relation": "self", "url": self_link})];
    if query.count > 0
        && full_page
        && let Some(last_seq) = last_read
    {
        let mut next = form_urlencoded::Serializer::new(String::new());
        for (k, v) in form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
            if k != CURSOR {
                next.append_pair(&k, &v);
            }
        }
        next.append_pair(CURSOR, &last_seq.to_string());
        links.push(
            json!({"relation": "next", "url": format!("{}{path}?{}", state.base, next.finish())}),
        );
    }
    let entries: Vec<Value> = versions
        .iter()
        .map(|v| entry(&state.base, v))
        .collect::<Result<_, _>>()?;
    let mut bundle = json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "meta": {"lastUpdated": format_instant(chrono::Utc::now().timestamp_millis())},
        "type": "history",
        "link": links,
    });
    // FHIR JSON forbids empty arrays, so an empty page has no `entry` at all.
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    Ok(FhirResponse::new(StatusCode::OK).body(FhirBody::Value(bundle)))
}

fn entry(base: &str, version: &StoredVersion) -> Result<Value, ApiError> {
    let (t, id) = (&version.resource_type, &version.id);
    let (url, status) = match version.method {
        WriteMethod::Post => (t.clone(), "201 Created"),
        WriteMethod::Put if version.created => (format!("{t}/{id}"), "201 Created"),
        WriteMethod::Put => (format!("{t}/{id}"), "200 OK"),
        WriteMethod::Delete => (format!("{t}/{id}"), "204 No Content"),
    };
    let mut entry = json!({
        "fullUrl": format!("{base}/{t}/{id}"),
        "request": {"method": version.method.as_str(), "url": url},
        "response": {"status": status, "etag": etag(version.version_id), "lastModified": format_instant(version.last_updated)},
    });
    if !version.deleted {
        let resource: Value = serde_json::from_slice(&version.content)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        entry["resource"] = resource;
    }
    Ok(entry)
}

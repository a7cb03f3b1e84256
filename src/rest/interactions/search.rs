//! `search` (R4 http §3.1.0.9, search §3.1.1): type level (`GET [base]/[type]?…` and
//! `POST [base]/[type]/_search`), system level (`GET [base]?_type=…`, `POST [base]/_search`)
//! and compartment (`GET [base]/Patient/[id]/[type]?…`). The answer is a `searchset` Bundle
//! with `self`, `first`, `next` and `previous` links; parameters that were ignored are reported
//! in an OperationOutcome entry.

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use serde_json::Value;

use crate::fhir::instant::format_instant;
use crate::fhir::outcome::{Issue, IssueType, Severity, operation_outcome};
use crate::fhir::view::{Summary, select_elements, summarize};
use crate::rest::response::{FhirBody, FhirResponse};
use crate::rest::{ApiError, RestState, known_type, url_id};
use crate::search::query::{self, CURSOR, Clause, QueryError, SearchQuery};
use crate::storage::{Hit, SearchPage};

/// `Prefer: handling=strict`.
pub fn strict_handling(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .any(|p| p.trim().eq_ignore_ascii_case("handling=strict"))
}

/// Parameters of a query string, without empty values (which FHIR servers ignore).
pub fn query_params(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        let code = if e.not_supported {
            IssueType::NotSupported
        } else {
            IssueType::Invalid
        };
        ApiError::bad_request(code, e.message)
    }
}

/// Parses a search over `types` as this server's registry knows them, confined to what the
/// request's token permits: the patient compartment of patient-level scopes (types outside the
/// Patient compartment drop out of multi-type searches) and the filters of granular scopes.
pub fn parse_search(
    state: &RestState,
    types: Vec<String>,
    params: &[(String, String)],
    strict: bool,
) -> Result<SearchQuery, ApiError> {
    let registry = state.registry.current();
    let mut parsed = query::parse(&registry, types.clone(), params, &state.base, strict)?;
    let permits: Vec<(String, crate::auth::Permit)> = types
        .iter()
        .filter_map(|t| crate::rest::guard::search_confinement(t).map(|p| (t.clone(), p)))
        .collect();
    if permits.is_empty() {
        return Ok(parsed);
    }
    // The patient compartment.
    if permits.iter().any(|(_, p)| p.compartment.is_some()) {
        let per_type = permits
            .iter()
            .map(|(t, permit)| {
                let condition = match permit.compartment.as_deref() {
                    None => query::everything(),
                    // No permission at all on the type: nothing matches.
                    Some("") => query::Condition::Ids(vec![String::new()]),
                    // Types outside the Patient compartment are not one patient's data.
                    Some(patient) => query::compartment_condition(t, "Patient", patient)
                        .unwrap_or_else(query::everything),
                };
                (t.clone(), condition)
            })
            .collect();
        parsed.clauses.push(Clause { per_type });
    }
    // Granular filters, one type at a time.
    for (t, permit) in &permits {
        if permit.filters.is_empty() {
            continue;
        }
        let filter = merge_filters(&permit.filters);
        let extra =
            query::parse(&registry, vec![t.clone()], &filter, &state.base, true).map_err(|e| {
                crate::rest::guard::forbidden(format!(
                    "the access token's granular scope on {t} cannot be applied: {}",
                    e.message
                ))
            })?;
        parsed.clauses.extend(extra.clauses);
    }
    Ok(parsed)
}

/// One parameter list from the filters of granular scopes (any of which may match): filters of
/// one parameter each, on the same parameter, become one comma-separated OR; other
/// combinations are all required, which can only narrow what the token reaches.
fn merge_filters(filters: &[Vec<(String, String)>]) -> Vec<(String, String)> {
    let single_same =
        filters.iter().all(|f| f.len() == 1) && filters.windows(2).all(|w| w[0][0].0 == w[1][0].0);
    if single_same && let Some(first) = filters.first() {
        let values: Vec<&str> = filters.iter().map(|f| f[0].1.as_str()).collect();
        return vec![(first[0].0.clone(), values.join(","))];
    }
    filters.iter().flatten().cloned().collect()
}

/// Search on a type by GET.
#[utoipa::path(get, path = "/fhir/{type}", tag = "FHIR",
    params(("type" = String, Path, description = "Resource type")),
    responses((status = 200, description = "A searchset Bundle"), (status = 400, description = "Invalid search")))]
pub async fn type_search(
    State(state): State<RestState>,
    Path(resource_type): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<FhirResponse, ApiError> {
    known_type(&resource_type)?;
    let params = query_params(uri.query());
    let path = format!("/{resource_type}");
    run(&state, vec![resource_type], None, params, &path, &headers).await
}

/// Search on a type by POST with a form body.
#[utoipa::path(post, path = "/fhir/{type}/_search", tag = "FHIR",
    params(("type" = String, Path, description = "Resource type")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "Search parameters"),
    responses((status = 200, description = "A searchset Bundle"), (status = 400, description = "Invalid search")))]
pub async fn type_search_post(
    State(state): State<RestState>,
    Path(resource_type): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<FhirResponse, ApiError> {
    known_type(&resource_type)?;
    let params = post_params(&headers, uri.query(), &body)?;
    let path = format!("/{resource_type}");
    run(&state, vec![resource_type], None, params, &path, &headers).await
}

/// Search across types by GET (`_type` names them; without it, every type).
#[utoipa::path(get, path = "/fhir", tag = "FHIR",
    params(("_type" = Option<String>, Query, description = "Comma-separated resource types")),
    responses((status = 200, description = "A searchset Bundle"), (status = 400, description = "Invalid search")))]
pub async fn system_search(
    State(state): State<RestState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<FhirResponse, ApiError> {
    let params = query_params(uri.query());
    system(&state, params, &headers).await
}

/// Search across types by POST with a form body.
#[utoipa::path(post, path = "/fhir/_search", tag = "FHIR",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "Search parameters, with _type"),
    responses((status = 200, description = "A searchset Bundle"), (status = 400, description = "Invalid search")))]
pub async fn system_search_post(
    State(state): State<RestState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<FhirResponse, ApiError> {
    let params = post_params(&headers, uri.query(), &body)?;
    system(&state, params, &headers).await
}

async fn system(
    state: &RestState,
    params: Vec<(String, String)>,
    headers: &HeaderMap,
) -> Result<FhirResponse, ApiError> {
    let mut types: Vec<String> = Vec::new();
    for (_, value) in params.iter().filter(|(k, _)| k == "_type") {
        for t in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            crate::fhir::check_resource_type(t)
                .map_err(|issue| ApiError::with_issues(StatusCode::BAD_REQUEST, vec![issue]))?;
            types.push(t.to_owned());
        }
    }
    if types.is_empty() {
        types = crate::fhir::conformance::resource_types()
            .map(str::to_owned)
            .collect();
    }
    types.sort();
    types.dedup();
    run(state, types, None, params, "", headers).await
}

/// Search in a compartment: `GET [base]/Patient/123/Observation?…`.
#[utoipa::path(get, path = "/fhir/{compartment}/{id}/{type}", tag = "FHIR",
    params(("compartment" = String, Path, description = "Patient, Encounter, RelatedPerson, Practitioner or Device"),
        ("id" = String, Path, description = "The compartment owner's id"), ("type" = String, Path, description = "Resource type")),
    responses((status = 200, description = "A searchset Bundle"), (status = 400, description = "Invalid search")))]
pub async fn compartment_search(
    State(state): State<RestState>,
    Path((owner_type, id, resource_type)): Path<(String, String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<FhirResponse, ApiError> {
    known_type(&owner_type)?;
    let id = url_id(&id)?;
    let types: Vec<String> = if resource_type == "*" {
        crate::fhir::conformance::resource_types()
            .filter(|t| crate::search::compartment_params(&owner_type, t).is_some())
            .map(str::to_owned)
            .collect()
    } else {
        known_type(&resource_type)?;
        vec![resource_type.clone()]
    };
    let mut conditions = Vec::new();
    for t in &types {
        if let Some(c) = query::compartment_condition(t, &owner_type, id.as_str()) {
            conditions.push((t.clone(), c));
        }
    }
    if conditions.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            IssueType::NotSupported,
            format!("{resource_type} is not in the {owner_type} compartment"),
        ));
    }
    let types: Vec<String> = conditions.iter().map(|(t, _)| t.clone()).collect();
    let params = query_params(uri.query());
    let path = format!("/{owner_type}/{id}/{resource_type}");
    run(
        &state,
        types,
        Some(Clause {
            per_type: conditions,
        }),
        params,
        &path,
        &headers,
    )
    .await
}

fn post_params(
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<Vec<(String, String)>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !body.is_empty()
        && !content_type
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IssueType::NotSupported,
            "a _search POST takes its parameters as application/x-www-form-urlencoded",
        ));
    }
    let mut params = query_params(query);
    params.extend(
        form_urlencoded::parse(body)
            .into_owned()
            .filter(|(_, v)| !v.is_empty()),
    );
    Ok(params)
}

async fn run(
    state: &RestState,
    types: Vec<String>,
    scope: Option<Clause>,
    params: Vec<(String, String)>,
    path: &str,
    headers: &HeaderMap,
) -> Result<FhirResponse, ApiError> {
    let mut query = parse_search(state, types, &params, strict_handling(headers))?;
    if let Some(scope) = scope {
        query.clauses.insert(0, scope);
    }
    let mut page = state.storage.search(query.clone()).await?;
    if crate::rest::guard::caller().is_some() {
        // `_include` and `_revinclude` reach other types: each must be readable too.
        page.included.retain(|hit| {
            state
                .check_stored(
                    &hit.resource_type,
                    &hit.content,
                    crate::auth::Interaction::Read,
                )
                .is_ok()
        });
    }
    let bundle = searchset(&state.base, path, &params, &query, page)?;
    Ok(FhirResponse::new(StatusCode::OK).body(FhirBody::Stored(Bytes::from(bundle))))
}

fn link(base: &str, path: &str, params: &[(String, String)], cursor: Option<&str>) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        if k != CURSOR {
            serializer.append_pair(k, v);
        }
    }
    if let Some(c) = cursor {
        serializer.append_pair(CURSOR, c);
    }
    let query = serializer.finish();
    if query.is_empty() {
        format!("{base}{path}")
    } else {
        format!("{base}{path}?{query}")
    }
}

/// Builds the searchset Bundle as JSON text: stored resources are copied in as they are, not
/// parsed again, unless `_summary` or `_elements` asks for a subset.
fn searchset(
    base: &str,
    path: &str,
    params: &[(String, String)],
    query: &SearchQuery,
    page: SearchPage,
) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(
        512 + page
            .matches
            .iter()
            .chain(&page.included)
            .map(|h| h.content.len() + 128)
            .sum::<usize>(),
    );
    let json = |v: &Value| serde_json::to_vec(v).unwrap_or_default();
    out.extend_from_slice(b"{\"resourceType\":\"Bundle\",\"id\":");
    out.extend(json(&Value::String(uuid::Uuid::new_v4().to_string())));
    out.extend_from_slice(b",\"meta\":{\"lastUpdated\":");
    out.extend(json(&Value::String(format_instant(
        chrono::Utc::now().timestamp_millis(),
    ))));
    out.extend_from_slice(b"},\"type\":\"searchset\"");
    if let Some(total) = page.total {
        out.extend_from_slice(format!(",\"total\":{total}").as_bytes());
    }
    let self_cursor = params
        .iter()
        .find(|(k, _)| k == CURSOR)
        .map(|(_, v)| v.as_str());
    let mut links =
        vec![serde_json::json!({"relation": "self", "url": link(base, path, params, self_cursor)})];
    if page.next.is_some() || page.previous.is_some() || self_cursor.is_some() {
        links.push(serde_json::json!({"relation": "first", "url": link(base, path, params, None)}));
    }
    if let Some(previous) = &page.previous {
        links.push(serde_json::json!({"relation": "previous", "url": link(base, path, params, Some(previous))}));
    }
    if let Some(next) = &page.next {
        links.push(
            serde_json::json!({"relation": "next", "url": link(base, path, params, Some(next))}),
        );
    }
    out.extend_from_slice(b",\"link\":");
    out.extend(json(&Value::Array(links)));
    let mut first = true;
    let mut entry = |out: &mut Vec<u8>, hit: &Hit, mode: &str| -> Result<(), ApiError> {
        out.extend_from_slice(if first { b",\"entry\":[" } else { b"," });
        first = false;
        out.extend_from_slice(b"{\"fullUrl\":");
        out.extend(json(&Value::String(format!(
            "{base}/{}/{}",
            hit.resource_type, hit.id
        ))));
        out.extend_from_slice(b",\"resource\":");
        match (query.summary, &query.elements) {
            (None | Some(Summary::False), None) => out.extend_from_slice(&hit.content),
            (summary, elements) => {
                let mut value: Value = serde_json::from_slice(&hit.content)
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                if let Some(s) = summary
                    && let Some(subset) = summarize(&value, s)
                {
                    value = subset;
                }
                if let Some(names) = elements {
                    value = select_elements(&value, names);
                }
                out.extend(json(&value));
            }
        }
        out.extend_from_slice(b",\"search\":{\"mode\":\"");
        out.extend_from_slice(mode.as_bytes());
        out.extend_from_slice(b"\"}}");
        Ok(())
    };
    for hit in &page.matches {
        entry(&mut out, hit, "match")?;
    }
    for hit in &page.included {
        entry(&mut out, hit, "include")?;
    }
    if !query.warnings.is_empty() {
        let issues: Vec<Issue> = query
            .warnings
            .iter()
            .map(|w| Issue {
                severity: Severity::Warning,
                ..Issue::error(IssueType::NotSupported, w.clone())
            })
            .collect();
        let outcome = Hit {
            resource_type: "OperationOutcome".into(),
            id: uuid::Uuid::new_v4().to_string(),
            content: json(&operation_outcome(&issues)).into(),
        };
        out.extend_from_slice(if first { b",\"entry\":[" } else { b"," });
        first = false;
        out.extend_from_slice(b"{\"resource\":");
        out.extend_from_slice(&outcome.content);
        out.extend_from_slice(b",\"search\":{\"mode\":\"outcome\"}}");
    }
    if !first {
        out.push(b']');
    }
    out.push(b'}');
    Ok(out)
}

//! `POST [base]` with a `transaction` or `batch` Bundle (R4 http §3.1.0.11): the entries are
//! read and checked here; `transaction` writes them all or nothing, `batch` runs each on its
//! own. Both answer with one response entry per request entry, in request order.

mod batch;
mod dispatch;
mod transaction;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use serde_json::{Value, json};

use super::format::body_format;
use super::response::{FhirBody, FhirResponse};
use super::{ApiError, RestState};
use crate::fhir::outcome::IssueType;
use crate::fhir::{Format, ResourceId};

/// `Bundle.entry.request.method`, in the order a transaction processes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Delete,
    Post,
    Put,
    Patch,
    Get,
    Head,
}

impl Method {
    fn parse(text: &str) -> Option<Method> {
        Some(match text {
            "DELETE" => Method::Delete,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Method::Delete => "DELETE",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Get => "GET",
            Method::Head => "HEAD",
        }
    }

    /// The processing order of R4 http §3.1.0.11.2: deletes, creates, updates and patches,
    /// then reads.
    fn phase(self) -> u8 {
        match self {
            Method::Delete => 0,
            Method::Post => 1,
            Method::Put | Method::Patch => 2,
            Method::Get | Method::Head => 3,
        }
    }
}

/// One entry of the request Bundle.
#[derive(Debug, Clone)]
struct Entry {
    index: usize,
    full_url: Option<String>,
    method: Method,
    /// The request URL relative to the base (`Patient/1`, `Patient?identifier=…`).
    url: String,
    resource: Option<Value>,
    if_match: Option<String>,
    if_none_match: Option<String>,
    if_modified_since: Option<String>,
    if_none_exist: Option<String>,
}

impl Entry {
    /// How errors name the entry's request: `POST Patient`.
    pub(super) fn label(&self) -> String {
        let url: String = self.url.chars().take(80).collect();
        format!("{} {url}", self.method.as_str())
    }

    fn error(
        &self,
        status: StatusCode,
        code: IssueType,
        diagnostics: impl Into<String>,
    ) -> ApiError {
        ApiError::new(status, code, diagnostics).in_entry(self.index, &self.label())
    }

    /// What the URL names.
    pub(super) fn target(&self) -> Target<'_> {
        let (path, query) = match self.url.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (self.url.as_str(), None),
        };
        let mut parts = path.split('/');
        match (parts.next(), parts.next(), parts.next(), query) {
            (Some(t), None, None, None) if crate::fhir::check_resource_type(t).is_ok() => {
                Target::Type(t)
            }
            (Some(t), None, None, Some(q)) if crate::fhir::check_resource_type(t).is_ok() => {
                Target::Conditional(t, q)
            }
            (Some(t), Some(id), None, None)
                if crate::fhir::check_resource_type(t).is_ok() && !id.starts_with('$') =>
            {
                match ResourceId::parse(id) {
                    Ok(id) => Target::Instance(t, id),
                    Err(_) => Target::Other,
                }
            }
            _ => Target::Other,
        }
    }

    /// The type the URL names, when it names one.
    fn url_type(&self) -> Option<&str> {
        match self.target() {
            Target::Type(t) | Target::Conditional(t, _) | Target::Instance(t, _) => Some(t),
            Target::Other => None,
        }
    }
}

/// What an entry's URL names.
#[derive(Debug)]
enum Target<'a> {
    /// `Patient`
    Type(&'a str),
    /// `Patient/123`
    Instance(&'a str, ResourceId),
    /// `Patient?identifier=…`
    Conditional(&'a str, &'a str),
    /// Anything else (history, operations, system URLs).
    Other,
}

/// Processes a batch or transaction Bundle.
#[utoipa::path(post, path = "/fhir", tag = "FHIR",
    request_body(content = String, content_type = "application/fhir+json", description = "A Bundle of type transaction or batch"),
    responses((status = 200, description = "transaction-response or batch-response Bundle"),
        (status = 400, description = "Not a transaction or batch Bundle, or a transaction entry is invalid"),
        (status = 404, description = "A transaction entry names an unknown resource"),
        (status = 412, description = "A transaction entry's condition failed"),
        (status = 413, description = "Too many entries or too large a body"),
        (status = 422, description = "A transaction entry breaks a business rule")))]
pub async fn process_bundle(
    State(state): State<RestState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<FhirResponse, ApiError> {
    let format = body_format(&headers)?;
    let bundle = match format {
        Format::Json => serde_json::from_slice::<Value>(&body).map_err(|e| {
            ApiError::bad_request(
                IssueType::Structure,
                format!("the body is not valid JSON: {e}"),
            )
        })?,
        Format::Xml => crate::fhir::xml_to_json(&body)?,
    };
    let kind = bundle_kind(&bundle)?;
    let raw_entries = match bundle.get("entry") {
        None => &[][..],
        Some(Value::Array(entries)) => entries.as_slice(),
        Some(_) => {
            return Err(ApiError::bad_request(
                IssueType::Structure,
                "Bundle.entry must be an array",
            ));
        }
    };
    if raw_entries.len() > state.max_bundle_entries {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            IssueType::TooCostly,
            format!(
                "the Bundle has {} entries; this server takes at most {} in one {kind} (HEARTH_MAX_BUNDLE_ENTRIES)",
                raw_entries.len(),
                state.max_bundle_entries
            ),
        ));
    }
    let mut entries = Vec::with_capacity(raw_entries.len());
    let mut malformed = Vec::new();
    for (index, raw) in raw_entries.iter().enumerate() {
        match read_entry(&state.base, index, raw) {
            Ok(entry) => entries.push(entry),
            Err(error) if kind == "batch" => malformed.push((index, error)),
            Err(error) => return Err(error),
        }
    }
    let response = if kind == "batch" {
        batch::run(&state, entries, malformed, &headers).await
    } else {
        transaction::run(&state, entries, &headers).await?
    };
    Ok(FhirResponse::new(StatusCode::OK).body(FhirBody::Value(response)))
}

/// `transaction` or `batch`, or the 400 for any other Bundle.
fn bundle_kind(bundle: &Value) -> Result<&'static str, ApiError> {
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(ApiError::bad_request(
            IssueType::Invalid,
            "POST to the FHIR base takes a Bundle of type transaction or batch",
        ));
    }
    match bundle.get("type").and_then(Value::as_str) {
        Some("transaction") => Ok("transaction"),
        Some("batch") => Ok("batch"),
        Some(other) => Err(ApiError::bad_request(
            IssueType::Invalid,
            format!(
                "a Bundle of type '{other}' cannot be processed at the FHIR base; only transaction and batch can (store other Bundles with POST [base]/Bundle)"
            ),
        )),
        None => Err(ApiError::bad_request(
            IssueType::Required,
            "Bundle.type is required (transaction or batch)",
        )),
    }
}

/// Reads one entry's request.
fn read_entry(base: &str, index: usize, raw: &Value) -> Result<Entry, ApiError> {
    let fail = |code: IssueType, message: String| {
        ApiError::bad_request(code, message).in_entry(index, "entry")
    };
    let Some(object) = raw.as_object() else {
        return Err(fail(
            IssueType::Structure,
            "an entry must be an object".into(),
        ));
    };
    let text =
        |object: &serde_json::Map<String, Value>, name: &str| -> Result<Option<String>, ApiError> {
            match object.get(name) {
                None => Ok(None),
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
                Some(_) => Err(fail(
                    IssueType::Structure,
                    format!("{name} must be a non-empty string"),
                )),
            }
        };
    let Some(request) = object.get("request").and_then(Value::as_object) else {
        return Err(fail(
            IssueType::Required,
            "entry.request (method and url) is required in a transaction or batch".into(),
        ));
    };
    let method_text = text(request, "method")?.unwrap_or_default();
    let Some(method) = Method::parse(&method_text) else {
        return Err(fail(
            IssueType::Value,
            format!(
                "entry.request.method '{method_text}' is not one of GET, HEAD, POST, PUT, PATCH, DELETE"
            ),
        ));
    };
    let Some(url) = text(request, "url")? else {
        return Err(fail(
            IssueType::Required,
            "entry.request.url is required".into(),
        ));
    };
    // An absolute URL at this server is the same as a relative one.
    let url = url
        .strip_prefix(base)
        .map_or(url.as_str(), |rest| rest)
        .trim_start_matches('/')
        .to_owned();
    let resource = object.get("resource").cloned();
    if resource.as_ref().is_some_and(|r| !r.is_object()) {
        return Err(fail(
            IssueType::Structure,
            "entry.resource must be a resource (a JSON object)".into(),
        ));
    }
    Ok(Entry {
        index,
        full_url: text(object, "fullUrl")?,
        method,
        url,
        resource,
        if_match: text(request, "ifMatch")?,
        if_none_match: text(request, "ifNoneMatch")?,
        if_modified_since: text(request, "ifModifiedSince")?,
        if_none_exist: text(request, "ifNoneExist")?,
    })
}

/// A response entry: `response.status` as `201 Created`, plus what else is known.
fn response_entry(
    status: StatusCode,
    full_url: Option<String>,
    resource: Option<Value>,
    location: Option<String>,
    etag: Option<String>,
    last_modified: Option<String>,
    outcome: Option<Value>,
) -> Value {
    let mut response = json!({
        "status": format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or_default()),
    });
    for (name, value) in [
        ("location", location),
        ("etag", etag),
        ("lastModified", last_modified),
    ] {
        if let Some(value) = value {
            response[name] = Value::String(value);
        }
    }
    if let Some(outcome) = outcome {
        response["outcome"] = outcome;
    }
    let mut entry = serde_json::Map::new();
    if let Some(url) = full_url {
        entry.insert("fullUrl".into(), Value::String(url));
    }
    if let Some(resource) = resource {
        entry.insert("resource".into(), resource);
    }
    entry.insert("response".into(), response);
    Value::Object(entry)
}

/// The response Bundle.
fn response_bundle(state: &RestState, kind: &str, entries: Vec<Value>) -> Value {
    json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "meta": {"lastUpdated": crate::fhir::instant::format_instant(state.clock.now_millis())},
        "type": kind,
        "link": [{"relation": "self", "url": state.base.as_ref()}],
        "entry": entries,
    })
}

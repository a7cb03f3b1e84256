//! SMART authorization of every FHIR request. The middleware checks the bearer token (401 with
//! `WWW-Authenticate` when it is missing or bad) and that its scopes permit the interaction on
//! the types the URL names (403 otherwise); the handlers then confine what they read and write
//! to what the token's permit allows: the patient compartment of patient-level scopes and the
//! filters of granular scopes. `/metadata` stays open; CORS is open to registered origins.
//!
//! Resources outside the Patient compartment definition (Practitioner, Organization,
//! Medication, …) are not one patient's data: patient-level scopes may read and search them but
//! not write them.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::response::FhirBody;
use super::{ApiError, RestState};
use crate::auth::{Access, Interaction, Permit};
use crate::fhir::outcome::IssueType;
use crate::search::IndexRows;

/// What a request needs from the token, read from its method and path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Need {
    /// Nothing (`/metadata`).
    Open,
    /// A valid token only (Bundles are checked entry by entry; `$deadline` reads no data).
    Token,
    /// `interaction` on each of these types (`*` needs a wildcard scope).
    Types(Vec<String>, Interaction),
}

fn need(method: &Method, path: &str, query: Option<&str>) -> Need {
    let segments: Vec<&str> = path
        .trim_start_matches("/fhir")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let one = |t: &str, i| Need::Types(vec![t.to_owned()], i);
    let write = |t: &str| match *method {
        Method::POST => one(t, Interaction::Create),
        Method::PUT | Method::PATCH => one(t, Interaction::Update),
        Method::DELETE => one(t, Interaction::Delete),
        _ => one(t, Interaction::Search),
    };
    match segments.as_slice() {
        ["metadata"] => Need::Open,
        [] if *method == Method::POST => Need::Token,
        [] | ["_search"] => {
            let types: Vec<String> = super::interactions::search::query_params(query)
                .into_iter()
                .filter(|(k, _)| k == "_type")
                .flat_map(|(_, v)| {
                    v.split(',')
                        .map(|t| t.trim().to_owned())
                        .collect::<Vec<_>>()
                })
                .filter(|t| !t.is_empty())
                .collect();
            if types.is_empty() {
                one("*", Interaction::Search)
            } else {
                Need::Types(types, Interaction::Search)
            }
        }
        ["_history"] => one("*", Interaction::Search),
        [op] if op.starts_with('$') => one("*", Interaction::Update),
        [_, "$deadline"] => Need::Token,
        [t, "$triage-stats"] | [t, "_search"] | [t, "_history"] => one(t, Interaction::Search),
        [t, op] if op.starts_with('$') => one(t, Interaction::Update),
        [t] if *method == Method::GET || *method == Method::HEAD => one(t, Interaction::Search),
        [t] => write(t),
        [t, _id] if *method == Method::GET || *method == Method::HEAD => one(t, Interaction::Read),
        [t, _id] => write(t),
        [t, _id, "_history", ..] => one(t, Interaction::Read),
        [t, _id, op] if op.starts_with('$') => one(t, Interaction::Update),
        [_owner, _id, target] => one(target, Interaction::Search),
        _ => Need::Token,
    }
}

/// The bearer token of a request, if any.
fn bearer(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A 401 with the challenge RFC 6750 §3 describes.
fn unauthorized(state: &RestState, message: String, invalid: bool) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, IssueType::Login, message.clone()).into_response();
    let realm = state.base.as_ref();
    let challenge = if invalid {
        format!(
            "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
            message.replace('"', "'")
        )
    } else {
        format!("Bearer realm=\"{realm}\"")
    };
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// The middleware.
pub async fn guard(State(state): State<RestState>, request: Request, next: Next) -> Response {
    let Some(auth) = state.auth.clone() else {
        return next.run(request).await;
    };
    // Only the Origin matters for CORS; copy it alone, not every header.
    let origin = request.headers().get(header::ORIGIN).map(|value| {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(header::ORIGIN, value.clone());
        headers
    });
    if let Some(origin) = &origin
        && request.method() == Method::OPTIONS
    {
        return crate::auth::http::preflight(&auth, origin).await;
    }
    let need = need(
        request.method(),
        request.uri().path(),
        request.uri().query(),
    );
    let mut response = if need == Need::Open {
        next.run(request).await
    } else {
        match bearer(&request).map(str::to_owned) {
            None => unauthorized(
                &state,
                crate::auth::TokenRejected::Missing(auth.settings().token_url()).to_string(),
                false,
            ),
            Some(token) => match auth.verify(&token).await {
                Err(rejected) => unauthorized(&state, rejected.to_string(), true),
                Ok(access) => {
                    let seen = state.audit.is_some().then(|| {
                        (
                            request.method().clone(),
                            request.uri().path().to_owned(),
                            request.uri().query().map(str::to_owned),
                        )
                    });
                    let response = match check(&access, &need) {
                        Err(e) => e.into_response(),
                        Ok(()) => CALLER.scope(access.clone(), next.run(request)).await,
                    };
                    if let (Some(trail), Some((method, path, query))) = (&state.audit, seen)
                        && let Some(record) = audit_record(
                            &state,
                            &access,
                            &method,
                            &path,
                            query.as_deref(),
                            &response,
                        )
                    {
                        trail.record(record).await;
                    }
                    response
                }
            },
        }
    };
    if let Some(origin) = &origin {
        crate::auth::http::allow_registered_origin(&auth, origin, &mut response).await;
    }
    response
}

/// The audit record of a request on patient data (none for other requests, or when nothing
/// is audited).
fn audit_record(
    state: &RestState,
    access: &Access,
    method: &Method,
    path: &str,
    query: Option<&str>,
    response: &Response,
) -> Option<super::audit::Record> {
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok());
    let rendered;
    let body = match response.extensions().get::<FhirBody>() {
        Some(FhirBody::Stored(bytes)) => Some(&bytes[..]),
        Some(FhirBody::Value(value)) if *method != Method::GET => {
            rendered = serde_json::to_vec(value).unwrap_or_default();
            Some(&rendered[..])
        }
        _ => None,
    };
    let exchange = super::audit::Exchange {
        method,
        path,
        query,
        status: response.status().as_u16(),
        location,
        body,
    };
    super::audit::record_of(access, &exchange, state.clock.now_millis())
}

fn check(access: &Access, need: &Need) -> Result<(), ApiError> {
    if let Need::Types(types, interaction) = need {
        for t in types {
            access.permit(t, *interaction).map_err(forbidden)?;
        }
    }
    Ok(())
}

/// A 403 OperationOutcome.
pub fn forbidden(message: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, IssueType::Forbidden, message)
}

tokio::task_local! {
    /// The token of the request being handled. Set by the guard around the handler, so the
    /// write path, search and reads confine themselves without each handler passing it on;
    /// unset for in-process work (start-up installs, the demo, `hearth import`).
    static CALLER: Arc<Access>;
}

/// The token of the request being handled, if any.
pub fn caller() -> Option<Arc<Access>> {
    CALLER.try_with(Arc::clone).ok()
}

/// The permit of the request being handled for `interaction` on `resource_type` (everything
/// for in-process work).
pub fn current_permit(resource_type: &str, interaction: Interaction) -> Result<Permit, ApiError> {
    match caller() {
        None => Ok(unconfined()),
        Some(access) => access.permit(resource_type, interaction).map_err(forbidden),
    }
}

/// What confines searches over `resource_type` for the request being handled: the permit of
/// the first interaction the token allows on it, searching first (conditional interactions
/// search with the permission of what they do).
pub fn search_confinement(resource_type: &str) -> Option<Permit> {
    let access = caller()?;
    [
        Interaction::Search,
        Interaction::Read,
        Interaction::Update,
        Interaction::Delete,
        Interaction::Create,
    ]
    .into_iter()
    .find_map(|i| access.permit(resource_type, i).ok())
    .or(Some(Permit {
        // No permission at all: nothing can match (the guard refuses such requests first).
        compartment: Some(String::new()),
        filters: Vec::new(),
    }))
}

fn unconfined() -> Permit {
    Permit {
        compartment: None,
        filters: Vec::new(),
    }
}

impl RestState {
    /// Checks that the request being handled may `interaction` the current version of
    /// `resource_type/id` (when it exists and the token is confined at all).
    pub async fn check_existing(
        &self,
        resource_type: &str,
        id: &crate::fhir::ResourceId,
        interaction: Interaction,
    ) -> Result<(), ApiError> {
        let permit = current_permit(resource_type, interaction)?;
        if permit.compartment.is_none() && permit.filters.is_empty() {
            return Ok(());
        }
        if let Some(version) = self.storage.find_current(resource_type, id).await?
            && !version.deleted
        {
            self.check_stored(resource_type, &version.content, interaction)?;
        }
        Ok(())
    }

    /// Checks that the request being handled may read this stored resource. A Binary with a
    /// `securityContext` is read under the access rules of that resource (FHIR R4 Binary), so a
    /// patient's images are as private as the report that presents them.
    pub async fn check_read(&self, resource_type: &str, content: &[u8]) -> Result<(), ApiError> {
        if resource_type == "Binary" {
            let permit = current_permit(resource_type, Interaction::Read)?;
            if permit.compartment.is_some() || !permit.filters.is_empty() {
                let value: Value = serde_json::from_slice(content)
                    .map_err(|e| ApiError::internal(format!("stored JSON unreadable: {e}")))?;
                if let Some((t, id)) = value["securityContext"]["reference"]
                    .as_str()
                    .and_then(|r| r.split_once('/'))
                    && t != "Binary"
                    && t != "Patient"
                {
                    let id = crate::fhir::ResourceId::parse(id).map_err(|_| {
                        forbidden("the Binary's securityContext cannot be checked".into())
                    })?;
                    return match self.storage.find_current(t, &id).await? {
                        Some(context) if !context.deleted => {
                            self.check_stored(t, &context.content, Interaction::Read)
                        }
                        _ => Err(forbidden(format!(
                            "the Binary's securityContext {t}/{id} is not readable"
                        ))),
                    };
                }
            }
        }
        self.check_stored(resource_type, content, Interaction::Read)
    }

    /// Checks that the request being handled may `interaction` this stored resource (JSON).
    pub fn check_stored(
        &self,
        resource_type: &str,
        content: &[u8],
        interaction: Interaction,
    ) -> Result<(), ApiError> {
        let permit = current_permit(resource_type, interaction)?;
        if permit.compartment.is_none() && permit.filters.is_empty() {
            return Ok(());
        }
        let value: Value = serde_json::from_slice(content)
            .map_err(|e| ApiError::internal(format!("stored JSON unreadable: {e}")))?;
        self.within_permit(
            &permit,
            resource_type,
            &value,
            None,
            interaction != Interaction::Read && interaction != Interaction::Search,
        )
    }

    /// Checks that `resource` is within `permit`: in the patient's compartment (if confined)
    /// and matching a granular filter (if any). `rows` are its index rows when known.
    pub fn within_permit(
        &self,
        permit: &Permit,
        resource_type: &str,
        resource: &Value,
        rows: Option<&IndexRows>,
        writing: bool,
    ) -> Result<(), ApiError> {
        if permit.compartment.is_none() && permit.filters.is_empty() {
            return Ok(());
        }
        let extracted;
        let rows = match rows {
            Some(r) => r,
            None => {
                extracted = self.index(resource);
                &extracted
            }
        };
        if let Some(patient) = &permit.compartment
            && !in_patient_compartment(resource_type, resource, rows, patient, writing)
        {
            let id = resource["id"].as_str().unwrap_or("(new)");
            return Err(forbidden(format!(
                "{resource_type}/{id} is outside the compartment of Patient/{patient}, the patient this access token is for"
            )));
        }
        if !permit.filters.is_empty() && !permit.filters.iter().any(|f| matches_filter(rows, f)) {
            let wanted: Vec<String> = permit
                .filters
                .iter()
                .map(|f| {
                    f.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join("&")
                })
                .collect();
            return Err(forbidden(format!(
                "the access token's granular scopes allow only {resource_type} resources with {}",
                wanted.join(" or ")
            )));
        }
        Ok(())
    }
}

/// Whether a resource is in `Patient/patient`'s compartment (the official CompartmentDefinition).
/// Types outside that definition are not patient data: readable, not writable.
fn in_patient_compartment(
    resource_type: &str,
    resource: &Value,
    rows: &IndexRows,
    patient: &str,
    writing: bool,
) -> bool {
    if resource_type == "Patient" {
        return resource["id"].as_str() == Some(patient);
    }
    if resource_type == "Binary"
        && let Some(context) = resource["securityContext"]["reference"].as_str()
    {
        // Read under its context's rules (`check_read` resolves other contexts); where they
        // cannot be resolved, a confined token is refused rather than let through.
        return context == format!("Patient/{patient}");
    }
    let Some(params) = crate::search::compartment_params("Patient", resource_type) else {
        return !writing;
    };
    rows.references.iter().any(|r| {
        params.iter().any(|p| p == &r.code)
            && r.target_type.as_deref() == Some("Patient")
            && r.target_id.as_deref() == Some(patient)
    })
}

/// Whether the index rows match every parameter of a granular filter. Token parameters
/// (`code`, `system|code`, `|code`, `system|`, comma for any) are supported; others never match,
/// so an unsupported filter denies rather than leaks.
fn matches_filter(rows: &IndexRows, filter: &[(String, String)]) -> bool {
    filter.iter().all(|(param, value)| {
        value.split(',').any(|alternative| {
            let (system, code) = match alternative.split_once('|') {
                Some((s, c)) => (Some(s), c),
                None => (None, alternative),
            };
            rows.tokens.iter().any(|t| {
                t.code == *param
                    && match system {
                        None => t.value.as_deref() == Some(code),
                        Some("") => t.system.is_none() && t.value.as_deref() == Some(code),
                        Some(s) => {
                            t.system.as_deref() == Some(s)
                                && (code.is_empty() || t.value.as_deref() == Some(code))
                        }
                    }
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_what_they_need() {
        let t = |m: Method, p: &str, q: Option<&str>| need(&m, p, q);
        let types = |ts: &[&str], i| Need::Types(ts.iter().map(|s| (*s).to_owned()).collect(), i);
        assert_eq!(t(Method::GET, "/fhir/metadata", None), Need::Open);
        assert_eq!(
            t(Method::GET, "/fhir/Patient/1", None),
            types(&["Patient"], Interaction::Read)
        );
        assert_eq!(
            t(Method::GET, "/fhir/Patient", None),
            types(&["Patient"], Interaction::Search)
        );
        assert_eq!(
            t(Method::POST, "/fhir/Patient", None),
            types(&["Patient"], Interaction::Create)
        );
        assert_eq!(
            t(Method::PUT, "/fhir/Patient/1", None),
            types(&["Patient"], Interaction::Update)
        );
        assert_eq!(
            t(Method::PATCH, "/fhir/Patient/1", None),
            types(&["Patient"], Interaction::Update)
        );
        assert_eq!(
            t(Method::DELETE, "/fhir/Patient", None),
            types(&["Patient"], Interaction::Delete)
        );
        assert_eq!(
            t(Method::GET, "/fhir/Patient/1/_history/2", None),
            types(&["Patient"], Interaction::Read)
        );
        assert_eq!(
            t(Method::GET, "/fhir/Patient/1/Observation", None),
            types(&["Observation"], Interaction::Search)
        );
        assert_eq!(
            t(Method::POST, "/fhir/Observation/_search", None),
            types(&["Observation"], Interaction::Search)
        );
        assert_eq!(
            t(Method::GET, "/fhir", Some("_type=Patient,Observation")),
            types(&["Patient", "Observation"], Interaction::Search)
        );
        assert_eq!(
            t(Method::GET, "/fhir", None),
            types(&["*"], Interaction::Search)
        );
        assert_eq!(
            t(Method::GET, "/fhir/_history", None),
            types(&["*"], Interaction::Search)
        );
        assert_eq!(t(Method::POST, "/fhir", None), Need::Token);
        assert_eq!(
            t(Method::POST, "/fhir/ServiceRequest/1/$triage", None),
            types(&["ServiceRequest"], Interaction::Update)
        );
        assert_eq!(
            t(Method::GET, "/fhir/ServiceRequest/$deadline", None),
            Need::Token
        );
    }
}

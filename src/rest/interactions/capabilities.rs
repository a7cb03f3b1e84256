//! `capabilities`: `GET [base]/metadata` (R4 http §3.1.0.9). The CapabilityStatement is generated
//! from what the server does (the routes of `rest::router` and the R4 resource types), built
//! once at start.

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::fhir::conformance::resource_types;
use crate::rest::RestState;
use crate::rest::response::{FhirBody, FhirResponse};
use crate::search::registry::ENGINE_PARAMS;
use crate::search::{ParamType, Registry};

/// The interactions every resource type supports (see `rest::router`).
const TYPE_INTERACTIONS: [&str; 9] = [
    "search-type",
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
];

/// The echo triage operations on ServiceRequest (definitions in `profiles/`).
const TRIAGE_OPERATIONS: [(&str, &str); 4] = [
    (
        "triage",
        "POST [base]/ServiceRequest/[id]/$triage: set the pathway, sentence and reason; the server computes the deadline",
    ),
    (
        "extend-deadline",
        "POST [base]/ServiceRequest/[id]/$extend-deadline: add working hours to the deadline, or move it to an instant, with a mandatory reason",
    ),
    (
        "deadline",
        "GET [base]/ServiceRequest/$deadline?start=&pathway= (or hours=): the deadline the server would store",
    ),
    (
        "triage-stats",
        "GET [base]/ServiceRequest/$triage-stats?days=15: today, a daily series and time to completion against target",
    ),
];

/// Builds the CapabilityStatement of this server.
pub fn capability_statement(base: &str, date: &str, registry: &Registry) -> Value {
    let resources: Vec<Value> = resource_types()
        .map(|t| {
            let mut params: Vec<Value> = vec![
                json!({"name": "_id", "type": "token", "definition": "http://hl7.org/fhir/SearchParameter/Resource-id"}),
                json!({"name": "_lastUpdated", "type": "date", "definition": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated"}),
            ];
            let mut includes = Vec::new();
            for p in registry.params(t) {
                if p.expression.is_none()
                    || p.kind == ParamType::Special
                    || ENGINE_PARAMS.contains(&p.code.as_str())
                {
                    continue;
                }
                params.push(json!({"name": p.code, "type": p.kind.code(), "definition": p.url}));
                if p.kind == ParamType::Reference {
                    includes.push(Value::String(format!("{t}:{}", p.code)));
                }
            }
            includes.push(Value::String("*".into()));
            let revincludes: Vec<Value> = revincludes_of(registry, t);
            let mut resource = json!({
                "type": t,
                "profile": format!("http://hl7.org/fhir/StructureDefinition/{t}"),
                "interaction": TYPE_INTERACTIONS.iter().map(|code| json!({"code": code})).collect::<Vec<_>>(),
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": true,
                "conditionalRead": "not-supported",
                "conditionalUpdate": true,
                "conditionalDelete": "multiple",
                "searchInclude": includes,
                "searchRevInclude": revincludes,
                "searchParam": params,
            });
            if t == "ServiceRequest" {
                resource["supportedProfile"] = json!([crate::triage::url::ECHO_PROFILE]);
                resource["operation"] = json!(TRIAGE_OPERATIONS
                    .iter()
                    .map(|(name, doc)| json!({
                        "name": name,
                        "definition": format!("{}/OperationDefinition/ServiceRequest-{name}", crate::triage::url::BASE),
                        "documentation": doc,
                    }))
                    .collect::<Vec<_>>());
            }
            resource
        })
        .collect();
    let root = base.trim_end_matches("/fhir");
    json!({
        "resourceType": "CapabilityStatement",
        "id": "hearth",
        "url": format!("{base}/metadata"),
        "name": "Hearth",
        "title": "Hearth FHIR R4 server",
        "status": "active",
        "experimental": false,
        "date": date,
        "publisher": "Hearth",
        "kind": "instance",
        "software": {"name": "Hearth", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Hearth FHIR R4 server", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/fhir+xml", "json", "xml"],
        "rest": [{
            "mode": "server",
            "documentation": "Reads, writes (PATCH with JSON Patch), history and search of every R4 resource type, versioned; transaction and batch Bundles at the base.",
            "security": {
                "cors": true,
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}], "text": "SMART on FHIR (App Launch 2.2 and Backend Services)"}],
                "extension": [{
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [
                        {"url": "authorize", "valueUri": format!("{root}/auth/authorize")},
                        {"url": "token", "valueUri": format!("{root}/auth/token")},
                        {"url": "introspect", "valueUri": format!("{root}/auth/introspect")},
                        {"url": "revoke", "valueUri": format!("{root}/auth/revoke")},
                    ],
                }],
                "description": format!("Every request needs a bearer token from {root}/auth/token; SMART scopes (v1 and v2, granular) decide what it may do, and patient-level scopes confine it to the patient's compartment. Discovery: {base}/.well-known/smart-configuration."),
            },
            "resource": resources,
            "interaction": [{"code": "transaction"}, {"code": "batch"}, {"code": "history-system"}, {"code": "search-system"}],
            "operation": [{"name": "reindex", "definition": "http://hearth.health/fhir/OperationDefinition/reindex",
                "documentation": "POST [base]/$reindex, [base]/[type]/$reindex or [base]/[type]/[id]/$reindex rebuilds the search index from the stored resources (after a SearchParameter is added)"}],
            "searchParam": [
                {"name": "_id", "type": "token", "definition": "http://hl7.org/fhir/SearchParameter/Resource-id"},
                {"name": "_lastUpdated", "type": "date", "definition": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated"},
                {"name": "_type", "type": "token", "documentation": "The resource types to search (comma-separated)"},
            ],
            "compartment": [
                "http://hl7.org/fhir/CompartmentDefinition/patient",
                "http://hl7.org/fhir/CompartmentDefinition/encounter",
                "http://hl7.org/fhir/CompartmentDefinition/relatedPerson",
                "http://hl7.org/fhir/CompartmentDefinition/practitioner",
                "http://hl7.org/fhir/CompartmentDefinition/device",
            ],
        }],
    })
}

/// `Source:param` for every reference parameter of any type that may point at `t`.
fn revincludes_of(registry: &Registry, t: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for source in resource_types() {
        for p in registry.params(source) {
            if p.kind == ParamType::Reference
                && p.expression.is_some()
                && (p.targets.is_empty() || p.targets.iter().any(|target| target == t))
            {
                out.push(Value::String(format!("{source}:{}", p.code)));
            }
        }
    }
    out.push(Value::String("*".into()));
    out
}

/// Returns the CapabilityStatement; needs no authorization.
#[utoipa::path(get, path = "/fhir/metadata", tag = "FHIR",
    responses((status = 200, description = "The CapabilityStatement")))]
pub async fn read_capabilities(State(state): State<RestState>) -> FhirResponse {
    FhirResponse::new(StatusCode::OK).body(FhirBody::Value((*state.capability_statement()).clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::{Format, parse_resource};

    #[test]
    fn the_statement_is_a_valid_r4_resource() {
        let statement =
            capability_statement("http://h/fhir", "2026-01-01T00:00:00.000Z", &Registry::r4());
        let bytes = serde_json::to_vec(&statement).unwrap();
        let parsed = parse_resource(&bytes, Format::Json, Some("CapabilityStatement"));
        assert!(parsed.is_ok(), "{parsed:?}");
    }
}

//! `capabilities`: GET [base]/metadata (R4 http §3.1.0.9). The CapabilityStatement is generated
//! from what the server does (the routes of `rest::router` and the R4 resource types), built
//! once at start.

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::fhir::conformance::resource_types;
use crate::rest::RestState;
use crate::rest::response::{FhirBody, FhirResponse};

/// The interactions every resource type supports (see `rest::router`).
const TYPE_INTERACTIONS: [&str; 7] = [
    "read",
    "vread",
    "update",
    "delete",
    "history-instance",
    "history-type",
    "create",
];

/// Builds the CapabilityStatement of this server.
pub fn capability_statement(base: &str, date: &str) -> Value {
    let resources: Vec<Value> = resource_types()
        .map(|t| {
            json!({
                "type": t,
                "profile": format!("http://hl7.org/fhir/StructureDefinition/{t}"),
                "interaction": TYPE_INTERACTIONS.iter().map(|code| json!({"code": code})).collect::<Vec<_>>(),
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": false,
                "conditionalRead": "not-supported",
                "conditionalUpdate": false,
                "conditionalDelete": "not-supported",
            })
        })
        .collect();
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
            "documentation": "Reads and writes of every R4 resource type, versioned, with history.",
            "resource": resources,
            "interaction": [{"code": "history-system"}],
        }],
    })
}

/// Returns the CapabilityStatement; needs no authorization.
#[utoipa::path(get, path = "/fhir/metadata", tag = "FHIR",
    responses((status = 200, description = "The CapabilityStatement")))]
pub async fn read_capabilities(State(state): State<RestState>) -> FhirResponse {
    FhirResponse::new(StatusCode::OK).body(FhirBody::Value((*state.capabilities).clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::{Format, parse_resource};

    #[test]
    fn the_statement_is_a_valid_r4_resource() {
        let statement = capability_statement("http://h/fhir", "2026-01-01T00:00:00.000Z");
        let bytes = serde_json::to_vec(&statement).unwrap();
        let parsed = parse_resource(&bytes, Format::Json, Some("CapabilityStatement"));
        assert!(parsed.is_ok(), "{parsed:?}");
    }
}

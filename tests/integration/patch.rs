//! PATCH with JSON Patch (RFC 6902) on both backends: instance and conditional, `If-Match`,
//! operations that cannot apply, results that are not valid resources, and the errors of a
//! wrong body.

use reqwest::Method;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{TestServer, json_with_status, outcome};

on_both_backends!(
    json_patch_changes_the_current_version,
    a_patch_that_fails_changes_nothing,
    conditional_patch_needs_one_match,
    a_patched_echo_request_goes_through_triage,
    fhirpath_patch_operations,
);

async fn patch(
    server: &TestServer,
    path: &str,
    body: &Value,
    if_match: Option<&str>,
) -> reqwest::Response {
    let mut request = server
        .request(Method::PATCH, path)
        .header("content-type", "application/json-patch+json")
        .body(serde_json::to_vec(body).unwrap());
    if let Some(etag) = if_match {
        request = request.header("if-match", etag);
    }
    request.send().await.unwrap()
}

fn patient(mrn: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{"system": "urn:mrn", "value": mrn}],
        "active": true,
        "name": [{"family": "Lee", "given": ["Ann"]}],
        "telecom": [{"system": "phone", "value": "0123"}]
    })
}

async fn json_patch_changes_the_current_version(server: &TestServer) {
    let created = server.create(&patient("p-1")).await;
    let id = created["id"].as_str().unwrap();
    let path = format!("Patient/{id}");
    let body = json!([
        {"op": "test", "path": "/active", "value": true},
        {"op": "replace", "path": "/active", "value": false},
        {"op": "add", "path": "/name/0/given/-", "value": "Mary"},
        {"op": "remove", "path": "/telecom"},
        {"op": "copy", "from": "/name/0/family", "path": "/name/0/text"}
    ]);
    let response = patch(server, &path, &body, Some("W/\"1\"")).await;
    assert_eq!(response.headers()["etag"], "W/\"2\"");
    let patched = json_with_status(response, 200).await;
    assert_eq!(patched["active"], false);
    assert_eq!(patched["name"][0]["given"], json!(["Ann", "Mary"]));
    assert_eq!(patched["name"][0]["text"], "Lee");
    assert!(patched.get("telecom").is_none());
    assert_eq!(patched["meta"]["versionId"], "2");
    // The change is a new version; the first is kept.
    let first = json_with_status(server.get(&format!("{path}/_history/1")).await, 200).await;
    assert_eq!(first["active"], true);
    // Search sees the new values.
    let found = json_with_status(server.get("Patient?given=mary").await, 200).await;
    assert_eq!(found["total"], 1);
    // A stale If-Match is refused.
    let stale = patch(
        server,
        &path,
        &json!([{"op": "replace", "path": "/active", "value": true}]),
        Some("W/\"1\""),
    )
    .await;
    outcome(stale, 412, "conflict").await;
}

async fn a_patch_that_fails_changes_nothing(server: &TestServer) {
    let created = server.create(&patient("p-2")).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("Patient/{id}");
    let failing_test = json!([
        {"op": "replace", "path": "/active", "value": false},
        {"op": "test", "path": "/name/0/family", "value": "Smith"}
    ]);
    let message = outcome(
        patch(server, &path, &failing_test, None).await,
        422,
        "processing",
    )
    .await;
    assert!(message.contains("cannot be applied"), "{message}");
    let missing_path = json!([{"op": "remove", "path": "/deceasedBoolean"}]);
    outcome(
        patch(server, &path, &missing_path, None).await,
        422,
        "processing",
    )
    .await;
    let invalid = json!([{"op": "add", "path": "/birthDate", "value": "yesterday"}]);
    let message = outcome(patch(server, &path, &invalid, None).await, 422, "value").await;
    assert!(
        message.contains("the patched resource is not valid"),
        "{message}"
    );
    let unknown = json!([{"op": "add", "path": "/colour", "value": "blue"}]);
    outcome(patch(server, &path, &unknown, None).await, 422, "structure").await;
    let new_id = json!([{"op": "replace", "path": "/id", "value": "other"}]);
    let message = outcome(patch(server, &path, &new_id, None).await, 422, "processing").await;
    assert!(message.contains("resourceType or id"), "{message}");
    // Nothing of the above was written.
    let current = json_with_status(server.get(&path).await, 200).await;
    assert_eq!(current["meta"]["versionId"], "1");
    assert_eq!(current["active"], true);

    // The body must be a JSON Patch document or a FHIRPath Patch Parameters.
    let not_parameters = server
        .request(Method::PATCH, &path)
        .header("content-type", "application/fhir+json")
        .body(serde_json::to_vec(&patient("p-2")).unwrap())
        .send()
        .await
        .unwrap();
    outcome(not_parameters, 400, "invalid").await;
    let wrong_type = server
        .request(Method::PATCH, &path)
        .header("content-type", "text/plain")
        .body("active = false")
        .send()
        .await
        .unwrap();
    outcome(wrong_type, 415, "not-supported").await;
    outcome(
        patch(server, &path, &json!({"op": "remove"}), None).await,
        400,
        "structure",
    )
    .await;
    outcome(
        patch(server, &path, &json!([{"op": "jump", "path": "/a"}]), None).await,
        400,
        "structure",
    )
    .await;
    // Unknown and deleted resources.
    outcome(
        patch(server, "Patient/nobody", &json!([]), None).await,
        404,
        "not-found",
    )
    .await;
    assert_eq!(
        server
            .request(Method::DELETE, &path)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    outcome(patch(server, &path, &json!([]), None).await, 410, "deleted").await;
}

async fn conditional_patch_needs_one_match(server: &TestServer) {
    server.create(&patient("c-1")).await;
    server.create(&patient("c-2")).await;
    server.create(&patient("c-2")).await;
    let body = json!([{"op": "replace", "path": "/active", "value": false}]);
    let one = patch(server, "Patient?identifier=urn:mrn|c-1", &body, None).await;
    let patched = json_with_status(one, 200).await;
    assert_eq!(patched["active"], false);
    assert_eq!(patched["identifier"][0]["value"], "c-1");
    let none = patch(server, "Patient?identifier=urn:mrn|c-9", &body, None).await;
    outcome(none, 404, "not-found").await;
    let two = patch(server, "Patient?identifier=urn:mrn|c-2", &body, None).await;
    outcome(two, 412, "multiple-matches").await;
    let no_criteria = patch(server, "Patient", &body, None).await;
    outcome(no_criteria, 400, "invalid").await;
}

/// A patch is a write like any other: changing the pathway of an echo request recomputes its
/// deadline through the triage hook.
async fn a_patched_echo_request_goes_through_triage(server: &TestServer) {
    const SD: &str = "http://hearth.health/fhir/StructureDefinition/";
    let request = server
        .create(&json!({
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "40701008"}]},
            "subject": {"reference": "Patient/p1"},
            "extension": [
                {"url": format!("{SD}triage-pathway"), "valueCoding": {"system": "http://hearth.health/fhir/CodeSystem/triage-pathway", "code": "red"}},
                {"url": format!("{SD}triage-time"), "valueDateTime": "2026-03-02T09:00:00Z"}
            ]
        }))
        .await;
    let deadline = |resource: &Value| {
        resource["extension"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["url"] == format!("{SD}triage-deadline"))
            .map(|e| e["valueDateTime"].as_str().unwrap().to_owned())
    };
    // RED: 24 working hours from Monday 09:00 UTC.
    assert_eq!(deadline(&request).as_deref(), Some("2026-03-03T09:00:00Z"));
    let pathway = request["extension"]
        .as_array()
        .unwrap()
        .iter()
        .position(|e| e["url"] == format!("{SD}triage-pathway"))
        .unwrap();
    let body = json!([{"op": "replace", "path": format!("/extension/{pathway}/valueCoding/code"), "value": "purple"}]);
    let id = request["id"].as_str().unwrap();
    let patched = json_with_status(
        patch(server, &format!("ServiceRequest/{id}"), &body, None).await,
        200,
    )
    .await;
    // A new pathway restarts the clock: PURPLE, one working hour from the new triage time, as
    // `$deadline` computes it.
    let triaged = patched["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"] == format!("{SD}triage-time"))
        .map(|e| e["valueDateTime"].as_str().unwrap().to_owned())
        .unwrap();
    assert_ne!(triaged, "2026-03-02T09:00:00Z");
    let preview = json_with_status(
        server
            .get(&format!(
                "ServiceRequest/$deadline?start={}&pathway=purple",
                triaged.replace('+', "%2B")
            ))
            .await,
        200,
    )
    .await;
    let expected = preview["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "deadline")
        .map(|p| p["valueInstant"].as_str().unwrap().to_owned());
    assert_eq!(deadline(&patched), expected);
}

fn operation(kind: &str, path: &str, extra: Vec<Value>) -> Value {
    let mut part = vec![
        json!({"name": "type", "valueCode": kind}),
        json!({"name": "path", "valueString": path}),
    ];
    part.extend(extra);
    json!({"name": "operation", "part": part})
}

fn parameters(operations: Vec<Value>) -> Value {
    json!({"resourceType": "Parameters", "parameter": operations})
}

async fn fhirpath_patch(server: &TestServer, path: &str, body: &Value) -> reqwest::Response {
    server.send_json(Method::PATCH, path, body).await
}

/// FHIRPath Patch (a Parameters body): the five operation types of the specification, the
/// errors of a patch that cannot apply or whose result is invalid, XML, and a transaction entry.
async fn fhirpath_patch_operations(server: &TestServer) {
    let mut start = patient("f-1");
    start["name"] = json!([{"use": "official", "family": "Lee", "given": ["Ann"]}, {"use": "nickname", "given": ["Annie"]}]);
    start["contact"] = json!([{"gender": "female", "name": {"family": "Lee"}}]);
    let created = server.create(&start).await;
    let path = format!("Patient/{}", created["id"].as_str().unwrap());
    let body = parameters(vec![
        operation(
            "add",
            "Patient",
            vec![
                json!({"name": "name", "valueString": "birthDate"}),
                json!({"name": "value", "valueDate": "1970-04-01"}),
            ],
        ),
        operation(
            "add",
            "Patient",
            vec![
                json!({"name": "name", "valueString": "address"}),
                json!({"name": "value", "valueAddress": {"city": "Leeds"}}),
            ],
        ),
        operation(
            "insert",
            "Patient.identifier",
            vec![
                json!({"name": "index", "valueInteger": 0}),
                json!({"name": "value", "valueIdentifier": {"system": "urn:nhs", "value": "943 476 5919"}}),
            ],
        ),
        operation(
            "replace",
            "Patient.name.where(use = 'official').family",
            vec![json!({"name": "value", "valueString": "Li"})],
        ),
        operation("delete", "Patient.contact[0].gender", vec![]),
        operation("delete", "Patient.telecom", vec![]),
        operation(
            "move",
            "Patient.name",
            vec![
                json!({"name": "source", "valueInteger": 1}),
                json!({"name": "destination", "valueInteger": 0}),
            ],
        ),
    ]);
    let patched = json_with_status(fhirpath_patch(server, &path, &body).await, 200).await;
    assert_eq!(patched["meta"]["versionId"], "2");
    assert_eq!(patched["birthDate"], "1970-04-01");
    assert_eq!(patched["address"], json!([{"city": "Leeds"}]));
    assert_eq!(patched["identifier"][0]["system"], "urn:nhs");
    assert_eq!(patched["identifier"][1]["value"], "f-1");
    assert_eq!(patched["name"][0]["use"], "nickname");
    assert_eq!(patched["name"][1]["family"], "Li");
    assert_eq!(patched["contact"], json!([{"name": {"family": "Lee"}}]));
    assert!(patched.get("telecom").is_none());
    let found = json_with_status(
        server.get("Patient?family=li&birthdate=1970-04-01").await,
        200,
    )
    .await;
    assert_eq!(found["total"], 1);

    // A result that is not a valid Patient, a path that matches nothing, a malformed patch:
    // nothing is written.
    let bad_date = parameters(vec![operation(
        "replace",
        "Patient.birthDate",
        vec![json!({"name": "value", "valueString": "spring"})],
    )]);
    outcome(fhirpath_patch(server, &path, &bad_date).await, 422, "value").await;
    let nothing = parameters(vec![operation(
        "replace",
        "Patient.gender",
        vec![json!({"name": "value", "valueCode": "female"})],
    )]);
    let message = outcome(
        fhirpath_patch(server, &path, &nothing).await,
        422,
        "processing",
    )
    .await;
    assert!(message.contains("matches nothing"), "{message}");
    let unknown = parameters(vec![operation("rename", "Patient.name", vec![])]);
    outcome(
        fhirpath_patch(server, &path, &unknown).await,
        400,
        "invalid",
    )
    .await;
    let current = json_with_status(server.get(&path).await, 200).await;
    assert_eq!(current["meta"]["versionId"], "2");

    // XML in.
    let xml = hearth::fhir::json_to_xml(&parameters(vec![operation(
        "replace",
        "Patient.active",
        vec![json!({"name": "value", "valueBoolean": false})],
    )]))
    .unwrap();
    let response = server
        .request(Method::PATCH, &path)
        .header("content-type", "application/fhir+xml")
        .header("accept", "application/fhir+json")
        .body(xml)
        .send()
        .await
        .unwrap();
    let patched = json_with_status(response, 200).await;
    assert_eq!(patched["active"], false);

    // As a transaction entry.
    let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
        "resource": parameters(vec![operation("replace", "Patient.active", vec![json!({"name": "value", "valueBoolean": true})])]),
        "request": {"method": "PATCH", "url": path, "ifMatch": "W/\"3\""}
    }]});
    let response = server
        .client
        .post(&server.base)
        .header("content-type", "application/fhir+json")
        .body(serde_json::to_vec(&transaction).unwrap())
        .send()
        .await
        .unwrap();
    let response = json_with_status(response, 200).await;
    assert_eq!(response["entry"][0]["response"]["etag"], "W/\"4\"");
    assert_eq!(response["entry"][0]["resource"]["active"], true);
}

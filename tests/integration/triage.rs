//! Echo triage over HTTP on both backends: the write hook sets and recomputes deadlines, the
//! triage operations, deadline extensions in the history, bad input, the queries staff use, and
//! the statistics against a hand-computed fixture with a fixed clock.

use std::sync::Arc;

use hearth::clock::ManualClock;
use hearth::config::Overrides;
use reqwest::Method;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{TestDatabase, TestServer, json_with_status, outcome};

const SD: &str = "http://hearth.health/fhir/StructureDefinition/";

fn ext(name: &str) -> String {
    format!("{SD}{name}")
}

/// An echo request, optionally triaged into `pathway` at `triaged`.
fn echo(pathway: Option<&str>, triaged: Option<&str>) -> Value {
    let mut extensions = Vec::new();
    if let Some(code) = pathway {
        extensions.push(json!({"url": ext("triage-pathway"), "valueCoding": {"system": "http://hearth.health/fhir/CodeSystem/triage-pathway", "code": code}}));
    }
    if let Some(t) = triaged {
        extensions.push(json!({"url": ext("triage-time"), "valueDateTime": t}));
    }
    let mut request = json!({
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "40701008"}]},
        "subject": {"reference": "Patient/p1"},
    });
    if !extensions.is_empty() {
        request["extension"] = json!(extensions);
    }
    request
}

/// The value of a top-level extension.
fn value<'a>(resource: &'a Value, name: &str) -> Option<&'a Value> {
    resource["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == ext(name))
        .and_then(|e| {
            e.as_object()?
                .iter()
                .find(|(k, _)| k.starts_with("value"))
                .map(|(_, v)| v)
        })
}

fn deadline(resource: &Value) -> Option<String> {
    value(resource, "triage-deadline")?
        .as_str()
        .map(str::to_owned)
}

/// What `$deadline` says for a start and a pathway.
async fn preview(server: &TestServer, start: &str, pathway: &str) -> String {
    let response = server
        .get(&format!(
            "ServiceRequest/$deadline?start={}&pathway={pathway}",
            start.replace('+', "%2B")
        ))
        .await;
    let parameters = json_with_status(response, 200).await;
    parameters["parameter"][0]["valueInstant"]
        .as_str()
        .expect("deadline")
        .to_owned()
}

async fn operation(
    server: &TestServer,
    id: &str,
    name: &str,
    parameters: Value,
) -> reqwest::Response {
    server
        .post(
            &format!("ServiceRequest/{id}/${name}"),
            &json!({"resourceType": "Parameters", "parameter": parameters}),
        )
        .await
}

async fn create_sets_the_deadline(server: &TestServer) {
    // Red, triaged Friday 23:30: half an hour on Friday, 23.5 hours on Monday.
    let created = server
        .create(&echo(Some("red"), Some("2026-03-06T23:30:00Z")))
        .await;
    assert_eq!(deadline(&created).as_deref(), Some("2026-03-09T23:30:00Z"));
    assert_eq!(
        preview(server, "2026-03-06T23:30:00Z", "red").await,
        "2026-03-09T23:30:00Z"
    );
    assert!(created["authoredOn"].is_string(), "received time recorded");
    assert_eq!(
        value(&created, "triage-pathway").expect("pathway")["display"],
        "RED"
    );

    // A client deadline that disagrees is replaced, with a warning.
    let mut wrong = echo(Some("amber"), Some("2026-03-02T09:00:00+00:00"));
    wrong["extension"]
        .as_array_mut()
        .expect("extensions")
        .push(json!({"url": ext("triage-deadline"), "valueDateTime": "2026-03-02T10:00:00Z"}));
    let response = server
        .request(Method::POST, "ServiceRequest")
        .header("content-type", "application/fhir+json")
        .header("prefer", "return=OperationOutcome")
        .body(wrong.to_string())
        .send()
        .await
        .expect("request");
    assert!(
        response.headers().get("warning").is_some(),
        "Warning header"
    );
    let location = response.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let body = json_with_status(response, 201).await;
    let warning = body["issue"]
        .as_array()
        .expect("issues")
        .iter()
        .find(|i| i["severity"] == "warning")
        .expect("a warning issue");
    assert!(
        warning["diagnostics"]
            .as_str()
            .expect("text")
            .contains("2026-03-02T10:00:00Z"),
        "{warning}"
    );
    let id = location.split('/').nth_back(2).expect("id");
    let stored = json_with_status(server.get(&format!("ServiceRequest/{id}")).await, 200).await;
    assert_eq!(deadline(&stored).as_deref(), Some("2026-03-05T09:00:00Z"));
    assert_eq!(
        preview(server, "2026-03-02T09:00:00Z", "amber").await,
        "2026-03-05T09:00:00Z"
    );
}

async fn pathway_changes_recompute_the_deadline(server: &TestServer) {
    let created = server
        .create(&echo(Some("amber"), Some("2026-03-02T09:00:00Z")))
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(deadline(&created).as_deref(), Some("2026-03-05T09:00:00Z"));

    // Same pathway, same triage time: nothing moves.
    let unchanged = json_with_status(
        server.put(&format!("ServiceRequest/{id}"), &created).await,
        200,
    )
    .await;
    assert_eq!(deadline(&unchanged), deadline(&created));

    // Re-triaged to RED by a PUT that keeps the old triage time: the clock restarts now.
    let mut red = unchanged.clone();
    for e in red["extension"].as_array_mut().expect("extensions") {
        if e["url"] == ext("triage-pathway") {
            e["valueCoding"]["code"] = json!("red");
        }
    }
    let retriaged =
        json_with_status(server.put(&format!("ServiceRequest/{id}"), &red).await, 200).await;
    let triaged_at = value(&retriaged, "triage-time")
        .expect("triage time")
        .as_str()
        .expect("text");
    assert_ne!(triaged_at, "2026-03-02T09:00:00Z");
    assert_eq!(
        deadline(&retriaged).expect("deadline"),
        preview(server, triaged_at, "red").await
    );

    // GREEN declines: revoked, with a reason, and no deadline.
    let declined = json_with_status(
        operation(
            server,
            &id,
            "triage",
            json!([
            {"name": "pathway", "valueCode": "green"},
            {"name": "reason", "valueString": "Outpatient echo is enough"}]),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(declined["status"], "revoked");
    assert!(deadline(&declined).is_none());
    let reason = declined["extension"]
        .as_array()
        .expect("extensions")
        .iter()
        .find(|e| e["url"] == "http://hl7.org/fhir/StructureDefinition/request-statusReason")
        .expect("status reason");
    assert_eq!(
        reason["valueCodeableConcept"]["text"],
        "Outpatient echo is enough"
    );

    // Triaged back to PURPLE through the operation: active again, with a one-hour deadline.
    let purple = json_with_status(
        operation(
            server,
            &id,
            "triage",
            json!([
            {"name": "pathway", "valueCode": "purple"},
            {"name": "sentence", "valueString": "On our way"}]),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(purple["status"], "active");
    assert_eq!(
        value(&purple, "triage-sentence"),
        Some(&json!("On our way"))
    );
    let triaged_at = value(&purple, "triage-time")
        .expect("time")
        .as_str()
        .expect("text");
    assert_eq!(
        deadline(&purple).expect("deadline"),
        preview(server, triaged_at, "purple").await
    );

    // $triage with the same pathway keeps the triage time and the deadline.
    let again = json_with_status(
        operation(
            server,
            &id,
            "triage",
            json!([{"name": "pathway", "valueCode": "purple"}]),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(deadline(&again), deadline(&purple));
}

async fn extensions_are_kept_in_the_history(server: &TestServer) {
    let created = server
        .create(&echo(Some("red"), Some("2026-03-02T09:00:00Z")))
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(deadline(&created).as_deref(), Some("2026-03-03T09:00:00Z"));

    // No reason: 422, and nothing is written.
    let refused = operation(
        server,
        &id,
        "extend-deadline",
        json!([{"name": "hours", "valueDecimal": 8}]),
    )
    .await;
    let diagnostics = outcome(refused, 422, "required").await;
    assert!(diagnostics.contains("reason"), "{diagnostics}");

    let extended = json_with_status(
        operation(
            server,
            &id,
            "extend-deadline",
            json!([
            {"name": "hours", "valueDecimal": 8},
            {"name": "reason", "valueString": "Patient in theatre"}]),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(deadline(&extended).as_deref(), Some("2026-03-03T17:00:00Z"));
    assert_eq!(extended["meta"]["versionId"], "2");
    let record = extended["extension"]
        .as_array()
        .expect("extensions")
        .iter()
        .find(|e| e["url"] == ext("deadline-extension"))
        .expect("deadline-extension");
    let part = |name: &str| {
        record["extension"]
            .as_array()
            .expect("parts")
            .iter()
            .find(|p| p["url"] == name)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(part("previous")["valueDateTime"], "2026-03-03T09:00:00Z");
    assert_eq!(part("deadline")["valueDateTime"], "2026-03-03T17:00:00Z");
    assert_eq!(part("reason")["valueString"], "Patient in theatre");
    assert!(part("when")["valueDateTime"].is_string());

    // To an instant; an earlier one is refused.
    let earlier = operation(
        server,
        &id,
        "extend-deadline",
        json!([
        {"name": "until", "valueInstant": "2026-03-03T12:00:00Z"},
        {"name": "reason", "valueString": "x"}]),
    )
    .await;
    outcome(earlier, 422, "business-rule").await;
    let later = json_with_status(
        operation(
            server,
            &id,
            "extend-deadline",
            json!([
            {"name": "until", "valueInstant": "2026-03-04T12:00:00+01:00"},
            {"name": "reason", "valueString": "Machine broken"}]),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(deadline(&later).as_deref(), Some("2026-03-04T11:00:00Z"));

    // The history keeps every deadline.
    let history = json_with_status(
        server.get(&format!("ServiceRequest/{id}/_history")).await,
        200,
    )
    .await;
    let deadlines: Vec<String> = history["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| deadline(&e["resource"]))
        .collect();
    assert_eq!(
        deadlines,
        [
            "2026-03-04T11:00:00Z",
            "2026-03-03T17:00:00Z",
            "2026-03-03T09:00:00Z"
        ]
    );

    // A PUT that adds an extension without a reason is refused too.
    let mut no_reason = later.clone();
    no_reason["extension"]
        .as_array_mut()
        .expect("extensions")
        .push(json!({
        "url": ext("deadline-extension"),
        "extension": [{"url": "deadline", "valueDateTime": "2026-03-09T12:00:00Z"}]}));
    outcome(
        server
            .put(&format!("ServiceRequest/{id}"), &no_reason)
            .await,
        422,
        "required",
    )
    .await;
    let current = json_with_status(server.get(&format!("ServiceRequest/{id}")).await, 200).await;
    assert_eq!(
        current["meta"]["versionId"], "3",
        "the refused PUT wrote nothing"
    );
}

async fn bad_input_is_refused_and_nothing_is_written(server: &TestServer) {
    let created = server.create(&echo(None, None)).await;
    let id = created["id"].as_str().expect("id").to_owned();
    let unknown = operation(
        server,
        &id,
        "triage",
        json!([{"name": "pathway", "valueCode": "blue"}]),
    )
    .await;
    let d = outcome(unknown, 400, "code-invalid").await;
    assert!(d.contains("blue") && d.contains("purple"), "{d}");
    let no_pathway = server
        .post(
            &format!("ServiceRequest/{id}/$triage"),
            &json!({"resourceType": "Parameters"}),
        )
        .await;
    outcome(no_pathway, 400, "required").await;
    outcome(
        operation(
            server,
            &id,
            "triage",
            json!([{"name": "colour", "valueCode": "red"}]),
        )
        .await,
        400,
        "not-supported",
    )
    .await;
    let not_parameters = server
        .post(
            &format!("ServiceRequest/{id}/$triage"),
            &json!({"resourceType": "Basic", "code": {"text": "x"}}),
        )
        .await;
    assert_eq!(not_parameters.status(), 400);
    // Extending without a deadline in force.
    outcome(
        operation(
            server,
            &id,
            "extend-deadline",
            json!([
            {"name": "hours", "valueDecimal": 2}, {"name": "reason", "valueString": "x"}]),
        )
        .await,
        409,
        "business-rule",
    )
    .await;
    for bad in [json!(-2), json!(10_001)] {
        let response = operation(
            server,
            &id,
            "extend-deadline",
            json!([
            {"name": "hours", "valueDecimal": bad}, {"name": "reason", "valueString": "x"}]),
        )
        .await;
        assert_eq!(response.status(), 400);
    }
    let zoneless = operation(server, &id, "extend-deadline", json!([
        {"name": "until", "valueDateTime": "2026-03-04T12:00:00"}, {"name": "reason", "valueString": "x"}])).await;
    assert_eq!(zoneless.status(), 400);
    outcome(
        operation(
            server,
            "no-such-request",
            "triage",
            json!([{"name": "pathway", "valueCode": "red"}]),
        )
        .await,
        404,
        "not-found",
    )
    .await;
    let current = json_with_status(server.get(&format!("ServiceRequest/{id}")).await, 200).await;
    assert_eq!(current["meta"]["versionId"], "1", "nothing was written");

    // A request that is not an echo cannot be triaged, by operation or by PUT.
    let mut xray = echo(None, None);
    xray["code"] = json!({"coding": [{"system": "http://snomed.info/sct", "code": "399208008"}]});
    let xray = server.create(&xray).await;
    let xray_id = xray["id"].as_str().expect("id");
    outcome(
        operation(
            server,
            xray_id,
            "triage",
            json!([{"name": "pathway", "valueCode": "red"}]),
        )
        .await,
        422,
        "business-rule",
    )
    .await;
    let mut triaged_xray = echo(Some("red"), None);
    triaged_xray["code"] = xray["code"].clone();
    outcome(
        server.post("ServiceRequest", &triaged_xray).await,
        422,
        "business-rule",
    )
    .await;
    // An unknown pathway in a resource; a triage time without a time of day (a valid FHIR
    // dateTime, but no instant) and one without a zone (not a FHIR dateTime at all).
    outcome(
        server
            .post("ServiceRequest", &echo(Some("blue"), None))
            .await,
        422,
        "code-invalid",
    )
    .await;
    outcome(
        server
            .post("ServiceRequest", &echo(Some("red"), Some("2026-03-02")))
            .await,
        422,
        "value",
    )
    .await;
    outcome(
        server
            .post(
                "ServiceRequest",
                &echo(Some("red"), Some("2026-03-02T09:00:00")),
            )
            .await,
        400,
        "value",
    )
    .await;
    // The calculator.
    for query in [
        "start=2026-03-02T09:00:00&pathway=red",
        "start=yesterday&pathway=red",
        "start=2026-03-02T09:00:00Z&pathway=blue",
        "start=2026-03-02T09:00:00Z&hours=-1",
        "start=2026-03-02T09:00:00Z&hours=10001",
        "start=2026-03-02T09:00:00Z",
        "pathway=red",
        "start=2026-03-02T09:00:00Z&pathway=red&hours=2",
    ] {
        let response = server
            .get(&format!("ServiceRequest/$deadline?{query}"))
            .await;
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["resourceType"], "OperationOutcome", "{query}");
    }
    // Operations exist on ServiceRequest only.
    assert_eq!(
        server
            .get("Patient/$deadline?start=2026-03-02T09:00:00Z&hours=1")
            .await
            .status(),
        404
    );
    // A completed request is not re-triaged.
    let mut done = echo(Some("red"), Some("2026-03-02T09:00:00Z"));
    done["status"] = json!("completed");
    let done = server.create(&done).await;
    outcome(
        operation(
            server,
            done["id"].as_str().expect("id"),
            "triage",
            json!([{"name": "pathway", "valueCode": "amber"}]),
        )
        .await,
        409,
        "business-rule",
    )
    .await;
}

async fn completion_and_undo_keep_the_history(server: &TestServer) {
    let created = server
        .create(&echo(Some("red"), Some("2026-03-02T09:00:00Z")))
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    let mut completed = created.clone();
    completed["status"] = json!("completed");
    let completed = json_with_status(
        server
            .put(&format!("ServiceRequest/{id}"), &completed)
            .await,
        200,
    )
    .await;
    assert!(value(&completed, "completion-time").is_some());
    assert_eq!(deadline(&completed), deadline(&created));
    let mut undone = completed.clone();
    undone["status"] = json!("active");
    let undone = json_with_status(
        server.put(&format!("ServiceRequest/{id}"), &undone).await,
        200,
    )
    .await;
    assert!(value(&undone, "completion-time").is_none());
    assert_eq!(
        deadline(&undone),
        deadline(&created),
        "undo keeps the deadline"
    );
    let history = json_with_status(
        server.get(&format!("ServiceRequest/{id}/_history")).await,
        200,
    )
    .await;
    assert_eq!(history["entry"].as_array().expect("entries").len(), 3);
    assert_eq!(
        server
            .request(Method::DELETE, &format!("ServiceRequest/{id}"))
            .send()
            .await
            .expect("delete")
            .status(),
        200
    );
    let history = json_with_status(
        server.get(&format!("ServiceRequest/{id}/_history")).await,
        200,
    )
    .await;
    assert_eq!(history["entry"].as_array().expect("entries").len(), 4);
}

async fn staff_queries_use_ordinary_search(server: &TestServer) {
    let ward = server
        .create(&json!({"resourceType": "Location", "name": "Ward 7 Cardiology"}))
        .await;
    let ward_ref = format!("Location/{}", ward["id"].as_str().expect("id"));
    let mut ids = Vec::new();
    for (pathway, triaged) in [
        ("red", "2026-03-02T09:00:00Z"),
        ("amber", "2026-03-02T09:00:00Z"),
        ("purple", "2030-03-04T09:00:00Z"),
    ] {
        let mut request = echo(Some(pathway), Some(triaged));
        request["extension"]
            .as_array_mut()
            .expect("extensions")
            .push(json!({"url": ext("ward"), "valueReference": {"reference": ward_ref}}));
        ids.push(
            server.create(&request).await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    let search = |query: &'static str| async move {
        let bundle =
            json_with_status(server.get(&format!("ServiceRequest?{query}")).await, 200).await;
        bundle["entry"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["search"]["mode"] == "match")
                    .map(|e| e["resource"]["id"].as_str().unwrap_or_default().to_owned())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    // Overdue now: the 2026 ones; sorted by deadline.
    assert_eq!(
        search("status=active&deadline=lt2027-01-01T00:00:00Z&_sort=deadline").await,
        [ids[0].clone(), ids[1].clone()]
    );
    assert_eq!(search("pathway=purple").await, [ids[2].clone()]);
    assert_eq!(
        search("pathway=http://hearth.health/fhir/CodeSystem/triage-pathway|amber").await,
        [ids[1].clone()]
    );
    assert_eq!(
        search("ward.name=ward 7&_sort=-deadline").await,
        [ids[2].clone(), ids[1].clone(), ids[0].clone()]
    );
    assert_eq!(search("triaged=ge2030-01-01").await, [ids[2].clone()]);

    // The definitions are readable, and the sentence templates are searchable per pathway.
    for path in [
        "CodeSystem/triage-pathway",
        "StructureDefinition/echo-service-request",
        "StructureDefinition/deadline-extension",
        "SearchParameter/ServiceRequest-deadline",
        "OperationDefinition/ServiceRequest-extend-deadline",
    ] {
        assert_eq!(server.get(path).await.status(), 200, "{path}");
    }
    let sentences = json_with_status(
        server
            .get("Basic?code=http://hearth.health/fhir/CodeSystem/hearth-resource-kind|triage-sentence-template&pathway=red")
            .await,
        200,
    )
    .await;
    assert_eq!(sentences["entry"].as_array().map(Vec::len), Some(2));
    let statement = json_with_status(server.get("metadata").await, 200).await;
    let service_request = statement["rest"][0]["resource"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["type"] == "ServiceRequest")
        .expect("ServiceRequest")
        .clone();
    let operations: Vec<&str> = service_request["operation"]
        .as_array()
        .expect("operations")
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert_eq!(
        operations,
        ["triage", "extend-deadline", "deadline", "triage-stats"]
    );
    let params: Vec<&str> = service_request["searchParam"]
        .as_array()
        .expect("params")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for code in ["pathway", "deadline", "triaged", "completed", "ward"] {
        assert!(params.contains(&code), "{code}");
    }
}

async fn a_site_changes_targets_through_the_code_system(server: &TestServer) {
    let mut code_system =
        json_with_status(server.get("CodeSystem/triage-pathway").await, 200).await;
    for concept in code_system["concept"].as_array_mut().expect("concepts") {
        if concept["code"] == "red" {
            concept["property"][0]["valueDecimal"] = json!(8);
        }
    }
    json_with_status(
        server.put("CodeSystem/triage-pathway", &code_system).await,
        200,
    )
    .await;
    let created = server
        .create(&echo(Some("red"), Some("2026-03-02T09:00:00Z")))
        .await;
    assert_eq!(deadline(&created).as_deref(), Some("2026-03-02T17:00:00Z"));
    assert_eq!(
        preview(server, "2026-03-02T09:00:00Z", "red").await,
        "2026-03-02T17:00:00Z"
    );
    // A target the engine cannot use is refused.
    for concept in code_system["concept"].as_array_mut().expect("concepts") {
        if concept["code"] == "red" {
            concept["property"][0]["valueDecimal"] = json!(-3);
        }
    }
    outcome(
        server.put("CodeSystem/triage-pathway", &code_system).await,
        422,
        "business-rule",
    )
    .await;
}

on_both_backends!(
    create_sets_the_deadline,
    pathway_changes_recompute_the_deadline,
    extensions_are_kept_in_the_history,
    bad_input_is_refused_and_nothing_is_written,
    completion_and_undo_keep_the_history,
    staff_queries_use_ordinary_search,
    a_site_changes_targets_through_the_code_system,
);

/// The statistics fixture: "now" is Wednesday 4 March 2026, 12:00 (GMT).
const NOW: &str = "2026-03-04T12:00:00Z";

/// One request of the fixture: authored, pathway, triaged, completed, status.
type Row = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
);

/// The fixture's requests.
const FIXTURE: [Row; 8] = [
    // A: received and triaged today, due tomorrow.
    (
        "2026-03-04T08:00:00Z",
        Some("red"),
        Some("2026-03-04T09:00:00Z"),
        None,
        "active",
    ),
    // B: red since Monday 09:00: overdue since Tuesday 09:00.
    (
        "2026-03-02T08:00:00Z",
        Some("red"),
        Some("2026-03-02T09:00:00Z"),
        None,
        "active",
    ),
    // C: amber, completed after 24 working hours (within 72).
    (
        "2026-03-02T10:00:00Z",
        Some("amber"),
        Some("2026-03-02T10:00:00Z"),
        Some("2026-03-03T10:00:00Z"),
        "completed",
    ),
    // D: purple, completed after 2 working hours (target 1).
    (
        "2026-03-03T10:00:00Z",
        Some("purple"),
        Some("2026-03-03T10:00:00Z"),
        Some("2026-03-03T12:00:00Z"),
        "completed",
    ),
    // E: purple, completed today after half an hour.
    (
        "2026-03-04T10:00:00Z",
        Some("purple"),
        Some("2026-03-04T10:00:00Z"),
        Some("2026-03-04T10:30:00Z"),
        "completed",
    ),
    // F: received today, not yet triaged.
    ("2026-03-04T11:00:00Z", None, None, None, "active"),
    // G: declined a fortnight ago.
    (
        "2026-02-20T09:00:00Z",
        Some("green"),
        Some("2026-02-20T09:00:00Z"),
        None,
        "revoked",
    ),
    // H: amber since last Friday 09:00: 15 + 24 + 24 hours to Tuesday's end, due Wednesday 09:00.
    (
        "2026-02-27T09:00:00Z",
        Some("amber"),
        Some("2026-02-27T09:00:00Z"),
        None,
        "active",
    ),
];

fn part<'a>(parameter: &'a Value, name: &str) -> &'a Value {
    parameter["part"]
        .as_array()
        .and_then(|parts| parts.iter().find(|p| p["name"] == name))
        .map(|p| {
            p.as_object()
                .and_then(|o| o.iter().find(|(k, _)| k.starts_with("value")))
                .map_or(&Value::Null, |(_, v)| v)
        })
        .unwrap_or(&Value::Null)
}

async fn statistics_match_the_hand_computed_fixture(server: &TestServer) {
    for (authored, pathway, triaged, completed, status) in FIXTURE {
        let mut request = echo(pathway, triaged);
        request["authoredOn"] = json!(authored);
        request["status"] = json!(status);
        if let Some(at) = completed {
            request["extension"]
                .as_array_mut()
                .expect("extensions")
                .push(json!({"url": ext("completion-time"), "valueDateTime": at}));
        }
        server.create(&request).await;
    }
    // Not an echo: never counted.
    let mut other = echo(None, None);
    other["code"] = json!({"text": "Chest X-ray"});
    server.create(&other).await;

    let stats =
        json_with_status(server.get("ServiceRequest/$triage-stats?days=3").await, 200).await;
    assert_eq!(stats["resourceType"], "Parameters");
    let parameters = stats["parameter"].as_array().expect("parameters");
    let named = |name: &'static str| parameters.iter().filter(move |p| p["name"] == name);
    assert_eq!(
        named("generated").next().expect("generated")["valueInstant"],
        NOW
    );
    let today = named("today").next().expect("today");
    let figures: Vec<(&str, &Value)> = [
        "date",
        "received",
        "triaged",
        "completed",
        "pending",
        "overdue",
        "untriaged",
    ]
    .into_iter()
    .map(|n| (n, part(today, n)))
    .collect();
    assert_eq!(
        figures,
        [
            ("date", &json!("2026-03-04")),
            ("received", &json!(3)),
            ("triaged", &json!(2)),
            ("completed", &json!(1)),
            ("pending", &json!(4)),
            ("overdue", &json!(2)),
            ("untriaged", &json!(1)),
        ]
    );
    let per_pathway: Vec<(String, i64, i64, i64)> = today["part"]
        .as_array()
        .expect("parts")
        .iter()
        .filter(|p| p["name"] == "pathway")
        .map(|p| {
            (
                part(p, "code").as_str().unwrap_or_default().to_owned(),
                part(p, "triaged").as_i64().unwrap_or(-1),
                part(p, "pending").as_i64().unwrap_or(-1),
                part(p, "overdue").as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        per_pathway,
        [
            ("purple".to_owned(), 1, 0, 0),
            ("red".to_owned(), 1, 2, 1),
            ("amber".to_owned(), 0, 1, 1),
            ("green".to_owned(), 0, 0, 0),
        ]
    );
    let days: Vec<(String, i64, i64, i64)> = named("day")
        .map(|d| {
            (
                part(d, "date").as_str().unwrap_or_default().to_owned(),
                part(d, "received").as_i64().unwrap_or(-1),
                part(d, "triaged").as_i64().unwrap_or(-1),
                part(d, "completed").as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        days,
        [
            ("2026-03-02".to_owned(), 2, 2, 0),
            ("2026-03-03".to_owned(), 1, 1, 2),
            ("2026-03-04".to_owned(), 3, 2, 1),
        ]
    );
    let targets: Vec<(String, Value, Value, Value)> = named("pathway")
        .map(|p| {
            (
                part(p, "code").as_str().unwrap_or_default().to_owned(),
                part(p, "completed").clone(),
                part(p, "medianWorkingHours").clone(),
                part(p, "withinTarget").clone(),
            )
        })
        .collect();
    assert_eq!(
        targets,
        [
            ("purple".to_owned(), json!(2), json!(1.25), json!(0.5)),
            ("red".to_owned(), json!(0), Value::Null, Value::Null),
            ("amber".to_owned(), json!(1), json!(24.0), json!(1.0)),
        ]
    );
    // The overdue search agrees with the statistics.
    let overdue = json_with_status(
        server
            .get(&format!(
                "ServiceRequest?status=active&deadline=lt{NOW}&_summary=count"
            ))
            .await,
        200,
    )
    .await;
    assert_eq!(overdue["total"], 2);
    for bad in ["days=0", "days=91", "days=many", "since=2026-01-01"] {
        let response = server
            .get(&format!("ServiceRequest/$triage-stats?{bad}"))
            .await;
        assert_eq!(response.status(), 400, "{bad}");
    }
}

async fn with_fixed_clock(database: Option<TestDatabase>) {
    let Some(database) = database else { return };
    let now = chrono::DateTime::parse_from_rfc3339(NOW)
        .expect("now")
        .timestamp_millis();
    let server = TestServer::start_with_clock(
        database,
        Overrides::default(),
        Arc::new(ManualClock::at(now)),
    )
    .await;
    statistics_match_the_hand_computed_fixture(&server).await;
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_on_sqlite() {
    with_fixed_clock(Some(TestDatabase::sqlite())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_on_postgres() {
    with_fixed_clock(TestDatabase::postgres()).await;
}

/// The demo loads once, through the write path, with overdue requests on every pathway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_a_living_board() {
    let database = TestDatabase::sqlite();
    let overrides = || Overrides {
        demo: Some(true),
        ..Overrides::default()
    };
    let server = TestServer::start(database, overrides()).await;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let overdue = json_with_status(
        server
            .get(&format!(
                "ServiceRequest?status=active&deadline=lt{now}&_elements=id"
            ))
            .await,
        200,
    )
    .await;
    assert!(
        overdue["entry"].as_array().map_or(0, Vec::len) >= 3,
        "{overdue}"
    );
    let all = json_with_status(server.get("ServiceRequest?_summary=count").await, 200).await;
    assert_eq!(all["total"], 10);
    // A second start on the same data loads nothing twice.
    let database = server.stop().await;
    let server = TestServer::start(database, overrides()).await;
    let all = json_with_status(server.get("ServiceRequest?_summary=count").await, 200).await;
    assert_eq!(all["total"], 10);
    server.finish().await;
}

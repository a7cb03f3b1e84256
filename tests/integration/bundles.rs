//! Transaction and batch Bundles on both backends: the official example, the Synthea patient
//! Bundles as they are, all-or-nothing failure, batch entries that fail alone, the transaction
//! rules (duplicates, conditional references, limits), and racing conditional creates.

use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{TestDatabase, TestServer, json_with_status, outcome};
use hearth::config::Overrides;

on_both_backends!(
    the_official_transaction_example,
    synthea_bundles_keep_their_references,
    a_failing_entry_leaves_no_trace,
    batch_entries_succeed_or_fail_alone,
    transaction_rules,
    racing_conditional_creates_make_one_resource,
);

fn fixture(path: &str) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

async fn post_bundle(server: &TestServer, bundle: &Value) -> reqwest::Response {
    send_bundle(&server.client, &server.base, bundle).await
}

/// POSTs a Bundle to the FHIR base itself (no trailing slash).
async fn send_bundle(client: &reqwest::Client, base: &str, bundle: &Value) -> reqwest::Response {
    client
        .post(base)
        .header("content-type", "application/fhir+json")
        .body(serde_json::to_vec(bundle).unwrap())
        .send()
        .await
        .unwrap()
}

async fn count(server: &TestServer, query: &str) -> u64 {
    let sep = if query.contains('?') { '&' } else { '?' };
    let bundle = json_with_status(
        server.get(&format!("{query}{sep}_summary=count")).await,
        200,
    )
    .await;
    bundle["total"].as_u64().unwrap()
}

fn status(entry: &Value) -> &str {
    entry["response"]["status"].as_str().unwrap_or_default()
}

fn transaction(entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

fn patient(mrn: &str) -> Value {
    json!({"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": mrn}], "name": [{"family": "Okafor"}]})
}

fn post_entry(full_url: &str, resource: Value) -> Value {
    let t = resource["resourceType"].as_str().unwrap().to_owned();
    json!({"fullUrl": full_url, "resource": resource, "request": {"method": "POST", "url": t}})
}

fn observation(subject: &str, code: &str) -> Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": subject}
    })
}

async fn the_official_transaction_example(server: &TestServer) {
    let example = fixture("tests/fixtures/Bundle-bundle-transaction.json");
    // As published, its eighth entry invokes ValueSet/$lookup, which is not an interaction a
    // transaction can hold here: the whole transaction fails and nothing of it is kept.
    let refused = outcome(post_bundle(server, &example).await, 400, "not-supported").await;
    assert!(refused.contains("Bundle.entry[7]"), "{refused}");
    assert_eq!(count(server, "Patient").await, 0);

    // The resources the other entries act on.
    for _ in 0..2 {
        let body = json!({"resourceType": "Patient", "id": "123a", "active": true});
        assert!(
            server
                .put("Patient/123a", &body)
                .await
                .status()
                .is_success()
        );
    }
    for _ in 0..4 {
        let body = json!({"resourceType": "Patient", "id": "12334", "active": true});
        assert!(
            server
                .put("Patient/12334", &body)
                .await
                .status()
                .is_success()
        );
    }
    let body = json!({"resourceType": "Patient", "id": "234", "active": true});
    assert_eq!(server.put("Patient/234", &body).await.status(), 201);
    let matched = server
        .create(&json!({"resourceType": "Patient", "identifier": [{"system": "http:/example.org/fhir/ids", "value": "456456"}]}))
        .await;
    server
        .create(&json!({"resourceType": "Patient", "identifier": [{"system": "urn:other", "value": "123456"}]}))
        .await;

    let mut example = example;
    example["entry"].as_array_mut().unwrap().remove(7);
    let response = json_with_status(post_bundle(server, &example).await, 200).await;
    assert_eq!(response["type"], "transaction-response");
    let entries = response["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 9);
    // POST Patient: created, with a server id.
    assert_eq!(status(&entries[0]), "201 Created");
    let location = entries[0]["response"]["location"].as_str().unwrap();
    assert!(location.contains("/Patient/") && location.ends_with("/_history/1"));
    assert_eq!(entries[0]["resource"]["name"][0]["family"], "Chalmers");
    // POST with ifNoneExist that matches nothing: created.
    assert_eq!(status(&entries[1]), "201 Created");
    // PUT Patient/123: update as create.
    assert_eq!(status(&entries[2]), "201 Created");
    assert_eq!(entries[2]["resource"]["id"], "123");
    // Conditional PUT: updates the one match.
    assert_eq!(status(&entries[3]), "200 OK");
    assert_eq!(entries[3]["resource"]["id"], matched["id"]);
    assert_eq!(entries[3]["response"]["etag"], "W/\"2\"");
    // PUT with ifMatch W/"2": the version after it is 3.
    assert_eq!(status(&entries[4]), "200 OK");
    assert_eq!(entries[4]["response"]["etag"], "W/\"3\"");
    // DELETE and conditional DELETE.
    assert_eq!(status(&entries[5]), "200 OK");
    assert_eq!(status(&entries[6]), "200 OK");
    assert_eq!(server.get("Patient/234").await.status(), 410);
    assert_eq!(count(server, "Patient?identifier=123456").await, 0);
    // GET search after the writes.
    assert_eq!(status(&entries[7]), "200 OK");
    assert_eq!(entries[7]["resource"]["type"], "searchset");
    // Every Patient of the example is a Peter Chalmers: five are live after the deletes.
    assert_eq!(entries[7]["resource"]["total"], 5, "{}", entries[7]);
    // GET with ifNoneMatch of the current version: not modified.
    assert_eq!(status(&entries[8]), "304 Not Modified");
}

async fn synthea_bundles_keep_their_references(server: &TestServer) {
    for name in ["Chet_Thompson_eda17701", "Clemente_Kreiger_1484a42d"] {
        let bundle = fixture(&format!("tests/fixtures/synthea/{name}.json"));
        let sent = bundle["entry"].as_array().unwrap().len();
        let observations = bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["resource"]["resourceType"] == "Observation")
            .count() as u64;
        let response = json_with_status(post_bundle(server, &bundle).await, 200).await;
        let entries = response["entry"].as_array().unwrap();
        assert_eq!(entries.len(), sent);
        assert!(entries.iter().all(|e| status(e) == "201 Created"), "{name}");
        let patient = entries
            .iter()
            .find(|e| e["resource"]["resourceType"] == "Patient")
            .unwrap();
        let patient_id = patient["resource"]["id"].as_str().unwrap();
        // Every reference to another entry now names the stored resource.
        let text = serde_json::to_string(&response).unwrap();
        assert!(!text.contains("\"reference\":\"urn:uuid:"), "{name}");
        assert_eq!(
            count(server, &format!("Observation?patient=Patient/{patient_id}")).await,
            observations,
            "{name}"
        );
        // Chained through the resolved reference.
        let family = patient["resource"]["name"][0]["family"].as_str().unwrap();
        assert_eq!(
            count(
                server,
                &format!("Observation?subject:Patient.family={family}")
            )
            .await,
            observations
        );
        // What is stored is what was answered.
        let location = patient["response"]["location"].as_str().unwrap();
        let path = location.split("/fhir/").nth(1).unwrap();
        let stored = json_with_status(server.get(path).await, 200).await;
        assert_eq!(stored, patient["resource"]);
    }
}

async fn a_failing_entry_leaves_no_trace(server: &TestServer) {
    let mut entries = vec![post_entry(
        "urn:uuid:0f3c0bd6-5b36-4c57-9a4e-6c7a6e3d0001",
        patient("t-1"),
    )];
    for n in 1..60 {
        let mut obs = observation(
            "urn:uuid:0f3c0bd6-5b36-4c57-9a4e-6c7a6e3d0001",
            &format!("{n}-1"),
        );
        if n == 49 {
            obs["effectiveDateTime"] = json!("last tuesday");
        }
        entries.push(post_entry(
            &format!("urn:uuid:9b1d1e5c-0000-4000-8000-{n:012}"),
            obs,
        ));
    }
    let bundle = transaction(entries);
    let response = post_bundle(server, &bundle).await;
    let body = json_with_status(response, 400).await;
    assert_eq!(body["resourceType"], "OperationOutcome");
    let issue = &body["issue"][0];
    assert!(
        issue["diagnostics"]
            .as_str()
            .unwrap()
            .contains("Bundle.entry[49]"),
        "{body}"
    );
    assert!(
        issue["expression"][0]
            .as_str()
            .unwrap()
            .starts_with("Bundle.entry[49]"),
        "{body}"
    );
    assert_eq!(count(server, "Patient").await, 0);
    assert_eq!(count(server, "Observation").await, 0);

    // A failure found while writing (a stale ifMatch on the last entry) undoes the earlier
    // writes of the same transaction too.
    let existing = server.create(&patient("t-2")).await;
    let id = existing["id"].as_str().unwrap();
    let mut changed = patient("t-2");
    changed["id"] = json!(id);
    changed["active"] = json!(false);
    let bundle = transaction(vec![
        post_entry(
            "urn:uuid:5d1f3c38-1111-4111-8111-000000000001",
            patient("t-3"),
        ),
        post_entry(
            "urn:uuid:5d1f3c38-1111-4111-8111-000000000002",
            observation("urn:uuid:5d1f3c38-1111-4111-8111-000000000001", "1-1"),
        ),
        json!({"resource": changed, "request": {"method": "PUT", "url": format!("Patient/{id}"), "ifMatch": "W/\"7\""}}),
    ]);
    let diagnostics = outcome(post_bundle(server, &bundle).await, 412, "conflict").await;
    assert!(diagnostics.contains("Bundle.entry[2]"), "{diagnostics}");
    assert_eq!(count(server, "Patient").await, 1);
    assert_eq!(count(server, "Observation").await, 0);
    for (t, versions) in [("Patient", 1), ("Observation", 0)] {
        let history = json_with_status(server.get(&format!("{t}/_history")).await, 200).await;
        assert_eq!(
            history["entry"].as_array().map_or(0, Vec::len),
            versions,
            "{t}"
        );
    }
}

async fn batch_entries_succeed_or_fail_alone(server: &TestServer) {
    let existing = server.create(&patient("b-1")).await;
    let id = existing["id"].as_str().unwrap();
    let bad = json!({"resourceType": "Patient", "birthDate": "someday"});
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": format!("Patient/{id}")}},
        {"resource": patient("b-2"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": bad, "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": "Patient/does-not-exist"}},
        {"resource": {"resourceType": "Patient", "id": "b3", "active": true}, "request": {"method": "PUT", "url": "Patient/b3"}},
        {"resource": patient("b-4")},
        {"request": {"method": "DELETE", "url": format!("Patient/{id}")}},
        {"request": {"method": "GET", "url": "Patient?identifier=urn:mrn|b-2"}},
        {"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json",
            "data": "W3sib3AiOiAiYWRkIiwgInBhdGgiOiAiL2dlbmRlciIsICJ2YWx1ZSI6ICJmZW1hbGUifV0="},
         "request": {"method": "PATCH", "url": "Patient/b3"}},
        {"resource": patient("b-5"), "request": {"method": "POST", "url": "Patient/b5"}}
    ]});
    let response = json_with_status(post_bundle(server, &bundle).await, 200).await;
    assert_eq!(response["type"], "batch-response");
    let entries = response["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 10);
    // The read runs after the delete (the processing order), so it sees the tombstone.
    assert_eq!(status(&entries[0]), "410 Gone");
    assert_eq!(status(&entries[1]), "201 Created");
    assert!(
        entries[1]["fullUrl"]
            .as_str()
            .unwrap()
            .contains("/Patient/")
    );
    assert_eq!(status(&entries[2]), "400 Bad Request");
    assert_eq!(
        entries[2]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    assert_eq!(status(&entries[3]), "404 Not Found");
    assert_eq!(status(&entries[4]), "201 Created");
    assert_eq!(status(&entries[5]), "400 Bad Request");
    assert!(
        entries[5]["response"]["outcome"]["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("entry.request")
    );
    assert_eq!(status(&entries[6]), "200 OK");
    assert_eq!(entries[7]["resource"]["total"], 1);
    assert_eq!(status(&entries[8]), "200 OK");
    assert_eq!(entries[8]["resource"]["gender"], "female");
    assert_eq!(entries[8]["response"]["etag"], "W/\"2\"");
    // No interaction POSTs to an instance: a 405, naming the methods the URL takes.
    assert_eq!(status(&entries[9]), "405 Method Not Allowed");
    let issue = &entries[9]["response"]["outcome"]["issue"][0];
    assert_eq!(issue["code"], "not-supported");
    let diagnostics = issue["diagnostics"].as_str().unwrap();
    assert!(
        diagnostics.contains("(allowed: ") && diagnostics.contains("PUT"),
        "{diagnostics}"
    );
    // What succeeded is stored.
    assert_eq!(count(server, "Patient?identifier=urn:mrn|b-2").await, 1);
    assert_eq!(server.get("Patient/b3").await.status(), 200);
}

async fn transaction_rules(server: &TestServer) {
    // Not a transaction or batch.
    let collection = json!({"resourceType": "Bundle", "type": "collection", "entry": []});
    outcome(post_bundle(server, &collection).await, 400, "invalid").await;
    outcome(post_bundle(server, &patient("x")).await, 400, "invalid").await;

    // The same fullUrl twice; the same resource twice.
    let twice = transaction(vec![
        post_entry(
            "urn:uuid:aa000000-0000-4000-8000-000000000001",
            patient("d-1"),
        ),
        post_entry(
            "urn:uuid:aa000000-0000-4000-8000-000000000001",
            patient("d-2"),
        ),
    ]);
    outcome(post_bundle(server, &twice).await, 400, "duplicate").await;
    let same = transaction(vec![
        json!({"resource": {"resourceType": "Patient", "id": "same"}, "request": {"method": "PUT", "url": "Patient/same"}}),
        json!({"request": {"method": "DELETE", "url": "Patient/same"}}),
    ]);
    outcome(post_bundle(server, &same).await, 400, "duplicate").await;
    assert_eq!(count(server, "Patient").await, 0);

    // Conditional references resolve to the one match, or fail the transaction.
    let target = server.create(&patient("c-1")).await;
    let linked = transaction(vec![post_entry(
        "urn:uuid:bb000000-0000-4000-8000-000000000001",
        observation("Patient?identifier=urn:mrn|c-1", "2-2"),
    )]);
    let response = json_with_status(post_bundle(server, &linked).await, 200).await;
    assert_eq!(
        response["entry"][0]["resource"]["subject"]["reference"],
        format!("Patient/{}", target["id"].as_str().unwrap())
    );
    let dangling = transaction(vec![post_entry(
        "urn:uuid:bb000000-0000-4000-8000-000000000002",
        observation("Patient?identifier=urn:mrn|nobody", "2-2"),
    )]);
    outcome(post_bundle(server, &dangling).await, 412, "not-found").await;

    // ifNoneExist that matches: nothing is created, the match answers.
    let again = transaction(vec![
        json!({"fullUrl": "urn:uuid:bb000000-0000-4000-8000-000000000003",
        "resource": patient("c-1"),
        "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:mrn|c-1"}}),
        post_entry(
            "urn:uuid:bb000000-0000-4000-8000-000000000004",
            observation("urn:uuid:bb000000-0000-4000-8000-000000000003", "3-3"),
        ),
    ]);
    let response = json_with_status(post_bundle(server, &again).await, 200).await;
    assert_eq!(status(&response["entry"][0]), "200 OK");
    assert_eq!(response["entry"][0]["resource"]["id"], target["id"]);
    assert_eq!(
        response["entry"][1]["resource"]["subject"]["reference"],
        format!("Patient/{}", target["id"].as_str().unwrap())
    );
    assert_eq!(count(server, "Patient?identifier=urn:mrn|c-1").await, 1);

    // PATCH inside a transaction, and Prefer: return=minimal.
    let patch = json!([{"op": "replace", "path": "/name/0/family", "value": "Adeyemi"}]);
    let data = base64_encode(&serde_json::to_vec(&patch).unwrap());
    let patched = transaction(vec![json!({
        "resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": data},
        "request": {"method": "PATCH", "url": format!("Patient/{}", target["id"].as_str().unwrap()), "ifMatch": "W/\"1\""}
    })]);
    let response = server
        .client
        .post(&server.base)
        .header("content-type", "application/fhir+json")
        .header("prefer", "return=minimal")
        .body(serde_json::to_vec(&patched).unwrap())
        .send()
        .await
        .unwrap();
    let response = json_with_status(response, 200).await;
    assert_eq!(status(&response["entry"][0]), "200 OK");
    assert!(response["entry"][0].get("resource").is_none());
    assert_eq!(response["entry"][0]["response"]["etag"], "W/\"2\"");
    assert_eq!(count(server, "Patient?family=adeyemi").await, 1);

    // XML in, XML out.
    let xml = hearth::fhir::json_to_xml(&transaction(vec![post_entry(
        "urn:uuid:cc000000-0000-4000-8000-000000000001",
        patient("x-1"),
    )]))
    .unwrap();
    let response = server
        .client
        .post(&server.base)
        .header("content-type", "application/fhir+xml")
        .header("accept", "application/fhir+xml")
        .body(xml)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("<type value=\"transaction-response\"/>"),
        "{text}"
    );
    assert!(text.contains("<status value=\"201 Created\"/>"), "{text}");

    // An operation is not an interaction a transaction holds.
    let operation = transaction(vec![
        json!({"resource": {"resourceType": "Parameters"}, "request": {"method": "POST", "url": "ServiceRequest/$triage-stats"}}),
    ]);
    outcome(post_bundle(server, &operation).await, 400, "not-supported").await;
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn racing_conditional_creates_make_one_resource(server: &TestServer) {
    let bundle = transaction(vec![
        json!({"fullUrl": "urn:uuid:dd000000-0000-4000-8000-000000000001",
            "resource": patient("race-1"),
            "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:mrn|race-1"}}),
        post_entry(
            "urn:uuid:dd000000-0000-4000-8000-000000000002",
            observation("urn:uuid:dd000000-0000-4000-8000-000000000001", "4-4"),
        ),
    ]);
    let mut sends = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, base, bundle) = (server.client.clone(), server.base.clone(), bundle.clone());
        sends.spawn(async move { send_bundle(&client, &base, &bundle).await.status().as_u16() });
    }
    let statuses = sends.join_all().await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(count(server, "Patient?identifier=urn:mrn|race-1").await, 1);
    assert_eq!(count(server, "Observation?code=4-4").await, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_over_the_entry_limit_is_413() {
    let overrides = Overrides {
        max_bundle_entries: Some(3),
        ..Overrides::default()
    };
    let server = TestServer::start(TestDatabase::sqlite(), overrides).await;
    let entries = (0..4)
        .map(|n| {
            post_entry(
                &format!("urn:uuid:ee000000-0000-4000-8000-00000000000{n}"),
                patient("l"),
            )
        })
        .collect();
    let diagnostics = outcome(
        post_bundle(&server, &transaction(entries)).await,
        413,
        "too-costly",
    )
    .await;
    assert!(diagnostics.contains("at most 3"), "{diagnostics}");
    assert_eq!(count(&server, "Patient").await, 0);
    server.finish().await;
}

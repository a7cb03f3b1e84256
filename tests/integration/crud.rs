//! Create, read, vread, update, delete and their headers.

use reqwest::Method;
use serde_json::json;

use crate::on_both_backends;
use crate::support::{TestServer, json_with_status, outcome};

on_both_backends!(
    create_assigns_id_and_headers,
    read_and_conditional_read,
    update_versions_and_if_match,
    update_as_create_and_restore_after_delete,
    delete_is_a_tombstone,
    prefer_return_variants,
);

async fn create_assigns_id_and_headers(s: &TestServer) {
    let response = s
        .post(
            "Patient",
            &json!({"resourceType": "Patient", "id": "mine", "gender": "female",
        "meta": {"versionId": "7", "tag": [{"system": "http://t", "code": "x"}]}}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert!(response.headers().contains_key("last-modified"));
    let body = json_with_status(response, 201).await;
    let id = body["id"].as_str().unwrap();
    assert_ne!(id, "mine", "a client-supplied id is ignored on create");
    assert_eq!(location, format!("{}/Patient/{id}/_history/1", s.base));
    assert_eq!(etag, "W/\"1\"");
    assert_eq!(body["meta"]["versionId"], "1");
    assert_eq!(
        body["meta"]["tag"][0]["code"], "x",
        "client meta other than versionId/lastUpdated is kept"
    );
    assert_eq!(body["gender"], "female");
}

async fn read_and_conditional_read(s: &TestServer) {
    // Raw text, so that the decimal 72.50 reaches the server with its trailing zero.
    let body: serde_json::Value = serde_json::from_str(
        r#"{"resourceType": "Observation", "status": "final",
        "code": {"text": "hr"}, "valueQuantity": {"value": 72.50, "unit": "bpm"}}"#,
    )
    .unwrap();
    let created = s.create(&body).await;
    let id = created["id"].as_str().unwrap();
    let response = s.get(&format!("Observation/{id}")).await;
    assert_eq!(response.headers()["etag"], "W/\"1\"");
    let last_modified = response.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_owned();
    let text = response.text().await.unwrap();
    assert!(
        text.contains("\"value\":72.50"),
        "decimal precision is kept: {text}"
    );
    let read: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(read, created);

    let not_modified = s
        .request(Method::GET, &format!("Observation/{id}"))
        .header("if-none-match", "W/\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    assert_eq!(not_modified.headers()["etag"], "W/\"1\"");
    let modified = s
        .request(Method::GET, &format!("Observation/{id}"))
        .header("if-none-match", "W/\"0\"")
        .send()
        .await
        .unwrap();
    assert_eq!(modified.status(), 200);
    let since = s
        .request(Method::GET, &format!("Observation/{id}"))
        .header("if-modified-since", &last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(since.status(), 304);
    let old = s
        .request(Method::GET, &format!("Observation/{id}"))
        .header("if-modified-since", "Mon, 01 Jan 2001 00:00:00 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 200);

    let vread = json_with_status(s.get(&format!("Observation/{id}/_history/1")).await, 200).await;
    assert_eq!(vread, created);
    outcome(
        s.get(&format!("Observation/{id}/_history/2")).await,
        404,
        "not-found",
    )
    .await;
    outcome(
        s.get(&format!("Observation/{id}/_history/x")).await,
        404,
        "not-found",
    )
    .await;
    outcome(s.get("Observation/does-not-exist").await, 404, "not-found").await;
}

async fn update_versions_and_if_match(s: &TestServer) {
    let created = s
        .create(&json!({"resourceType": "Patient", "active": true}))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let update = json!({"resourceType": "Patient", "id": id, "active": false});
    let response = s.put(&format!("Patient/{id}"), &update).await;
    assert_eq!(response.headers()["etag"], "W/\"2\"");
    let v2 = json_with_status(response, 200).await;
    assert_eq!(v2["meta"]["versionId"], "2");
    assert_eq!(v2["active"], false);

    let stale = s
        .request(Method::PUT, &format!("Patient/{id}"))
        .header("content-type", "application/fhir+json")
        .header("if-match", "W/\"1\"")
        .body(update.to_string())
        .send()
        .await
        .unwrap();
    outcome(stale, 412, "conflict").await;
    let fresh = s
        .request(Method::PUT, &format!("Patient/{id}"))
        .header("content-type", "application/fhir+json")
        .header("if-match", "W/\"2\"")
        .body(update.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(json_with_status(fresh, 200).await["meta"]["versionId"], "3");
    let v1 = json_with_status(s.get(&format!("Patient/{id}/_history/1")).await, 200).await;
    assert_eq!(v1["active"], true, "earlier versions are kept");
}

async fn update_as_create_and_restore_after_delete(s: &TestServer) {
    let body = json!({"resourceType": "Practitioner", "id": "dr-who", "name": [{"family": "Who"}]});
    let response = s.put("Practitioner/dr-who", &body).await;
    assert_eq!(response.status(), 201);
    assert_eq!(
        response.headers()["location"],
        format!("{}/Practitioner/dr-who/_history/1", s.base).as_str()
    );
    let deleted = s
        .request(Method::DELETE, "Practitioner/dr-who")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    outcome(s.get("Practitioner/dr-who").await, 410, "deleted").await;
    let restored = s.put("Practitioner/dr-who", &body).await;
    assert_eq!(restored.status(), 201, "a PUT restores a deleted resource");
    let restored = json_with_status(restored, 201).await;
    assert_eq!(restored["meta"]["versionId"], "3");
    assert_eq!(
        json_with_status(s.get("Practitioner/dr-who").await, 200).await,
        restored
    );
    let before_delete = json_with_status(s.get("Practitioner/dr-who/_history/1").await, 200).await;
    assert_eq!(before_delete["name"][0]["family"], "Who");
    let history = json_with_status(s.get("Practitioner/dr-who/_history").await, 200).await;
    let statuses: Vec<&str> = history["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["201 Created", "204 No Content", "201 Created"],
        "the restore created the resource again"
    );
}

async fn delete_is_a_tombstone(s: &TestServer) {
    let created = s
        .create(&json!({"resourceType": "Condition", "subject": {"reference": "Patient/x"}}))
        .await;
    let id = created["id"].as_str().unwrap();
    let stale = s
        .request(Method::DELETE, &format!("Condition/{id}"))
        .header("if-match", "W/\"9\"")
        .send()
        .await
        .unwrap();
    outcome(stale, 412, "conflict").await;
    let first = s
        .request(Method::DELETE, &format!("Condition/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["etag"], "W/\"2\"");
    let again = s
        .request(Method::DELETE, &format!("Condition/{id}"))
        .header("prefer", "return=minimal")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 204, "deleting a deleted resource succeeds");
    assert_eq!(
        again.headers()["etag"],
        "W/\"2\"",
        "and writes no new version"
    );
    let gone = outcome(s.get(&format!("Condition/{id}")).await, 410, "deleted").await;
    assert!(gone.contains("deleted"));
    outcome(
        s.get(&format!("Condition/{id}/_history/2")).await,
        410,
        "deleted",
    )
    .await;
    assert_eq!(
        s.get(&format!("Condition/{id}/_history/1")).await.status(),
        200
    );
    let never = s
        .request(Method::DELETE, "Condition/never-existed")
        .send()
        .await
        .unwrap();
    assert_eq!(never.status(), 200);
}

async fn prefer_return_variants(s: &TestServer) {
    let body = json!({"resourceType": "Organization", "name": "Acme"});
    let minimal = s
        .request(Method::POST, "Organization")
        .header("content-type", "application/fhir+json")
        .header("prefer", "return=minimal")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(minimal.status(), 201);
    assert!(minimal.headers().contains_key("location"));
    assert!(minimal.text().await.unwrap().is_empty());
    let oo = s
        .request(Method::POST, "Organization")
        .header("content-type", "application/fhir+json")
        .header("prefer", "return=OperationOutcome")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let oo = json_with_status(oo, 201).await;
    assert_eq!(oo["resourceType"], "OperationOutcome");
    assert_eq!(oo["issue"][0]["severity"], "information");
}

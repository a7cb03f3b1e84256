//! JSON and XML in and out, `_format`, `_pretty`, `_summary` and `_elements`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{TestServer, json_with_status, outcome};

on_both_backends!(
    xml_in_and_out,
    pretty_and_format_parameter,
    summary_and_elements
);

async fn xml_in_and_out(s: &TestServer) {
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<Patient xmlns="http://hl7.org/fhir">
  <active value="true"/>
  <name><family value="Ng"/><given value="Mai"/></name>
  <birthDate value="1980-02-29"/>
</Patient>"#;
    let created = s
        .request(Method::POST, "Patient")
        .header("content-type", "application/fhir+xml")
        .header("accept", "application/fhir+xml")
        .body(xml)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(
        created.headers()["content-type"],
        "application/fhir+xml; charset=utf-8"
    );
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let text = created.text().await.unwrap();
    assert!(
        text.contains("<family value=\"Ng\"/>") && text.contains("<versionId value=\"1\"/>"),
        "{text}"
    );
    let id = location.split('/').rev().nth(2).unwrap();
    let json = json_with_status(s.get(&format!("Patient/{id}")).await, 200).await;
    assert_eq!(json["name"][0]["given"][0], "Mai");
    assert_eq!(json["birthDate"], "1980-02-29");
    let error = s
        .request(Method::GET, "Patient/nope")
        .header("accept", "application/fhir+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(error.status(), 404);
    let text = error.text().await.unwrap();
    assert!(
        text.contains("<OperationOutcome") && text.contains("not-found"),
        "errors follow the negotiated format: {text}"
    );
}

async fn pretty_and_format_parameter(s: &TestServer) {
    let created = s
        .create(&json!({"resourceType": "Patient", "active": true}))
        .await;
    let id = created["id"].as_str().unwrap();
    let pretty = s
        .get(&format!("Patient/{id}?_pretty=true"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        pretty.contains("\n  \"resourceType\": \"Patient\""),
        "{pretty}"
    );
    let xml = s
        .request(Method::GET, &format!("Patient/{id}?_format=xml"))
        .header("accept", "application/fhir+json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        xml.headers()["content-type"],
        "application/fhir+xml; charset=utf-8",
        "_format wins over Accept"
    );
    let json = s
        .request(
            Method::GET,
            &format!("Patient/{id}?_format=application/fhir%2Bjson"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        json.headers()["content-type"],
        "application/fhir+json; charset=utf-8"
    );
    let metadata = s
        .request(Method::GET, "metadata")
        .header("accept", "application/xml")
        .send()
        .await
        .unwrap();
    assert!(
        metadata
            .text()
            .await
            .unwrap()
            .contains("<CapabilityStatement")
    );
}

fn has_subsetted_tag(resource: &Value) -> bool {
    resource["meta"]["tag"]
        .as_array()
        .is_some_and(|tags| tags.iter().any(|t| t["code"] == "SUBSETTED"))
}

async fn summary_and_elements(s: &TestServer) {
    let created = s.create(&json!({"resourceType": "Patient", "text": {"status": "generated",
        "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Ann</div>"}, "active": true, "gender": "female",
        "maritalStatus": {"text": "single"}, "photo": [{"contentType": "image/png", "data": "AAAA"}]})).await;
    let id = created["id"].as_str().unwrap();
    let summary = json_with_status(s.get(&format!("Patient/{id}?_summary=true")).await, 200).await;
    assert_eq!(summary["gender"], "female");
    assert!(
        summary.get("photo").is_none()
            && summary.get("maritalStatus").is_none()
            && summary.get("text").is_none()
    );
    assert!(has_subsetted_tag(&summary));
    let text = json_with_status(s.get(&format!("Patient/{id}?_summary=text")).await, 200).await;
    assert!(text.get("text").is_some() && text.get("gender").is_none());
    let data = json_with_status(s.get(&format!("Patient/{id}?_summary=data")).await, 200).await;
    assert!(data.get("text").is_none() && data.get("photo").is_some());
    let elements = json_with_status(
        s.get(&format!("Patient/{id}?_elements=gender,photo")).await,
        200,
    )
    .await;
    assert_eq!(elements["gender"], "female");
    assert!(elements.get("photo").is_some() && elements.get("active").is_none());
    assert!(has_subsetted_tag(&elements));
    let whole = json_with_status(s.get(&format!("Patient/{id}?_summary=false")).await, 200).await;
    assert_eq!(whole, created);
    outcome(
        s.get(&format!("Patient/{id}?_summary=everything")).await,
        400,
        "value",
    )
    .await;
}

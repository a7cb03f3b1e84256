//! Round trip of the official R4 examples (tests/fixtures/r4-examples): create, then read gives
//! the same content apart from `id` and `meta.versionId`/`meta.lastUpdated`; the same again
//! through XML.

use reqwest::Method;
use serde_json::Value;

use crate::on_both_backends;
use crate::support::{TestServer, json_with_status};

on_both_backends!(official_examples_round_trip);

/// The example without the fields the server owns.
fn comparable(mut resource: Value) -> Value {
    if let Some(object) = resource.as_object_mut() {
        object.shift_remove("id");
        if let Some(meta) = object.get_mut("meta").and_then(Value::as_object_mut) {
            meta.shift_remove("versionId");
            meta.shift_remove("lastUpdated");
            if meta.is_empty() {
                object.shift_remove("meta");
            }
        }
    }
    resource
}

async fn official_examples_round_trip(s: &TestServer) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/r4-examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 200, "fixtures are present");
    let mut types = std::collections::BTreeSet::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let example: Value = serde_json::from_str(&text).unwrap();
        let t = example["resourceType"].as_str().unwrap().to_owned();
        types.insert(t.clone());
        let name = path.file_name().unwrap().to_string_lossy().into_owned();

        let created = s
            .request(Method::POST, &t)
            .header("content-type", "application/fhir+json")
            .body(text.clone())
            .send()
            .await
            .unwrap();
        let status = created.status();
        let body = created.text().await.unwrap();
        assert_eq!(status, 201, "{name}: {body}");
        let created: Value = serde_json::from_str(&body).unwrap();
        let id = created["id"].as_str().unwrap().to_owned();
        let read = json_with_status(s.get(&format!("{t}/{id}")).await, 200).await;
        assert_eq!(
            comparable(read),
            comparable(example.clone()),
            "{name}: JSON round trip"
        );

        let xml = s
            .request(Method::GET, &format!("{t}/{id}"))
            .header("accept", "application/fhir+xml")
            .send()
            .await
            .unwrap();
        let xml = xml.text().await.unwrap();
        let again = s
            .request(Method::POST, &t)
            .header("content-type", "application/fhir+xml")
            .body(xml.clone())
            .send()
            .await
            .unwrap();
        let status = again.status();
        let body = again.text().await.unwrap();
        assert_eq!(status, 201, "{name}: XML create failed: {body}\n{xml}");
        let again: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            comparable(again),
            comparable(example),
            "{name}: XML round trip"
        );
    }
    assert_eq!(types.len(), 14, "{types:?}");
}

//! The CapabilityStatement (snapshot), the OpenAPI document and the docs page.

use serde_json::Value;

use crate::support::{TestServer, json_with_status};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capability_statement_matches_the_snapshot() {
    let s = TestServer::sqlite().await;
    let response = s
        .client
        .get(format!("{}/metadata", s.base))
        .send()
        .await
        .unwrap();
    let mut statement = json_with_status(response, 200).await;
    assert_eq!(statement["date"].as_str().map(|d| d.len()), Some(24));
    assert_eq!(statement["implementation"]["url"], s.base);
    statement["date"] = Value::from("[start time]");
    statement["implementation"]["url"] = Value::from("[base]");
    statement["url"] = Value::from("[base]/metadata");
    statement["software"]["version"] = Value::from("[version]");
    // The server's address varies from run to run: the snapshot shows it as [root].
    let text = statement.to_string().replace(&s.root(), "[root]");
    statement = serde_json::from_str(&text).unwrap();
    let resources = statement["rest"][0]["resource"].as_array().unwrap().clone();
    assert_eq!(resources.len(), 146, "every R4 resource type");
    for resource in &resources {
        assert!(
            resource["searchParam"]
                .as_array()
                .is_some_and(|p| p.len() >= 2),
            "{}",
            resource["type"]
        );
    }
    // The snapshot keeps one resource type in full; the drift test in `search_drift` checks
    // every listed parameter.
    let patient = resources
        .iter()
        .find(|r| r["type"] == "Patient")
        .unwrap()
        .clone();
    statement["rest"][0]["resource"] = Value::Array(vec![patient]);
    insta::assert_json_snapshot!(statement);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_every_fhir_route_and_docs_are_served_locally() {
    let s = TestServer::sqlite().await;
    let openapi = json_with_status(
        s.client
            .get(format!("{}/openapi.json", s.root()))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let paths: Vec<&str> = openapi["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for route in [
        "/fhir/metadata",
        "/fhir/_history",
        "/fhir/{type}",
        "/fhir/{type}/_history",
        "/fhir/{type}/{id}",
        "/fhir/{type}/{id}/_history",
        "/fhir/{type}/{id}/_history/{vid}",
        "/fhir/{type}/_search",
        "/fhir/_search",
        "/fhir/{compartment}/{id}/{type}",
        "/fhir/$reindex",
        "/fhir/ServiceRequest/{id}/$triage",
        "/fhir/ServiceRequest/{id}/$extend-deadline",
        "/fhir/ServiceRequest/$deadline",
        "/fhir/ServiceRequest/$triage-stats",
        "/fhir/.well-known/smart-configuration",
        "/.well-known/openid-configuration",
        "/auth/authorize",
        "/auth/token",
        "/auth/introspect",
        "/auth/revoke",
        "/auth/jwks",
    ] {
        assert!(paths.contains(&route), "{route} missing from {paths:?}");
    }
    assert_eq!(
        openapi["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let docs = s
        .client
        .get(format!("{}/docs/", s.root()))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap();
    assert!(
        html.contains("swagger") && !html.contains("https://"),
        "docs assets are local"
    );
    let script = s
        .client
        .get(format!("{}/docs/swagger-ui-bundle.js", s.root()))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(
        s.client
            .get(format!("{}/healthz", s.root()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    s.finish().await;
}

//! History at instance, type and system level, with `_since`, `_at`, `_count` and paging.

use reqwest::Method;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{TestServer, json_with_status, link, outcome};

on_both_backends!(
    instance_history_lists_every_version,
    paging_survives_new_writes,
    since_and_at
);

fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"].as_array().cloned().unwrap_or_default()
}

async fn instance_history_lists_every_version(s: &TestServer) {
    let created = s
        .create(&json!({"resourceType": "Task", "status": "requested", "intent": "order"}))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    s.put(
        &format!("Task/{id}"),
        &json!({"resourceType": "Task", "id": id, "status": "completed", "intent": "order"}),
    )
    .await;
    s.request(Method::DELETE, &format!("Task/{id}"))
        .send()
        .await
        .unwrap();
    let bundle = json_with_status(s.get(&format!("Task/{id}/_history")).await, 200).await;
    assert_eq!(bundle["type"], "history");
    let e = entries(&bundle);
    assert_eq!(e.len(), 3);
    assert_eq!(e[0]["request"]["method"], "DELETE");
    assert!(e[0].get("resource").is_none());
    assert_eq!(e[0]["response"]["etag"], "W/\"3\"");
    assert_eq!(e[1]["request"]["method"], "PUT");
    assert_eq!(e[1]["resource"]["status"], "completed");
    assert_eq!(e[1]["response"]["status"], "200 OK");
    assert_eq!(e[2]["request"], json!({"method": "POST", "url": "Task"}));
    assert_eq!(e[2]["response"]["status"], "201 Created");
    assert_eq!(e[2]["fullUrl"], format!("{}/Task/{id}", s.base));
    assert!(
        link(&bundle, "self")
            .unwrap()
            .ends_with(&format!("/fhir/Task/{id}/_history"))
    );
    outcome(s.get("Task/unknown/_history").await, 404, "not-found").await;
    let xml = s
        .request(Method::GET, &format!("Task/{id}/_history"))
        .header("accept", "application/fhir+xml")
        .send()
        .await
        .unwrap();
    let xml = xml.text().await.unwrap();
    assert!(xml.contains("<Bundle") && xml.contains("<Task"), "{xml}");
}

async fn paging_survives_new_writes(s: &TestServer) {
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(s.create(&json!({"resourceType": "Appointment", "status": "proposed", "description": format!("a{i}"),
            "participant": [{"status": "needs-action"}]})).await["id"].as_str().unwrap().to_owned());
    }
    let first = json_with_status(s.get("Appointment/_history?_count=3").await, 200).await;
    assert_eq!(entries(&first).len(), 3);
    // A write between pages must not shift what later pages contain.
    s.create(&json!({"resourceType": "Appointment", "status": "proposed", "participant": [{"status": "needs-action"}]})).await;
    let mut seen: Vec<String> = entries(&first)
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect();
    let mut next = link(&first, "next");
    while let Some(url) = next {
        let page = json_with_status(s.client.get(&url).send().await.unwrap(), 200).await;
        seen.extend(
            entries(&page)
                .iter()
                .map(|e| e["resource"]["id"].as_str().unwrap().to_owned()),
        );
        next = link(&page, "next");
    }
    ids.reverse();
    assert_eq!(seen, ids, "every version exactly once, newest first");
    let empty = json_with_status(s.get("Appointment/_history?_count=0").await, 200).await;
    assert!(empty.get("entry").is_none());
    let system = json_with_status(s.get("_history?_count=2").await, 200).await;
    assert_eq!(entries(&system).len(), 2);
}

async fn since_and_at(s: &TestServer) {
    let a = s.create(&json!({"resourceType": "Procedure", "status": "completed", "subject": {"reference": "Patient/p"}})).await;
    let id = a["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let v2 = json_with_status(
        s.put(
            &format!("Procedure/{id}"),
            &json!({"resourceType": "Procedure", "id": id,
        "status": "entered-in-error", "subject": {"reference": "Patient/p"}}),
        )
        .await,
        200,
    )
    .await;
    let t2 = v2["meta"]["lastUpdated"].as_str().unwrap().to_owned();
    let since = json_with_status(
        s.get(&format!(
            "Procedure/{id}/_history?_since={}",
            t2.replace('+', "%2B")
        ))
        .await,
        200,
    )
    .await;
    assert_eq!(entries(&since).len(), 1);
    assert_eq!(entries(&since)[0]["resource"]["meta"]["versionId"], "2");
    let t1 = a["meta"]["lastUpdated"].as_str().unwrap();
    let at = json_with_status(
        s.get(&format!("Procedure/{id}/_history?_at={t1}")).await,
        200,
    )
    .await;
    let versions: Vec<String> = entries(&at)
        .iter()
        .map(|e| e["response"]["etag"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        versions,
        ["W/\"1\""],
        "only the version current at that instant"
    );
    let year = json_with_status(
        s.get(&format!("Procedure/{id}/_history?_at={}", &t1[..4]))
            .await,
        200,
    )
    .await;
    assert_eq!(
        entries(&year).len(),
        2,
        "both versions were current during the year"
    );
}

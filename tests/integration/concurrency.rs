//! Concurrent updates of one resource never lose an update: with `If-Match` exactly one writer
//! of a version wins and the others get 412; without it every writer gets its own version.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{TestServer, json_with_status};

on_both_backends!(
    if_match_races_have_one_winner,
    concurrent_updates_each_get_a_version
);

const WRITERS: usize = 16;

/// A new Patient, and the PUT of writer `i` naming it with `w{i}`.
async fn patient_and_writers(s: &TestServer) -> (String, Vec<reqwest::RequestBuilder>) {
    let created = s
        .create(&json!({"resourceType": "Patient", "active": true}))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let writers = (0..WRITERS)
        .map(|i| {
            s.request(Method::PUT, &format!("Patient/{id}"))
                .header("content-type", "application/fhir+json")
                .body(
                    json!({"resourceType": "Patient", "id": id, "name": [{"family": format!("w{i}")}]})
                        .to_string(),
                )
        })
        .collect();
    (id, writers)
}

async fn if_match_races_have_one_winner(s: &TestServer) {
    let (id, writers) = patient_and_writers(s).await;
    let mut tasks = Vec::new();
    for writer in writers {
        let request = writer.header("if-match", "W/\"1\"");
        tasks.push(tokio::spawn(async move {
            request.send().await.unwrap().status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        WRITERS - 1,
        "{statuses:?}"
    );
    let current = json_with_status(s.get(&format!("Patient/{id}")).await, 200).await;
    assert_eq!(current["meta"]["versionId"], "2");
}

async fn concurrent_updates_each_get_a_version(s: &TestServer) {
    let (id, writers) = patient_and_writers(s).await;
    let mut tasks = Vec::new();
    for request in writers {
        tasks.push(tokio::spawn(async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }));
    }
    let mut versions = BTreeSet::new();
    let mut families = BTreeSet::new();
    for task in tasks {
        let body = task.await.unwrap();
        versions.insert(
            body["meta"]["versionId"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap(),
        );
        families.insert(body["name"][0]["family"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        versions,
        (2..=WRITERS as i64 + 1).collect::<BTreeSet<_>>(),
        "distinct, gap-free versions"
    );
    // Every acknowledged version is in the history with the content its writer sent.
    let history = json_with_status(
        s.get(&format!("Patient/{id}/_history?_count=100")).await,
        200,
    )
    .await;
    let recorded: BTreeSet<String> = history["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            e["resource"]["name"][0]["family"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(recorded, families);
}

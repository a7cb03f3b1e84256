//! Durability: the `hearth` binary is killed with SIGKILL while clients write; after a restart
//! every acknowledged write is there with the content acknowledged, and no resource has a
//! partial or missing version.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::support::TestDatabase;

struct Node {
    child: Child,
    base: String,
    /// A client carrying an operator token from `hearth token`.
    client: reqwest::Client,
}

/// A client with a `system/*.cruds` token that `hearth token` printed for the node on `port`.
fn operator_client(database: &TestDatabase, port: u16) -> reqwest::Client {
    let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args([
            "token",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            &database.url(),
        ])
        .arg("--data-dir")
        .arg(database.data_dir())
        .env("HEARTH_LOG", "warn")
        .output()
        .expect("run hearth token");
    assert!(
        output.status.success(),
        "hearth token: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

async fn start_node(database: &TestDatabase) -> Node {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            &database.url(),
        ])
        .arg("--data-dir")
        .arg(database.data_dir())
        .env("HEARTH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn hearth");
    let root = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..600 {
        if client
            .get(format!("{root}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return Node {
                child,
                base: format!("{root}/fhir"),
                client: operator_client(database, port),
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("hearth did not start");
}

/// id -> (version, content) of every acknowledged write.
type Acknowledged = Arc<Mutex<BTreeMap<(String, i64), Value>>>;

async fn writer(
    client: reqwest::Client,
    base: String,
    n: usize,
    stop: Arc<AtomicBool>,
    acknowledged: Acknowledged,
) {
    let mut mine: Option<String> = None;
    let mut round = 0;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let body = json!({"resourceType": "Patient", "identifier": [{"system": "urn:test", "value": format!("w{n}-{round}")}]});
        let request = match &mine {
            Some(id) if round % 2 == 0 => {
                let mut body = body;
                body["id"] = json!(id);
                client
                    .put(format!("{base}/Patient/{id}"))
                    .body(body.to_string())
            }
            _ => client
                .post(format!("{base}/Patient"))
                .body(body.to_string()),
        };
        let Ok(response) = request
            .header("content-type", "application/fhir+json")
            .send()
            .await
        else {
            break;
        };
        if !response.status().is_success() {
            break;
        }
        let Ok(stored) = response.json::<Value>().await else {
            break;
        };
        let id = stored["id"].as_str().unwrap().to_owned();
        let version: i64 = stored["meta"]["versionId"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        acknowledged
            .lock()
            .await
            .insert((id.clone(), version), stored);
        mine = Some(id);
    }
}

async fn crash_and_recover(database: TestDatabase) {
    let mut node = start_node(&database).await;
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Acknowledged = Arc::default();
    let writers: Vec<_> = (0..6)
        .map(|n| {
            tokio::spawn(writer(
                node.client.clone(),
                node.base.clone(),
                n,
                stop.clone(),
                acknowledged.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    node.child.kill().expect("SIGKILL");
    node.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let acknowledged = acknowledged.lock().await.clone();
    assert!(
        acknowledged.len() > 20,
        "the writers got going ({} writes)",
        acknowledged.len()
    );

    let mut node = start_node(&database).await;
    let client = node.client.clone();
    let mut latest: BTreeMap<String, i64> = BTreeMap::new();
    for ((id, version), content) in &acknowledged {
        let response = client
            .get(format!("{}/Patient/{id}/_history/{version}", node.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "acknowledged Patient/{id} version {version} survived"
        );
        assert_eq!(&response.json::<Value>().await.unwrap(), content);
        let entry = latest.entry(id.clone()).or_default();
        *entry = (*entry).max(*version);
    }
    // Nothing partial: every resource's versions run 1..=current and the current row agrees.
    for (id, acknowledged_version) in latest {
        let current: Value = client
            .get(format!("{}/Patient/{id}", node.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let current_version: i64 = current["meta"]["versionId"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(current_version >= acknowledged_version);
        let history: Value = client
            .get(format!("{}/Patient/{id}/_history?_count=1000", node.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let versions: Vec<i64> = history["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e["resource"]["meta"]["versionId"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        assert_eq!(
            versions,
            (1..=current_version).rev().collect::<Vec<_>>(),
            "Patient/{id}"
        );
    }
    node.child.kill().unwrap();
    node.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_write_sqlite() {
    crash_and_recover(TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_write_postgres() {
    if let Some(database) = TestDatabase::postgres() {
        crash_and_recover(database).await;
    }
}

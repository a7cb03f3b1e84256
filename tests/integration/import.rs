//! `hearth import` on both backends: NDJSON with bad lines (reported, the rest loaded), the
//! Synthea transaction Bundles (ids from their fullUrls, references resolved), and a second run
//! over the same files that changes nothing.

use std::process::Command;

use hearth::config::Overrides;
use serde_json::Value;

use crate::support::{TestDatabase, TestServer, json_with_status};

const CHET: &str = "9e2f7a3b-94df-4b3d-bee2-360881649fa5";

fn import(database: &TestDatabase, paths: &[&std::path::Path]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .env("HEARTH_LOG", "warn")
        .arg("--database-url")
        .arg(database.url())
        .arg("--data-dir")
        .arg(database.data_dir())
        .args(["import", "--quiet"])
        .args(paths)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn total(server: &TestServer, query: &str) -> u64 {
    let bundle = json_with_status(server.get(&format!("{query}&_summary=count")).await, 200).await;
    bundle["total"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_loads_ndjson_and_bundles_and_can_run_again() {
    let databases: Vec<TestDatabase> = [Some(TestDatabase::sqlite()), TestDatabase::postgres()]
        .into_iter()
        .flatten()
        .collect();
    for database in databases {
        let files = tempfile::tempdir().unwrap();
        let ndjson = files.path().join("Patient.ndjson");
        std::fs::write(
            &ndjson,
            [
                r#"{"resourceType":"Patient","id":"n1","name":[{"family":"Achebe"}]}"#,
                "{not json",
                r#"{"resourceType":"Patient","id":"n2","birthDate":"soon"}"#,
                "",
                r#"{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"pulse"},"subject":{"reference":"Patient/n1"}}"#,
                r#"{"resourceType":"Patient","id":"bad id!"}"#,
            ]
            .join("\n"),
        )
        .unwrap();
        let synthea = std::path::Path::new("tests/fixtures/synthea");
        let (status, stdout, stderr) = import(&database, &[&ndjson, synthea]);
        assert_eq!(status, Some(1), "{stdout}{stderr}");
        assert!(stderr.contains("Patient.ndjson:2: not JSON"), "{stderr}");
        assert!(
            stderr.contains("Patient.ndjson:3: ") && stderr.contains("soon"),
            "{stderr}"
        );
        assert!(stderr.contains("Patient.ndjson:6: "), "{stderr}");
        assert!(
            stdout.contains("imported 189 resources from 3 files")
                && stdout.contains("189 created")
                && stdout.contains("3 rejected"),
            "{stdout}"
        );

        let server = TestServer::start(database, Overrides::default()).await;
        let n1 = json_with_status(server.get("Patient/n1").await, 200).await;
        assert_eq!(n1["meta"]["versionId"], "1");
        assert_eq!(total(&server, "Observation?subject=Patient/n1").await, 1);
        // The Synthea Patient keeps the UUID of its fullUrl, and its Observations point at it.
        let chet: Value = json_with_status(server.get(&format!("Patient/{CHET}")).await, 200).await;
        assert_eq!(chet["name"][0]["family"], "Thompson");
        assert_eq!(
            total(&server, &format!("Observation?patient=Patient/{CHET}")).await,
            59
        );
        assert_eq!(
            total(&server, "Encounter?patient.family=Thompson").await,
            10
        );
        let database = server.stop().await;

        // Again: nothing new.
        let (_, stdout, _) = import(&database, &[&ndjson, synthea]);
        assert!(
            stdout.contains("0 created, 0 updated, 189 unchanged"),
            "{stdout}"
        );
        // A changed resource gets a new version and new index rows; the same resource twice in
        // one file is two versions, in file order.
        let changes = files.path().join("changes.ndjson");
        std::fs::write(
            &changes,
            [
                r#"{"resourceType":"Patient","id":"n1","name":[{"family":"Okonkwo"}]}"#,
                r#"{"resourceType":"Patient","id":"n1","name":[{"family":"Eze"}]}"#,
                r#"{"resourceType":"Patient","id":"n3","name":[{"family":"Eze"}]}"#,
            ]
            .join("\n"),
        )
        .unwrap();
        let (status, stdout, stderr) = import(&database, &[&changes]);
        assert_eq!(status, Some(0), "{stdout}{stderr}");
        assert!(
            stdout.contains("1 created, 2 updated, 0 unchanged"),
            "{stdout}"
        );
        let server = TestServer::start(database, Overrides::default()).await;
        let n1 = json_with_status(server.get("Patient/n1").await, 200).await;
        assert_eq!(n1["meta"]["versionId"], "3");
        assert_eq!(total(&server, "Patient?_id=n1,n2").await, 1);
        assert_eq!(total(&server, "Patient?family=eze").await, 2);
        assert_eq!(total(&server, "Patient?family=achebe").await, 0);
        assert_eq!(total(&server, "Patient?family=okonkwo").await, 0);
        server.finish().await;
    }
}

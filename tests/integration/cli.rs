//! The `hearth` command: bad settings stop the start with a one-line reason; `migrate` works on
//! a fresh database and is idempotent.

use std::process::Command;

use crate::support::TestDatabase;

fn hearth() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
    command.env("HEARTH_LOG", "warn");
    command
}

#[test]
fn bad_settings_stop_the_start_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value, expected) in [
        ("HEARTH_ADDR", "not-an-address", "HEARTH_ADDR"),
        ("HEARTH_DATABASE_URL", "mysql://x", "HEARTH_DATABASE_URL"),
        ("HEARTH_PUBLIC_URL", "ftp://x", "HEARTH_PUBLIC_URL"),
        ("HEARTH_DB_POOL_SIZE", "lots", "HEARTH_DB_POOL_SIZE"),
    ] {
        let output = hearth()
            .args(["serve", "--data-dir"])
            .arg(dir.path())
            .env(name, value)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{name}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
    let config = dir.path().join("hearth.toml");
    std::fs::write(&config, "adress = \"127.0.0.1:1\"\n").unwrap();
    let output = hearth()
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("adress"));
}

#[test]
fn migrate_creates_the_schema_and_can_run_again() {
    let databases: Vec<TestDatabase> = [Some(TestDatabase::sqlite()), TestDatabase::postgres()]
        .into_iter()
        .flatten()
        .collect();
    for database in databases {
        for _ in 0..2 {
            let output = hearth()
                .args(["migrate", "--database-url", &database.url()])
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(String::from_utf8_lossy(&output.stdout).contains("migrations are up to date"));
        }
    }
}

/// `hearth user add|list|set-role|disable|enable` on the configured database; bad input is
/// refused with a reason.
#[test]
fn user_commands_manage_accounts() {
    let database = TestDatabase::sqlite();
    let run = |args: &[&str]| {
        let output = hearth()
            .arg("--database-url")
            .arg(database.url())
            .arg("--data-dir")
            .arg(database.data_dir())
            .env("HEARTH_ARGON2_MEMORY_KIB", "1024")
            .env("HEARTH_ARGON2_ITERATIONS", "1")
            .arg("user")
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&[
        "add",
        "--email",
        "gus@hearth.test",
        "--password",
        "Echo#Lab77",
        "--role",
        "clinician",
        "--name",
        "Gus Ray",
        "--specialty",
        "Sonography",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let added: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(added["status"], "active");
    assert_eq!(added["role"], "clinician");
    assert!(
        added["fhirUser"]
            .as_str()
            .unwrap()
            .starts_with("Practitioner/")
    );

    let (code, _, err) = run(&[
        "add",
        "--email",
        "GUS@hearth.test",
        "--password",
        "Echo#Lab77",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = run(&["add", "--email", "weak@hearth.test", "--password", "weak"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("too short"), "{err}");
    let (code, _, err) = run(&["set-role", "gus@hearth.test", "wizard"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not a role"), "{err}");

    let (code, out, _) = run(&["set-role", "gus@hearth.test", "physician"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("\"role\":\"physician\""), "{out}");
    let (code, out, _) = run(&["disable", "gus@hearth.test"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("\"status\":\"disabled\""), "{out}");
    let (_, out, _) = run(&["list"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("gus@hearth.test") && out.contains("disabled"));
    let (code, out, _) = run(&["enable", "gus@hearth.test"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("\"status\":\"active\""), "{out}");
    let (code, _, err) = run(&["disable", "nobody@hearth.test"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("nobody@hearth.test: no such account"), "{err}");
}

/// `hearth client`, `hearth token`, `hearth keys rotate` and `hearth launch` on the configured
/// database, against a running server on the same database (as another node would be).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_commands_register_clients_and_mint_tokens() {
    use crate::support::{TestServer, json_with_status};
    let database = TestDatabase::sqlite();
    let run = |args: &[&str]| {
        let output = hearth()
            .arg("--database-url")
            .arg(database.url())
            .arg("--data-dir")
            .arg(database.data_dir())
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, _, err) = run(&["client", "add", "--name", "No redirect", "--public"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("redirect URI"), "{err}");
    let (code, _, err) = run(&[
        "client",
        "add",
        "--name",
        "No kind",
        "--redirect-uri",
        "https://a.example/cb",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--public"), "{err}");
    let (code, out, err) = run(&[
        "client",
        "add",
        "--name",
        "Charts",
        "--public",
        "--redirect-uri",
        "https://charts.example/cb",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let public: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(public["client_id"].is_string() && public["client_secret"].is_null());
    let (code, out, _) = run(&[
        "client",
        "add",
        "--name",
        "Lab",
        "--secret",
        "--redirect-uri",
        "https://lab.example/cb",
    ]);
    assert_eq!(code, Some(0));
    let secret: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(secret["client_secret"].as_str().unwrap().len() >= 40);
    let jwks = database.data_dir().join("client.jwks.json");
    std::fs::write(
        &jwks,
        r#"{"keys":[{"kty":"EC","crv":"P-384","kid":"k1","x":"not-a-point","y":"x"}]}"#,
    )
    .unwrap();
    let (code, _, err) = run(&[
        "client",
        "add",
        "--name",
        "Bad keys",
        "--jwks-file",
        jwks.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("JWK"), "{err}");
    let (code, out, _) = run(&["client", "list"]);
    assert_eq!(code, Some(0));
    assert_eq!(out.lines().count(), 2, "{out}");
    let id = public["client_id"].as_str().unwrap();
    let (code, out, _) = run(&["client", "disable", id]);
    assert_eq!(code, Some(0));
    assert!(out.contains("\"status\":\"disabled\""), "{out}");
    let (code, _, err) = run(&["client", "disable", "nobody"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no client"), "{err}");
    let (code, _, err) = run(&["token", "--scope", "openid"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("resource scope"), "{err}");
    let (code, out, _) = run(&["launch", "--patient", "p1"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("\"launch\""), "{out}");

    // A server on the same database, public at the address the commands assume.
    let (_, before, _) = run(&["token", "--scope", "system/Patient.rs"]);
    let server = TestServer::start(
        database,
        hearth::config::Overrides {
            public_url: Some("http://127.0.0.1:8080".into()),
            ..hearth::config::Overrides::default()
        },
    )
    .await;
    let get = |token: String| {
        let url = format!("{}/fhir/Patient?_count=1", server.local_url());
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    json_with_status(get(before.clone()).await, 200).await;
    // Rotation on "another node": the old key still verifies, the new one is picked up.
    let rotate = hearth()
        .arg("--database-url")
        .arg(server.database.url())
        .args(["keys", "rotate"])
        .output()
        .unwrap();
    assert!(
        rotate.status.success(),
        "{}",
        String::from_utf8_lossy(&rotate.stderr)
    );
    let published: serde_json::Value = serde_json::from_slice(&rotate.stdout).unwrap();
    assert_eq!(published["keys"].as_array().unwrap().len(), 4);
    let after = hearth()
        .arg("--database-url")
        .arg(server.database.url())
        .args(["token", "--scope", "system/Patient.rs", "--lifetime", "60"])
        .output()
        .unwrap();
    let after = String::from_utf8_lossy(&after.stdout).trim().to_owned();
    assert_ne!(
        jsonwebtoken::decode_header(&after).unwrap().kid,
        jsonwebtoken::decode_header(&before).unwrap().kid
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    json_with_status(get(after).await, 200).await;
    json_with_status(get(before).await, 200).await;
    server.finish().await;
}

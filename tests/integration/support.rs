//! The test server: the real router on 127.0.0.1:0 against a real database, either a SQLite
//! file in a temporary folder or a fresh PostgreSQL schema (from `HEARTH_TEST_POSTGRES_URL`)
//! that is dropped afterwards.

use std::path::PathBuf;

use diesel::Connection;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use hearth::app::RunningServer;
use hearth::config::{Config, Overrides};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

/// Writes each suite once and runs it on both backends.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let server = $crate::support::TestServer::sqlite().await;
                super::$name(&server).await;
                server.finish().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(server) = $crate::support::TestServer::postgres().await else { return };
                super::$name(&server).await;
                server.finish().await;
            }
        }
    )*};
}

/// Where a test database lives; cleaned up on drop.
pub enum TestDatabase {
    /// A SQLite file in a temporary folder.
    Sqlite(tempfile::TempDir),
    /// A PostgreSQL schema.
    Postgres { admin_url: String, schema: String },
}

impl TestDatabase {
    /// A new SQLite database.
    pub fn sqlite() -> TestDatabase {
        TestDatabase::Sqlite(tempfile::tempdir().expect("temp dir"))
    }

    /// A new PostgreSQL schema, or `None` (with the reason printed) when
    /// `HEARTH_TEST_POSTGRES_URL` is unset.
    pub fn postgres() -> Option<TestDatabase> {
        let Ok(admin_url) = std::env::var("HEARTH_TEST_POSTGRES_URL") else {
            eprintln!("skipping the PostgreSQL run: HEARTH_TEST_POSTGRES_URL is unset");
            return None;
        };
        let schema = format!("hearth_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn =
            PgConnection::establish(&admin_url).expect("connect to HEARTH_TEST_POSTGRES_URL");
        conn.batch_execute(&format!("CREATE SCHEMA {schema}"))
            .expect("create schema");
        Some(TestDatabase::Postgres { admin_url, schema })
    }

    /// The `HEARTH_DATABASE_URL` of this database.
    pub fn url(&self) -> String {
        match self {
            TestDatabase::Sqlite(dir) => {
                format!("sqlite://{}", dir.path().join("hearth.db").display())
            }
            TestDatabase::Postgres { admin_url, schema } => {
                let joiner = if admin_url.contains('?') { '&' } else { '?' };
                format!("{admin_url}{joiner}options=-csearch_path%3D{schema}")
            }
        }
    }

    /// A data folder for the server.
    pub fn data_dir(&self) -> PathBuf {
        match self {
            TestDatabase::Sqlite(dir) => dir.path().to_owned(),
            TestDatabase::Postgres { .. } => std::env::temp_dir(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let TestDatabase::Postgres { admin_url, schema } = self
            && let Ok(mut conn) = PgConnection::establish(admin_url)
        {
            let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        }
    }
}

/// A running Hearth with a client.
pub struct TestServer {
    server: RunningServer,
    /// The FHIR base URL.
    pub base: String,
    /// The HTTP client.
    pub client: reqwest::Client,
    /// The database (kept for the server's lifetime).
    pub database: TestDatabase,
}

impl TestServer {
    /// A server on a new SQLite database.
    pub async fn sqlite() -> TestServer {
        TestServer::start(TestDatabase::sqlite(), Overrides::default()).await
    }

    /// A server on a new PostgreSQL schema, or `None` when PostgreSQL is not configured.
    pub async fn postgres() -> Option<TestServer> {
        Some(TestServer::start(TestDatabase::postgres()?, Overrides::default()).await)
    }

    /// A server on `database` with extra settings.
    pub async fn start(database: TestDatabase, overrides: Overrides) -> TestServer {
        TestServer::start_with_clock(
            database,
            overrides,
            std::sync::Arc::new(hearth::clock::SystemClock),
        )
        .await
    }

    /// A server on `database` whose time is `clock`.
    pub async fn start_with_clock(
        database: TestDatabase,
        overrides: Overrides,
        clock: hearth::clock::SharedClock,
    ) -> TestServer {
        let config = Config::from_overrides(Overrides {
            addr: Some("127.0.0.1:0".into()),
            data_dir: Some(database.data_dir()),
            database_url: Some(database.url()),
            db_pool_size: Some(8),
            ..overrides
        })
        .expect("test configuration");
        let server = hearth::app::start_with_clock(&config, clock)
            .await
            .expect("server starts");
        let base = format!("{}/fhir", server.public_url);
        // The suites act as an operator with every permission; SMART tests make their own
        // clients and tokens.
        let token = server
            .auth
            .operator_token("system/*.cruds", 3600)
            .expect("operator token");
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .expect("client");
        TestServer {
            server,
            base,
            client,
            database,
        }
    }

    /// Stops the server (the database is dropped with `self`).
    pub async fn finish(self) {
        let TestServer {
            server, database, ..
        } = self;
        server.stop().await.expect("server stops cleanly");
        drop(database);
    }

    /// Stops the server and keeps its database (for a restart on the same data).
    pub async fn stop(self) -> TestDatabase {
        let TestServer {
            server, database, ..
        } = self;
        server.stop().await.expect("server stops cleanly");
        database
    }

    /// The address the server listens on, as an http URL (differs from [`TestServer::root`]
    /// when the public URL is set).
    pub fn local_url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// The server's authorization server.
    pub fn auth(&self) -> &hearth::auth::Auth {
        &self.server.auth
    }

    /// The server's accounts.
    pub fn accounts(&self) -> &hearth::accounts::Accounts {
        &self.server.accounts
    }

    /// The server's root URL (without `/fhir`).
    pub fn root(&self) -> String {
        self.base.trim_end_matches("/fhir").to_owned()
    }

    /// A request to `path` under the FHIR base.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(
            method,
            format!("{}/{}", self.base, path.trim_start_matches('/')),
        )
    }

    /// GET a FHIR path.
    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path)
            .send()
            .await
            .expect("request")
    }

    /// POST a JSON resource.
    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.send_json(Method::POST, path, body).await
    }

    /// PUT a JSON resource.
    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.send_json(Method::PUT, path, body).await
    }

    /// Sends a JSON body.
    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> Response {
        self.request(method, path)
            .header("content-type", "application/fhir+json")
            .body(serde_json::to_vec(body).expect("json"))
            .send()
            .await
            .expect("request")
    }

    /// Creates a resource and returns it as stored.
    pub async fn create(&self, body: &Value) -> Value {
        let t = body["resourceType"].as_str().expect("resourceType");
        let response = self.post(t, body).await;
        assert_eq!(response.status(), 201, "create {t}");
        response.json().await.expect("json body")
    }
}

/// Reads a response as JSON, checking the status first.
pub async fn json_with_status(response: Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Checks that a response is an OperationOutcome with `status` and an issue of `code`, and
/// returns the diagnostics.
pub async fn outcome(response: Response, status: u16, code: &str) -> String {
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let body = json_with_status(response, status).await;
    assert_eq!(
        content_type.as_deref(),
        Some("application/fhir+json; charset=utf-8")
    );
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    let issue = &body["issue"][0];
    assert_eq!(issue["code"], code, "{body}");
    let diagnostics = issue["diagnostics"].as_str().unwrap_or_default().to_owned();
    assert!(!diagnostics.is_empty(), "{body}");
    diagnostics
}

/// The URL of a Bundle's link with `relation`.
pub fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == relation)
        .and_then(|l| l["url"].as_str())
        .map(str::to_owned)
}

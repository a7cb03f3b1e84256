//! What a write sends to PostgreSQL, counted on the connection: a create is one statement, its
//! own transaction, with its version, its current-version row and its index rows.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use hearth::config::DatabaseUrl;
use hearth::fhir::ResourceId;
use hearth::search::{Registry, extract};
use hearth::storage::Storage;
use serde_json::json;

use crate::support::TestDatabase;

/// The schema of this test's database: only its connections are counted (the instrumentation
/// is process-wide).
static SCHEMA: OnceLock<String> = OnceLock::new();
static STATEMENTS: AtomicUsize = AtomicUsize::new(0);

#[derive(Default)]
struct Count {
    mine: bool,
}

impl Instrumentation for Count {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartEstablishConnection { url, .. } => {
                self.mine = SCHEMA.get().is_some_and(|s| url.contains(s.as_str()));
            }
            InstrumentationEvent::StartQuery { .. } if self.mine => {
                STATEMENTS.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
    }
}

#[derive(QueryableByName)]
struct Count64 {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_on_postgresql_is_one_statement_with_all_its_rows() {
    let Some(database) = TestDatabase::postgres() else {
        return;
    };
    let TestDatabase::Postgres { schema, .. } = &database else {
        unreachable!()
    };
    SCHEMA
        .set(schema.clone())
        .expect("one test sets the schema");
    diesel::connection::set_default_instrumentation(|| Some(Box::new(Count::default())))
        .expect("instrumentation");
    let url = DatabaseUrl::parse(&database.url()).unwrap();
    let storage = Storage::open(&url, 1, Arc::new(hearth::clock::SystemClock)).unwrap();
    let registry = Registry::r4();
    let patient = json!({
        "resourceType": "Patient",
        "identifier": [{"system": "urn:mrn", "value": "12345"}],
        "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
        "birthDate": "1974-12-25",
        "managingOrganization": {"reference": "Organization/1"},
    });
    let index = extract(&registry, &patient, "http://localhost/fhir");
    assert!(!index.strings.is_empty() && !index.tokens.is_empty());
    assert!(!index.dates.is_empty() && !index.references.is_empty());

    // The first write opens the pool's connection (and its settings).
    storage
        .create("Patient", patient.clone(), index.clone())
        .await
        .unwrap();
    let before = STATEMENTS.load(Ordering::SeqCst);
    let created = storage
        .create("Patient", patient, index.clone())
        .await
        .unwrap();
    let statements = STATEMENTS.load(Ordering::SeqCst) - before;
    assert_eq!(statements, 1, "a create sent {statements} statements");

    // Everything the statement wrote is there.
    let id = ResourceId::parse(&created.id).unwrap();
    let stored = storage.find_current("Patient", &id).await.unwrap().unwrap();
    assert_eq!(stored.content, created.content);
    assert_eq!((stored.version_id, stored.created), (1, true));
    let mut conn = PgConnection::establish(&database.url()).unwrap();
    for (table, expected) in [
        ("search_string", index.strings.len()),
        ("search_token", index.tokens.len()),
        ("search_date", index.dates.len()),
        ("search_reference", index.references.len()),
    ] {
        let n = diesel::sql_query(format!(
            "SELECT COUNT(*) AS n FROM {table} WHERE resource_id = $1"
        ))
        .bind::<Text, _>(&created.id)
        .get_result::<Count64>(&mut conn)
        .unwrap()
        .n;
        assert_eq!(n as usize, expected, "{table} rows");
    }
    let n = diesel::sql_query("SELECT COUNT(*) AS n FROM resource_versions WHERE resource_id = $1")
        .bind::<Text, _>(&created.id)
        .get_result::<Count64>(&mut conn)
        .unwrap()
        .n;
    assert_eq!(n, 1);

    // An update replaces the index rows: the old ones go in one statement for all tables.
    let renamed = json!({"resourceType": "Patient", "name": [{"family": "Windsor"}]});
    let renamed_index = extract(&registry, &renamed, "http://localhost/fhir");
    let before = STATEMENTS.load(Ordering::SeqCst);
    storage
        .update("Patient", &id, renamed, renamed_index.clone(), Some(1))
        .await
        .unwrap();
    let statements = STATEMENTS.load(Ordering::SeqCst) - before;
    // BEGIN, the current version, the version, the current-version row, the old rows' delete,
    // the new rows, COMMIT.
    assert!(statements <= 7, "an update sent {statements} statements");
    for (table, expected) in [
        ("search_string", renamed_index.strings.len()),
        ("search_token", renamed_index.tokens.len()),
        ("search_date", 0),
        ("search_reference", 0),
    ] {
        let n = diesel::sql_query(format!(
            "SELECT COUNT(*) AS n FROM {table} WHERE resource_id = $1"
        ))
        .bind::<Text, _>(&created.id)
        .get_result::<Count64>(&mut conn)
        .unwrap()
        .n;
        assert_eq!(n as usize, expected, "{table} rows after the update");
    }
}

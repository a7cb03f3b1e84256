//! What the storage sends to PostgreSQL, recorded on the connection: a create is one
//! statement, its own transaction, with its version, its current-version row and its index
//! rows; a search by plain conditions, or by one chain to a few names or codes, is planned
//! once for all values, and every other search, and every write, with its values; a condition
//! counted lately to choose a plan is not counted again; the newest version of a type is read
//! from the type's own range whatever the plan; an import that waits leaves the request threads
//! free, and finds what is already stored by key even when the statistics predate the type's
//! rows, and is planned once on connections of its own; a search by a date alone is planned
//! with its values, its open range bounded on one column; only references with a URL are in the
//! index of URLs.

use std::sync::{Arc, Mutex, Once};

use diesel::connection::{Instrumentation, InstrumentationEvent, SimpleConnection};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use hearth::config::DatabaseUrl;
use hearth::fhir::ResourceId;
use hearth::search::{Registry, extract};
use hearth::storage::Storage;
use serde_json::json;

use crate::support::TestDatabase;

/// Every statement sent on a connection to a test schema, with the schema (the
/// instrumentation is process-wide, and tests run side by side).
static SENT: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

#[derive(Default)]
struct Record {
    schema: Option<String>,
}

impl Instrumentation for Record {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartEstablishConnection { url, .. } => {
                self.schema = url
                    .split_once("search_path%3D")
                    .map(|(_, schema)| schema.to_owned());
            }
            InstrumentationEvent::StartQuery { query, .. } => {
                if let Some(schema) = &self.schema {
                    SENT.lock()
                        .unwrap()
                        .push((schema.clone(), query.to_string()));
                }
            }
            _ => {}
        }
    }
}

/// A storage on a new PostgreSQL schema whose statements are recorded, with one connection.
fn recorded_storage() -> Option<(TestDatabase, String, Storage)> {
    static INSTALL: Once = Once::new();
    let database = TestDatabase::postgres()?;
    let TestDatabase::Postgres { schema, .. } = &database else {
        unreachable!()
    };
    let schema = schema.clone();
    INSTALL.call_once(|| {
        diesel::connection::set_default_instrumentation(|| Some(Box::new(Record::default())))
            .expect("instrumentation");
    });
    let url = DatabaseUrl::parse(&database.url()).unwrap();
    let storage = Storage::open(&url, 1, Arc::new(hearth::clock::SystemClock)).unwrap();
    Some((database, schema, storage))
}

/// The statements sent to `schema` so far.
fn sent(schema: &str) -> Vec<String> {
    SENT.lock()
        .unwrap()
        .iter()
        .filter(|(s, _)| s == schema)
        .map(|(_, sql)| sql.clone())
        .collect()
}

/// A search of Patients by `params`.
fn patients(registry: &Registry, params: &[(&str, &str)]) -> hearth::search::query::SearchQuery {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    hearth::search::query::parse(registry, vec!["Patient".into()], &params, "", true).unwrap()
}

#[derive(QueryableByName)]
struct Count64 {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The rows of `table` that belong to resource `id`.
fn rows_of(conn: &mut PgConnection, table: &str, id: &str) -> usize {
    diesel::sql_query(format!(
        "SELECT COUNT(*) AS n FROM {table} WHERE resource_id = $1"
    ))
    .bind::<Text, _>(id)
    .get_result::<Count64>(conn)
    .unwrap()
    .n as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_on_postgresql_is_one_statement_with_all_its_rows() {
    let Some((database, schema, storage)) = recorded_storage() else {
        return;
    };
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
    let before = sent(&schema).len();
    let created = storage
        .create("Patient", patient, index.clone())
        .await
        .unwrap();
    let statements = sent(&schema).len() - before;
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
        assert_eq!(
            rows_of(&mut conn, table, &created.id),
            expected,
            "{table} rows"
        );
    }
    assert_eq!(rows_of(&mut conn, "resource_versions", &created.id), 1);

    // An update replaces the index rows: the old ones go in one statement for all tables.
    let renamed = json!({"resourceType": "Patient", "name": [{"family": "Windsor"}]});
    let renamed_index = extract(&registry, &renamed, "http://localhost/fhir");
    let before = sent(&schema).len();
    storage
        .update("Patient", &id, renamed, renamed_index.clone(), Some(1))
        .await
        .unwrap();
    let statements = sent(&schema).len() - before;
    // BEGIN, the current version, the version, the current-version row, the old rows' delete,
    // the new rows, COMMIT.
    assert!(statements <= 7, "an update sent {statements} statements");
    for (table, expected) in [
        ("search_string", renamed_index.strings.len()),
        ("search_token", renamed_index.tokens.len()),
        ("search_date", 0),
        ("search_reference", 0),
    ] {
        let n = rows_of(&mut conn, table, &created.id);
        assert_eq!(n, expected, "{table} rows after the update");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_by_plain_conditions_is_planned_once_and_others_with_their_values() {
    let Some((_database, schema, storage)) = recorded_storage() else {
        return;
    };
    let registry = Registry::r4();
    let base = "http://localhost/fhir";
    let acme = json!({"resourceType": "Organization", "name": "Acme"});
    let acme_id = ResourceId::parse("acme").unwrap();
    storage
        .update(
            "Organization",
            &acme_id,
            acme.clone(),
            extract(&registry, &acme, base),
            None,
        )
        .await
        .unwrap();
    for family in ["Chalmers", "Windsor"] {
        let patient = json!({"resourceType": "Patient", "name": [{"family": family}],
            "managingOrganization": {"reference": "Organization/acme"}});
        let index = extract(&registry, &patient, base);
        storage.create("Patient", patient, index).await.unwrap();
    }
    let query = |name: &str, value: &str| patients(&registry, &[(name, value)]);
    // The plan settings sent since `mark`, and where each other statement was.
    let since = |mark: usize| sent(&schema)[mark..].to_vec();
    let settings = |sql: &[String]| -> Vec<&'static str> {
        sql.iter()
            .filter_map(|s| {
                if s.contains("plan_cache_mode = force_generic_plan") {
                    Some("once")
                } else if s.contains("plan_cache_mode = force_custom_plan") {
                    Some("with values")
                } else {
                    None
                }
            })
            .collect()
    };

    // By name, twice: planned once, set once.
    let mark = sent(&schema).len();
    for _ in 0..2 {
        let page = storage.search(query("name", "chal")).await.unwrap();
        assert_eq!(page.matches.len(), 1);
    }
    assert_eq!(settings(&since(mark)), ["once"]);

    // One parameter of one type.
    let search_of = |t: &str, name: &str, value: &str| {
        let params = [(name.to_owned(), value.to_owned())];
        hearth::search::query::parse(&registry, vec![t.into()], &params, "", true).unwrap()
    };
    // A chain to a date, an open range, is planned with its values.
    let mark = sent(&schema).len();
    let born = search_of("Observation", "patient.birthdate", "ge1900-01-01");
    let page = storage.search(born).await.unwrap();
    assert!(page.matches.is_empty());
    assert_eq!(settings(&since(mark)), ["with values"]);
    // A chain to a name is planned once as well, when it counts fewer than 2,000 names. A chain
    // to a name that 2,000 Patients share is planned with its values: given them, PostgreSQL
    // walks the chain's resources in order rather than probing for every match.
    let broad = (0..2_000)
        .map(|n| {
            let patient = json!({"resourceType": "Patient", "id": format!("b{n}"),
                "name": [{"family": format!("Broad{n}")}]});
            import_item(&registry, patient)
        })
        .collect();
    storage.import(broad).await.unwrap();
    storage.search(query("name", "chal")).await.unwrap();
    let mark = sent(&schema).len();
    let page = storage
        .search(query("organization.name", "acme"))
        .await
        .unwrap();
    assert_eq!(page.matches.len(), 2);
    assert!(settings(&since(mark)).is_empty());
    let mark = sent(&schema).len();
    storage
        .search(search_of("Encounter", "patient.name", "broad1"))
        .await
        .unwrap();
    assert!(
        settings(&since(mark)).is_empty(),
        "1,111 names: planned once"
    );
    let mark = sent(&schema).len();
    storage
        .search(search_of("Encounter", "patient.name", "broad"))
        .await
        .unwrap();
    assert_eq!(settings(&since(mark)), ["with values"]);

    // Plain conditions together, driven by a reference that matches few rows: planned once as
    // well. Driven by a name's prefix, a range, they are planned with their values again.
    let both = |name: &str| {
        patients(
            &registry,
            &[("name", name), ("organization", "Organization/acme")],
        )
    };
    let mark = sent(&schema).len();
    let page = storage.search(both("chal,wind")).await.unwrap();
    assert_eq!(page.matches.len(), 2);
    assert_eq!(settings(&since(mark)), ["once"]);
    let mark = sent(&schema).len();
    let page = storage.search(both("chal")).await.unwrap();
    assert_eq!(page.matches.len(), 1);
    assert_eq!(settings(&since(mark)), ["with values"]);

    // An Observation's code and threshold, a name planned once between them: the composite
    // they become is planned with its values each time.
    let observation = json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
        "valueQuantity": {"value": 130, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}});
    let index = extract(&registry, &observation, base);
    storage
        .create("Observation", observation, index)
        .await
        .unwrap();
    let threshold = |value: &str| {
        let params = [
            ("code".to_owned(), "http://loinc.org|8480-6".to_owned()),
            ("value-quantity".to_owned(), value.to_owned()),
        ];
        hearth::search::query::parse(&registry, vec!["Observation".into()], &params, "", true)
            .unwrap()
    };
    let mark = sent(&schema).len();
    for (value, found) in [("gt120", 1), ("gt140", 0)] {
        storage.search(query("name", "chal")).await.unwrap();
        let page = storage.search(threshold(value)).await.unwrap();
        assert_eq!(page.matches.len(), found, "{value}");
    }
    assert_eq!(
        settings(&since(mark)),
        ["once", "with values", "once", "with values"]
    );

    // A conditional create searches inside its transaction: the setting goes back to plans with
    // the values before the transaction begins, never inside it (a rollback would undo it).
    storage.search(query("name", "wind")).await.unwrap();
    let mark = sent(&schema).len();
    let patient = json!({"resourceType": "Patient", "name": [{"family": "Windsor"}]});
    let index = extract(&registry, &patient, base);
    let done = storage
        .create_if_none(
            query("name", "windsor"),
            "Patient?name=windsor".into(),
            patient,
            index,
        )
        .await
        .unwrap();
    assert!(matches!(done, hearth::storage::Conditional::Matched(ref ids) if ids.len() == 1));
    let sql = since(mark);
    assert_eq!(settings(&sql), ["with values"], "{sql:#?}");
    let set = sql
        .iter()
        .position(|s| s.contains("plan_cache_mode"))
        .unwrap();
    let begin = sql.iter().position(|s| s.starts_with("BEGIN")).unwrap();
    assert!(set < begin, "{sql:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_search_reads_no_content_from_postgresql_and_a_new_version_alone() {
    let Some((_database, schema, storage)) = recorded_storage() else {
        return;
    };
    let registry = Registry::r4();
    let base = "http://localhost/fhir";
    let patient = |born: &str| json!({"resourceType": "Patient", "name": [{"family": "Chalmers"}], "birthDate": born});
    let mut ids = Vec::new();
    for born in ["1970-01-01", "1971-01-01"] {
        let index = extract(&registry, &patient(born), base);
        let created = storage
            .create("Patient", patient(born), index)
            .await
            .unwrap();
        ids.push(ResourceId::parse(&created.id).unwrap());
    }
    let search = || storage.search(patients(&registry, &[("name", "chalmers")]));
    // Statements since `mark` that read contents: joined to the page, or on their own.
    let reads = |mark: usize| {
        let sql = sent(&schema)[mark..].to_vec();
        let joined = sql
            .iter()
            .filter(|s| s.contains("JOIN resource_versions"))
            .count();
        let alone = sql
            .iter()
            .filter(|s| s.contains("FROM resource_versions"))
            .count();
        (joined, alone)
    };
    let born = |page: &hearth::storage::SearchPage| -> Vec<String> {
        page.matches
            .iter()
            .map(|h| serde_json::from_slice::<serde_json::Value>(&h.content).unwrap())
            .map(|v| v["birthDate"].as_str().unwrap().to_owned())
            .collect()
    };

    // A first search reads the contents with its page, in the same statement.
    let mark = sent(&schema).len();
    let page = search().await.unwrap();
    assert_eq!(born(&page), ["1970-01-01", "1971-01-01"]);
    assert_eq!(reads(mark), (1, 0));
    // Once searches of this kind find their contents in memory, they read none.
    let mut warm = false;
    for _ in 0..8 {
        let mark = sent(&schema).len();
        let page = search().await.unwrap();
        assert_eq!(born(&page), ["1970-01-01", "1971-01-01"]);
        if reads(mark) == (0, 0) {
            warm = true;
            break;
        }
    }
    assert!(
        warm,
        "searches kept reading the contents: {:#?}",
        sent(&schema)
    );

    // An update makes a new version: only its content is read, and it is what is served.
    let index = extract(&registry, &patient("1980-02-02"), base);
    storage
        .update("Patient", &ids[0], patient("1980-02-02"), index, Some(1))
        .await
        .unwrap();
    let mark = sent(&schema).len();
    let page = search().await.unwrap();
    assert_eq!(born(&page), ["1980-02-02", "1971-01-01"]);
    assert_eq!(reads(mark), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_counted_lately_is_not_counted_again() {
    let Some((_database, schema, storage)) = recorded_storage() else {
        return;
    };
    let registry = Registry::r4();
    let base = "http://localhost/fhir";
    for (family, gender) in [("Chalmers", "male"), ("Windsor", "female")] {
        let patient =
            json!({"resourceType": "Patient", "name": [{"family": family}], "gender": gender});
        let index = extract(&registry, &patient, base);
        storage.create("Patient", patient, index).await.unwrap();
    }
    let search = |params: &[(&str, &str)]| storage.search(patients(&registry, params));
    // The bounded counts that choose a plan, sent since `mark`.
    let counts = |mark: usize| {
        sent(&schema)[mark..]
            .iter()
            .filter(|s| s.starts_with("SELECT COUNT(*) AS n FROM ("))
            .count()
    };

    // One condition: counted the first time only.
    let mark = sent(&schema).len();
    let page = search(&[("name", "chal")]).await.unwrap();
    assert_eq!(page.matches.len(), 1);
    assert_eq!(counts(mark), 1, "{:#?}", &sent(&schema)[mark..]);
    let mark = sent(&schema).len();
    let page = search(&[("name", "chal")]).await.unwrap();
    assert_eq!(page.matches.len(), 1);
    assert_eq!(counts(mark), 0, "{:#?}", &sent(&schema)[mark..]);
    // Another value is another count.
    let mark = sent(&schema).len();
    let page = search(&[("name", "wind")]).await.unwrap();
    assert_eq!(page.matches.len(), 1);
    assert_eq!(counts(mark), 1);

    // Two conditions: each is counted to choose the one that drives; then neither is.
    let both = [("name", "wind"), ("gender", "female")];
    let mark = sent(&schema).len();
    let page = search(&both).await.unwrap();
    assert_eq!(page.matches.len(), 1);
    assert_eq!(
        counts(mark),
        1,
        "the name was counted lately, the gender not"
    );
    let mark = sent(&schema).len();
    let page = search(&both).await.unwrap();
    assert_eq!(page.matches.len(), 1);
    assert_eq!(counts(mark), 0);
}

#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

/// Creates `n` Patients, named `F0`, `F1`, ….
async fn create_patients(storage: &Storage, registry: &Registry, n: usize) {
    for n in 0..n {
        let patient = json!({"resourceType": "Patient", "name": [{"family": format!("F{n}")}]});
        let index = extract(registry, &patient, "http://localhost/fhir");
        storage.create("Patient", patient, index).await.unwrap();
    }
}

/// PostgreSQL's plan of `statement`, one line a node.
fn explain(conn: &mut PgConnection, statement: &str) -> String {
    let lines = diesel::sql_query(format!("EXPLAIN {statement}"))
        .load::<PlanLine>(conn)
        .unwrap();
    lines
        .into_iter()
        .map(|l| l.line)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_version_of_a_type_is_read_from_the_type_s_own_range() {
    let Some((database, schema, storage)) = recorded_storage() else {
        return;
    };
    let registry = Registry::r4();
    create_patients(&storage, &registry, 200).await;
    let mut conn = PgConnection::establish(&database.url()).unwrap();
    let newest = diesel::sql_query("SELECT max(seq) AS n FROM resource_versions")
        .get_result::<Count64>(&mut conn)
        .unwrap()
        .n;
    // A plain search leaves its connection planning once for all values, as the watches that
    // ask for the newest version find it.
    let page = storage.search(patients(&registry, &[("name", "f1")])).await;
    assert!(!page.unwrap().matches.is_empty());
    let mark = sent(&schema).len();
    assert_eq!(storage.latest_seq("Patient").await.unwrap(), Some(newest));
    assert_eq!(storage.latest_seq("ServiceRequest").await.unwrap(), None);
    let statement = sent(&schema)[mark..]
        .iter()
        .find(|s| s.contains("resource_versions"))
        .expect("the statement that read the newest version")
        .clone();
    let sql = statement.split(" -- binds").next().unwrap();

    // Planned once for every type, on this table as it is, the statement reads the type's own
    // range: never the whole write order, filtered by type.
    conn.batch_execute("ANALYZE resource_versions; SET plan_cache_mode = force_generic_plan")
        .unwrap();
    // A LIMIT is a literal here; every other parameter is the type.
    let sql = match sql.rfind("LIMIT $") {
        Some(limit) => format!("{}LIMIT 1", &sql[..limit]),
        None => sql.to_owned(),
    };
    let types = (1..).take_while(|n| sql.contains(&format!("${n}"))).count();
    conn.batch_execute(&format!(
        "PREPARE newest ({}) AS {sql}",
        vec!["text"; types].join(", ")
    ))
    .unwrap();
    let args = vec!["'ServiceRequest'"; types].join(", ");
    let plan = explain(&mut conn, &format!("EXECUTE newest ({args})"));
    assert!(plan.contains("resource_versions_by_type"), "{plan}");
    assert!(!plan.contains("resource_versions_pkey"), "{plan}");
}

/// The plan of a recorded statement with its recorded values written in.
fn plan_with_values(conn: &mut PgConnection, recorded: &str) -> String {
    let (sql, binds) = recorded.split_once(" -- binds: [").expect("binds");
    let binds: Vec<String> = binds
        .trim_end_matches(']')
        .split(", ")
        .map(|b| match b.strip_prefix('"') {
            Some(text) => format!("'{}'", text.trim_end_matches('"')),
            None => b.to_owned(),
        })
        .collect();
    let mut sql = sql.to_owned();
    for (n, value) in binds.iter().enumerate().rev() {
        sql = sql.replace(&format!("${}", n + 1), value);
    }
    explain(conn, &sql)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_s_history_after_a_search_is_planned_with_its_values_from_the_type_s_range() {
    let Some((database, schema, storage)) = recorded_storage() else {
        return;
    };
    let registry = Registry::r4();
    create_patients(&storage, &registry, 200).await;
    let history = |before_seq| hearth::storage::HistoryQuery {
        scope: hearth::storage::HistoryScope::Type("Patient".into()),
        since: None,
        at: None,
        before_seq,
        count: 10,
    };
    let first = storage.history(history(None)).await.unwrap();
    assert_eq!(first.len(), 10);
    // A plain search leaves its connection planning once for all values.
    let page = storage.search(patients(&registry, &[("name", "f1")])).await;
    assert!(!page.unwrap().matches.is_empty());
    let mark = sent(&schema).len();
    let next = storage.history(history(Some(first[9].seq))).await.unwrap();
    let seqs: Vec<i64> = next.iter().map(|v| v.seq).collect();
    let expected: Vec<i64> = (1..=10).map(|n| first[9].seq - n).collect();
    assert_eq!(seqs, expected, "the next page, newest first");
    let since = sent(&schema)[mark..].to_vec();
    assert!(
        since[0].contains("plan_cache_mode = force_custom_plan"),
        "{since:#?}"
    );

    // With its values, on this table as it is, the page is read from the type's own range
    // from the cursor on: never the whole write order, filtered by type.
    let mut conn = PgConnection::establish(&database.url()).unwrap();
    conn.batch_execute("ANALYZE resource_versions").unwrap();
    let statement = since
        .iter()
        .find(|s| s.contains("resource_versions"))
        .expect("the history statement");
    let plan = plan_with_values(&mut conn, statement);
    assert!(plan.contains("resource_versions_by_type"), "{plan}");
    assert!(!plan.contains("resource_versions_pkey"), "{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_waiting_on_postgresql_leaves_the_request_threads_free() {
    // One connection, so one thread for requests.
    let Some((database, _schema, storage)) = recorded_storage() else {
        return;
    };
    let registry = Registry::r4();
    let patient = json!({"resourceType": "Patient", "name": [{"family": "Chalmers"}]});
    let index = extract(&registry, &patient, "http://localhost/fhir");
    let created = storage
        .create("Patient", patient.clone(), index.clone())
        .await
        .unwrap();
    let created_id = ResourceId::parse(&created.id).unwrap();

    // Another session keeps versions from being written, and lets them be read.
    let mut lock = PgConnection::establish(&database.url()).unwrap();
    lock.batch_execute("BEGIN; LOCK TABLE resource_versions IN EXCLUSIVE MODE")
        .unwrap();
    let item = hearth::storage::ImportItem {
        resource_type: "Patient".into(),
        id: ResourceId::parse("imported").unwrap(),
        resource: patient,
        index,
    };
    let importing = tokio::spawn({
        let storage = storage.clone();
        async move { storage.import(vec![item]).await }
    });
    let mut watch = PgConnection::establish(&database.url()).unwrap();
    let waiting = |conn: &mut PgConnection| {
        diesel::sql_query(
            "SELECT COUNT(*) AS n FROM pg_locks \
             WHERE relation = 'resource_versions'::regclass AND NOT granted",
        )
        .get_result::<Count64>(conn)
        .unwrap()
        .n
    };
    let mut tries = 0;
    while waiting(&mut watch) == 0 {
        tries += 1;
        assert!(tries < 600, "the import never waited for the lock");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // The import waits; a read still has its thread.
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        storage.find_current("Patient", &created_id),
    )
    .await
    .expect("the read waited for the import's thread");
    assert!(read.unwrap().is_some());

    lock.batch_execute("COMMIT").unwrap();
    let imported = importing.await.unwrap().unwrap();
    assert_eq!(imported, [hearth::storage::Imported::Created]);
}

/// `resource` (which has its `id`) to import.
fn import_item(registry: &Registry, resource: serde_json::Value) -> hearth::storage::ImportItem {
    hearth::storage::ImportItem {
        resource_type: resource["resourceType"].as_str().unwrap().into(),
        id: ResourceId::parse(resource["id"].as_str().unwrap()).unwrap(),
        index: extract(registry, &resource, "http://localhost/fhir"),
        resource,
    }
}

/// `n` resources of `resource_type` to import, with ids `{prefix}0`, `{prefix}1`, ….
fn to_import(
    registry: &Registry,
    resource_type: &str,
    prefix: &str,
    n: usize,
) -> Vec<hearth::storage::ImportItem> {
    (0..n)
        .map(|n| {
            let resource = json!({"resourceType": resource_type, "id": format!("{prefix}{n}"),
                "code": {"text": format!("c{n}")}});
            import_item(registry, resource)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_finds_what_is_stored_by_key_when_the_statistics_are_old() {
    let Some((database, schema, storage)) = recorded_storage() else {
        return;
    };
    let registry = Registry::r4();
    let mut conn = PgConnection::establish(&database.url()).unwrap();
    conn.batch_execute("ALTER TABLE resources SET (autovacuum_enabled = false)")
        .unwrap();
    // Statistics taken before any Observation was stored, as the audit trail's first
    // AuditEvents find them, and kept while Observations are imported.
    storage
        .import(to_import(&registry, "Basic", "b", 2_000))
        .await
        .unwrap();
    conn.batch_execute("ANALYZE resources").unwrap();
    storage
        .import(to_import(&registry, "Observation", "o", 1_000))
        .await
        .unwrap();

    // Again, with 3 of them and 2 new ones: the stored ones are found and left alone.
    let mut again = to_import(&registry, "Observation", "o", 3);
    again.extend(to_import(&registry, "Observation", "new", 2));
    let mark = sent(&schema).len();
    let imported = storage.import(again).await.unwrap();
    use hearth::storage::Imported::{Created, Unchanged};
    assert_eq!(
        imported,
        [Unchanged, Unchanged, Unchanged, Created, Created]
    );

    // The look-up that found them descends the primary key by type and id for each one, with
    // these values: it never reads the type's range, filtering the ids.
    let statement = sent(&schema)[mark..]
        .iter()
        .find(|s| s.starts_with("SELECT") && s.contains("resource_versions"))
        .expect("the look-up of the stored versions")
        .clone();
    let sql = statement.split(" -- binds").next().unwrap();
    conn.batch_execute(&format!("PREPARE stored (text, text[]) AS {sql}"))
        .unwrap();
    let plan = explain(
        &mut conn,
        "EXECUTE stored ('Observation', ARRAY['o0', 'o1', 'o2', 'new0', 'new1'])",
    );
    assert!(plan.contains("resources_pkey"), "{plan}");
    assert!(!plan.contains("Filter: (resource_id"), "{plan}");
    assert!(
        plan.lines().any(|l| l.contains("Index Cond")
            && l.contains("resource_type")
            && l.contains("resource_id")),
        "{plan}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrow_date_range_is_planned_with_its_values_and_bounded_on_one_column() {
    let Some((_database, schema, storage)) = recorded_storage() else {
        return;
    };
    let registry = Registry::r4();
    // A Patient born each year from 1950 to 2019.
    let born = (1950..2020)
        .map(|year| {
            let patient = json!({"resourceType": "Patient", "id": format!("p{year}"),
                "birthDate": format!("{year}-06-15"), "name": [{"family": format!("F{year}")}]});
            import_item(&registry, patient)
        })
        .collect();
    storage.import(born).await.unwrap();
    // After a search planned once, a search by a birth date from 2018 on: counted and paged
    // with its values.
    let page = storage.search(patients(&registry, &[("name", "f1")])).await;
    assert!(!page.unwrap().matches.is_empty());
    let mark = sent(&schema).len();
    let page = storage
        .search(patients(&registry, &[("birthdate", "ge2018")]))
        .await
        .unwrap();
    let ids: Vec<&str> = page.matches.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["p2018", "p2019"]);
    let since = sent(&schema)[mark..].to_vec();
    assert!(
        since[0].contains("plan_cache_mode = force_custom_plan"),
        "{since:#?}"
    );

    // The page can read the dates that end from 2018 on by that bound alone, and reads the
    // counted rows whole before it sorts them, so that PostgreSQL does not walk every birth
    // date in id order, filtering them (what its estimates chose on the million of
    // `benches/README.md`, where the statistics of all dates together said most were recent;
    // a data set that small cannot show it).
    let statement = since
        .iter()
        .find(|s| s.starts_with("SELECT p.resource_type"))
        .expect("the page");
    assert!(statement.contains("a1.end_ms >= $"), "{statement}");
    assert!(statement.contains("OFFSET 0"), "{statement}");
    let count = since
        .iter()
        .find(|s| s.starts_with("SELECT COUNT"))
        .expect("the count that chose the plan");
    assert!(count.contains("a1.end_ms >= $"), "{count}");

    // Up to 1951: the start, bounded alone.
    let mark = sent(&schema).len();
    let page = storage
        .search(patients(&registry, &[("birthdate", "le1951")]))
        .await
        .unwrap();
    let ids: Vec<&str> = page.matches.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["p1950", "p1951"]);
    let since = sent(&schema)[mark..].to_vec();
    let statement = since
        .iter()
        .find(|s| s.starts_with("SELECT p.resource_type"))
        .expect("the page");
    assert!(statement.contains("a1.start_ms <= $"), "{statement}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_references_by_url_are_in_the_url_index_and_a_search_by_url_reads_it() {
    let Some((database, schema, storage)) = recorded_storage() else {
        return;
    };
    let registry = Registry::r4();
    let base = "http://localhost/fhir";
    for subject in ["Patient/local", "http://elsewhere/fhir/Patient/1"] {
        let observation = json!({"resourceType": "Observation", "status": "final",
            "code": {"text": "t"}, "subject": {"reference": subject}});
        let index = extract(&registry, &observation, base);
        storage
            .create("Observation", observation, index)
            .await
            .unwrap();
    }
    let mut conn = PgConnection::establish(&database.url()).unwrap();
    // How PostgreSQL defines an index of this schema.
    let definition = |conn: &mut PgConnection, name: &str| -> String {
        #[derive(QueryableByName)]
        struct Definition {
            #[diesel(sql_type = Text)]
            indexdef: String,
        }
        diesel::sql_query(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() \
             AND indexname = $1",
        )
        .bind::<Text, _>(name)
        .get_result::<Definition>(conn)
        .unwrap()
        .indexdef
    };
    let url_index = definition(&mut conn, "search_reference_url");
    assert!(
        url_index.ends_with("WHERE (target_url IS NOT NULL)"),
        "{url_index}"
    );
    // References are looked up by target first (one page for a resource's references to one
    // target under several parameters).
    let lookup = definition(&mut conn, "search_reference_lookup");
    assert!(
        lookup.ends_with("(resource_type, target_id, code, target_type) INCLUDE (resource_id)"),
        "{lookup}"
    );

    // A search by the URL finds its Observation, by a condition on the URL that the partial
    // index serves (seen in a plan of that condition alone: on a table this small the planner
    // may prefer other ways in the whole page).
    let params = [(
        "subject".to_owned(),
        "http://elsewhere/fhir/Patient/1".to_owned(),
    )];
    let query =
        hearth::search::query::parse(&registry, vec!["Observation".into()], &params, base, true)
            .unwrap();
    let mark = sent(&schema).len();
    let page = storage.search(query).await.unwrap();
    assert_eq!(page.matches.len(), 1);
    assert!(
        sent(&schema)[mark..]
            .iter()
            .any(|s| s.contains(".target_url = $")),
        "{:#?}",
        &sent(&schema)[mark..]
    );
    conn.batch_execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
        .unwrap();
    let plan = explain(
        &mut conn,
        "SELECT resource_id FROM search_reference WHERE resource_type = 'Observation' \
         AND code = 'subject' AND target_url = 'http://elsewhere/fhir/Patient/1'",
    );
    assert!(plan.contains("search_reference_url"), "{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_is_planned_once_on_its_own_connection() {
    let Some((_database, schema, storage)) = recorded_storage() else {
        return;
    };
    let registry = Registry::r4();
    let settings = |mark: usize| -> Vec<String> {
        sent(&schema)[mark..]
            .iter()
            // (A new connection's own settings, sent as it opens, are left out.)
            .filter(|s| {
                (s.starts_with("SET plan_cache_mode") && !s.contains("statement_timeout"))
                    || s.starts_with("BEGIN")
            })
            .cloned()
            .collect()
    };
    // Each import thread sets its connection to plan once, before its first transaction,
    // and keeps it.
    let mark = sent(&schema).len();
    for prefix in ["a", "b", "c", "d", "e", "f"] {
        let imported = storage
            .import(to_import(&registry, "Observation", prefix, 3))
            .await
            .unwrap();
        assert_eq!(imported.len(), 3);
    }
    let sql = settings(mark);
    let once = sql
        .iter()
        .filter(|s| *s == "SET plan_cache_mode = force_generic_plan")
        .count();
    let begins = sql.iter().filter(|s| *s == "BEGIN").count();
    assert!((1..=2).contains(&once), "{sql:#?}");
    assert_eq!(begins, 6, "{sql:#?}");
    assert_eq!(once + begins, sql.len(), "{sql:#?}");
    assert_eq!(
        sql[0], "SET plan_cache_mode = force_generic_plan",
        "{sql:#?}"
    );

    // A read on the request threads is planned with its values, as it was.
    let mark = sent(&schema).len();
    let found = storage
        .find_current("Observation", &ResourceId::parse("a1").unwrap())
        .await
        .unwrap();
    assert!(found.is_some());
    assert!(settings(mark).is_empty(), "{:#?}", settings(mark));
}

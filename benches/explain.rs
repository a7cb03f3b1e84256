//! Prints the database's query plans for the benchmark searches (benches/search.sh) against a
//! seeded database, for benches/README.md:
//!
//!   cargo run --release --example explain -- sqlite://./bench-data/search-55556.db
//!   cargo run --release --example explain -- postgres://postgres@127.0.0.1:5432/bench
//!   cargo run --release --example explain -- sqlite://./bench-data/triage.db 'ServiceRequest?status=active'

use std::sync::Arc;

use hearth::clock::SystemClock;
use hearth::config::DatabaseUrl;
use hearth::search::{Registry, query};
use hearth::storage::Storage;

const SEARCHES: [&str; 9] = [
    "Patient?name=Thompsonley",
    "Patient?birthdate=ge1990-01-01",
    "Observation?patient=sp4242&code=http://loinc.org|8480-6&_sort=-date",
    "Observation?code=8480-6&value-quantity=gt120",
    "Encounter?patient.name=Thompsonley",
    "Observation?patient=sp4242&_include=Observation:patient",
    "Patient?_id=sp4242&_revinclude=Observation:patient",
    "Observation?code=8480-6&_total=accurate&_count=10",
    "Observation?_sort=-date&_count=10",
];

fn main() {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sqlite://./bench-data/search-55556.db".into());
    // Searches named after the URL replace the benchmark list.
    let asked: Vec<String> = std::env::args().skip(2).collect();
    let url = DatabaseUrl::parse(&url).expect("database URL");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let storage = Storage::open(&url, 2, Arc::new(SystemClock)).expect("open the database");
    let mut registry = Registry::r4();
    for definition in hearth::fhir::profiles::resources() {
        if definition["resourceType"] == "SearchParameter" {
            registry.add(&definition).expect("profile SearchParameter");
        }
    }
    let searches: Vec<&str> = if asked.is_empty() {
        SEARCHES.to_vec()
    } else {
        asked.iter().map(String::as_str).collect()
    };
    for search in searches {
        let (t, q) = search.split_once('?').unwrap();
        let params: Vec<(String, String)> =
            form_urlencoded::parse(q.as_bytes()).into_owned().collect();
        let query = query::parse(
            &registry,
            vec![t.to_owned()],
            &params,
            "http://localhost/fhir",
            true,
        )
        .expect("query");
        let plan = runtime.block_on(storage.explain(query)).expect("explain");
        println!(
            "### `{search}`\n\n```\n{}```\n",
            plan.trim_end_matches('\n').to_owned() + "\n"
        );
    }
}

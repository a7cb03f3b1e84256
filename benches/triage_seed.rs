//! Generates echo requests for the `$triage-stats` benchmark straight into a Hearth database,
//! through the triage write hook and the index extraction the REST API uses (without HTTP).
//! Requests arrive at a steady rate over the two years before now; the last weeks' ones are
//! partly pending, older ones are completed or declined. Deterministic for a given count and
//! day.
//!
//!   cargo run --release --example triage_seed -- sqlite://./bench-data/triage.db 100000
//!
//! Then serve that database and time `GET /fhir/ServiceRequest/$triage-stats?days=15`
//! (`benches/triage_stats.sh`).

use std::sync::Arc;
use std::time::Instant;

use hearth::clock::SystemClock;
use hearth::config::DatabaseUrl;
use hearth::hooks::{WriteContext, WriteHook};
use hearth::search::{Registry, extract};
use hearth::storage::Storage;
use hearth::triage::{Calendar, CalendarSettings, Pathways, Triage};
use serde_json::{Value, json};

const SD: &str = "http://hearth.health/fhir/StructureDefinition/";
const HOUR: i64 = 3_600_000;
const SPAN_DAYS: i64 = 730;
const PATHWAYS: [&str; 10] = [
    "purple", "red", "red", "red", "amber", "amber", "amber", "amber", "green", "green",
];

/// A small deterministic generator (xorshift).
struct Dice(u64);

impl Dice {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

fn request(n: usize, now: i64, count: usize, dice: &mut Dice) -> (Value, i64) {
    let span = SPAN_DAYS * 24 * HOUR;
    let received = now - span + (n as i64) * span / count as i64;
    let triaged = received + (dice.next(120) as i64) * 60_000;
    let pathway = PATHWAYS[dice.next(PATHWAYS.len() as u64) as usize];
    let age_days = (now - received) / (24 * HOUR);
    let mut extensions = vec![
        json!({"url": format!("{SD}ward"), "valueReference": {"reference": format!("Location/ward-{}", dice.next(12))}}),
    ];
    let mut status = "active";
    let untriaged = age_days < 2 && dice.next(5) == 0;
    if !untriaged {
        extensions.push(json!({"url": format!("{SD}triage-pathway"), "valueCoding": {"system": "http://hearth.health/fhir/CodeSystem/triage-pathway", "code": pathway}}));
        extensions.push(json!({"url": format!("{SD}triage-time"), "valueDateTime": hearth::triage::request::format_utc(triaged)}));
        // Older requests are done; recent ones partly pending.
        if pathway != "green" && (age_days > 10 || dice.next(3) > 0) {
            let hours = match pathway {
                "purple" => 1 + dice.next(2) as i64,
                "red" => 4 + dice.next(40) as i64,
                _ => 12 + dice.next(100) as i64,
            };
            let completed = (triaged + hours * HOUR).min(now - 60_000);
            if completed > triaged {
                status = "completed";
                extensions.push(json!({"url": format!("{SD}completion-time"), "valueDateTime": hearth::triage::request::format_utc(completed)}));
            }
        }
    }
    let resource = json!({
        "resourceType": "ServiceRequest",
        "id": format!("echo{n}"),
        "status": status,
        "intent": "order",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "40701008", "display": "Echocardiography"}]},
        "subject": {"reference": format!("Patient/p{}", n % 20_000)},
        "authoredOn": hearth::triage::request::format_utc(received),
        "requester": {"reference": format!("Practitioner/dr{}", dice.next(40))},
        "extension": extensions,
    });
    (resource, triaged)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "sqlite://./bench-data/triage.db".into());
    let count: usize = args.next().and_then(|c| c.parse().ok()).unwrap_or(100_000);
    let url = DatabaseUrl::parse(&url).expect("database URL");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let storage = Storage::open(&url, 8, Arc::new(SystemClock)).expect("open");
        let mut registry = Registry::r4();
        for definition in hearth::fhir::profiles::resources() {
            if definition["resourceType"] == "SearchParameter" {
                registry.add(&definition).expect("profile SearchParameter");
            }
        }
        let code_system =
            hearth::fhir::profiles::find("CodeSystem", "triage-pathway").expect("pathways");
        let triage = Triage::new(
            Calendar::new(CalendarSettings::default()),
            Pathways::from_code_system(&code_system).expect("pathways"),
        );
        let now = chrono::Utc::now().timestamp_millis();
        let registry = Arc::new(registry);
        let started = Instant::now();
        let mut dice = Dice(0x9E37_79B9_7F4A_7C15);
        let mut batch = Vec::new();
        for n in 0..count {
            let (mut resource, _) = request(n, now, count, &mut dice);
            let context = WriteContext {
                resource_type: "ServiceRequest",
                previous: None,
                now,
                author: None,
            };
            triage.before_write(&context, &mut resource).expect("hook");
            let rows = extract(&registry, &resource, "http://localhost/fhir");
            let id = hearth::fhir::ResourceId::parse(&format!("echo{n}")).expect("id");
            let storage = storage.clone();
            batch.push(tokio::spawn(async move {
                storage
                    .update("ServiceRequest", &id, resource, rows, None)
                    .await
                    .expect("store")
            }));
            if batch.len() == 64 {
                for task in batch.drain(..) {
                    task.await.expect("task");
                }
            }
            if (n + 1) % 10_000 == 0 {
                eprintln!(
                    "{} requests, {:.0}/s",
                    n + 1,
                    (n + 1) as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
        for task in batch {
            task.await.expect("task");
        }
        storage.optimize().await.expect("optimize");
        println!(
            "seeded {count} echo requests in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    });
}

//! Generates a realistic search data set straight into a Hearth database (SQLite or
//! PostgreSQL), through the same storage and index extraction as the REST API but without HTTP:
//! patients, each with encounters, observations (vital signs and labs with realistic values and
//! units) and conditions, all linked by reference. Deterministic: patient `n` is `Patient/sp{n}`
//! with the same name, birth date and records in every run, so the load scripts can pick
//! patients, names and codes that exist.
//!
//!   cargo run --release --example search_seed -- sqlite://./bench-data/hearth.db 55556
//!   cargo run --release --example search_seed -- postgres://postgres@127.0.0.1:5432/bench 55556
//!
//! 55,556 patients make 1,000,008 resources (18 each). The server's FHIR base for local
//! references is http://localhost/fhir (only relative references are written).

use std::sync::Arc;
use std::time::Instant;

use hearth::clock::SystemClock;
use hearth::config::DatabaseUrl;
use hearth::fhir::ResourceId;
use hearth::search::{Registry, extract};
use hearth::storage::Storage;
use serde_json::{Value, json};

/// Family names: with the suffixes, 200 of them, so a name prefix matches a few hundred patients.
const FAMILIES: [&str; 40] = [
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Robinson",
    "Wright",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Patel",
    "Khan",
    "Lewis",
    "James",
    "Phillips",
    "Mason",
    "Mitchell",
    "Rose",
    "Davis",
    "Rodriguez",
    "Cox",
    "Alexander",
    "Morgan",
    "Moore",
    "Martin",
    "Price",
    "Scott",
    "Hughes",
    "Edwards",
    "Müller",
];
const SUFFIXES: [&str; 5] = ["", "son", "-Hart", "ley", "field"];
const GIVEN: [&str; 24] = [
    "Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Noah", "Mia", "Jack", "Ivy", "Leo",
    "Lily", "Arthur", "Freya", "Muhammad", "Grace", "Oscar", "Sophia", "Charlie", "Zoë", "Jacob",
    "Ella", "Thomas", "Chloé",
];
/// LOINC code, display, unit, low, high.
const OBSERVATIONS: [(&str, &str, &str, f64, f64); 10] = [
    ("8480-6", "Systolic blood pressure", "mm[Hg]", 95.0, 185.0),
    ("8462-4", "Diastolic blood pressure", "mm[Hg]", 55.0, 115.0),
    ("8867-4", "Heart rate", "/min", 45.0, 140.0),
    ("9279-1", "Respiratory rate", "/min", 10.0, 30.0),
    ("8310-5", "Body temperature", "Cel", 35.5, 40.0),
    ("29463-7", "Body weight", "kg", 3.0, 140.0),
    ("8302-2", "Body height", "cm", 50.0, 200.0),
    (
        "2339-0",
        "Glucose [Mass/volume] in Blood",
        "mg/dL",
        60.0,
        300.0,
    ),
    (
        "2093-3",
        "Cholesterol [Mass/volume] in Serum or Plasma",
        "mg/dL",
        120.0,
        320.0,
    ),
    (
        "4548-4",
        "Hemoglobin A1c/Hemoglobin.total in Blood",
        "%",
        4.0,
        12.0,
    ),
];
/// SNOMED CT code and display.
const CONDITIONS: [(&str, &str); 8] = [
    ("44054006", "Diabetes mellitus type 2"),
    ("38341003", "Hypertensive disorder"),
    ("195967001", "Asthma"),
    ("49436004", "Atrial fibrillation"),
    ("84114007", "Heart failure"),
    ("13645005", "Chronic obstructive lung disease"),
    ("35489007", "Depressive disorder"),
    ("40055000", "Chronic sinusitis"),
];

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The family name of patient `n` (also used by the load scripts).
fn family(n: u64) -> String {
    format!(
        "{}{}",
        FAMILIES[(n % 40) as usize],
        SUFFIXES[((n / 40) % 5) as usize]
    )
}

fn day(rng: &mut Rng, from_year: i64, years: i64) -> chrono::NaiveDate {
    let start = chrono::NaiveDate::from_ymd_opt(from_year as i32, 1, 1).unwrap();
    start + chrono::Duration::days(rng.below((years * 365) as u64) as i64)
}

/// Every resource of patient `n`.
fn patient_records(n: u64) -> Vec<Value> {
    let mut rng = Rng(n.wrapping_mul(7919));
    let pid = format!("sp{n}");
    let female = rng.below(2) == 0;
    let birth = day(&mut rng, 1930, 90);
    let city = ["Leeds", "York", "Hull", "Bradford", "Sheffield"][rng.below(5) as usize];
    let mut out = vec![json!({
        "resourceType": "Patient", "id": pid,
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.2.1.4.1", "value": format!("{:010}", 9_000_000_000u64 + n)},
            {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "system": "urn:hearth:mrn", "value": format!("MRN{n:07}")}],
        "active": true,
        "name": [{"use": "official", "family": family(n), "given": [GIVEN[rng.below(24) as usize], GIVEN[rng.below(24) as usize]]}],
        "telecom": [{"system": "phone", "value": format!("07{:09}", rng.below(1_000_000_000))}],
        "gender": if female { "female" } else { "male" },
        "birthDate": birth.to_string(),
        "address": [{"line": [format!("{} High Street", 1 + rng.below(200))], "city": city, "country": "GB"}],
        "managingOrganization": {"reference": format!("Organization/org{}", n % 50)},
    })];
    for e in 0..3 {
        let start = day(&mut rng, 2015, 10);
        let eid = format!("{pid}-e{e}");
        out.push(json!({
            "resourceType": "Encounter", "id": eid, "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": if e == 0 { "IMP" } else { "AMB" }},
            "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "185349003", "display": "Encounter for check up"}]}],
            "subject": {"reference": format!("Patient/{pid}")},
            "participant": [{"individual": {"reference": format!("Practitioner/dr{}", rng.below(200))}}],
            "period": {"start": format!("{start}T09:00:00Z"), "end": format!("{start}T09:30:00Z")},
            "serviceProvider": {"reference": format!("Organization/org{}", n % 50)},
        }));
        for o in 0..4 {
            let (code, display, unit, low, high) = OBSERVATIONS[rng.below(10) as usize];
            let value = ((low + (high - low) * rng.unit()) * 10.0).round() / 10.0;
            out.push(json!({
                "resourceType": "Observation", "id": format!("{eid}-o{o}"), "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": if o < 2 { "vital-signs" } else { "laboratory" }}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}], "text": display},
                "subject": {"reference": format!("Patient/{pid}")},
                "encounter": {"reference": format!("Encounter/{eid}")},
                "effectiveDateTime": format!("{start}T09:{:02}:00Z", 5 + o * 5),
                "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
            }));
        }
    }
    for c in 0..2 {
        let (code, display) = CONDITIONS[rng.below(8) as usize];
        out.push(json!({
            "resourceType": "Condition", "id": format!("{pid}-c{c}"),
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}], "text": display},
            "subject": {"reference": format!("Patient/{pid}")},
            "onsetDateTime": day(&mut rng, 2000, 20).to_string(),
        }));
    }
    out
}

fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "sqlite://./bench-data/hearth.db".into());
    let patients: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(55_556);
    let url = DatabaseUrl::parse(&url).expect("database URL");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let storage = Storage::open(&url, 16, Arc::new(SystemClock)).expect("open the database");
    let registry = Arc::new(Registry::r4());
    let started = Instant::now();
    let written = runtime.block_on(async {
        let mut shared = Vec::new();
        for n in 0..50 {
            shared.push(json!({"resourceType": "Organization", "id": format!("org{n}"), "name": format!("{} Health Trust", FAMILIES[n % 40])}));
        }
        for n in 0..200 {
            shared.push(json!({"resourceType": "Practitioner", "id": format!("dr{n}"), "name": [{"family": FAMILIES[n % 40], "given": [GIVEN[n % 24]], "prefix": ["Dr"]}]}));
        }
        let total = Arc::new(std::sync::atomic::AtomicU64::new(0));
        write_all(&storage, &registry, shared, &total).await;
        // 32 patients in flight: group commits on SQLite, pooled transactions on PostgreSQL.
        let (tx, rx) = crossbeam_channel::bounded::<u64>(64);
        let mut workers = Vec::new();
        for _ in 0..32 {
            let (rx, storage, registry, total) = (rx.clone(), storage.clone(), registry.clone(), total.clone());
            workers.push(tokio::spawn(async move {
                while let Ok(n) = tokio::task::block_in_place(|| rx.recv()) {
                    write_all(&storage, &registry, patient_records(n), &total).await;
                }
            }));
        }
        let feeder = std::thread::spawn(move || {
            for n in 0..patients {
                if tx.send(n).is_err() {
                    break;
                }
            }
        });
        let progress = {
            let total = total.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                    let done = total.load(std::sync::atomic::Ordering::Relaxed);
                    eprintln!("{done} resources, {:.0}/s", done as f64 / started.elapsed().as_secs_f64());
                }
            })
        };
        for w in workers {
            w.await.unwrap();
        }
        feeder.join().unwrap();
        progress.abort();
        total.load(std::sync::atomic::Ordering::Relaxed)
    });
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{written} resources in {seconds:.1} s ({:.0} resources/s)",
        written as f64 / seconds
    );
}

async fn write_all(
    storage: &Storage,
    registry: &Registry,
    resources: Vec<Value>,
    total: &std::sync::atomic::AtomicU64,
) {
    for resource in resources {
        let t = resource["resourceType"].as_str().unwrap().to_owned();
        let id = ResourceId::parse(resource["id"].as_str().unwrap()).unwrap();
        let index = extract(registry, &resource, "http://localhost/fhir");
        storage
            .update(&t, &id, resource, index, None)
            .await
            .expect("write");
        total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

//! The console's strip board with 500 pending echo requests, on SQLite and (when
//! `HEARTH_TEST_POSTGRES_URL` is set, in a fresh schema) on PostgreSQL: the time to answer
//! `GET /console` and the live-update fragment `GET /console/board/strips` over loopback (an
//! upper bound of the server-side time), the weight of the page with its stylesheet and
//! script, and what each of the board's FHIR requests costs alone. Each board request goes
//! through the whole console: session, FHIR searches with the user's token, guard, audit,
//! template.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use diesel::{Connection, PgConnection, RunQueryDsl};
use hearth::clock::{SharedClock, SystemClock};
use hearth::config::{Config, Overrides};
use serde_json::{Value, json};

const PENDING: usize = 500;

fn boards(c: &mut Criterion) {
    board(c, "sqlite", None);
    match std::env::var("HEARTH_TEST_POSTGRES_URL") {
        Ok(url) => {
            let schema = format!("hearth_bench_{}", uuid::Uuid::new_v4().simple());
            let mut admin = PgConnection::establish(&url).expect("PostgreSQL");
            diesel::sql_query(format!("CREATE SCHEMA {schema}"))
                .execute(&mut admin)
                .unwrap();
            let joiner = if url.contains('?') { '&' } else { '?' };
            board(
                c,
                "postgres",
                Some(format!("{url}{joiner}options=-csearch_path%3D{schema}")),
            );
            diesel::sql_query(format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&mut admin)
                .unwrap();
        }
        Err(_) => eprintln!("skipping the PostgreSQL board: HEARTH_TEST_POSTGRES_URL is unset"),
    }
}

fn board(c: &mut Criterion, backend: &str, database_url: Option<String>) {
    eprintln!("== {backend}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_overrides(Overrides {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().to_owned()),
        database_url,
        admin_email: Some("bench@hearth.test".into()),
        admin_password: Some("Bench-console-1".into()),
        argon2_memory_kib: Some(1024),
        argon2_iterations: Some(1),
        ..Overrides::default()
    })
    .unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let server = runtime
        .block_on(hearth::app::start_with_clock(&config, clock))
        .unwrap();
    let root = server.public_url.clone();
    let token = server.auth.operator_token("system/*.cruds", 3600).unwrap();
    let client = reqwest::blocking::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // 500 pending requests on the three pathways, for 500 patients, in transactions of 100.
    let pathways = ["purple", "red", "amber"];
    for batch in 0..PENDING / 100 {
        let mut entries: Vec<Value> = Vec::new();
        for n in batch * 100..(batch + 1) * 100 {
            let patient = format!("urn:uuid:{}", uuid::Uuid::new_v4());
            entries.push(json!({"fullUrl": patient, "request": {"method": "POST", "url": "Patient"},
                "resource": {"resourceType": "Patient", "name": [{"family": format!("Bench{n}"), "given": ["Pat"]}],
                    "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "value": format!("B{n:05}")}]}}));
            entries.push(json!({"request": {"method": "POST", "url": "ServiceRequest"},
                "resource": {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "40701008"}]},
                    "subject": {"reference": patient},
                    "requester": {"display": "Dr Bench"},
                    "reasonCode": [{"text": "Breathless on exertion, ?LV function"}],
                    "extension": [
                        {"url": "http://hearth.health/fhir/StructureDefinition/ward", "valueReference": {"display": "Ward 7"}},
                        {"url": "http://hearth.health/fhir/StructureDefinition/triage-pathway", "valueCoding": {"system": "http://hearth.health/fhir/CodeSystem/triage-pathway", "code": pathways[n % 3]}},
                        {"url": "http://hearth.health/fhir/StructureDefinition/triage-sentence", "valueString": "Echo accepted: it will be done within the target. Please keep the patient on the ward."},
                        {"url": "http://hearth.health/fhir/StructureDefinition/triage-time", "valueDateTime": format!("2026-11-{:02}T09:00:00Z", 2 + n % 25)}]}}));
        }
        let answer = client
            .post(format!("{root}/fhir"))
            .bearer_auth(&token)
            .header("content-type", "application/fhir+json")
            .body(
                json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
                    .to_string(),
            )
            .send()
            .unwrap();
        assert!(answer.status().is_success(), "seed: {}", answer.status());
    }
    // The planner's statistics as the server keeps them (refreshed at start, every ten minutes
    // and after an import; PostgreSQL's autovacuum within a minute or so): opening the
    // database refreshes what the load made stale.
    hearth::storage::Storage::open(&config.database, 1, Arc::new(SystemClock))
        .expect("refresh the statistics");
    // Sign in.
    let login = client
        .get(format!("{root}/console/login"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let marker = "name=\"csrf\" value=\"";
    let at = login.find(marker).unwrap() + marker.len();
    let csrf = login[at..at + login[at..].find('"').unwrap()].to_owned();
    let signed = client
        .post(format!("{root}/console/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", "bench@hearth.test"),
            ("password", "Bench-console-1"),
        ])
        .send()
        .unwrap();
    assert_eq!(signed.status(), 303);

    let page = client
        .get(format!("{root}/console"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        page.contains(&format!(">{PENDING}<")),
        "the board counts {PENDING} pending"
    );
    let css = client
        .get(format!("{root}/console/static/hearth.css"))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let js = client
        .get(format!("{root}/console/static/console.js"))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let strips = page.matches("<article").count();
    eprintln!(
        "board with {PENDING} pending: {strips} strips shown; page {} bytes + stylesheet {} + script {} = {} bytes",
        page.len(),
        css.len(),
        js.len(),
        page.len() + css.len() + js.len()
    );
    let all = client
        .get(format!("{root}/console?all=red"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    eprintln!("a whole lane (?all=red): {} bytes", all.len());

    // What the board's FHIR requests cost one by one (the same requests the console makes, over
    // HTTP with a system token): median of 20.
    let now = chrono::Utc::now();
    let today = now
        .with_timezone(&chrono_tz::Europe::London)
        .format("%Y-%m-%d");
    let echo = "ServiceRequest?code=http://snomed.info/sct%7C40701008&status=active";
    for path in [
        "ServiceRequest/$triage-stats?days=1".to_owned(),
        format!(
            "{echo}&pathway:missing=true&_sort=deadline,authored&_count=40&_include=ServiceRequest:subject"
        ),
        format!(
            "{echo}&pathway=red&_sort=deadline,authored&_count=40&_include=ServiceRequest:subject"
        ),
        format!("{echo}&pathway=red&_sort=deadline,authored&_count=40"),
        format!("{echo}&pathway=red&_count=40"),
        format!("{echo}&_count=40"),
        format!(
            "ServiceRequest?code=http://snomed.info/sct%7C40701008&status=completed&completed=ge{today}&_sort=-completed&_count=50&_include=ServiceRequest:subject"
        ),
    ] {
        let mut times: Vec<f64> = (0..20)
            .map(|_| {
                let started = std::time::Instant::now();
                let r = client
                    .get(format!("{root}/fhir/{path}"))
                    .bearer_auth(&token)
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 200, "{path}");
                r.bytes().unwrap();
                started.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(f64::total_cmp);
        eprintln!("{:>8.2} ms  GET /fhir/{path}", times[10]);
    }

    let mut group = c.benchmark_group(format!("console_{backend}"));
    group.sample_size(30);
    group.bench_function("board_500_pending", |b| {
        b.iter(|| {
            let r = client.get(format!("{root}/console")).send().unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().unwrap()
        })
    });
    group.bench_function("strips_fragment_500_pending", |b| {
        b.iter(|| {
            let r = client
                .get(format!("{root}/console/board/strips"))
                .send()
                .unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().unwrap()
        })
    });
    group.finish();
    runtime.block_on(server.stop()).unwrap();
}

criterion_group!(benches, boards);
criterion_main!(benches);

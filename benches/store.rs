//! Criterion benchmarks of the write and read paths below HTTP: parsing and validating a
//! resource, writing it as XML, stamping it, and storing/reading it in SQLite. `serde_json`
//! parsing is measured alongside as the floor for the parse ratios.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use hearth::clock::SystemClock;
use hearth::config::DatabaseUrl;
use hearth::fhir::{Format, ResourceId, json_to_xml, parse_resource, stamp};
use hearth::storage::Storage;
use serde_json::Value;

fn patient() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/r4-examples/Patient-example.json"
    ))
    .expect("fixture")
}

fn codec(c: &mut Criterion) {
    let bytes = patient();
    let value: Value = serde_json::from_slice(&bytes).unwrap();
    c.bench_function("serde_json parse (floor)", |b| {
        b.iter(|| serde_json::from_slice::<Value>(&bytes).unwrap())
    });
    c.bench_function("parse + validate Patient JSON", |b| {
        b.iter(|| parse_resource(&bytes, Format::Json, Some("Patient")).unwrap())
    });
    let xml = json_to_xml(&value).unwrap();
    c.bench_function("write Patient XML", |b| {
        b.iter(|| json_to_xml(&value).unwrap())
    });
    c.bench_function("parse + validate Patient XML", |b| {
        b.iter(|| parse_resource(&xml, Format::Xml, Some("Patient")).unwrap())
    });
    let id = ResourceId::parse("example").unwrap();
    c.bench_function("stamp id and meta", |b| {
        b.iter(|| stamp(&value, &id, 2, 1_700_000_000_000))
    });
}

fn storage(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::Sqlite(dir.path().join("bench.db"));
    let storage = Storage::open(&url, 8, Arc::new(SystemClock)).unwrap();
    let value: Value = serde_json::from_slice(&patient()).unwrap();
    let registry = hearth::search::Registry::r4();
    let index = hearth::search::extract(&registry, &value, "http://localhost/fhir");
    c.bench_function("extract Patient index rows", |b| {
        b.iter(|| hearth::search::extract(&registry, &value, "http://localhost/fhir"))
    });
    let created = runtime
        .block_on(storage.create("Patient", value.clone(), index.clone()))
        .unwrap();
    let id = ResourceId::parse(&created.id).unwrap();
    c.bench_function("sqlite read current version", |b| {
        b.iter(|| {
            runtime
                .block_on(storage.find_current("Patient", &id))
                .unwrap()
        })
    });
    let mut group = c.benchmark_group("sqlite durable write");
    group.sample_size(20);
    group.bench_function("create (one writer, fsync per commit)", |b| {
        b.iter(|| {
            runtime
                .block_on(storage.create("Patient", value.clone(), index.clone()))
                .unwrap()
        })
    });
    group.bench_function("create (32 concurrent, group commit)", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let writes: Vec<_> = (0..32)
                    .map(|_| {
                        let (storage, value, index) =
                            (storage.clone(), value.clone(), index.clone());
                        tokio::spawn(async move {
                            storage.create("Patient", value, index).await.unwrap()
                        })
                    })
                    .collect();
                for write in writes {
                    write.await.unwrap();
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, codec, storage);
criterion_main!(benches);

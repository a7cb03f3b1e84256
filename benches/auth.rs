//! What SMART authorization costs a FHIR read, measured in one run on one binary: the same
//! `GET /fhir/Patient/{id}` through the FHIR router (edge, guard, handler, SQLite) with no
//! authorization, with token verification (the deployed guard without the audit trail), and
//! with verification and the audit trail; and the pieces alone: verifying a token already seen
//! (a cache hit), verifying a new token (an ES256 signature check) and signing one.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use hearth::clock::{SharedClock, SystemClock};
use hearth::config::{Config, Overrides};
use serde_json::json;
use tower::ServiceExt;

fn reads(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_overrides(Overrides {
        data_dir: Some(dir.path().to_owned()),
        ..Overrides::default()
    })
    .unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let public = "http://127.0.0.1:8080";
    let (plain, auth) = runtime.block_on(async {
        let storage = hearth::app::open_storage(&config, clock.clone())
            .await
            .unwrap();
        let calendar = hearth::app::calendar_settings(&config.triage).unwrap();
        let state = hearth::app::rest_state(storage, public, clock.clone(), calendar)
            .await
            .unwrap();
        let accounts =
            hearth::app::people::accounts(&config, &state, public, clock.clone()).unwrap();
        let auth = hearth::app::open_auth(&state, &accounts, public, clock.clone())
            .await
            .unwrap();
        let id = hearth::fhir::ResourceId::parse("bench").unwrap();
        state
            .update_through_hooks(
                "Patient",
                &id,
                json!({"resourceType": "Patient", "id": "bench", "name": [{"family": "Bench"}]}),
                None,
            )
            .await
            .unwrap();
        (state, auth)
    });
    let token = auth.operator_token("system/*.rs", 3600).unwrap();
    let bare = hearth::rest::router(plain.clone(), 1 << 20);
    let guarded = {
        let mut state = plain.clone();
        state.auth = Some(auth.clone());
        hearth::rest::router(state, 1 << 20)
    };
    let (audited, trail) = runtime.block_on(async {
        let (trail, task) = hearth::rest::audit::AuditTrail::start(plain.clone());
        let mut state = plain.clone();
        state.auth = Some(auth.clone());
        state.audit = Some(trail);
        (hearth::rest::router(state, 1 << 20), task)
    });
    let read = |router: &axum::Router| {
        let router = router.clone();
        let token = token.clone();
        async move {
            let response = router
                .oneshot(
                    Request::get("/fhir/Patient/bench")
                        .header("authorization", format!("Bearer {token}"))
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap()
        }
    };
    let mut group = c.benchmark_group("read Patient through the FHIR router");
    group.bench_function("no authorization", |b| {
        b.iter(|| runtime.block_on(read(&bare)))
    });
    group.bench_function("token verified (cached)", |b| {
        b.iter(|| runtime.block_on(read(&guarded)))
    });
    group.bench_function("token verified + audit trail", |b| {
        b.iter(|| runtime.block_on(read(&audited)))
    });
    group.finish();

    let mut group = c.benchmark_group("tokens");
    group.bench_function("verify a token seen before", |b| {
        b.iter(|| runtime.block_on(auth.verify(&token)).unwrap())
    });
    group.bench_function("verify a new token (ES256)", |b| {
        b.iter_batched(
            || auth.operator_token("system/*.rs", 3600).unwrap(),
            |fresh| runtime.block_on(auth.verify(&fresh)).unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });
    group.bench_function("sign an access token (ES256)", |b| {
        b.iter(|| auth.operator_token("system/*.rs", 3600).unwrap())
    });
    group.finish();
    drop(trail);
}

criterion_group!(benches, reads);
criterion_main!(benches);

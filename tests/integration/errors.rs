//! Every error of the FHIR API is an OperationOutcome with the status the spec asks for, and no
//! input crashes the server.

use hearth::config::Overrides;
use reqwest::{Method, header};
use serde_json::json;

use crate::on_both_backends;
use crate::support::{TestDatabase, TestServer, outcome};

on_both_backends!(
    malformed_bodies,
    bad_primitives,
    forbidden_json,
    url_errors,
    method_and_media_errors,
    mutated_input_never_crashes,
    control_characters,
    oversized_searches
);

async fn send_raw(
    s: &TestServer,
    method: Method,
    path: &str,
    content_type: &str,
    body: &str,
) -> reqwest::Response {
    s.request(method, path)
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

/// One bad request: method, path, Content-Type, body; the expected status, issue code and a
/// piece of the diagnostics.
type Case = (
    Method,
    &'static str,
    &'static str,
    &'static str,
    u16,
    &'static str,
    &'static str,
);

async fn malformed_bodies(s: &TestServer) {
    const JSON: &str = "application/fhir+json";
    const XML: &str = "application/fhir+xml";
    let cases: [Case; 12] = [
        (
            Method::POST,
            "Patient",
            JSON,
            "{\"resourceType\": \"Patient\",",
            400,
            "structure",
            "not valid JSON",
        ),
        (
            Method::POST,
            "Patient",
            JSON,
            "",
            400,
            "structure",
            "not valid JSON",
        ),
        (
            Method::POST,
            "Patient",
            JSON,
            "[]",
            400,
            "structure",
            "JSON object",
        ),
        (
            Method::POST,
            "Patient",
            XML,
            "<Patient xmlns=\"http://hl7.org/fhir\"><active value=\"true\"/>",
            400,
            "structure",
            "closed",
        ),
        (
            Method::POST,
            "Patient",
            XML,
            "<Patient><active value=\"true\"/></Patient>",
            400,
            "structure",
            "namespace",
        ),
        (
            Method::POST,
            "Patient",
            JSON,
            r#"{"resourceType":"Observation","status":"final","code":{"text":"x"}}"#,
            400,
            "invalid",
            "does not match",
        ),
        (
            Method::POST,
            "Patient",
            JSON,
            r#"{"resourceType":"Patient","colour":"red"}"#,
            400,
            "structure",
            "colour",
        ),
        (
            Method::POST,
            "Patient",
            JSON,
            r#"{"resourceType":"Patient","gender":["male"]}"#,
            400,
            "structure",
            "Patient.gender",
        ),
        (
            Method::POST,
            "Observation",
            JSON,
            r#"{"resourceType":"Observation","status":"final"}"#,
            400,
            "structure",
            "code",
        ),
        (
            Method::PUT,
            "Patient/a",
            JSON,
            r#"{"resourceType":"Patient","id":"b"}"#,
            400,
            "invalid",
            "does not match",
        ),
        (
            Method::PUT,
            "Patient/a",
            JSON,
            r#"{"resourceType":"Patient"}"#,
            400,
            "required",
            "id",
        ),
        (
            Method::PUT,
            "Patient/a",
            JSON,
            r#"{"resourceType":"Patient","id":"a b"}"#,
            400,
            "value",
            "id must be",
        ),
    ];
    for (method, path, content_type, body, status, code, expected) in cases {
        let d = outcome(
            send_raw(s, method, path, content_type, body).await,
            status,
            code,
        )
        .await;
        assert!(d.contains(expected), "{body}: {d}");
    }
}

async fn forbidden_json(s: &TestServer) {
    let json = "application/fhir+json";
    for (body, expression) in [
        (r#"{"resourceType":"Patient","name":[]}"#, "Patient.name"),
        (
            r#"{"resourceType":"Patient","name":[{}]}"#,
            "Patient.name[0]",
        ),
        (
            r#"{"resourceType":"Patient","gender":null}"#,
            "Patient.gender",
        ),
        (
            r#"{"resourceType":"Patient","gender":""}"#,
            "Patient.gender",
        ),
        (
            r#"{"resourceType":"Patient","contact":[{"name":{"given":[]}}]}"#,
            "Patient.contact[0].name.given",
        ),
    ] {
        let response = send_raw(s, Method::POST, "Patient", json, body).await;
        let text = response.text().await.unwrap();
        assert!(
            text.contains("OperationOutcome") && text.contains(expression),
            "{body} -> {text}"
        );
    }
    outcome(
        send_raw(
            s,
            Method::POST,
            "Patient",
            json,
            r#"{"resourceType":"Patient","name":[]}"#,
        )
        .await,
        400,
        "structure",
    )
    .await;
    outcome(
        send_raw(
            s,
            Method::POST,
            "Patient",
            json,
            r#"{"resourceType":"Patient","gender":""}"#,
        )
        .await,
        400,
        "value",
    )
    .await;
    // Nothing was stored by any of the rejected writes.
    let history = crate::support::json_with_status(s.get("Patient/_history").await, 200).await;
    assert!(history.get("entry").is_none(), "{history}");
}

async fn url_errors(s: &TestServer) {
    outcome(s.get("Pationt/1").await, 404, "not-supported").await;
    outcome(
        s.post("Pationt", &json!({"resourceType": "Pationt"})).await,
        404,
        "not-supported",
    )
    .await;
    outcome(s.get("Patient/has_underscore").await, 400, "value").await;
    outcome(
        s.get(&format!("Patient/{}", "x".repeat(65))).await,
        400,
        "value",
    )
    .await;
    outcome(s.get("Patient/a/b/c/d/e").await, 404, "not-found").await;
    outcome(s.get("").await, 404, "not-found").await;
    // The base itself is system-level search.
    let system =
        crate::support::json_with_status(s.client.get(&s.base).send().await.unwrap(), 200).await;
    assert_eq!(system["type"], "searchset");
    outcome(s.get("Patient/").await, 404, "not-found").await;
    outcome(s.get("Patient/a/_history/1/extra").await, 404, "not-found").await;
    outcome(s.get("Patient/_history?_count=abc").await, 400, "value").await;
    outcome(s.get("_history?_since=yesterday").await, 400, "value").await;
    outcome(s.get("Patient/p1/Nonsense").await, 404, "not-supported").await;
    outcome(s.get("Patient?birthdate=someday").await, 400, "invalid").await;
}

async fn method_and_media_errors(s: &TestServer) {
    // A method no FHIR interaction uses.
    let trace = s.request(Method::TRACE, "Patient/1").send().await.unwrap();
    let allow = trace.headers()[header::ALLOW].to_str().unwrap().to_owned();
    assert!(allow.contains("GET") && allow.contains("PUT"), "{allow}");
    // The diagnostic names the methods that the `Allow` header lists.
    let diagnostics = outcome(trace, 405, "not-supported").await;
    assert!(
        diagnostics.ends_with(&format!("(allowed: {allow})")),
        "{diagnostics}"
    );
    let wrong_type = send_raw(
        s,
        Method::POST,
        "Patient",
        "text/plain",
        r#"{"resourceType":"Patient"}"#,
    )
    .await;
    outcome(wrong_type, 415, "not-supported").await;
    let no_type = s
        .request(Method::POST, "Patient")
        .body(r#"{"resourceType":"Patient"}"#)
        .send()
        .await
        .unwrap();
    outcome(no_type, 415, "not-supported").await;
    let accept = s
        .request(Method::GET, "metadata")
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    outcome(accept, 406, "not-supported").await;
    outcome(s.get("metadata?_format=turtle").await, 406, "not-supported").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_limit_is_413() {
    let overrides = Overrides {
        max_body_bytes: Some(2048),
        ..Overrides::default()
    };
    let s = TestServer::start(TestDatabase::sqlite(), overrides).await;
    let big = json!({"resourceType": "Patient", "name": [{"family": "x".repeat(4096)}]});
    outcome(s.post("Patient", &big).await, 413, "too-long").await;
    let small = json!({"resourceType": "Patient", "name": [{"family": "x"}]});
    assert_eq!(s.post("Patient", &small).await.status(), 201);
    s.finish().await;
}

/// A small deterministic fuzzer: mutations of a valid resource must each get a 201 or a 4xx
/// OperationOutcome, never a 5xx, a hang or a dropped connection.
async fn mutated_input_never_crashes(s: &TestServer) {
    let seed = r#"{"resourceType":"Patient","name":[{"given":["Ann"],"family":"Lee"}],"birthDate":"1970-01-01","telecom":[{"system":"phone","value":"1"}],"_birthDate":{"extension":[{"url":"http://x","valueBoolean":true}]}}"#;
    let pieces = [
        "[]",
        "{}",
        "null",
        "\"\"",
        "[[]]",
        "[{}]",
        "1e400",
        "-0",
        "\"\\u0000\"",
        "{\"a\":[]}",
        "[null]",
        "true",
        "\"resourceType\"",
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..150 {
        let mut body = seed.as_bytes().to_vec();
        for _ in 0..(1 + next() % 3) {
            let at = (next() as usize) % body.len();
            match next() % 3 {
                0 => {
                    let piece = pieces[(next() as usize) % pieces.len()].as_bytes();
                    let end = (at + 1 + (next() as usize) % 8).min(body.len());
                    body.splice(at..end, piece.iter().copied());
                }
                1 => body.truncate(at.max(1)),
                _ => body[at] = (next() % 128) as u8,
            }
        }
        let response = s
            .request(Method::POST, "Patient")
            .header("content-type", "application/fhir+json")
            .body(body.clone())
            .send()
            .await
            .expect("server answers");
        let status = response.status().as_u16();
        assert!(
            status == 201 || (400..500).contains(&status),
            "status {status} for {}",
            String::from_utf8_lossy(&body)
        );
        if status != 201 {
            let text = response.text().await.unwrap();
            assert!(text.contains("OperationOutcome"), "{text}");
        }
    }
    assert_eq!(
        s.get("metadata").await.status(),
        200,
        "the server is still up"
    );
}

async fn bad_primitives(s: &TestServer) {
    let json = "application/fhir+json";
    for (body, expected) in [
        (
            r#"{"resourceType":"Patient","birthDate":"01/02/1970"}"#,
            "Patient.birthDate",
        ),
        (
            r#"{"resourceType":"Patient","multipleBirthInteger":2147483648}"#,
            "Patient.multipleBirthInteger",
        ),
        (
            r#"{"resourceType":"Patient","gender":" male"}"#,
            "Patient.gender",
        ),
        (
            r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2024-01-01T10:00"}"#,
            "Observation.effectiveDateTime",
        ),
        (
            r#"{"resourceType":"Patient","photo":[{"data":"not base64!"}]}"#,
            "Patient.photo[0].data",
        ),
    ] {
        let t = if body.contains("Observation") {
            "Observation"
        } else {
            "Patient"
        };
        let d = outcome(send_raw(s, Method::POST, t, json, body).await, 400, "value").await;
        assert!(d.starts_with(expected), "{body}: {d}");
    }
}

/// No FHIR value holds a control character but tab and line breaks. A resource or a search
/// that carries one is a 400 on both backends (on PostgreSQL, whose text refuses U+0000, it
/// was a 500), the OperationOutcome shows it escaped, in XML too, and the audit trail is not
/// held up by it (on PostgreSQL, the AuditEvent of `Observation?patient=%00` named a patient
/// with a NUL, was refused, and was retried for ever with every event of its part).
async fn control_characters(s: &TestServer) {
    for family in ["a\u{0}b", "a\u{1}b"] {
        let created = s
            .post(
                "Patient",
                &json!({"resourceType": "Patient", "name": [{"family": family}]}),
            )
            .await;
        let diagnostics = outcome(created, 400, "value").await;
        assert!(
            diagnostics.starts_with("Patient.name[0].family: holds the control character U+000"),
            "{diagnostics}"
        );
    }
    let history = crate::support::json_with_status(s.get("Patient/_history").await, 200).await;
    assert!(history.get("entry").is_none(), "{history}");
    for query in [
        "Patient?name=a%00b",
        "Patient?_id=%00",
        "Observation?patient=%00",
        "Patient?na%01me=x",
        "Patient?_has:Observation:patient:code=%00",
        "Encounter?patient.name=%1F",
    ] {
        let diagnostics = outcome(s.get(query).await, 400, "invalid").await;
        assert!(
            diagnostics.contains("control character"),
            "{query}: {diagnostics}"
        );
    }
    let form = send_raw(
        s,
        Method::POST,
        "Patient/_search",
        "application/x-www-form-urlencoded",
        "name=a%00b",
    )
    .await;
    outcome(form, 400, "invalid").await;
    // A page cursor whose text holds a NUL is not one this server issued.
    use base64::Engine as _;
    let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(r#"{"b":false,"k":[{"t":"Patient"},{"t":"a\u0000"}]}"#);
    outcome(
        s.get(&format!("Patient?_cursor={cursor}")).await,
        400,
        "value",
    )
    .await;
    // The id is quoted with its NUL escaped: the XML is well formed.
    let xml = s
        .request(Method::GET, "Patient/a%00b")
        .header("accept", "application/fhir+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(xml.status(), 400);
    let body = xml.text().await.unwrap();
    assert!(!body.contains('\u{0}'), "{body:?}");
    assert!(
        body.contains(r"'a\u{0}b' is not a valid resource id"),
        "{body}"
    );
    // A search after those is audited.
    crate::support::json_with_status(s.get("Observation?patient=after-nul").await, 200).await;
    let mut audited = serde_json::Value::Null;
    for _ in 0..100 {
        audited =
            crate::support::json_with_status(s.get("AuditEvent?patient=after-nul").await, 200)
                .await;
        if audited["entry"].as_array().is_some_and(|e| !e.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        audited["entry"].as_array().map(Vec::len),
        Some(1),
        "{audited}"
    );
}

/// A search with more parameters or values than the SQL can hold is a 400 that says so (2,000
/// names, or 5,000 values of one, were a 500: SQLite refuses an expression nested past 1,000
/// levels), and the largest ones allowed answer on both backends (a few hundred values inside
/// nested `_has` were a 500 too, until the values were ORed as a balanced tree).
async fn oversized_searches(s: &TestServer) {
    let values = |prefix: &str, n: usize| {
        (0..n)
            .map(|i| format!("{prefix}{i}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let names = |n: usize| {
        (0..n)
            .map(|i| format!("name=a{i}"))
            .collect::<Vec<_>>()
            .join("&")
    };
    let refused = [
        format!("Patient?{}", names(2000)),
        format!("Patient?{}", names(101)),
        format!("Patient?name={}", values("a", 5000)),
        format!("Patient?_id={}", values("p", 1001)),
    ];
    for query in &refused {
        let diagnostics = outcome(s.get(query).await, 400, "invalid").await;
        assert!(diagnostics.contains("at most"), "{diagnostics}");
    }
    let has4 = "Patient?_has:Observation:patient:_has:Provenance:target:_has:AuditEvent:entity:_has:Provenance:target:agent";
    let allowed = [
        format!("Patient?{}", names(100)),
        format!("Patient?name={}", values("a", 1000)),
        format!("Patient?_id={}", values("p", 1000)),
        format!("{has4}={}", values("x", 1000)),
        format!(
            "Observation?patient.organization.partof.name={}",
            values("x", 1000)
        ),
        format!("Observation?code-value-quantity={}", values("c$gt", 1000)),
    ];
    for query in &allowed {
        let found = crate::support::json_with_status(s.get(query).await, 200).await;
        assert_eq!(found["resourceType"], "Bundle", "{query}");
    }
}

//! The console's pages over HTTP on both backends: who may see what, that console writes go
//! through the FHIR API as the signed-in user (versioned and audited), uploads (CSRF, size,
//! type by content), the CSV export, version conflicts, the lane limit and form errors.

use std::time::Duration;

use hearth::accounts::{Actor, NewAccount, Role, User};
use hearth::config::Overrides;
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::support::{TestDatabase, TestServer, json_with_status};

const PASSWORD: &str = "Console-pages-1";

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let server = super::server(super::TestDatabase::sqlite()).await;
                super::$name(&server).await;
                server.finish().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(database) = super::TestDatabase::postgres() else { return };
                let server = super::server(database).await;
                super::$name(&server).await;
                server.finish().await;
            }
        }
    )*};
}

on_both!(
    roles_and_audit,
    uploads,
    board_and_exports,
    control_characters
);

async fn server(database: TestDatabase) -> TestServer {
    TestServer::start(
        database,
        Overrides {
            argon2_memory_kib: Some(1024),
            argon2_iterations: Some(1),
            ..Overrides::default()
        },
    )
    .await
}

async fn user(server: &TestServer, email: &str, role: Role) -> User {
    server
        .accounts()
        .create(
            NewAccount {
                email: email.into(),
                display_name: format!("User {email}"),
                role,
                password: Some(PASSWORD.into()),
                specialty: None,
                verified: true,
            },
            &Actor::default(),
        )
        .await
        .expect("account")
}

async fn signed_in(server: &TestServer, email: &str, role: Role) -> (Browser, User) {
    let account = user(server, email, role).await;
    let browser = Browser::new(&server.root());
    assert_eq!(browser.login(email, PASSWORD).await.status, 303);
    (browser, account)
}

/// An echo request for `patient` on `pathway` (or none), through the FHIR API.
async fn echo(server: &TestServer, patient: &str, pathway: Option<&str>, question: &str) -> Value {
    let mut request = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "40701008"}]},
        "subject": {"reference": format!("Patient/{patient}"), "display": "Test Patient"},
        "reasonCode": [{"text": question}]});
    if let Some(p) = pathway {
        request["extension"] = json!([
            {"url": "http://hearth.health/fhir/StructureDefinition/triage-pathway", "valueCoding": {"system": "http://hearth.health/fhir/CodeSystem/triage-pathway", "code": p}},
            {"url": "http://hearth.health/fhir/StructureDefinition/triage-time", "valueDateTime": "2026-01-05T09:00:00Z"}
        ]);
    }
    server.create(&request).await
}

async fn roles_and_audit(server: &TestServer) {
    // Visitors go to the login page.
    let visitor = Browser::new(&server.root());
    let page = visitor.get("/console/requests").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/console/login"));

    // A patient has no clinical pages.
    let (patient, _) = signed_in(server, "pat@hearth.test", Role::Patient).await;
    let home = patient.get("/console").await;
    home.expect(200, "API documentation");
    assert!(!home.body.contains("Strip board"));
    for page in [
        "/console/patients",
        "/console/board/strips",
        "/console/requests.csv",
        "/console/triage",
    ] {
        patient.get(page).await.expect(403, "Not allowed");
    }

    // A clinician has the board but not the administration.
    let (clinician, _) = signed_in(server, "nurse@hearth.test", Role::Clinician).await;
    clinician.get("/console").await.expect(200, "Strip board");
    for page in [
        "/console/admin/apps",
        "/console/admin/audit",
        "/console/admin/settings",
        "/console/admin/sentences",
    ] {
        clinician.get(page).await.expect(403, "Not allowed");
    }

    // A physician's writes are FHIR writes in their name: versioned and audited.
    let (doctor, account) = signed_in(server, "doc@hearth.test", Role::Physician).await;
    let created = doctor
        .submit(
            "/console/patients/new",
            "/console/patients/new",
            &[
                ("name", "Ada Lovelace"),
                ("mrn", "AL-1815"),
                ("birth", "1815-12"),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let location = created.location.expect("to the patient");
    let id = location
        .trim_start_matches("/console/patients/")
        .trim_end_matches("?saved=1")
        .to_owned();
    let stored = json_with_status(server.get(&format!("Patient/{id}")).await, 200).await;
    assert_eq!(stored["birthDate"], "1815-12");
    assert_eq!(stored["identifier"][0]["value"], "AL-1815");
    let fhir_user = account.fhir_reference.clone().expect("a Practitioner");
    let mut seen = false;
    for _ in 0..50 {
        let events = json_with_status(
            server
                .get(&format!("AuditEvent?entity=Patient/{id}&_count=50"))
                .await,
            200,
        )
        .await;
        let text = events.to_string();
        if text.contains(&fhir_user) && text.contains("hearth-console") {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen,
        "the console's create is audited as {fhir_user} through hearth-console"
    );

    // An edit keeps what the form does not show, and a stale form is refused.
    server
        .put(
            &format!("Patient/{id}"),
            &json!({"resourceType": "Patient", "id": id, "name": [{"family": "Lovelace", "given": ["Ada"]}],
                "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "value": "AL-1815"}],
                "telecom": [{"system": "phone", "value": "020 7946 0000"}]}),
        )
        .await;
    let form = doctor.get(&format!("/console/patients/{id}/edit")).await;
    form.expect(200, "value=\"2\"");
    let saved = doctor
        .post_raw(
            &format!("/console/patients/{id}/edit"),
            &[
                ("csrf", &form.csrf()),
                ("version", "2"),
                ("name", "Augusta Ada King"),
                ("mrn", "AL-1815"),
                ("birth", "1815"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let stored = json_with_status(server.get(&format!("Patient/{id}")).await, 200).await;
    assert_eq!(stored["name"][0]["family"], "King");
    assert_eq!(stored["telecom"][0]["value"], "020 7946 0000");
    let stale = doctor
        .post_raw(
            &format!("/console/patients/{id}/edit"),
            &[
                ("csrf", &form.csrf()),
                ("version", "2"),
                ("name", "Someone Else"),
            ],
        )
        .await;
    stale.expect(412, "Someone else changed this patient");
    stale.expect(412, "Someone Else");
}

fn multipart(csrf: Option<&str>, name: &str, bytes: Vec<u8>) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
        )
        .text("title", "Scan");
    if let Some(csrf) = csrf {
        form = form.text("csrf", csrf.to_owned());
    }
    form
}

async fn reports(server: &TestServer, patient: &str) -> usize {
    let bundle = json_with_status(
        server
            .get(&format!(
                "DiagnosticReport?subject=Patient/{patient}&_total=accurate"
            ))
            .await,
        200,
    )
    .await;
    bundle["total"].as_u64().unwrap_or(0) as usize
}

async fn uploads(server: &TestServer) {
    let (doctor, _) = signed_in(server, "doc@hearth.test", Role::Physician).await;
    let patient = server
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Curie"}]}))
        .await;
    let id = patient["id"].as_str().unwrap().to_owned();
    let page = doctor.get(&format!("/console/patients/{id}")).await;
    page.expect(200, "Upload an image or DICOM file");
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // The browser's session cookie: sign in with this client too.
    let login = client
        .get(format!("{}/console/login", server.root()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let marker = "name=\"csrf\" value=\"";
    let at = login.find(marker).unwrap() + marker.len();
    let login_csrf = &login[at..at + login[at..].find('"').unwrap()];
    let answer = client
        .post(format!("{}/console/login", server.root()))
        .form(&[
            ("csrf", login_csrf),
            ("email", "doc@hearth.test"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    let page = client
        .get(format!("{}/console/patients/{id}", server.root()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = page.find(marker).unwrap() + marker.len();
    let csrf_here = page[at..at + page[at..].find('"').unwrap()].to_owned();
    let upload = |form: reqwest::multipart::Form| {
        client
            .post(format!("{}/console/patients/{id}/images", server.root()))
            .multipart(form)
            .send()
    };
    let mut dicom = vec![0_u8; 128];
    dicom.extend(b"DICM");
    dicom.extend([2, 0, 0, 0, b'U', b'L', 4, 0, 0xc8, 0, 0, 0]);
    dicom.extend(vec![7_u8; 400]);

    // Without the form's token: refused, nothing stored.
    let refused = upload(multipart(None, "scan.dcm", dicom.clone()))
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("Form expired"));
    // Over 10 MB: a clear message, nothing stored.
    let big = upload(multipart(
        Some(&csrf_here),
        "huge.png",
        vec![0_u8; 10 * 1024 * 1024 + 10],
    ))
    .await
    .unwrap();
    assert!(big.status().is_client_error());
    assert!(big.text().await.unwrap().contains("larger than 10 MB"));
    // A program named like a picture: refused by its content.
    let fake = upload(multipart(
        Some(&csrf_here),
        "photo.jpg",
        b"MZ\x90\x00program".to_vec(),
    ))
    .await
    .unwrap();
    assert_eq!(fake.status(), 422);
    assert!(fake.text().await.unwrap().contains("is not a PNG, JPEG"));
    assert_eq!(reports(server, &id).await, 0);

    // DICOM with a name that says nothing: stored as DICOM, offered as a download.
    let stored = upload(multipart(Some(&csrf_here), "scan.bin", dicom.clone()))
        .await
        .unwrap();
    assert_eq!(stored.status(), 303);
    assert_eq!(reports(server, &id).await, 1);
    let timeline = doctor.get(&format!("/console/patients/{id}")).await;
    timeline.expect(200, "application/dicom");
    let at = timeline
        .body
        .find("/console/binary/")
        .expect("a link to the file");
    let link = &timeline.body[at..at + timeline.body[at..].find('"').unwrap()];
    let file = client
        .get(format!("{}{link}", server.root()))
        .send()
        .await
        .unwrap();
    assert_eq!(file.headers()["content-type"], "application/dicom");
    assert!(
        file.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(file.bytes().await.unwrap().as_ref(), dicom.as_slice());
    // The Binary is readable over FHIR and bound to its report.
    let binary_id = link.trim_start_matches("/console/binary/");
    let binary = json_with_status(server.get(&format!("Binary/{binary_id}")).await, 200).await;
    assert_eq!(binary["contentType"], "application/dicom");
    assert!(
        binary["securityContext"]["reference"]
            .as_str()
            .unwrap()
            .starts_with("DiagnosticReport/")
    );
    // A patient user cannot fetch it through the console, nor over FHIR with patient scopes:
    // a Binary is read under its securityContext's rules.
    let (other, account) = signed_in(server, "pat@hearth.test", Role::Patient).await;
    other.get(link).await.expect(403, "Not allowed");
    let (token, _) = server.auth().console_token(&account, 300).expect("token");
    let as_patient = |path: String| {
        server
            .client
            .get(format!("{}/{path}", server.base))
            .bearer_auth(&token)
            .send()
    };
    let refused = as_patient(format!("Binary/{binary_id}")).await.unwrap();
    assert_eq!(refused.status(), 403);
    let own_patient = account.fhir_reference.clone().expect("a Patient");
    let report = server
        .create(&json!({"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "Photo"},
            "subject": {"reference": own_patient}}))
        .await;
    let own = server
        .create(&json!({"resourceType": "Binary", "contentType": "image/png", "data": "iVBORw0KGgo=",
            "securityContext": {"reference": format!("DiagnosticReport/{}", report["id"].as_str().unwrap())}}))
        .await;
    let allowed = as_patient(format!("Binary/{}", own["id"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    let version = as_patient(format!("Binary/{binary_id}/_history/1"))
        .await
        .unwrap();
    assert_eq!(version.status(), 403);
}

async fn board_and_exports(server: &TestServer) {
    let (doctor, _) = signed_in(server, "doc@hearth.test", Role::Physician).await;
    let patient = server
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Franklin", "given": ["Rosalind"]}]}))
        .await;
    let pid = patient["id"].as_str().unwrap().to_owned();

    // A spreadsheet formula in a question is exported as text.
    let risky = echo(server, &pid, Some("amber"), "=HYPERLINK(\"http://x\")").await;
    let csv = doctor.get("/console/requests.csv?pathway=amber").await;
    assert_eq!(csv.status, 200);
    assert!(csv.body.contains("'=HYPERLINK"), "{}", csv.body);
    assert!(csv.body.contains(risky["id"].as_str().unwrap()));
    doctor
        .get("/console/requests.csv?from=yesterday")
        .await
        .expect(422, "must be a date");

    // A stale action is refused and said so; nothing changes.
    let id = risky["id"].as_str().unwrap().to_owned();
    let board = doctor.get("/console").await;
    let mut updated = risky.clone();
    updated["note"] = json!([{"text": "moved to ward 9"}]);
    server.put(&format!("ServiceRequest/{id}"), &updated).await;
    let answer = doctor
        .post_raw(
            &format!("/console/requests/{id}/complete"),
            &[("csrf", &board.csrf()), ("version", "1")],
        )
        .await;
    assert_eq!(answer.status, 303);
    let back = doctor.get(answer.location.as_deref().unwrap()).await;
    back.expect(200, "changed by someone else");
    let stored = json_with_status(server.get(&format!("ServiceRequest/{id}")).await, 200).await;
    assert_eq!(stored["status"], "active");

    // An extension needs a number of hours and a reason.
    let form = doctor.get(&format!("/console/requests/{id}/extend")).await;
    let refused = doctor
        .post_raw(
            &format!("/console/requests/{id}/extend"),
            &[("csrf", &form.csrf()), ("hours", "abc"), ("reason", "")],
        )
        .await;
    refused.expect(422, "Enter the working hours");
    refused.expect(422, "Give a reason");

    // The board shows the 40 most urgent of a lane, and the whole lane on request.
    let entries: Vec<Value> = (0..45)
        .map(|n| {
            json!({"request": {"method": "POST", "url": "ServiceRequest"}, "resource": {
                "resourceType": "ServiceRequest", "status": "active", "intent": "order",
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "40701008"}]},
                "subject": {"reference": format!("Patient/{pid}")},
                "reasonCode": [{"text": format!("case {n}")}],
                "extension": [
                    {"url": "http://hearth.health/fhir/StructureDefinition/triage-pathway", "valueCoding": {"system": "http://hearth.health/fhir/CodeSystem/triage-pathway", "code": "red"}},
                    {"url": "http://hearth.health/fhir/StructureDefinition/triage-time", "valueDateTime": format!("2026-01-05T09:{n:02}:00Z")}]}})
        })
        .collect();
    let answer = server
        .client
        .post(&server.base)
        .header("content-type", "application/fhir+json")
        .body(
            json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}).to_string(),
        )
        .send()
        .await
        .expect("transaction");
    assert_eq!(answer.status(), 200);
    let board = doctor.get("/console").await;
    board.expect(200, "5 more with later deadlines");
    let red_lane = |body: &str| {
        let start = body.find("class=\"lane lane-red\"").unwrap();
        let end = body[start..].find("</section>").unwrap() + start;
        body[start..end].matches("<article").count()
    };
    assert_eq!(red_lane(&board.body), 40);
    assert!(board.body.contains(">45<"), "the lane counts all 45");
    let full = doctor.get("/console?all=red").await;
    assert_eq!(red_lane(&full.body), 45);
    let strips = doctor.get("/console/board/strips?all=red").await;
    assert_eq!(red_lane(&strips.body), 45);
    let first = strips.body.find("case 0<").expect("the earliest deadline");
    assert!(
        strips.body[first..].contains("case 1<"),
        "strips in deadline order"
    );

    // A request not triaged yet waits on top with a Triage button; the counts cover every
    // lane, shown or not: all 46 triaged in January are overdue.
    let waiting = echo(server, &pid, None, "new murmur").await;
    let board = doctor.get("/console/board/strips").await;
    let start = board.body.find("class=\"lane lane-none\"").expect("lane");
    let lane = &board.body[start..start + board.body[start..].find("</section>").unwrap()];
    assert!(
        lane.contains("Awaiting triage <span class=\"count\">1<"),
        "{lane}"
    );
    assert!(lane.contains(&format!(
        "/console/triage?request={}",
        waiting["id"].as_str().unwrap()
    )));
    assert!(
        board
            .body
            .contains("data-pending=\"47\" data-overdue=\"46\""),
        "{}",
        &board.body[board.body.len().saturating_sub(300)..]
    );
    assert!(board.body.contains("45 overdue"), "the RED lane's overdue");
}

/// A form or query that holds a control character (but tab and line breaks) is answered with
/// a page that says so, and nothing is written. On PostgreSQL, whose text refuses U+0000, a
/// sign-in with one in the email was a server error.
async fn control_characters(server: &TestServer) {
    const REFUSED: &str = "It holds a control character";
    let visitor = Browser::new(&server.root());
    visitor
        .login("a\u{0}b@hearth.test", "x\u{0}y")
        .await
        .expect(400, REFUSED);
    visitor
        .get("/console/login?next=%01")
        .await
        .expect(400, REFUSED);
    let (doctor, _) = signed_in(server, "ctrl@hearth.test", Role::Physician).await;
    doctor
        .submit(
            "/console/patients/new",
            "/console/patients/new",
            &[
                ("name", "Ada\u{1}Lovelace"),
                ("mrn", "CTRL-1"),
                ("birth", "1815-12"),
            ],
        )
        .await
        .expect(400, REFUSED);
    // An address whose id no URI can carry is the visitor's mistake (it was a 502).
    for page in ["/console/patients/a%20b", "/console/patients/a%00b/edit"] {
        doctor
            .get(page)
            .await
            .expect(400, "is not an address of a record");
    }
    let found = json_with_status(server.get("Patient?identifier=CTRL-1").await, 200).await;
    assert!(found.get("entry").is_none(), "{found}");
    // The same form without it is saved.
    let saved = doctor
        .submit(
            "/console/patients/new",
            "/console/patients/new",
            &[
                ("name", "Ada Lovelace"),
                ("mrn", "CTRL-1"),
                ("birth", "1815-12"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
}

//! Patients: search, create and edit (only a name is required; a birth year alone is allowed),
//! the timeline of a patient's record (newest first), and images: an uploaded image or DICOM
//! file (type checked by its content) becomes a Binary presented by a DiagnosticReport (linked
//! to an ImagingStudy when one is chosen), shown inline when a browser can show it.

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use minijinja::context;
use serde::Serialize;
use serde_json::{Value, json};

use super::echo::{human_name, local, mrn};
use super::fhir::Failure;
use super::session::{Staff, StaffPost, Visit};
use super::{ConsoleState, FieldErrors, FormData, field, ser};
use crate::accounts::User;
use crate::triage::request::parse_instant;

/// Largest upload.
pub const MAX_UPLOAD_BYTES: usize = 10 * 1024 * 1024;

/// What may be uploaded, by the type its content shows: (MIME type, shown inline).
const UPLOADS: [(&str, bool); 6] = [
    ("image/png", true),
    ("image/jpeg", true),
    ("image/gif", true),
    ("image/bmp", true),
    ("image/tiff", false),
    ("application/dicom", false),
];

/// The record's types on the timeline.
const TIMELINE: [&str; 11] = [
    "Encounter",
    "ServiceRequest",
    "Observation",
    "DiagnosticReport",
    "ImagingStudy",
    "AllergyIntolerance",
    "Condition",
    "Appointment",
    "Task",
    "MedicationRequest",
    "Procedure",
];

#[derive(Serialize)]
struct Row {
    id: String,
    name: String,
    mrn: String,
    birth: String,
    gender: String,
}

fn row(p: &Value) -> Row {
    Row {
        id: p["id"].as_str().unwrap_or_default().to_owned(),
        name: human_name(p),
        mrn: mrn(p),
        birth: p["birthDate"].as_str().unwrap_or_default().to_owned(),
        gender: p["gender"].as_str().unwrap_or_default().to_owned(),
    }
}

#[derive(serde::Deserialize, Default)]
pub struct Search {
    #[serde(default)]
    q: String,
}

/// `GET /console/patients`: a search by name or MRN, or the latest changed.
pub async fn list(
    State(state): State<ConsoleState>,
    Staff { visit, user, .. }: Staff,
    Query(search): Query<Search>,
) -> Response {
    let rows: Result<Vec<Row>, Failure> = async {
        if search.q.trim().is_empty() {
            let found = state
                .fhir()?
                .search(&user, "Patient?_sort=-_lastUpdated&_count=50")
                .await?;
            Ok(found.matches.iter().map(row).collect())
        } else {
            Ok(super::desk::find_patients(&state, &user, &search.q)
                .await?
                .into_iter()
                .map(|p| Row {
                    id: p.id,
                    name: p.name,
                    mrn: p.mrn,
                    birth: p.birth,
                    gender: String::new(),
                })
                .collect())
        }
    }
    .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => return state.fhir_failure(&visit, &e),
    };
    let page = state.page(
        StatusCode::OK,
        "patients.html",
        context! {
            title => "Patients",
            active => "patients",
            csrf => visit.session.csrf.clone(),
            user => ser(&super::UserView::from(&user)),
            q => search.q,
            rows => ser(&rows),
        },
    );
    visit.respond(&state, page)
}

/// The patient form's fields from a stored Patient.
fn form_of(patient: &Value) -> FormData {
    let mut form = FormData::new();
    form.insert("name".into(), human_name(patient));
    form.insert("mrn".into(), mrn(patient));
    form.insert(
        "birth".into(),
        patient["birthDate"].as_str().unwrap_or_default().into(),
    );
    form.insert(
        "gender".into(),
        patient["gender"].as_str().unwrap_or_default().into(),
    );
    form.insert(
        "version".into(),
        patient["meta"]["versionId"]
            .as_str()
            .unwrap_or_default()
            .into(),
    );
    form
}

fn form_page(
    state: &ConsoleState,
    visit: &Visit,
    status: StatusCode,
    id: Option<&str>,
    form: &FormData,
    errors: FieldErrors,
    error: Option<String>,
) -> Response {
    let page = state.page(
        status,
        "patient_form.html",
        context! {
            title => if id.is_some() { "Edit patient" } else { "New patient" },
            active => "patients",
            csrf => visit.session.csrf.clone(),
            user => ser(&visit.session.user.as_ref().map(super::UserView::from)),
            id => id,
            form => ser(form),
            errors => ser(&errors),
            error => error,
        },
    );
    visit.respond(state, page)
}

/// `GET /console/patients/new`.
pub async fn new_form(State(state): State<ConsoleState>, Staff { visit, .. }: Staff) -> Response {
    form_page(
        &state,
        &visit,
        StatusCode::OK,
        None,
        &FormData::new(),
        FieldErrors::new(),
        None,
    )
}

/// `GET /console/patients/{id}/edit`.
pub async fn edit_form(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    Staff { visit, user, fhir }: Staff,
) -> Response {
    match fhir.get(&user, &format!("Patient/{id}")).await {
        Ok(patient) => form_page(
            &state,
            &visit,
            StatusCode::OK,
            Some(&id),
            &form_of(&patient),
            FieldErrors::new(),
            None,
        ),
        Err(e) => state.fhir_failure(&visit, &e),
    }
}

/// `POST /console/patients/new` and `/console/patients/{id}/edit`: saves, keeping whatever
/// else the stored Patient holds.
pub async fn save(
    State(state): State<ConsoleState>,
    id: Option<Path<String>>,
    StaffPost {
        visit,
        user,
        fhir,
        form,
    }: StaffPost,
) -> Response {
    let id = id.map(|Path(id)| id);
    let mut errors = FieldErrors::new();
    let typed = super::desk::new_patient(&form, &mut errors);
    if !errors.is_empty() {
        return form_page(
            &state,
            &visit,
            StatusCode::UNPROCESSABLE_ENTITY,
            id.as_deref(),
            &form,
            errors,
            None,
        );
    }
    let result = match &id {
        None => fhir.post(&user, "Patient", typed).await,
        Some(id) => {
            let mut stored = match fhir.get(&user, &format!("Patient/{id}")).await {
                Ok(p) => p,
                Err(e) => return state.fhir_failure(&visit, &e),
            };
            merge_patient(&mut stored, &typed);
            let version = Some(field(&form, "version")).filter(|v| !v.is_empty());
            fhir.put(&user, &format!("Patient/{id}"), stored, version)
                .await
        }
    };
    match result {
        Ok(reply) => {
            let saved = id
                .clone()
                .or_else(|| reply.body["id"].as_str().map(str::to_owned))
                .unwrap_or_default();
            Redirect::to(&format!("/console/patients/{saved}?saved=1")).into_response()
        }
        Err(e) if e.status.is_client_error() => {
            let message = if e.is_conflict() {
                "Someone else changed this patient since you opened the form; nothing was saved. Reload the form to see their change.".to_owned()
            } else {
                e.message
            };
            form_page(
                &state,
                &visit,
                e.status,
                id.as_deref(),
                &form,
                FieldErrors::new(),
                Some(message),
            )
        }
        Err(e) => state.fhir_failure(&visit, &e),
    }
}

/// The form's name, MRN, birth date and gender over a stored Patient: the official (or
/// first) name is replaced, the MRN identifier updated or added, other data kept.
fn merge_patient(stored: &mut Value, typed: &Value) {
    let names = stored["name"].as_array().cloned().unwrap_or_default();
    let at = names
        .iter()
        .position(|n| n["use"] == "official")
        .unwrap_or(0);
    let mut names = names;
    let mut name = typed["name"][0].clone();
    if let Some(u) = names.get(at).and_then(|n| n.get("use")).cloned() {
        name["use"] = u;
    }
    if names.is_empty() {
        names.push(name);
    } else {
        names[at] = name;
    }
    stored["name"] = Value::Array(names);
    let typed_mrn = typed["identifier"][0]["value"].as_str();
    let mut identifiers = stored["identifier"].as_array().cloned().unwrap_or_default();
    let is_mrn = |i: &Value| {
        i["type"]["coding"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["code"] == "MR"))
    };
    match (identifiers.iter().position(is_mrn), typed_mrn) {
        (Some(at), Some(value)) => identifiers[at]["value"] = json!(value),
        (Some(at), None) => {
            identifiers.remove(at);
        }
        (None, Some(_)) => identifiers.push(typed["identifier"][0].clone()),
        (None, None) => {}
    }
    let object = stored.as_object_mut();
    if let Some(object) = object {
        if identifiers.is_empty() {
            object.remove("identifier");
        } else {
            object.insert("identifier".into(), Value::Array(identifiers));
        }
        for key in ["birthDate", "gender"] {
            match typed.get(key) {
                Some(v) => {
                    object.insert(key.into(), v.clone());
                }
                None => {
                    object.remove(key);
                }
            }
        }
    }
}

/// One entry of the timeline.
#[derive(Serialize)]
struct Entry {
    when_ms: i64,
    when: String,
    kind: &'static str,
    title: String,
    detail: String,
    status: String,
    abnormal: bool,
    link: Option<String>,
    images: Vec<Image>,
}

#[derive(Serialize)]
struct Image {
    id: String,
    title: String,
    content_type: String,
    inline: bool,
}

fn concept(value: &Value) -> String {
    value["text"]
        .as_str()
        .or_else(|| value["coding"][0]["display"].as_str())
        .or_else(|| value["coding"][0]["code"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn first_time(resource: &Value, paths: &[&[&str]]) -> Option<i64> {
    paths.iter().find_map(|path| {
        let mut v = resource;
        for step in *path {
            v = &v[*step];
        }
        v.as_str().and_then(|t| {
            parse_instant(t).or_else(|| {
                // A date alone (or year, year-month) is taken at its start.
                let padded = match t.len() {
                    4 => format!("{t}-01-01T00:00:00Z"),
                    7 => format!("{t}-01T00:00:00Z"),
                    10 => format!("{t}T00:00:00Z"),
                    _ => return None,
                };
                parse_instant(&padded)
            })
        })
    })
}

fn quantity(q: &Value) -> String {
    match (
        q["value"].as_f64(),
        q["unit"].as_str().or(q["code"].as_str()),
    ) {
        (Some(v), Some(u)) => format!("{v} {u}"),
        (Some(v), None) => v.to_string(),
        _ => String::new(),
    }
}

fn observation_detail(o: &Value) -> (String, bool) {
    let value = if o["valueQuantity"].is_object() {
        quantity(&o["valueQuantity"])
    } else if let Some(s) = o["valueString"].as_str() {
        s.to_owned()
    } else if o["valueCodeableConcept"].is_object() {
        concept(&o["valueCodeableConcept"])
    } else if let Some(components) = o["component"].as_array() {
        components
            .iter()
            .map(|c| format!("{} {}", concept(&c["code"]), quantity(&c["valueQuantity"])))
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        String::new()
    };
    let interpretation = o["interpretation"]
        .as_array()
        .and_then(|i| i.first())
        .map(|i| {
            (
                concept(i),
                i["coding"][0]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        });
    let abnormal = interpretation
        .as_ref()
        .is_some_and(|(_, code)| !matches!(code.as_str(), "" | "N"));
    let range = o["referenceRange"]
        .as_array()
        .and_then(|r| r.first())
        .map(|r| {
            r["text"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{}–{}", quantity(&r["low"]), quantity(&r["high"])))
        });
    let mut detail = value;
    if let Some((text, code)) = interpretation {
        let word = if text.is_empty() { code } else { text };
        if !word.is_empty() {
            detail.push_str(&format!(" ({word})"));
        }
    }
    if let Some(range) = range.filter(|r| r != "–") {
        detail.push_str(&format!(" · reference {range}"));
    }
    (detail, abnormal)
}

fn entry(resource: &Value) -> Option<Entry> {
    let kind = resource["resourceType"].as_str()?;
    let id = resource["id"].as_str().unwrap_or_default().to_owned();
    let status = resource["status"]
        .as_str()
        .or_else(|| resource["clinicalStatus"]["coding"][0]["code"].as_str())
        .unwrap_or_default()
        .to_owned();
    let (kind, when, title, detail, abnormal, link): (&'static str, _, _, _, _, _) = match kind {
        "Encounter" => (
            "Encounter",
            first_time(resource, &[&["period", "start"], &["meta", "lastUpdated"]]),
            resource["class"]["display"]
                .as_str()
                .or(resource["class"]["code"].as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| concept(&resource["type"][0])),
            resource["location"][0]["location"]["display"]
                .as_str()
                .map(|l| format!("at {l}"))
                .unwrap_or_else(|| concept(&resource["reasonCode"][0])),
            false,
            None,
        ),
        "ServiceRequest" => {
            let echo = crate::triage::request::is_echo_request(resource);
            let pathway = crate::triage::request::pathway_code(resource)
                .map(|p| format!(" · {}", p.to_uppercase()))
                .unwrap_or_default();
            (
                "Request",
                first_time(resource, &[&["authoredOn"], &["meta", "lastUpdated"]]),
                format!("{}{pathway}", concept(&resource["code"])),
                concept(&resource["reasonCode"][0]),
                false,
                echo.then(|| format!("/console/requests/{id}")),
            )
        }
        "Observation" => {
            let (detail, abnormal) = observation_detail(resource);
            (
                "Observation",
                first_time(
                    resource,
                    &[
                        &["effectiveDateTime"],
                        &["effectivePeriod", "start"],
                        &["issued"],
                        &["meta", "lastUpdated"],
                    ],
                ),
                concept(&resource["code"]),
                detail,
                abnormal,
                None,
            )
        }
        "DiagnosticReport" => (
            "Report",
            first_time(
                resource,
                &[
                    &["effectiveDateTime"],
                    &["issued"],
                    &["meta", "lastUpdated"],
                ],
            ),
            concept(&resource["code"]),
            resource["conclusion"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            false,
            None,
        ),
        "ImagingStudy" => (
            "Imaging",
            first_time(resource, &[&["started"], &["meta", "lastUpdated"]]),
            resource["description"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| concept(&resource["procedureCode"][0])),
            resource["modality"][0]["code"]
                .as_str()
                .map(|m| format!("modality {m}"))
                .unwrap_or_default(),
            false,
            None,
        ),
        "AllergyIntolerance" => (
            "Allergy",
            first_time(
                resource,
                &[
                    &["recordedDate"],
                    &["onsetDateTime"],
                    &["meta", "lastUpdated"],
                ],
            ),
            concept(&resource["code"]),
            resource["reaction"][0]["manifestation"][0]["text"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| concept(&resource["reaction"][0]["manifestation"][0])),
            resource["criticality"] == "high",
            None,
        ),
        "Condition" => (
            "Condition",
            first_time(
                resource,
                &[
                    &["onsetDateTime"],
                    &["recordedDate"],
                    &["meta", "lastUpdated"],
                ],
            ),
            concept(&resource["code"]),
            resource["abatementDateTime"]
                .as_str()
                .map(|a| format!("resolved {a}"))
                .unwrap_or_default(),
            false,
            None,
        ),
        "Appointment" => (
            "Appointment",
            first_time(
                resource,
                &[&["start"], &["created"], &["meta", "lastUpdated"]],
            ),
            resource["description"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| concept(&resource["serviceType"][0])),
            String::new(),
            false,
            None,
        ),
        "Task" => (
            "Task",
            first_time(resource, &[&["authoredOn"], &["meta", "lastUpdated"]]),
            resource["description"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| concept(&resource["code"])),
            String::new(),
            false,
            None,
        ),
        "MedicationRequest" => (
            "Medication",
            first_time(resource, &[&["authoredOn"], &["meta", "lastUpdated"]]),
            concept(&resource["medicationCodeableConcept"]),
            resource["dosageInstruction"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            false,
            None,
        ),
        "Procedure" => (
            "Procedure",
            first_time(
                resource,
                &[
                    &["performedDateTime"],
                    &["performedPeriod", "start"],
                    &["meta", "lastUpdated"],
                ],
            ),
            concept(&resource["code"]),
            String::new(),
            false,
            None,
        ),
        _ => return None,
    };
    let images = resource["presentedForm"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|form| {
            let id = form["url"].as_str()?.strip_prefix("Binary/")?.to_owned();
            let content_type = form["contentType"].as_str().unwrap_or_default().to_owned();
            Some(Image {
                id,
                title: form["title"].as_str().unwrap_or("image").to_owned(),
                inline: UPLOADS
                    .iter()
                    .any(|(t, inline)| *inline && *t == content_type),
                content_type,
            })
        })
        .collect();
    let when_ms = when.unwrap_or(0);
    Some(Entry {
        when_ms,
        when: if when_ms > 0 {
            local(when_ms)
        } else {
            String::new()
        },
        kind,
        title: if title.is_empty() {
            "(untitled)".into()
        } else {
            title
        },
        detail,
        status,
        abnormal,
        link,
        images,
    })
}

#[derive(serde::Deserialize, Default)]
pub struct Shown {
    saved: Option<String>,
    uploaded: Option<String>,
}

/// `GET /console/patients/{id}`: the patient and their record, newest first.
pub async fn timeline(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    Staff { visit, user, .. }: Staff,
    Query(shown): Query<Shown>,
) -> Response {
    timeline_page(&state, &visit, &user, &id, StatusCode::OK, shown, None).await
}

async fn timeline_page(
    state: &ConsoleState,
    visit: &Visit,
    user: &User,
    id: &str,
    status: StatusCode,
    shown: Shown,
    error: Option<String>,
) -> Response {
    let fhir = match state.fhir() {
        Ok(f) => f,
        Err(e) => return state.fhir_failure(visit, &e),
    };
    let loaded = async {
        let patient = fhir.get(user, &format!("Patient/{id}")).await?;
        let mut entries = Vec::new();
        let mut studies = Vec::new();
        for t in TIMELINE {
            // Task is not in the R4 Patient compartment: it is found by its subject (`for`).
            let path = if t == "Task" {
                format!("Task?subject=Patient/{id}&_count=500")
            } else {
                format!("Patient/{id}/{t}?_count=500")
            };
            let found = fhir.search(user, &path).await?;
            for resource in &found.matches {
                if t == "ImagingStudy" {
                    studies.push(context! {
                        id => resource["id"].as_str(),
                        label => resource["description"].as_str().map(str::to_owned).unwrap_or_else(|| format!("ImagingStudy {}", resource["id"].as_str().unwrap_or_default())),
                    });
                }
                entries.extend(entry(resource));
            }
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.when_ms));
        Ok::<_, Failure>((patient, entries, studies))
    }
    .await;
    let (patient, entries, studies) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => return state.fhir_failure(visit, &e),
    };
    let person = row(&patient);
    let notice = if shown.saved.is_some() {
        Some("Patient saved.".to_owned())
    } else {
        shown.uploaded.map(|_| "Image uploaded.".to_owned())
    };
    let page = state.page(
        status,
        "patient.html",
        context! {
            title => if person.name.is_empty() { "(no name)".to_owned() } else { person.name.clone() },
            new_request => format!("/console/triage?{}", super::query(&[("find", if person.mrn.is_empty() { &person.name } else { &person.mrn })])),
            active => "patients",
            csrf => visit.session.csrf.clone(),
            user => ser(&super::UserView::from(user)),
            patient => ser(&person),
            entries => ser(&entries),
            studies => studies,
            apps => ser(&super::apps::launchable(state).await),
            notice => notice,
            error => error,
            max_mb => MAX_UPLOAD_BYTES / (1024 * 1024),
        },
    );
    visit.respond(state, page)
}

/// The type of an uploaded file by its content, if it is one Hearth takes.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if infer::archive::is_dcm(bytes) {
        return Some("application/dicom");
    }
    let kind = infer::get(bytes)?;
    UPLOADS
        .iter()
        .map(|(t, _)| *t)
        .find(|t| *t == kind.mime_type())
}

/// `POST /console/patients/{id}/images` (multipart): stores the file as a Binary with a
/// DiagnosticReport presenting it, in one transaction.
pub async fn upload(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    Staff { visit, user, fhir }: Staff,
    mut multipart: Multipart,
) -> Response {
    let mut form = FormData::new();
    let mut file: Option<(String, Vec<u8>)> = None;
    let mut too_big = false;
    loop {
        match multipart.next_field().await {
            Ok(Some(part)) => {
                let name = part.name().unwrap_or_default().to_owned();
                if name == "file" {
                    let filename = part.file_name().unwrap_or("upload").to_owned();
                    match part.bytes().await {
                        Ok(bytes) if bytes.len() > MAX_UPLOAD_BYTES => too_big = true,
                        Ok(bytes) => file = Some((filename, bytes.to_vec())),
                        Err(_) => too_big = true,
                    }
                } else if let Ok(text) = part.text().await {
                    form.insert(name, text);
                }
            }
            Ok(None) => break,
            Err(e) => {
                let message = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    format!(
                        "The file is larger than {} MB; nothing was stored.",
                        MAX_UPLOAD_BYTES / (1024 * 1024)
                    )
                } else {
                    format!("The upload could not be read ({e}); nothing was stored.")
                };
                return timeline_page(
                    &state,
                    &visit,
                    &user,
                    &id,
                    StatusCode::BAD_REQUEST,
                    Shown::default(),
                    Some(message),
                )
                .await;
            }
        }
    }
    if let Err(refused) = super::session::check_csrf(&state, &visit, &form) {
        return refused;
    }
    let refuse = |message: String| {
        timeline_page(
            &state,
            &visit,
            &user,
            &id,
            StatusCode::UNPROCESSABLE_ENTITY,
            Shown::default(),
            Some(message),
        )
    };
    if too_big {
        return refuse(format!(
            "The file is larger than {} MB; nothing was stored.",
            MAX_UPLOAD_BYTES / (1024 * 1024)
        ))
        .await;
    }
    let Some((filename, bytes)) = file.filter(|(_, b)| !b.is_empty()) else {
        return refuse("Choose a file to upload.".into()).await;
    };
    let Some(content_type) = sniff(&bytes) else {
        return refuse(format!(
            "“{filename}” is not a PNG, JPEG, GIF, BMP, TIFF or DICOM file (its content says so, whatever its name); nothing was stored."
        ))
        .await;
    };
    let title = Some(field(&form, "title").trim())
        .filter(|t| !t.is_empty())
        .unwrap_or(&filename)
        .to_owned();
    let study = field(&form, "study");
    let binary_url = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let report_url = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let now = crate::triage::request::format_utc(state.now_ms());
    let mut report = json!({
        "resourceType": "DiagnosticReport",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "IMG", "display": "Diagnostic Imaging"}]}],
        "code": {"text": title},
        "subject": {"reference": format!("Patient/{id}")},
        "effectiveDateTime": now,
        "issued": now,
        "presentedForm": [{"contentType": content_type, "url": binary_url, "title": filename, "size": bytes.len(), "creation": now}],
    });
    if !study.is_empty() {
        report["imagingStudy"] = json!([{"reference": format!("ImagingStudy/{study}")}]);
    }
    if let Some(reference) = &user.fhir_reference {
        report["performer"] = json!([{"reference": reference, "display": user.display_name}]);
    }
    let binary = json!({
        "resourceType": "Binary",
        "contentType": content_type,
        "securityContext": {"reference": report_url},
        "data": base64::engine::general_purpose::STANDARD.encode(&bytes),
    });
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": binary_url, "resource": binary, "request": {"method": "POST", "url": "Binary"}},
        {"fullUrl": report_url, "resource": report, "request": {"method": "POST", "url": "DiagnosticReport"}},
    ]});
    match fhir.post(&user, "", bundle).await {
        Ok(_) => Redirect::to(&format!("/console/patients/{id}?uploaded=1")).into_response(),
        Err(e) if e.status.is_client_error() => refuse(e.message).await,
        Err(e) => state.fhir_failure(&visit, &e),
    }
}

/// `GET /console/binary/{id}`: a stored file, for users who may read it and the patient it
/// belongs to (both checked by the FHIR API under the user's own token).
pub async fn binary(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    Staff { visit, user, fhir }: Staff,
) -> Response {
    let resource = match fhir.get(&user, &format!("Binary/{id}")).await {
        Ok(r) => r,
        Err(e) => return state.fhir_failure(&visit, &e),
    };
    // The patient it belongs to must be readable too.
    if let Some(context) = resource["securityContext"]["reference"].as_str()
        && let Err(e) = fhir.get(&user, context).await
    {
        return state.fhir_failure(&visit, &e);
    }
    let content_type = resource["contentType"]
        .as_str()
        .unwrap_or("application/octet-stream")
        .to_owned();
    let Ok(bytes) = base64::engine::general_purpose::STANDARD
        .decode(resource["data"].as_str().unwrap_or_default())
    else {
        return state.fhir_failure(
            &visit,
            &Failure::internal(format!("Binary/{id} holds data that is not base64")),
        );
    };
    let inline = UPLOADS
        .iter()
        .any(|(t, inline)| *inline && *t == content_type);
    let disposition = if inline {
        "inline".to_owned()
    } else {
        let extension = match content_type.as_str() {
            "application/dicom" => "dcm",
            "image/tiff" => "tif",
            _ => "bin",
        };
        format!("attachment; filename=\"{id}.{extension}\"")
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response()
}

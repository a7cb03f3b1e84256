//! The triage desk (`/console/triage`): a new echo request (for a patient found by name or MRN,
//! or created on the spot), or the triage of one that is waiting; a pathway in one click with
//! its deadline shown before saving (`$deadline`), and a triage sentence to copy to the
//! clipboard. Also the admins' editor of sentence templates.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Serialize;
use serde_json::{Value, json};

use super::echo::{EchoView, NewRequest, human_name, mrn};
use super::fhir::Failure;
use super::session::{Admin, AdminPost, Staff, StaffPost, Visit};
use super::{ConsoleState, FieldErrors, FormData, field, query, ser};
use crate::accounts::User;
use crate::triage::url;

/// The identifier system of MRNs the console gives new patients.
pub const MRN_SYSTEM: &str = "http://hearth.health/fhir/sid/mrn";

/// The search for sentence templates.
const SENTENCES: &str = "Basic?code=http://hearth.health/fhir/CodeSystem/hearth-resource-kind%7Ctriage-sentence-template&_count=500";

/// The pathways one click away, in order.
const PATHWAYS: [(&str, &str); 4] = [
    ("purple", "PURPLE"),
    ("red", "RED"),
    ("amber", "AMBER"),
    ("green", "GREEN (decline)"),
];

#[derive(Serialize, Clone)]
pub struct Sentence {
    id: String,
    version: String,
    pathway: String,
    text: String,
}

#[derive(Serialize)]
pub struct PatientChoice {
    pub id: String,
    pub name: String,
    pub mrn: String,
    pub birth: String,
}

#[derive(Serialize)]
struct Ward {
    id: String,
    name: String,
}

/// Sentence templates, by pathway.
async fn sentences(state: &ConsoleState, user: &User) -> Result<Vec<Sentence>, Failure> {
    let found = state.fhir()?.search(user, SENTENCES).await?;
    let mut list: Vec<Sentence> = found
        .matches
        .iter()
        .map(|b| Sentence {
            id: b["id"].as_str().unwrap_or_default().to_owned(),
            version: b["meta"]["versionId"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            pathway: crate::triage::request::extension(b, url::PATHWAY)
                .and_then(|e| e["valueCoding"]["code"].as_str())
                .unwrap_or_default()
                .to_owned(),
            text: crate::triage::request::extension(b, url::SENTENCE)
                .and_then(|e| e["valueString"].as_str())
                .unwrap_or_default()
                .to_owned(),
        })
        .collect();
    let rank = |p: &str| PATHWAYS.iter().position(|(c, _)| *c == p).unwrap_or(9);
    list.sort_by(|a, b| {
        rank(&a.pathway)
            .cmp(&rank(&b.pathway))
            .then(a.id.cmp(&b.id))
    });
    Ok(list)
}

/// Patients whose name or MRN matches `text` (MRN exactly, name by the usual string search).
pub async fn find_patients(
    state: &ConsoleState,
    user: &User,
    text: &str,
) -> Result<Vec<PatientChoice>, Failure> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let fhir = state.fhir()?;
    let by_mrn = fhir
        .search(
            user,
            &format!(
                "Patient?{}",
                query(&[("identifier", text), ("_count", "20")])
            ),
        )
        .await?;
    let by_name = fhir
        .search(
            user,
            &format!(
                "Patient?{}",
                query(&[("name", text), ("_count", "30"), ("_sort", "family,given")])
            ),
        )
        .await?;
    let mut seen = std::collections::HashSet::new();
    Ok(by_mrn
        .matches
        .iter()
        .chain(by_name.matches.iter())
        .filter(|p| seen.insert(p["id"].as_str().unwrap_or_default().to_owned()))
        .map(|p| PatientChoice {
            id: p["id"].as_str().unwrap_or_default().to_owned(),
            name: human_name(p),
            mrn: mrn(p),
            birth: p["birthDate"].as_str().unwrap_or_default().to_owned(),
        })
        .collect())
}

async fn wards(state: &ConsoleState, user: &User) -> Result<Vec<Ward>, Failure> {
    let found = state
        .fhir()?
        .search(user, "Location?_count=500&_sort=name")
        .await?;
    Ok(found
        .matches
        .iter()
        .map(|l| Ward {
            id: l["id"].as_str().unwrap_or_default().to_owned(),
            name: l["name"].as_str().unwrap_or_default().to_owned(),
        })
        .collect())
}

#[derive(serde::Deserialize, Default)]
pub struct DeskQuery {
    find: Option<String>,
    request: Option<String>,
}

/// `GET /console/triage`.
pub async fn page(
    State(state): State<ConsoleState>,
    Staff { visit, user, .. }: Staff,
    Query(q): Query<DeskQuery>,
) -> Response {
    let mut form = FormData::new();
    if let Some(find) = q.find {
        form.insert("find".into(), find);
    }
    if let Some(request) = q.request {
        form.insert("request".into(), request);
    }
    desk(
        &state,
        &visit,
        &user,
        StatusCode::OK,
        &form,
        FieldErrors::new(),
        None,
    )
    .await
}

async fn desk(
    state: &ConsoleState,
    visit: &Visit,
    user: &User,
    status: StatusCode,
    form: &FormData,
    errors: FieldErrors,
    error: Option<String>,
) -> Response {
    let now = state.now_ms();
    let loaded = async {
        let request = match field(form, "request") {
            "" => None,
            id => {
                let r = state
                    .fhir()?
                    .get(user, &format!("ServiceRequest/{id}"))
                    .await?;
                let subject = r["subject"]["reference"].as_str().unwrap_or_default();
                let patient = match subject.strip_prefix("Patient/") {
                    Some(_) => state.fhir()?.get(user, subject).await.ok(),
                    None => None,
                };
                Some(EchoView::read(&r, patient.as_ref(), now))
            }
        };
        let found = find_patients(state, user, field(form, "find")).await?;
        Ok::<_, Failure>((
            request,
            found,
            wards(state, user).await?,
            sentences(state, user).await?,
        ))
    }
    .await;
    let (request, found, wards, sentences) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => return state.fhir_failure(visit, &e),
    };
    let page = state.page(
        status,
        "desk.html",
        context! {
            title => if request.is_some() { "Triage an echo request" } else { "Triage desk" },
            active => "desk",
            csrf => visit.session.csrf.clone(),
            user => ser(&super::UserView::from(user)),
            request => ser(&request),
            found => ser(&found),
            searched => !field(form, "find").trim().is_empty(),
            wards => ser(&wards),
            sentences => ser(&sentences),
            pathways => PATHWAYS.iter().map(|&(code, label)| context! { code => code, label => label }).collect::<Vec<_>>(),
            guidelines => state.clinical.guidelines_url.clone(),
            form => ser(form),
            errors => ser(&errors),
            error => error,
        },
    );
    visit.respond(state, page)
}

/// "Ann Marie Lee" → given ["Ann", "Marie"], family "Lee"; one word is a family name.
fn split_name(text: &str) -> Value {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.split_last() {
        None => json!({}),
        Some((family, [])) => json!({"family": family, "text": text.trim()}),
        Some((family, given)) => json!({"family": family, "given": given, "text": words.join(" ")}),
    }
}

/// A birth date as typed: a year (`1948`), a year and month, or a full date.
fn birth_date(text: &str) -> Result<Option<String>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let year_ok = text
        .get(..4)
        .and_then(|y| y.parse::<u16>().ok())
        .is_some_and(|y| (1800..=2200).contains(&y));
    let ok = year_ok
        && match text.len() {
            4 => true,
            7 => chrono::NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").is_ok(),
            10 => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok(),
            _ => false,
        };
    if ok {
        Ok(Some(text.to_owned()))
    } else {
        Err("Enter a year (1948), a month (1948-03) or a date (1948-03-12).".into())
    }
}

/// A new Patient from the form's `name`, `mrn`, `birth`, `gender` fields.
pub fn new_patient(form: &FormData, errors: &mut FieldErrors) -> Value {
    let name = field(form, "name").trim();
    if name.is_empty() {
        errors.insert("name", "Enter the patient's name.".into());
    }
    let mut patient = json!({"resourceType": "Patient", "name": [split_name(name)]});
    let mrn = field(form, "mrn").trim();
    if !mrn.is_empty() {
        patient["identifier"] = json!([{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "system": MRN_SYSTEM, "value": mrn}]);
    }
    match birth_date(field(form, "birth")) {
        Ok(Some(date)) => patient["birthDate"] = json!(date),
        Ok(None) => {}
        Err(message) => {
            errors.insert("birth", message);
        }
    }
    match field(form, "gender") {
        "" => {}
        g @ ("female" | "male" | "other" | "unknown") => patient["gender"] = json!(g),
        _ => {
            errors.insert("gender", "Choose female, male, other or unknown.".into());
        }
    }
    patient
}

/// The triage extensions for a new request on `pathway`.
fn triage_extensions(request: &mut Value, pathway: &str, sentence: &str, user: &User, now: i64) {
    let mut extensions = request["extension"].as_array().cloned().unwrap_or_default();
    extensions.push(json!({"url": url::PATHWAY, "valueCoding": {"system": url::PATHWAY_SYSTEM, "code": pathway}}));
    extensions.push(json!({"url": url::TRIAGED, "valueDateTime": crate::triage::request::format_utc(now - now % 1000)}));
    if let Some(reference) = &user.fhir_reference {
        extensions.push(json!({"url": url::TRIAGED_BY, "valueReference": {"reference": reference, "display": user.display_name}}));
    }
    if !sentence.trim().is_empty() {
        extensions.push(json!({"url": url::SENTENCE, "valueString": sentence.trim()}));
    }
    request["extension"] = Value::Array(extensions);
}

/// `POST /console/triage`: a new request (and patient), or the triage of a waiting one.
pub async fn submit(
    State(state): State<ConsoleState>,
    StaffPost {
        visit,
        user,
        fhir,
        form,
    }: StaffPost,
) -> Response {
    let mut errors = FieldErrors::new();
    let pathway = field(&form, "pathway");
    if !pathway.is_empty() && !PATHWAYS.iter().any(|(c, _)| *c == pathway) {
        errors.insert("pathway", "Choose one of the pathways.".into());
    }
    let sentence = field(&form, "sentence");
    let request_id = field(&form, "request");
    if !request_id.is_empty() {
        // Triage of a waiting request.
        if pathway.is_empty() {
            errors.insert("pathway", "Choose a pathway.".into());
        }
        if !errors.is_empty() {
            return desk(
                &state,
                &visit,
                &user,
                StatusCode::UNPROCESSABLE_ENTITY,
                &form,
                errors,
                None,
            )
            .await;
        }
        let mut parameters = json!({"resourceType": "Parameters", "parameter": [{"name": "pathway", "valueCode": pathway}]});
        if let Some(list) = parameters["parameter"].as_array_mut() {
            if !sentence.trim().is_empty() {
                list.push(json!({"name": "sentence", "valueString": sentence.trim()}));
            }
            if pathway == "green" {
                list.push(json!({"name": "reason", "valueString": if sentence.trim().is_empty() { "Declined at triage" } else { sentence.trim() }}));
            }
            if let Some(reference) = &user.fhir_reference {
                list.push(json!({"name": "author", "valueReference": {"reference": reference, "display": user.display_name}}));
            }
        }
        return match fhir
            .post(
                &user,
                &format!("ServiceRequest/{request_id}/$triage"),
                parameters,
            )
            .await
        {
            Ok(_) => done(&form, "triaged"),
            Err(e) if e.status.is_client_error() => {
                desk(
                    &state,
                    &visit,
                    &user,
                    e.status,
                    &form,
                    errors,
                    Some(e.message),
                )
                .await
            }
            Err(e) => state.fhir_failure(&visit, &e),
        };
    }
    // A new request, for a chosen patient or a new one.
    let chosen = field(&form, "patient");
    let (patient_ref, patient_name, new_patient) = if chosen.is_empty() || chosen == "new" {
        let patient = new_patient(&form, &mut errors);
        (
            "urn:uuid:".to_owned() + &uuid::Uuid::new_v4().to_string(),
            field(&form, "name").trim().to_owned(),
            Some(patient),
        )
    } else {
        let name = field(&form, &format!("name-{chosen}")).to_owned();
        (format!("Patient/{chosen}"), name, None)
    };
    if field(&form, "question").trim().is_empty() {
        errors.insert("question", "Enter the clinical question.".into());
    }
    if !errors.is_empty() {
        return desk(
            &state,
            &visit,
            &user,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form,
            errors,
            None,
        )
        .await;
    }
    let ward = match field(&form, "ward") {
        "" => None,
        id => match fhir.get(&user, &format!("Location/{id}")).await {
            Ok(location) => Some((
                format!("Location/{id}"),
                location["name"].as_str().unwrap_or(id).to_owned(),
            )),
            Err(e) => return state.fhir_failure(&visit, &e),
        },
    };
    let requester = user
        .fhir_reference
        .as_deref()
        .filter(|r| r.starts_with("Practitioner/"));
    let mut request = NewRequest {
        subject: &patient_ref,
        patient_name: &patient_name,
        ward: ward.as_ref().map(|(r, n)| (r.as_str(), n.as_str())),
        requester: requester.map(|r| (r, user.display_name.as_str())),
        question: field(&form, "question"),
        notes: field(&form, "notes"),
    }
    .resource();
    if !pathway.is_empty() {
        triage_extensions(&mut request, pathway, sentence, &user, state.now_ms());
        if pathway == "green" {
            let reason = if sentence.trim().is_empty() {
                "Declined at triage"
            } else {
                sentence.trim()
            };
            if let Some(list) = request["extension"].as_array_mut() {
                list.push(
                    json!({"url": url::STATUS_REASON, "valueCodeableConcept": {"text": reason}}),
                );
            }
        }
    }
    let mut entries = Vec::new();
    if let Some(patient) = new_patient {
        entries.push(json!({"fullUrl": patient_ref, "resource": patient, "request": {"method": "POST", "url": "Patient"}}));
    }
    entries
        .push(json!({"resource": request, "request": {"method": "POST", "url": "ServiceRequest"}}));
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    match fhir.post(&user, "", bundle).await {
        Ok(_) => done(&form, "created"),
        Err(e) if e.status.is_client_error() => {
            desk(
                &state,
                &visit,
                &user,
                e.status,
                &form,
                errors,
                Some(e.message),
            )
            .await
        }
        Err(e) => state.fhir_failure(&visit, &e),
    }
}

fn done(form: &FormData, what: &str) -> Response {
    let who = match field(form, "patient") {
        "" | "new" => field(form, "name").to_owned(),
        chosen => field(form, &format!("name-{chosen}")).to_owned(),
    };
    let who = if who.is_empty() {
        field(form, "who").to_owned()
    } else {
        who
    };
    Redirect::to(&format!(
        "/console?{}",
        query(&[("done", what), ("who", &who)])
    ))
    .into_response()
}

#[derive(serde::Deserialize)]
pub struct PreviewQuery {
    pathway: String,
}

/// `GET /console/triage/deadline?pathway=…`: the deadline if triaged now, for the desk.
pub async fn preview(
    State(state): State<ConsoleState>,
    Staff { user, fhir, .. }: Staff,
    Query(q): Query<PreviewQuery>,
) -> Response {
    if q.pathway == "green" {
        return Json(json!({"text": "GREEN declines the request: no deadline."})).into_response();
    }
    let now = crate::triage::request::format_utc(state.now_ms());
    let path = format!(
        "ServiceRequest/$deadline?{}",
        query(&[("start", &now), ("pathway", &q.pathway)])
    );
    match fhir.get(&user, &path).await {
        Ok(answer) => {
            let value = |name: &str| {
                answer["parameter"]
                    .as_array()
                    .and_then(|l| l.iter().find(|p| p["name"] == name))
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            let deadline = value("deadline")["valueInstant"]
                .as_str()
                .and_then(crate::triage::request::parse_instant);
            let hours = value("hours")["valueDecimal"].as_f64().unwrap_or_default();
            match deadline {
                Some(d) => Json(json!({
                    "deadline": crate::triage::request::format_utc(d),
                    "text": format!("Deadline if triaged now: {} (Europe/London), {hours} working hours.", super::echo::local(d)),
                }))
                .into_response(),
                None => Json(json!({"error": "no deadline"})).into_response(),
            }
        }
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": e.message})),
        )
            .into_response(),
    }
}

/// `GET /console/admin/sentences`: the sentence templates, editable.
pub async fn sentences_page(
    State(state): State<ConsoleState>,
    Admin { visit, user, .. }: Admin,
) -> Response {
    sentences_view(&state, &visit, &user, StatusCode::OK, None, None).await
}

async fn sentences_view(
    state: &ConsoleState,
    visit: &Visit,
    user: &User,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let list = match sentences(state, user).await {
        Ok(list) => list,
        Err(e) => return state.fhir_failure(visit, &e),
    };
    let page = state.page(
        status,
        "sentences.html",
        context! {
            title => "Triage sentences",
            csrf => visit.session.csrf.clone(),
            user => ser(&super::UserView::from(user)),
            sentences => ser(&list),
            pathways => PATHWAYS.iter().map(|&(code, label)| context! { code => code, label => label }).collect::<Vec<_>>(),
            notice => notice,
            error => error,
        },
    );
    visit.respond(state, page)
}

fn sentence_resource(id: Option<&str>, pathway: &str, text: &str) -> Value {
    let mut basic = json!({"resourceType": "Basic",
    "code": {"coding": [{"system": url::SENTENCE_TEMPLATE_SYSTEM, "code": "triage-sentence-template", "display": "Triage sentence template"}]},
    "extension": [
        {"url": url::PATHWAY, "valueCoding": {"system": url::PATHWAY_SYSTEM, "code": pathway}},
        {"url": url::SENTENCE, "valueString": text},
    ]});
    if let Some(id) = id {
        basic["id"] = json!(id);
    }
    basic
}

/// `POST /console/admin/sentences` (new) and `/console/admin/sentences/{id}` (edit or delete).
pub async fn save_sentence(
    State(state): State<ConsoleState>,
    id: Option<Path<String>>,
    AdminPost {
        visit,
        user,
        fhir,
        form,
    }: AdminPost,
) -> Response {
    let pathway = field(&form, "pathway");
    let text = field(&form, "text").trim();
    let result = match (&id, field(&form, "action")) {
        (Some(Path(id)), "delete") => fhir
            .call(
                &user,
                axum::http::Method::DELETE,
                &format!("Basic/{id}"),
                None,
                None,
            )
            .await
            .map(|_| "Sentence deleted."),
        _ if text.is_empty() || !PATHWAYS.iter().any(|(c, _)| *c == pathway) => {
            return sentences_view(
                &state,
                &visit,
                &user,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some("A sentence needs a pathway and some text.".into()),
            )
            .await;
        }
        (Some(Path(id)), _) => fhir
            .put(
                &user,
                &format!("Basic/{id}"),
                sentence_resource(Some(id), pathway, text),
                Some(field(&form, "version")).filter(|v| !v.is_empty()),
            )
            .await
            .map(|_| "Sentence saved."),
        (None, _) => fhir
            .post(&user, "Basic", sentence_resource(None, pathway, text))
            .await
            .map(|_| "Sentence added."),
    };
    match result {
        Ok(message) => {
            sentences_view(
                &state,
                &visit,
                &user,
                StatusCode::OK,
                Some(message.into()),
                None,
            )
            .await
        }
        Err(e) if e.status.is_client_error() => {
            let message = if e.is_conflict() {
                "Someone changed this sentence a moment ago; here it is as it is now. Nothing was saved.".to_owned()
            } else {
                e.message
            };
            sentences_view(&state, &visit, &user, e.status, None, Some(message)).await
        }
        Err(e) => state.fhir_failure(&visit, &e),
    }
}

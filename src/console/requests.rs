//! The requests table (`/console/requests`): every echo request with filters, search by name or
//! MRN, sorting and paging; the same filter as CSV (`/console/requests.csv`); and one request's
//! page with its history.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::echo::{ECHO_SEARCH, EchoView};
use super::fhir::{Failure, Found};
use super::session::Staff;
use super::{ConsoleState, query, ser};
use crate::accounts::User;

/// Rows per page.
const PAGE: usize = 50;
/// Most rows in one CSV export.
const CSV_LIMIT: usize = 100_000;

/// The table's filters, as query parameters (the CSV takes the same).
#[derive(Deserialize, Serialize, Default, Clone)]
#[serde(default)]
pub struct Filters {
    pathway: String,
    status: String,
    ward: String,
    from: String,
    to: String,
    overdue: String,
    q: String,
    sort: String,
    /// The FHIR page to show (a `next` link), when paging.
    cursor: String,
}

const SORTS: [(&str, &str); 6] = [
    ("deadline", "Deadline, soonest first"),
    ("-deadline", "Deadline, latest first"),
    ("-authored", "Received, newest first"),
    ("authored", "Received, oldest first"),
    ("-completed", "Completed, newest first"),
    ("pathway", "Pathway"),
];

impl Filters {
    /// Checks the filters; the FHIR search for them, or what is wrong.
    async fn search(
        &self,
        state: &ConsoleState,
        user: &User,
        count: usize,
    ) -> Result<Result<String, String>, Failure> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        match self.pathway.as_str() {
            "" => {}
            "none" => pairs.push(("pathway:missing".into(), "true".into())),
            p @ ("purple" | "red" | "amber" | "green") => pairs.push(("pathway".into(), p.into())),
            _ => return Ok(Err("Choose a pathway from the list.".into())),
        }
        match self.status.as_str() {
            "" => {}
            s @ ("active" | "completed" | "revoked" | "on-hold" | "draft" | "entered-in-error") => {
                pairs.push(("status".into(), s.into()))
            }
            _ => return Ok(Err("Choose a status from the list.".into())),
        }
        if !self.ward.is_empty() {
            pairs.push(("ward".into(), format!("Location/{}", self.ward)));
        }
        for (name, value, prefix) in [("from", &self.from, "ge"), ("to", &self.to, "le")] {
            if value.is_empty() {
                continue;
            }
            if chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_err() {
                return Ok(Err(format!(
                    "The '{name}' date must be a date such as 2026-03-01."
                )));
            }
            pairs.push(("authored".into(), format!("{prefix}{value}")));
        }
        if !self.overdue.is_empty() {
            pairs.push(("status".into(), "active".into()));
            pairs.push((
                "deadline".into(),
                format!("lt{}", crate::triage::request::format_utc(state.now_ms())),
            ));
        }
        if !self.q.trim().is_empty() {
            let patients = super::desk::find_patients(state, user, &self.q).await?;
            if patients.is_empty() {
                return Ok(Ok(String::new()));
            }
            let subjects: Vec<String> = patients
                .iter()
                .take(100)
                .map(|p| format!("Patient/{}", p.id))
                .collect();
            pairs.push(("subject".into(), subjects.join(",")));
        }
        let sort = match self.sort.as_str() {
            "" => "deadline",
            s if SORTS.iter().any(|(k, _)| *k == s) => s,
            _ => return Ok(Err("Choose a sort order from the list.".into())),
        };
        pairs.push(("_sort".into(), format!("{sort},-authored")));
        pairs.push(("_count".into(), count.to_string()));
        pairs.push(("_include".into(), "ServiceRequest:subject".into()));
        pairs.push(("_total".into(), "accurate".into()));
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Ok(Ok(format!("{ECHO_SEARCH}&{}", query(&pairs))))
    }

    /// This filter's query string with `cursor` (or without).
    fn link(&self, cursor: Option<&str>) -> String {
        let mut pairs: Vec<(&str, &str)> = vec![
            ("pathway", &self.pathway),
            ("status", &self.status),
            ("ward", &self.ward),
            ("from", &self.from),
            ("to", &self.to),
            ("overdue", &self.overdue),
            ("q", &self.q),
            ("sort", &self.sort),
        ];
        pairs.retain(|(_, v)| !v.is_empty());
        if let Some(cursor) = cursor {
            pairs.push(("cursor", cursor));
        }
        query(&pairs)
    }
}

fn rows(found: &Found, now: i64) -> Vec<EchoView> {
    found
        .matches
        .iter()
        .map(|r| {
            let subject = r["subject"]["reference"].as_str().unwrap_or_default();
            EchoView::read(r, found.included.get(subject), now)
        })
        .collect()
}

/// `GET /console/requests`.
pub async fn table(
    State(state): State<ConsoleState>,
    Staff { visit, user, fhir }: Staff,
    Query(filters): Query<Filters>,
) -> Response {
    let (found, error) = match filters.search(&state, &user, PAGE).await {
        Err(e) => return state.fhir_failure(&visit, &e),
        Ok(Err(message)) => (Found::default(), Some(message)),
        Ok(Ok(search)) if search.is_empty() => (Found::default(), None),
        Ok(Ok(search)) => {
            // A cursor is a FHIR next link of this same search; anything else starts over.
            let path = if filters.cursor.starts_with("ServiceRequest?") {
                filters.cursor.clone()
            } else {
                search
            };
            match fhir.search(&user, &path).await {
                Ok(found) => (found, None),
                Err(e) if e.status.is_client_error() => (Found::default(), Some(e.message)),
                Err(e) => return state.fhir_failure(&visit, &e),
            }
        }
    };
    let wards = match fhir.search(&user, "Location?_count=500&_sort=name").await {
        Ok(w) => w
            .matches
            .iter()
            .map(|l| {
                context! { id => l["id"].as_str(), name => l["name"].as_str() }
            })
            .collect::<Vec<_>>(),
        Err(e) => return state.fhir_failure(&visit, &e),
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = state.page(
        status,
        "requests.html",
        context! {
            title => "Echo requests",
            active => "requests",
            wide => true,
            csrf => visit.session.csrf.clone(),
            user => ser(&super::UserView::from(&user)),
            rows => ser(&rows(&found, state.now_ms())),
            total => found.total,
            filters => ser(&filters),
            sorts => SORTS.iter().map(|&(k, l)| context! { key => k, label => l }).collect::<Vec<_>>(),
            wards => wards,
            csv => format!("/console/requests.csv?{}", filters.link(None)),
            first => (!filters.cursor.is_empty()).then(|| format!("/console/requests?{}", filters.link(None))),
            next => found.next.as_deref().map(|n| format!("/console/requests?{}", filters.link(Some(n)))),
            error => error,
        },
    );
    visit.respond(&state, page)
}

/// A CSV cell that a spreadsheet will not run as a formula.
fn cell(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_owned(),
    }
}

/// `GET /console/requests.csv`: every request of the filter, one row each.
pub async fn csv(
    State(state): State<ConsoleState>,
    Staff { visit, user, fhir }: Staff,
    Query(filters): Query<Filters>,
) -> Response {
    let mut next = match filters.search(&state, &user, 500).await {
        Err(e) => return state.fhir_failure(&visit, &e),
        Ok(Err(message)) => {
            return (StatusCode::UNPROCESSABLE_ENTITY, message).into_response();
        }
        Ok(Ok(search)) => Some(search).filter(|s| !s.is_empty()),
    };
    let mut writer = csv::Writer::from_writer(Vec::new());
    let header = [
        "id",
        "patient",
        "mrn",
        "ward",
        "requester",
        "question",
        "pathway",
        "status",
        "received",
        "triaged",
        "deadline",
        "completed",
        "overdue",
        "extensions",
        "sentence",
    ];
    let mut failed = writer.write_record(header).err().map(|e| e.to_string());
    let now = state.now_ms();
    let mut written = 0;
    while let Some(path) = next.take() {
        let found = match fhir.search(&user, &path).await {
            Ok(found) => found,
            Err(e) => return state.fhir_failure(&visit, &e),
        };
        for r in rows(&found, now) {
            let record = [
                r.id.clone(),
                r.patient_name.clone(),
                r.mrn.clone(),
                r.ward.clone(),
                r.requester.clone(),
                r.question.clone(),
                r.pathway.to_uppercase(),
                r.status.clone(),
                r.received_local.clone(),
                r.triaged_local.clone(),
                r.deadline_local.clone(),
                r.completed_local.clone(),
                if r.overdue { "yes" } else { "no" }.to_owned(),
                r.extensions.to_string(),
                r.sentence.clone(),
            ];
            if let Err(e) = writer.write_record(record.iter().map(|c| cell(c))) {
                failed = Some(e.to_string());
            }
            written += 1;
        }
        if written < CSV_LIMIT {
            next = found.next;
        }
    }
    if let Some(e) = failed {
        return state.fhir_failure(&visit, &Failure::internal(e));
    }
    let body = match writer.into_inner() {
        Ok(body) => body,
        Err(e) => return state.fhir_failure(&visit, &Failure::internal(e.to_string())),
    };
    let name = format!("echo-requests-{}.csv", super::echo::local_date(now));
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /console/requests/{id}`: one request, its actions and its versions.
pub async fn one(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    Staff { visit, user, fhir }: Staff,
) -> Response {
    let now = state.now_ms();
    let loaded = async {
        let request = fhir.get(&user, &format!("ServiceRequest/{id}")).await?;
        let subject = request["subject"]["reference"].as_str().unwrap_or_default();
        let patient = match subject.strip_prefix("Patient/") {
            Some(_) => fhir.get(&user, subject).await.ok(),
            None => None,
        };
        let history = fhir
            .search(&user, &format!("ServiceRequest/{id}/_history?_count=100"))
            .await?;
        Ok::<_, Failure>((request, patient, history))
    }
    .await;
    let (request, patient, history) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => return state.fhir_failure(&visit, &e),
    };
    let view = EchoView::read(&request, patient.as_ref(), now);
    let versions: Vec<_> = history
        .matches
        .iter()
        .filter(|v| v.is_object() && !v.is_null())
        .map(|v| {
            let row = EchoView::read(v, None, now);
            let updated = v["meta"]["lastUpdated"]
                .as_str()
                .and_then(crate::triage::request::parse_instant)
                .map(super::echo::local)
                .unwrap_or_default();
            context! { version => row.version, status => row.status, pathway => row.pathway, deadline => row.deadline_local, updated => updated, reason => row.extension_reason }
        })
        .collect();
    let page = state.page(
        StatusCode::OK,
        "request.html",
        context! {
            title => format!("Echo request for {}", if view.patient_name.is_empty() { "(no name)" } else { view.patient_name.as_str() }),
            csrf => visit.session.csrf.clone(),
            user => ser(&super::UserView::from(&user)),
            r => ser(&view),
            versions => versions,
        },
    );
    visit.respond(&state, page)
}

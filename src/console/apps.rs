//! Administration beyond accounts: SMART apps (register public, confidential and backend
//! clients, secrets shown once, JWKS upload, disable), the EHR launch of an app for a patient,
//! the audit log with filters, and the settings in force (bank holidays of the next 12 months,
//! working window, pathway targets).

use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Serialize;

use super::fhir::Failure;
use super::session::{Admin, AdminPost, StaffPost, Visit};
use super::{ConsoleState, FormData, field, query, ser};
use crate::auth::clients::{Credentials, NewClient};
use crate::auth::grants::LaunchContext;

/// A registered app as the page shows it.
#[derive(Serialize)]
pub struct AppView {
    id: String,
    name: String,
    kind: String,
    redirect_uris: Vec<String>,
    launch_url: Option<String>,
    scope: String,
    status: String,
    jwks: bool,
    jwks_url: Option<String>,
    created: String,
}

/// Every registered app.
pub async fn apps(state: &ConsoleState) -> Result<Vec<AppView>, Failure> {
    let clients = state
        .fhir()?
        .auth()
        .clients()
        .await
        .map_err(|e| Failure::internal(e.to_string()))?;
    Ok(clients
        .into_iter()
        .map(|c| AppView {
            redirect_uris: serde_json::from_str(&c.redirect_uris).unwrap_or_default(),
            id: c.id,
            name: c.name,
            kind: c.kind,
            launch_url: c.launch_url,
            scope: c.scope,
            status: c.status,
            jwks: c.jwks.is_some(),
            jwks_url: c.jwks_url,
            created: super::echo::local(c.created_ms),
        })
        .collect())
}

async fn apps_page(
    state: &ConsoleState,
    visit: &Visit,
    status: StatusCode,
    form: &FormData,
    registered: Option<serde_json::Value>,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let list = match apps(state).await {
        Ok(list) => list,
        Err(e) => return state.fhir_failure(visit, &e),
    };
    let page = state.page(
        status,
        "apps.html",
        context! {
            title => "SMART apps",
            wide => true,
            csrf => visit.session.csrf.clone(),
            user => ser(&visit.session.user.as_ref().map(super::UserView::from)),
            apps => ser(&list),
            form => ser(form),
            registered => ser(&registered),
            notice => notice,
            error => error,
        },
    );
    visit.respond(state, page)
}

/// `GET /console/admin/apps`.
pub async fn page(State(state): State<ConsoleState>, Admin { visit, .. }: Admin) -> Response {
    apps_page(
        &state,
        &visit,
        StatusCode::OK,
        &FormData::new(),
        None,
        None,
        None,
    )
    .await
}

/// `POST /console/admin/apps` (multipart, for the JWK Set file): registers an app.
pub async fn register(
    State(state): State<ConsoleState>,
    Admin { visit, fhir, .. }: Admin,
    mut multipart: Multipart,
) -> Response {
    let mut form = FormData::new();
    let mut jwks_file: Option<String> = None;
    loop {
        match multipart.next_field().await {
            Ok(Some(part)) => {
                let name = part.name().unwrap_or_default().to_owned();
                let text = part.text().await.unwrap_or_default();
                if name == "jwks_file" {
                    jwks_file = Some(text).filter(|t| !t.trim().is_empty());
                } else {
                    form.insert(name, text);
                }
            }
            Ok(None) => break,
            Err(e) => {
                return apps_page(
                    &state,
                    &visit,
                    StatusCode::BAD_REQUEST,
                    &form,
                    None,
                    None,
                    Some(format!("The form could not be read: {e}")),
                )
                .await;
            }
        }
    }
    if let Err(refused) = super::session::check_csrf(&state, &visit, &form) {
        return refused;
    }
    let jwks_text = jwks_file
        .or_else(|| Some(field(&form, "jwks").to_owned()).filter(|t| !t.trim().is_empty()));
    let credentials = match field(&form, "kind") {
        "public" => Ok(Credentials::Public),
        "confidential" => Ok(Credentials::Secret),
        "backend" | "asymmetric" => match (jwks_text, field(&form, "jwks_url").trim()) {
            (Some(text), _) => serde_json::from_str(&text)
                .map(Credentials::Jwks)
                .map_err(|e| format!("The JWK Set is not JSON: {e}")),
            (None, url) if !url.is_empty() => Ok(Credentials::JwksUrl(url.to_owned())),
            _ => Err("A backend service needs its public keys: upload a JWK Set file, paste it, or give its URL.".to_owned()),
        },
        _ => Err("Choose the kind of app.".to_owned()),
    };
    let redirect_uris: Vec<String> = field(&form, "redirect_uris")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let result = match credentials {
        Err(message) => Err(message),
        Ok(credentials) => {
            fhir.auth()
                .add_client(NewClient {
                    name: field(&form, "name").to_owned(),
                    redirect_uris,
                    scope: Some(field(&form, "scope").to_owned()).filter(|s| !s.trim().is_empty()),
                    credentials,
                    launch_url: Some(field(&form, "launch_url").to_owned())
                        .filter(|s| !s.trim().is_empty()),
                })
                .await
        }
    };
    match result {
        Ok(registered) => {
            let shown = serde_json::json!({
                "name": field(&form, "name").trim(),
                "client_id": registered.client_id,
                "client_secret": registered.client_secret,
            });
            apps_page(
                &state,
                &visit,
                StatusCode::OK,
                &FormData::new(),
                Some(shown),
                Some(format!("{} is registered.", field(&form, "name").trim())),
                None,
            )
            .await
        }
        Err(message) => {
            let mut message = message;
            if let Some(first) = message.get(..1) {
                message = first.to_uppercase() + &message[1..];
            }
            apps_page(
                &state,
                &visit,
                StatusCode::UNPROCESSABLE_ENTITY,
                &form,
                None,
                None,
                Some(format!(
                    "{}. Nothing was registered.",
                    message.trim_end_matches('.')
                )),
            )
            .await
        }
    }
}

/// `POST /console/admin/apps/{id}/status`: disable or enable.
pub async fn set_status(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    AdminPost {
        visit, fhir, form, ..
    }: AdminPost,
) -> Response {
    let disable = field(&form, "status") == "disabled";
    let (status, notice, error) = match fhir.auth().set_client_disabled(&id, disable).await {
        Ok(true) => (
            StatusCode::OK,
            Some(
                if disable {
                    "The app is disabled: it gets no new tokens."
                } else {
                    "The app is enabled."
                }
                .to_owned(),
            ),
            None,
        ),
        Ok(false) => (
            StatusCode::NOT_FOUND,
            None,
            Some("There is no such app.".to_owned()),
        ),
        Err(e) => return state.fhir_failure(&visit, &Failure::internal(e.to_string())),
    };
    apps_page(
        &state,
        &visit,
        status,
        &FormData::new(),
        None,
        notice,
        error,
    )
    .await
}

/// Apps that can be launched from the EHR (they have a launch URL and are active).
pub async fn launchable(state: &ConsoleState) -> Vec<AppView> {
    apps(state)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a.status == "active" && a.launch_url.is_some())
        .collect()
}

/// `POST /console/launch`: an EHR launch of an app for a patient (and encounter): a launch
/// value for this user, then the browser goes to the app's launch URL with `iss` and `launch`.
pub async fn launch(
    State(state): State<ConsoleState>,
    StaffPost {
        visit,
        user,
        fhir,
        form,
    }: StaffPost,
) -> Response {
    let patient = field(&form, "patient");
    // The patient must exist and be readable by this user.
    if let Err(e) = fhir.get(&user, &format!("Patient/{patient}")).await {
        return state.fhir_failure(&visit, &e);
    }
    let Some(app) = launchable(&state)
        .await
        .into_iter()
        .find(|a| a.id == field(&form, "client_id"))
    else {
        return state.fhir_failure(
            &visit,
            &Failure {
                status: StatusCode::NOT_FOUND,
                message: "That app is not registered for launch, or it is disabled".into(),
            },
        );
    };
    let context = LaunchContext {
        patient: Some(patient.to_owned()),
        encounter: Some(field(&form, "encounter").to_owned()).filter(|e| !e.is_empty()),
        user_id: Some(user.id.clone()),
    };
    let launch = match fhir.auth().issue_launch(&context).await {
        Ok(launch) => launch,
        Err(e) => return state.fhir_failure(&visit, &Failure::internal(e.description)),
    };
    let launch_url = app.launch_url.unwrap_or_default();
    let separator = if launch_url.contains('?') { '&' } else { '?' };
    let iss = fhir.auth().settings().fhir_base.clone();
    Redirect::to(&format!(
        "{launch_url}{separator}{}",
        query(&[("iss", &iss), ("launch", &launch)])
    ))
    .into_response()
}

#[derive(serde::Deserialize, Default, Serialize)]
#[serde(default)]
pub struct AuditFilters {
    date_from: String,
    date_to: String,
    action: String,
    outcome: String,
    patient: String,
    agent: String,
    cursor: String,
}

/// `GET /console/admin/audit`: AuditEvents, newest first, filtered.
pub async fn audit(
    State(state): State<ConsoleState>,
    Admin { visit, user, fhir }: Admin,
    Query(filters): Query<AuditFilters>,
) -> Response {
    let mut pairs: Vec<(&str, String)> = vec![("_sort", "-date".into()), ("_count", "50".into())];
    let mut error = None;
    for (value, prefix) in [(&filters.date_from, "ge"), (&filters.date_to, "le")] {
        if value.is_empty() {
            continue;
        }
        if chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_err() {
            error = Some("Dates must be like 2026-03-01.".to_owned());
        } else {
            pairs.push(("date", format!("{prefix}{value}")));
        }
    }
    match filters.action.as_str() {
        "" => {}
        a @ ("C" | "R" | "U" | "D" | "E") => pairs.push(("action", a.into())),
        _ => error = Some("Choose an action from the list.".into()),
    }
    match filters.outcome.as_str() {
        "" => {}
        o @ ("0" | "4" | "8" | "12") => pairs.push(("outcome", o.into())),
        _ => error = Some("Choose an outcome from the list.".into()),
    }
    if !filters.patient.trim().is_empty() {
        pairs.push(("patient", filters.patient.trim().to_owned()));
    }
    if !filters.agent.trim().is_empty() {
        pairs.push(("agent", filters.agent.trim().to_owned()));
    }
    let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let path = if filters.cursor.starts_with("AuditEvent?") {
        filters.cursor.clone()
    } else {
        format!("AuditEvent?{}", query(&borrowed))
    };
    let found = if error.is_some() {
        super::fhir::Found::default()
    } else {
        match fhir.search(&user, &path).await {
            Ok(found) => found,
            Err(e) if e.status.is_client_error() => {
                error = Some(e.message);
                super::fhir::Found::default()
            }
            Err(e) => return state.fhir_failure(&visit, &e),
        }
    };
    let rows: Vec<_> = found
        .matches
        .iter()
        .map(|e| {
            let when = e["period"]["start"]
                .as_str()
                .or(e["recorded"].as_str())
                .and_then(crate::triage::request::parse_instant)
                .map(super::echo::local)
                .unwrap_or_default();
            let who = e["agent"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| {
                    a["who"]["display"]
                        .as_str()
                        .or(a["who"]["reference"].as_str())
                        .or(a["who"]["identifier"]["value"].as_str())
                })
                .collect::<Vec<_>>()
                .join(", ");
            let what = e["entity"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x["what"]["reference"].as_str())
                .take(5)
                .collect::<Vec<_>>()
                .join(", ");
            context! {
                when => when,
                kind => e["subtype"][0]["display"].as_str().or(e["subtype"][0]["code"].as_str()).or(e["type"]["display"].as_str()).unwrap_or_default(),
                action => e["action"].as_str(),
                outcome => e["outcome"].as_str(),
                detail => e["outcomeDesc"].as_str(),
                who => who,
                what => what,
                id => e["id"].as_str(),
            }
        })
        .collect();
    let mut link_pairs: Vec<(&str, &str)> = vec![
        ("date_from", &filters.date_from),
        ("date_to", &filters.date_to),
        ("action", &filters.action),
        ("outcome", &filters.outcome),
        ("patient", &filters.patient),
        ("agent", &filters.agent),
    ];
    link_pairs.retain(|(_, v)| !v.is_empty());
    let next = found.next.as_deref().map(|n| {
        let mut pairs = link_pairs.clone();
        pairs.push(("cursor", n));
        format!("/console/admin/audit?{}", query(&pairs))
    });
    let page = state.page(
        if error.is_some() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        },
        "audit.html",
        context! {
            title => "Audit log",
            wide => true,
            csrf => visit.session.csrf.clone(),
            user => ser(&super::UserView::from(&user)),
            rows => rows,
            filters => ser(&filters),
            next => next,
            error => error,
        },
    );
    visit.respond(&state, page)
}

/// `GET /console/admin/settings`: what is in force.
pub async fn settings(
    State(state): State<ConsoleState>,
    Admin { visit, user, .. }: Admin,
) -> Response {
    let Some(triage) = state.triage() else {
        return state.fhir_failure(&visit, &Failure::internal("no triage settings"));
    };
    let calendar = triage.calendar();
    let today = chrono::DateTime::from_timestamp_millis(state.now_ms())
        .map(|t| t.with_timezone(&chrono_tz::Europe::London).date_naive())
        .unwrap_or_default();
    let until = today
        .checked_add_months(chrono::Months::new(12))
        .unwrap_or(today);
    let holidays: Vec<_> = calendar
        .days_off_between(today, until)
        .into_iter()
        .map(|h| {
            context! {
                date => h.date.format("%a %-d %b %Y").to_string(),
                name => h.name.clone(),
            }
        })
        .collect();
    let settings = calendar.settings();
    let pathways: Vec<_> = triage
        .pathways()
        .all()
        .iter()
        .map(|p| context! { code => p.code.to_uppercase(), target => p.target_hours })
        .collect();
    let page = state.page(
        StatusCode::OK,
        "settings.html",
        context! {
            title => "Settings",
            csrf => visit.session.csrf.clone(),
            user => ser(&super::UserView::from(&user)),
            region => settings.region.as_str(),
            window => settings.window.as_ref().map(|w| w.label()),
            holidays => holidays,
            pathways => pathways,
            added => settings.added.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            removed => settings.removed.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            guidelines => state.clinical.guidelines_url.clone(),
            mail_to_files => state.mail_to_files,
        },
    );
    visit.respond(&state, page)
}

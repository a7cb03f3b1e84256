//! The strip board (`/console`): pending echo requests as air-traffic-control strips, grouped
//! by pathway and ordered by time to deadline, kept live by server-sent events; and the
//! one-click actions on a request (complete, undo, extend the deadline).

use std::convert::Infallible;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Serialize;
use serde_json::json;

use super::echo::{BOARD_PATHWAYS, ECHO_SEARCH, EchoView};
use super::fhir::Failure;
use super::session::{Posted, Visit, require};
use super::{ConsoleState, STAFF, field, query, ser};
use crate::accounts::User;

/// Strips shown per lane unless the lane is opened in full: the most urgent (by deadline) come
/// first, and the board stays light with hundreds pending.
pub const LANE_LIMIT: usize = 40;

/// One pathway's strips.
#[derive(Serialize)]
struct Lane {
    code: &'static str,
    label: &'static str,
    strips: Vec<EchoView>,
    overdue: usize,
    total: usize,
    hidden: usize,
}

impl Lane {
    fn new(code: &'static str) -> Lane {
        Lane {
            code,
            label: label(code),
            strips: Vec::new(),
            overdue: 0,
            total: 0,
            hidden: 0,
        }
    }

    fn push(&mut self, strip: EchoView, all: bool) {
        self.total += 1;
        self.overdue += usize::from(strip.overdue);
        if all || self.strips.len() < LANE_LIMIT {
            self.strips.push(strip);
        } else {
            self.hidden += 1;
        }
    }
}

/// What the board shows.
#[derive(Serialize)]
pub struct Board {
    lanes: Vec<Lane>,
    untriaged: Lane,
    /// The lane shown in full, if any.
    all: Option<String>,
    completed: Vec<EchoView>,
    pending: usize,
    overdue: usize,
    generated: String,
}

fn label(code: &str) -> &'static str {
    match code {
        "purple" => "PURPLE",
        "red" => "RED",
        "amber" => "AMBER",
        "green" => "GREEN",
        _ => "Not triaged",
    }
}

/// Reads the board: every active echo request (most are few hundred) and those completed today.
pub async fn read_board(
    state: &ConsoleState,
    user: &User,
    all: Option<&str>,
) -> Result<Board, Failure> {
    let fhir = state.fhir()?;
    let now = state.now_ms();
    let pending = fhir
        .search(
            user,
            &format!(
                "{ECHO_SEARCH}&{}",
                query(&[
                    ("status", "active"),
                    ("_sort", "deadline,authored"),
                    ("_count", "1000"),
                    ("_include", "ServiceRequest:subject"),
                ])
            ),
        )
        .await?;
    let midnight = super::echo::local_date(now);
    let completed = fhir
        .search(
            user,
            &format!(
                "{ECHO_SEARCH}&{}",
                query(&[
                    ("status", "completed"),
                    ("completed", &format!("ge{midnight}")),
                    ("_sort", "-completed"),
                    ("_count", "50"),
                    ("_include", "ServiceRequest:subject"),
                ])
            ),
        )
        .await?;
    let view = |found: &super::fhir::Found, r: &serde_json::Value| {
        let subject = r["subject"]["reference"].as_str().unwrap_or_default();
        EchoView::read(r, found.included.get(subject), now)
    };
    let mut lanes: Vec<Lane> = BOARD_PATHWAYS.iter().map(|code| Lane::new(code)).collect();
    let mut untriaged = Lane::new("none");
    for r in &pending.matches {
        let strip = view(&pending, r);
        let lane = if strip.pathway.is_empty() {
            Some(&mut untriaged)
        } else {
            lanes.iter_mut().find(|l| l.code == strip.pathway)
        };
        if let Some(lane) = lane {
            let full = all == Some(lane.code);
            lane.push(strip, full);
        }
    }
    Ok(Board {
        pending: lanes.iter().map(|l| l.total).sum::<usize>() + untriaged.total,
        overdue: lanes.iter().map(|l| l.overdue).sum(),
        lanes,
        untriaged,
        all: all
            .filter(|a| BOARD_PATHWAYS.contains(a) || *a == "none")
            .map(str::to_owned),
        completed: completed
            .matches
            .iter()
            .map(|r| view(&completed, r))
            .collect(),
        generated: super::echo::local(now),
    })
}

/// What a finished action says on the board (`?done=…`).
#[derive(serde::Deserialize, Default)]
pub struct Done {
    done: Option<String>,
    who: Option<String>,
    /// A lane to show in full.
    all: Option<String>,
}

fn done_message(done: &Done) -> (Option<String>, Option<String>) {
    let who = done
        .who
        .clone()
        .filter(|w| !w.trim().is_empty())
        .unwrap_or_else(|| "The request".into());
    match done.done.as_deref() {
        Some("completed") => (Some(format!("{who}: echo marked as done.")), None),
        Some("undone") => (Some(format!("{who}: back on the board.")), None),
        Some("extended") => (Some(format!("{who}: deadline extended.")), None),
        Some("created") => (Some(format!("{who}: echo request created.")), None),
        Some("triaged") => (Some(format!("{who}: triaged.")), None),
        Some("conflict") => (
            None,
            Some(format!(
                "{who} was changed by someone else a moment ago; nothing was done. The board shows it as it is now."
            )),
        ),
        _ => (None, None),
    }
}

/// `GET /console`: the board for staff, the home page for patients.
pub async fn page(
    State(state): State<ConsoleState>,
    visit: Visit,
    Query(done): Query<Done>,
) -> Response {
    let Some(user) = &visit.session.user else {
        return visit.respond(&state, Redirect::to("/console/login").into_response());
    };
    if !STAFF.contains(&user.role) {
        return super::account_pages::home_page(&state, &visit);
    }
    let board = match read_board(&state, user, done.all.as_deref()).await {
        Ok(board) => board,
        Err(e) => return state.fhir_failure(&visit, &e),
    };
    let (notice, error) = done_message(&done);
    let page = state.page(
        StatusCode::OK,
        "board.html",
        context! {
            title => "Strip board",
            csrf => visit.session.csrf.clone(),
            user => ser(&super::UserView::from(user)),
            board => ser(&board),
            notice => notice,
            error => error,
            active => "board",
            wide => true,
        },
    );
    visit.respond(&state, page)
}

/// `GET /console/board/strips`: the board's lanes alone, for the live update.
pub async fn strips(
    State(state): State<ConsoleState>,
    visit: Visit,
    Query(done): Query<Done>,
) -> Response {
    let user = match require(&state, &visit, STAFF) {
        Ok(user) => user,
        Err(r) => return r,
    };
    match read_board(&state, &user, done.all.as_deref()).await {
        Ok(board) => state.page(
            StatusCode::OK,
            "board_lanes.html",
            context! { csrf => visit.session.csrf.clone(), board => ser(&board) },
        ),
        Err(e) => (
            e.status,
            format!("The board could not be read: {}", e.message),
        )
            .into_response(),
    }
}

/// `GET /console/board/events`: an event whenever any ServiceRequest changes, on any node.
pub async fn events(State(state): State<ConsoleState>, visit: Visit) -> Response {
    if let Err(r) = require(&state, &visit, STAFF) {
        return r;
    }
    let Some(changes) = state.changes.clone() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let stream = futures_util::stream::unfold(changes, |mut changes| async move {
        changes.changed().await.ok()?;
        let seq = *changes.borrow_and_update();
        let event = Event::default().event("change").data(seq.to_string());
        Some((Ok::<_, Infallible>(event), changes))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Where an action returns: a console path given by the form, else the board.
fn back(form: &super::FormData, done: &str, who: &str) -> Response {
    let next = field(form, "next");
    let next = if next.starts_with("/console") && !next.starts_with("//") {
        next
    } else {
        "/console"
    };
    let separator = if next.contains('?') { '&' } else { '?' };
    Redirect::to(&format!(
        "{next}{separator}{}",
        query(&[("done", done), ("who", who)])
    ))
    .into_response()
}

/// A request action that failed: a version conflict goes back with a message; anything else
/// is an error page that keeps what was typed.
fn action_failed(
    state: &ConsoleState,
    visit: &Visit,
    form: &super::FormData,
    e: &Failure,
) -> Response {
    if e.is_conflict() {
        return back(form, "conflict", field(form, "who"));
    }
    state.fhir_failure(visit, e)
}

/// `POST /console/requests/{id}/complete` and `/undo`: the status, if the request is still at
/// the version the user saw.
pub async fn set_status(
    State(state): State<ConsoleState>,
    Path((id, action)): Path<(String, String)>,
    Posted { visit, form }: Posted,
) -> Response {
    let user = match require(&state, &visit, STAFF) {
        Ok(user) => user,
        Err(r) => return r,
    };
    let (status, done) = match action.as_str() {
        "complete" => ("completed", "completed"),
        "undo" => ("active", "undone"),
        _ => return super::not_found(State(state)).await,
    };
    let fhir = match state.fhir() {
        Ok(f) => f,
        Err(e) => return state.fhir_failure(&visit, &e),
    };
    let version = Some(field(&form, "version")).filter(|v| !v.is_empty());
    let patch = json!([{"op": "replace", "path": "/status", "value": status}]);
    match fhir
        .patch(&user, &format!("ServiceRequest/{id}"), patch, version)
        .await
    {
        Ok(reply) => back(
            &form,
            done,
            reply.body["subject"]["display"]
                .as_str()
                .unwrap_or_else(|| field(&form, "who")),
        ),
        Err(e) => action_failed(&state, &visit, &form, &e),
    }
}

/// `POST /console/requests/{id}/extend`: `$extend-deadline` by hours or to a date, with a
/// reason (required).
pub async fn extend(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    Posted { visit, form }: Posted,
) -> Response {
    let user = match require(&state, &visit, STAFF) {
        Ok(user) => user,
        Err(r) => return r,
    };
    let reason = field(&form, "reason").trim();
    let hours = field(&form, "hours").trim();
    let mut errors = super::FieldErrors::new();
    if reason.is_empty() {
        errors.insert("reason", "Give a reason for the extension.".into());
    }
    let hours_value = hours
        .parse::<f64>()
        .ok()
        .filter(|h| *h > 0.0 && *h <= 1000.0);
    if hours_value.is_none() {
        errors.insert(
            "hours",
            "Enter the working hours to add, a number above 0 (up to 1000).".into(),
        );
    }
    if !errors.is_empty() {
        return extend_form(&state, &visit, &user, &id, &form, errors, None).await;
    }
    let fhir = match state.fhir() {
        Ok(f) => f,
        Err(e) => return state.fhir_failure(&visit, &e),
    };
    let mut parameters = json!({"resourceType": "Parameters", "parameter": [
        {"name": "hours", "valueDecimal": hours_value},
        {"name": "reason", "valueString": reason},
    ]});
    if let Some(reference) = &user.fhir_reference
        && let Some(list) = parameters["parameter"].as_array_mut()
    {
        list.push(json!({"name": "author", "valueReference": {"reference": reference, "display": user.display_name}}));
    }
    match fhir
        .post(
            &user,
            &format!("ServiceRequest/{id}/$extend-deadline"),
            parameters,
        )
        .await
    {
        Ok(reply) => back(
            &form,
            "extended",
            reply.body["subject"]["display"]
                .as_str()
                .unwrap_or_else(|| field(&form, "who")),
        ),
        Err(e) if e.status.is_client_error() && !e.is_conflict() => {
            extend_form(&state, &visit, &user, &id, &form, errors, Some(e.message)).await
        }
        Err(e) => action_failed(&state, &visit, &form, &e),
    }
}

/// `GET /console/requests/{id}/extend`: the extension form on its own page (the board also
/// has it inline).
pub async fn extend_page(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    visit: Visit,
) -> Response {
    let user = match require(&state, &visit, STAFF) {
        Ok(user) => user,
        Err(r) => return r,
    };
    extend_form(
        &state,
        &visit,
        &user,
        &id,
        &super::FormData::new(),
        super::FieldErrors::new(),
        None,
    )
    .await
}

async fn extend_form(
    state: &ConsoleState,
    visit: &Visit,
    user: &User,
    id: &str,
    form: &super::FormData,
    errors: super::FieldErrors,
    error: Option<String>,
) -> Response {
    let fhir = match state.fhir() {
        Ok(f) => f,
        Err(e) => return state.fhir_failure(visit, &e),
    };
    let request = match fhir.get(user, &format!("ServiceRequest/{id}")).await {
        Ok(r) => r,
        Err(e) => return state.fhir_failure(visit, &e),
    };
    let view = EchoView::read(&request, None, state.now_ms());
    let status = if errors.is_empty() && error.is_none() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = state.page(
        status,
        "extend.html",
        context! {
            title => "Extend the deadline",
            csrf => visit.session.csrf.clone(),
            user => ser(&super::UserView::from(user)),
            request => ser(&view),
            form => context! {
                hours => field(form, "hours"),
                reason => field(form, "reason"),
                next => field(form, "next"),
                version => field(form, "version"),
            },
            errors => ser(&errors),
            error => error,
        },
    );
    visit.respond(state, page)
}

//! The strip board (`/console`): pending echo requests as air-traffic-control strips, grouped
//! by pathway and ordered by time to deadline, kept live by server-sent events; and the
//! one-click actions on a request (complete, undo, extend the deadline).

use std::collections::HashMap;
use std::convert::Infallible;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Serialize;
use serde_json::{Value, json};

use super::echo::{BOARD_PATHWAYS, ECHO_SEARCH, EchoView};
use super::fhir::Failure;
use super::session::{Staff, StaffPost, Visit};
use super::{ConsoleState, STAFF, field, query, ser};
use crate::accounts::User;

/// Strips shown per lane unless the lane is opened in full: the most urgent (by deadline) come
/// first, and the board stays light with hundreds pending.
pub const LANE_LIMIT: usize = 40;

/// Strips of a lane shown in full: as many as one search page holds.
const MAX_LANE: usize = crate::search::query::MAX_COUNT;

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

/// The search for one lane's strips, most urgent first: `limit` of them.
fn lane_search(code: &str, limit: usize) -> String {
    let pathway = if code == "none" {
        ("pathway:missing", "true")
    } else {
        ("pathway", code)
    };
    format!(
        "{ECHO_SEARCH}&{}",
        query(&[
            ("status", "active"),
            pathway,
            ("_sort", "deadline,authored"),
            ("_count", &limit.to_string()),
            ("_include", "ServiceRequest:subject"),
        ])
    )
}

/// Today's pending and overdue counts per pathway (and of those not triaged yet), from
/// `$triage-stats`.
#[derive(Default)]
struct Counts {
    pending: HashMap<String, usize>,
    overdue: HashMap<String, usize>,
}

impl Counts {
    fn read(stats: &Value) -> Counts {
        use super::dashboard::{code, int};
        let mut counts = Counts::default();
        let Some(today) = stats["parameter"]
            .as_array()
            .and_then(|list| list.iter().find(|p| p["name"] == "today"))
        else {
            return counts;
        };
        let count = |parameter: &Value, name: &str| {
            usize::try_from(int(parameter, name)).unwrap_or_default()
        };
        counts
            .pending
            .insert("none".into(), count(today, "untriaged"));
        let pathways = today["part"].as_array().into_iter().flatten();
        for pathway in pathways.filter(|p| p["name"] == "pathway") {
            counts
                .pending
                .insert(code(pathway), count(pathway, "pending"));
            counts
                .overdue
                .insert(code(pathway), count(pathway, "overdue"));
        }
        counts
    }
}

/// Reads the board. Each lane is one search for its most urgent strips (all of them for the
/// lane shown in full), the counts come from `$triage-stats`, and the searches run at once:
/// with hundreds pending, the board reads and renders only what it shows.
pub async fn read_board(
    state: &ConsoleState,
    user: &User,
    all: Option<&str>,
) -> Result<Board, Failure> {
    let fhir = state.fhir()?;
    let now = state.now_ms();
    let all = all.filter(|a| BOARD_PATHWAYS.contains(a) || *a == "none");
    let limit = |code: &str| {
        if all == Some(code) {
            MAX_LANE
        } else {
            LANE_LIMIT
        }
    };
    let midnight = super::echo::local_date(now);
    let completed_search = format!(
        "{ECHO_SEARCH}&{}",
        query(&[
            ("status", "completed"),
            ("completed", &format!("ge{midnight}")),
            ("_sort", "-completed"),
            ("_count", "50"),
            ("_include", "ServiceRequest:subject"),
        ])
    );
    let searches = [
        "none",
        BOARD_PATHWAYS[0],
        BOARD_PATHWAYS[1],
        BOARD_PATHWAYS[2],
    ]
    .map(|code| lane_search(code, limit(code)));
    let (stats, untriaged, first, second, third, completed) = tokio::try_join!(
        fhir.get(user, "ServiceRequest/$triage-stats?days=1"),
        fhir.search(user, &searches[0]),
        fhir.search(user, &searches[1]),
        fhir.search(user, &searches[2]),
        fhir.search(user, &searches[3]),
        fhir.search(user, &completed_search),
    )?;
    let counts = Counts::read(&stats);
    let view = |found: &super::fhir::Found, r: &Value| {
        let subject = r["subject"]["reference"].as_str().unwrap_or_default();
        EchoView::read(r, found.included.get(subject), now)
    };
    let lane = |code: &'static str, found: &super::fhir::Found| {
        let strips: Vec<EchoView> = found.matches.iter().map(|r| view(found, r)).collect();
        let overdue = strips.iter().filter(|s| s.overdue).count();
        // The counts were read a moment apart from the strips: never show fewer than are there.
        let total = counts
            .pending
            .get(code)
            .copied()
            .unwrap_or_default()
            .max(strips.len());
        Lane {
            code,
            label: label(code),
            hidden: total - strips.len(),
            overdue: counts
                .overdue
                .get(code)
                .copied()
                .unwrap_or_default()
                .max(overdue),
            total,
            strips,
        }
    };
    let lanes = vec![
        lane(BOARD_PATHWAYS[0], &first),
        lane(BOARD_PATHWAYS[1], &second),
        lane(BOARD_PATHWAYS[2], &third),
    ];
    let untriaged = lane("none", &untriaged);
    Ok(Board {
        pending: lanes.iter().map(|l| l.total).sum::<usize>() + untriaged.total,
        overdue: lanes.iter().map(|l| l.overdue).sum(),
        lanes,
        untriaged,
        all: all.map(str::to_owned),
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
    Staff { visit, user, .. }: Staff,
    Query(done): Query<Done>,
) -> Response {
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
pub async fn events(State(state): State<ConsoleState>, _: Staff) -> Response {
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
    StaffPost {
        visit,
        user,
        fhir,
        form,
    }: StaffPost,
) -> Response {
    let (status, done) = match action.as_str() {
        "complete" => ("completed", "completed"),
        "undo" => ("active", "undone"),
        _ => return super::not_found(State(state)).await,
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
    StaffPost {
        visit,
        user,
        fhir,
        form,
    }: StaffPost,
) -> Response {
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
    Staff { visit, user, .. }: Staff,
) -> Response {
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

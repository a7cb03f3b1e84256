//! The dashboard: today's counts per pathway, overdue and completed today, and the trend of
//! requests received and completed per day (15 days, or 30), all from `$triage-stats`.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::Serialize;
use serde_json::Value;

use super::session::Staff;
use super::{ConsoleState, ser};

#[derive(serde::Deserialize, Default)]
pub struct Window {
    days: Option<u32>,
}

/// One day of the chart, with its bars placed.
#[derive(Serialize)]
struct Day {
    date: String,
    label: String,
    received: i64,
    completed: i64,
    x: f64,
    received_y: f64,
    received_h: f64,
    completed_x: f64,
    completed_y: f64,
    completed_h: f64,
    tick: bool,
}

#[derive(Serialize, Default)]
struct PathwayToday {
    code: String,
    triaged: i64,
    pending: i64,
    overdue: i64,
    target: Option<f64>,
    completed: i64,
    median: Option<f64>,
    within: Option<f64>,
}

/// The parts of a Parameters parameter, by name (first value of each).
pub(super) fn part<'a>(parameter: &'a Value, name: &str) -> Option<&'a Value> {
    parameter["part"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
}

/// A part's integer (0 when absent).
pub(super) fn int(parameter: &Value, name: &str) -> i64 {
    part(parameter, name)
        .and_then(|p| p["valueInteger"].as_i64())
        .unwrap_or(0)
}

fn decimal(parameter: &Value, name: &str) -> Option<f64> {
    part(parameter, name).and_then(|p| p["valueDecimal"].as_f64())
}

/// A part's `code`.
pub(super) fn code(parameter: &Value) -> String {
    part(parameter, "code")
        .and_then(|p| p["valueCode"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Chart geometry.
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 34.0;
const BOTTOM: f64 = 24.0;

/// `GET /console/dashboard`.
pub async fn page(
    State(state): State<ConsoleState>,
    Staff { visit, user, fhir }: Staff,
    Query(window): Query<Window>,
) -> Response {
    let days = if window.days == Some(30) { 30 } else { 15 };
    let stats = match fhir
        .get(&user, &format!("ServiceRequest/$triage-stats?days={days}"))
        .await
    {
        Ok(stats) => stats,
        Err(e) => return state.fhir_failure(&visit, &e),
    };
    let parameters: Vec<Value> = stats["parameter"].as_array().cloned().unwrap_or_default();
    let today = parameters
        .iter()
        .find(|p| p["name"] == "today")
        .cloned()
        .unwrap_or(Value::Null);
    let mut pathways: Vec<PathwayToday> = today["part"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == "pathway")
        .map(|p| PathwayToday {
            code: code(p),
            triaged: int(p, "triaged"),
            pending: int(p, "pending"),
            overdue: int(p, "overdue"),
            ..PathwayToday::default()
        })
        .collect();
    for p in parameters.iter().filter(|p| p["name"] == "pathway") {
        if let Some(mine) = pathways.iter_mut().find(|m| m.code == code(p)) {
            mine.target = decimal(p, "targetHours");
            mine.completed = int(p, "completed");
            mine.median = decimal(p, "medianWorkingHours");
            mine.within = decimal(p, "withinTarget").map(|w| (w * 100.0).round());
        }
    }
    let series: Vec<(String, i64, i64)> = parameters
        .iter()
        .filter(|p| p["name"] == "day")
        .map(|p| {
            let date = part(p, "date")
                .and_then(|d| d["valueDate"].as_str())
                .unwrap_or_default()
                .to_owned();
            (date, int(p, "received"), int(p, "completed"))
        })
        .collect();
    let top = series
        .iter()
        .map(|(_, r, c)| (*r).max(*c))
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_h = HEIGHT - BOTTOM - 10.0;
    let slot = (WIDTH - LEFT - 6.0) / series.len().max(1) as f64;
    let bar = (slot * 0.38).max(2.0);
    let scale = |n: i64| plot_h * n as f64 / top as f64;
    let chart: Vec<Day> = series
        .iter()
        .enumerate()
        .map(|(i, (date, received, completed))| {
            let x = LEFT + slot * i as f64 + slot * 0.1;
            Day {
                label: date.get(5..).unwrap_or(date).to_owned(),
                date: date.clone(),
                received: *received,
                completed: *completed,
                x,
                received_h: scale(*received),
                received_y: HEIGHT - BOTTOM - scale(*received),
                completed_x: x + bar,
                completed_h: scale(*completed),
                completed_y: HEIGHT - BOTTOM - scale(*completed),
                tick: days == 15 || i % 3 == 0 || i + 1 == series.len(),
            }
        })
        .collect();
    let page = state.page(
        StatusCode::OK,
        "dashboard.html",
        context! {
            title => "Dashboard",
            active => "dashboard",
            csrf => visit.session.csrf.clone(),
            user => ser(&super::UserView::from(&user)),
            days => days,
            today => context! {
                date => part(&today, "date").and_then(|d| d["valueDate"].as_str()).unwrap_or_default(),
                received => int(&today, "received"),
                triaged => int(&today, "triaged"),
                completed => int(&today, "completed"),
                pending => int(&today, "pending"),
                overdue => int(&today, "overdue"),
                untriaged => int(&today, "untriaged"),
            },
            pathways => ser(&pathways),
            chart => ser(&chart),
            top => top,
            bar => bar,
            width => WIDTH,
            height => HEIGHT,
            baseline => HEIGHT - BOTTOM,
            left => LEFT,
            generated => parameters.iter().find(|p| p["name"] == "generated").and_then(|p| p["valueInstant"].as_str()).and_then(crate::triage::request::parse_instant).map(super::echo::local).unwrap_or_default(),
        },
    );
    visit.respond(&state, page)
}

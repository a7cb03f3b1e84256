//! `$triage-stats`: today's figures, a daily series and time to completion against target, per
//! pathway, computed from the facts of the echo requests (the caller finds the requests that
//! can count: pending ones, and those received, triaged or completed inside the window).

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone};
use chrono_tz::Europe::London;
use serde_json::{Value, json};

use super::{Calendar, Pathways};
use crate::fhir::instant::EpochMillis;

/// The largest `days` the statistics accept.
pub const MAX_DAYS: u32 = 90;

/// What the statistics need of one echo request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestFacts {
    /// The pathway code, when triaged.
    pub pathway: Option<String>,
    /// The FHIR status.
    pub status: String,
    /// When the request was received (`authoredOn`).
    pub received: Option<EpochMillis>,
    /// When it was triaged.
    pub triaged: Option<EpochMillis>,
    /// The deadline in force.
    pub deadline: Option<EpochMillis>,
    /// When it was completed.
    pub completed: Option<EpochMillis>,
}

/// The London calendar day of an instant.
fn london_day(t: EpochMillis) -> Option<NaiveDate> {
    DateTime::from_timestamp_millis(t).map(|t| t.with_timezone(&London).date_naive())
}

/// Midnight in London at the start of `day`, as UTC milliseconds.
fn london_midnight(day: NaiveDate) -> EpochMillis {
    London
        .from_local_datetime(&day.and_time(NaiveTime::MIN))
        .earliest()
        .map_or(0, |t| t.timestamp_millis())
}

fn int(name: &str, value: usize) -> Value {
    json!({"name": name, "valueInteger": value})
}

/// The median of `values` (sorted in place); `None` when empty.
fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The statistics as a Parameters resource: `today`, one `day` per day of the window (oldest
/// first) and one `pathway` per pathway with a target.
pub fn compute(
    facts: &[RequestFacts],
    now: EpochMillis,
    days: u32,
    calendar: &Calendar,
    pathways: &Pathways,
) -> Value {
    let today = london_day(now).unwrap_or_default();
    let first_day = today - Days::new(u64::from(days.saturating_sub(1)));
    let window_start = london_midnight(first_day);
    let on_today = |t: Option<EpochMillis>| t.and_then(london_day) == Some(today);
    let pending = |f: &&RequestFacts| f.status == "active";
    let overdue = |f: &&RequestFacts| f.status == "active" && f.deadline.is_some_and(|d| d < now);

    let mut today_parts = vec![
        json!({"name": "date", "valueDate": today.to_string()}),
        int(
            "received",
            facts.iter().filter(|f| on_today(f.received)).count(),
        ),
        int(
            "triaged",
            facts
                .iter()
                .filter(|f| f.pathway.is_some() && on_today(f.triaged))
                .count(),
        ),
        int(
            "completed",
            facts
                .iter()
                .filter(|f| f.status == "completed" && on_today(f.completed))
                .count(),
        ),
        int("pending", facts.iter().filter(pending).count()),
        int("overdue", facts.iter().filter(overdue).count()),
        int(
            "untriaged",
            facts
                .iter()
                .filter(pending)
                .filter(|f| f.pathway.is_none())
                .count(),
        ),
    ];
    for pathway in pathways.all() {
        let mine = |f: &&RequestFacts| f.pathway.as_deref() == Some(pathway.code.as_str());
        today_parts.push(json!({"name": "pathway", "part": [
            {"name": "code", "valueCode": pathway.code},
            int("triaged", facts.iter().filter(mine).filter(|f| on_today(f.triaged)).count()),
            int("pending", facts.iter().filter(mine).filter(pending).count()),
            int("overdue", facts.iter().filter(mine).filter(overdue).count()),
        ]}));
    }

    let mut series: BTreeMap<NaiveDate, [usize; 3]> = BTreeMap::new();
    let mut day = first_day;
    while day <= today {
        series.insert(day, [0; 3]);
        day = day + Days::new(1);
    }
    for f in facts {
        let events = [
            f.received,
            f.triaged.filter(|_| f.pathway.is_some()),
            f.completed.filter(|_| f.status == "completed"),
        ];
        for (slot, event) in events.into_iter().enumerate() {
            if let Some(counts) = event
                .filter(|t| *t >= window_start && *t <= now)
                .and_then(london_day)
                .and_then(|d| series.get_mut(&d))
            {
                counts[slot] += 1;
            }
        }
    }
    let mut parameters = vec![
        json!({"name": "generated", "valueInstant": super::request::format_utc(now)}),
        json!({"name": "days", "valueInteger": days}),
        json!({"name": "today", "part": today_parts}),
    ];
    for (day, [received, triaged, completed]) in series {
        parameters.push(json!({"name": "day", "part": [
            {"name": "date", "valueDate": day.to_string()},
            int("received", received),
            int("triaged", triaged),
            int("completed", completed),
        ]}));
    }
    for pathway in pathways.all() {
        let Some(target) = pathway.target_hours else {
            continue;
        };
        let mut hours: Vec<f64> = facts
            .iter()
            .filter(|f| f.pathway.as_deref() == Some(pathway.code.as_str()))
            .filter(|f| f.status == "completed")
            .filter_map(|f| {
                let completed = f.completed.filter(|t| *t >= window_start && *t <= now)?;
                let worked = calendar.working_between(f.triaged?, completed).ok()?;
                Some(super::calendar::millis_to_hours(worked.max(0)))
            })
            .collect();
        let within = hours.iter().filter(|h| **h <= target).count();
        let count = hours.len();
        let mut parts = vec![
            json!({"name": "code", "valueCode": pathway.code}),
            json!({"name": "targetHours", "valueDecimal": target}),
            int("completed", count),
        ];
        if let Some(median) = median(&mut hours) {
            parts.push(json!({"name": "medianWorkingHours", "valueDecimal": round2(median)}));
            parts.push(json!({"name": "withinTarget", "valueDecimal": round2(within as f64 / count as f64)}));
        }
        parameters.push(json!({"name": "pathway", "part": parts}));
    }
    json!({"resourceType": "Parameters", "parameter": parameters})
}

/// The start of the statistics window of `days` days ending today (London), as UTC
/// milliseconds: the caller looks for requests received, triaged or completed since then.
pub fn window_start(now: EpochMillis, days: u32) -> EpochMillis {
    let today = london_day(now).unwrap_or_default();
    london_midnight(today - Days::new(u64::from(days.saturating_sub(1))))
}

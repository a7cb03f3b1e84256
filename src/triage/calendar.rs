//! The working-hours calendar and the deadline engine (DESIGN §4). Pure: every instant is a
//! parameter, nothing reads the clock.
//!
//! A working day is Monday to Friday in Europe/London that is not a bank holiday of the
//! configured region (site additions and removals applied); an optional daily window narrows
//! the counted hours. The calendar is built once as a sorted list of working intervals in UTC
//! with the working time before each, so that the working time elapsed since the calendar's
//! start, `W(t)`, is one binary search, and a deadline is `W⁻¹(W(start) + hours)`. That makes
//! deadlines exact in milliseconds and additive by construction.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Europe::London;

use super::holidays::{BankHoliday, Region, bank_holidays};
use crate::fhir::instant::EpochMillis;

/// The first year the calendar covers.
pub const FIRST_YEAR: i32 = 1995;
/// The last year the calendar covers.
pub const LAST_YEAR: i32 = 2100;
/// The largest number of working hours a deadline may add.
pub const MAX_HOURS: f64 = 10_000.0;

const MILLIS_PER_HOUR: f64 = 3_600_000.0;

/// The counted part of each working day, in Europe/London wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start of counted time.
    pub start: NaiveTime,
    /// End of counted time; `None` is midnight at the end of the day.
    pub end: Option<NaiveTime>,
}

impl Window {
    /// Reads `HH:MM-HH:MM` (the end may be `24:00`).
    pub fn parse(text: &str) -> Result<Window, String> {
        let (start, end) = text
            .split_once('-')
            .ok_or_else(|| format!("'{text}' is not a window such as 08:00-18:00"))?;
        let time = |part: &str| {
            NaiveTime::parse_from_str(part.trim(), "%H:%M")
                .map_err(|_| format!("'{}' is not a time such as 08:00", part.trim()))
        };
        let start = time(start)?;
        let end = if end.trim() == "24:00" {
            None
        } else {
            Some(time(end)?)
        };
        if end.is_some_and(|end| end <= start) {
            return Err(format!(
                "the window '{text}' must end after it starts, on the same day"
            ));
        }
        Ok(Window { start, end })
    }

    /// The window as `HH:MM-HH:MM`.
    pub fn label(&self) -> String {
        let end = self
            .end
            .map_or_else(|| "24:00".to_owned(), |end| end.format("%H:%M").to_string());
        format!("{}-{end}", self.start.format("%H:%M"))
    }
}

/// What a site configures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarSettings {
    /// Whose bank holidays apply.
    pub region: Region,
    /// The counted part of each day; `None` counts the whole day.
    pub window: Option<Window>,
    /// Extra days off.
    pub added: BTreeSet<NaiveDate>,
    /// Bank holidays the site works.
    pub removed: BTreeSet<NaiveDate>,
}

impl Default for CalendarSettings {
    fn default() -> Self {
        CalendarSettings {
            region: Region::EnglandAndWales,
            window: None,
            added: BTreeSet::new(),
            removed: BTreeSet::new(),
        }
    }
}

/// Why a deadline cannot be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalendarError {
    /// The hours are negative, not a number or over [`MAX_HOURS`].
    #[error("hours must be a number from 0 to 10000 (got {0})")]
    Hours(f64),
    /// The instant or the deadline is outside the years the calendar covers.
    #[error("the calendar covers {FIRST_YEAR} to {LAST_YEAR}; this instant is outside it")]
    OutOfRange,
}

/// The working-hours calendar of a site.
#[derive(Debug, Clone)]
pub struct Calendar {
    settings: CalendarSettings,
    /// Working intervals `[start, end)` in UTC milliseconds, sorted and disjoint.
    intervals: Vec<(EpochMillis, EpochMillis)>,
    /// Working milliseconds before each interval.
    before: Vec<i64>,
    /// Working milliseconds up to the end of each interval.
    through: Vec<i64>,
    /// Days off (bank holidays after the site's changes) over the covered years.
    days_off: BTreeSet<NaiveDate>,
    first: EpochMillis,
    last: EpochMillis,
}

/// The UTC instant of a London wall-clock time (the earlier one when the clock goes back, the
/// first valid one after a gap when it goes forward).
fn london_millis(date: NaiveDate, time: NaiveTime) -> EpochMillis {
    let local = date.and_time(time);
    match London.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => t.timestamp_millis(),
        chrono::LocalResult::Ambiguous(earlier, _) => earlier.timestamp_millis(),
        chrono::LocalResult::None => {
            let later = local + chrono::Duration::hours(1);
            London.from_local_datetime(&later).earliest().map_or_else(
                || later.and_utc().timestamp_millis(),
                |t| t.timestamp_millis(),
            )
        }
    }
}

impl Calendar {
    /// Builds the calendar of `settings` over [`FIRST_YEAR`]..=[`LAST_YEAR`].
    pub fn new(settings: CalendarSettings) -> Calendar {
        let mut days_off: BTreeSet<NaiveDate> = (FIRST_YEAR..=LAST_YEAR)
            .flat_map(|year| bank_holidays(settings.region, year))
            .map(|h| h.date)
            .collect();
        days_off.extend(settings.added.iter().copied());
        for day in &settings.removed {
            days_off.remove(day);
        }
        let first_day = NaiveDate::from_ymd_opt(FIRST_YEAR, 1, 1).unwrap_or(NaiveDate::MIN);
        let end_day = NaiveDate::from_ymd_opt(LAST_YEAR + 1, 1, 1).unwrap_or(NaiveDate::MAX);
        let midnight = NaiveTime::MIN;
        let mut intervals: Vec<(EpochMillis, EpochMillis)> = Vec::with_capacity(28_000);
        let mut day = first_day;
        while day < end_day {
            let next = day + Days::new(1);
            let working =
                !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) && !days_off.contains(&day);
            if working {
                let (start, end) = match settings.window {
                    None => (london_millis(day, midnight), london_millis(next, midnight)),
                    Some(w) => (
                        london_millis(day, w.start),
                        w.end.map_or_else(
                            || london_millis(next, midnight),
                            |end| london_millis(day, end),
                        ),
                    ),
                };
                match intervals.last_mut() {
                    Some(last) if last.1 == start => last.1 = end,
                    _ => intervals.push((start, end)),
                }
            }
            day = next;
        }
        let mut before = Vec::with_capacity(intervals.len());
        let mut through = Vec::with_capacity(intervals.len());
        let mut total = 0i64;
        for (start, end) in &intervals {
            before.push(total);
            total += end - start;
            through.push(total);
        }
        Calendar {
            first: london_millis(first_day, midnight),
            last: london_millis(end_day, midnight),
            settings,
            intervals,
            before,
            through,
            days_off,
        }
    }

    /// The settings the calendar was built from.
    pub fn settings(&self) -> &CalendarSettings {
        &self.settings
    }

    /// Whether `date` (in Europe/London) is a working day.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) && !self.days_off.contains(&date)
    }

    /// The days off from `from` to `to` inclusive, with names (the site's additions are named
    /// "Site holiday").
    pub fn days_off_between(&self, from: NaiveDate, to: NaiveDate) -> Vec<BankHoliday> {
        let mut named: Vec<BankHoliday> = (from.year()..=to.year())
            .flat_map(|year| bank_holidays(self.settings.region, year))
            .filter(|h| h.date >= from && h.date <= to && self.days_off.contains(&h.date))
            .collect();
        for date in self.days_off.range(from..=to) {
            if !named.iter().any(|h| h.date == *date) {
                named.push(BankHoliday {
                    date: *date,
                    name: "Site holiday".to_owned(),
                });
            }
        }
        named.sort_by_key(|h| h.date);
        named
    }

    /// Working milliseconds from the calendar's start to `t`.
    pub fn working_millis(&self, t: EpochMillis) -> Result<i64, CalendarError> {
        if t < self.first || t > self.last {
            return Err(CalendarError::OutOfRange);
        }
        let index = self.intervals.partition_point(|(start, _)| *start <= t);
        if index == 0 {
            return Ok(0);
        }
        let (start, end) = self.intervals[index - 1];
        Ok(self.before[index - 1] + (t.min(end) - start))
    }

    /// The earliest instant at which `working_millis` reaches `w`.
    fn instant_at(&self, w: i64) -> Result<EpochMillis, CalendarError> {
        // The first interval that ends at or past `w` in working time.
        let index = self.through.partition_point(|through| *through < w);
        let Some((start, _)) = self.intervals.get(index) else {
            return Err(CalendarError::OutOfRange);
        };
        Ok(start + (w - self.before[index]))
    }

    /// Working milliseconds inside `[from, to]` (negative when `to` is before `from`).
    pub fn working_between(
        &self,
        from: EpochMillis,
        to: EpochMillis,
    ) -> Result<i64, CalendarError> {
        Ok(self.working_millis(to)? - self.working_millis(from)?)
    }

    /// The deadline of work started at `start` (UTC milliseconds) that needs `millis` working
    /// milliseconds: the earliest instant at which the working time in `[start, deadline]`
    /// equals `millis`.
    pub fn deadline_millis(
        &self,
        start: EpochMillis,
        millis: i64,
    ) -> Result<EpochMillis, CalendarError> {
        if millis < 0 {
            return Err(CalendarError::Hours(millis as f64 / MILLIS_PER_HOUR));
        }
        let reached = self.working_millis(start)? + millis;
        Ok(self.instant_at(reached)?.max(start))
    }

    /// [`Calendar::deadline_millis`] for `hours` working hours, from and to UTC instants.
    pub fn deadline(
        &self,
        start: DateTime<Utc>,
        hours: f64,
    ) -> Result<DateTime<Utc>, CalendarError> {
        let millis = hours_to_millis(hours)?;
        let deadline = self.deadline_millis(start.timestamp_millis(), millis)?;
        DateTime::from_timestamp_millis(deadline).ok_or(CalendarError::OutOfRange)
    }
}

/// Working hours as milliseconds, refusing negative, non-finite and absurd values.
pub fn hours_to_millis(hours: f64) -> Result<i64, CalendarError> {
    if !hours.is_finite() || !(0.0..=MAX_HOURS).contains(&hours) {
        return Err(CalendarError::Hours(hours));
    }
    Ok((hours * MILLIS_PER_HOUR).round() as i64)
}

/// Milliseconds as (fractional) hours.
pub fn millis_to_hours(millis: i64) -> f64 {
    millis as f64 / MILLIS_PER_HOUR
}

//! The calendar and deadline engine against published bank-holiday lists and hand-worked
//! deadlines (DST weeks, Friday nights, bank holidays, windows), plus properties.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use chrono::{DateTime, NaiveDate, Utc};
use proptest::prelude::*;

use super::calendar::{Calendar, CalendarError, CalendarSettings, Window};
use super::holidays::{Region, bank_holidays};

/// GOV.UK's bank holidays for England and Wales (https://www.gov.uk/bank-holidays), as
/// `MM-DD` per year.
const ENGLAND_AND_WALES: &[(i32, &str)] = &[
    (2018, "01-01 03-30 04-02 05-07 05-28 08-27 12-25 12-26"),
    (2019, "01-01 04-19 04-22 05-06 05-27 08-26 12-25 12-26"),
    (2020, "01-01 04-10 04-13 05-08 05-25 08-31 12-25 12-28"),
    (2021, "01-01 04-02 04-05 05-03 05-31 08-30 12-27 12-28"),
    (
        2022,
        "01-03 04-15 04-18 05-02 06-02 06-03 08-29 09-19 12-26 12-27",
    ),
    (
        2023,
        "01-02 04-07 04-10 05-01 05-08 05-29 08-28 12-25 12-26",
    ),
    (2024, "01-01 03-29 04-01 05-06 05-27 08-26 12-25 12-26"),
    (2025, "01-01 04-18 04-21 05-05 05-26 08-25 12-25 12-26"),
    (2026, "01-01 04-03 04-06 05-04 05-25 08-31 12-25 12-28"),
    (2027, "01-01 03-26 03-29 05-03 05-31 08-30 12-27 12-28"),
    (2028, "01-03 04-14 04-17 05-01 05-29 08-28 12-25 12-26"),
    (2029, "01-01 03-30 04-02 05-07 05-28 08-27 12-25 12-26"),
    (2030, "01-01 04-19 04-22 05-06 05-27 08-26 12-25 12-26"),
];

/// GOV.UK's bank holidays for Scotland.
const SCOTLAND: &[(i32, &str)] = &[
    (
        2018,
        "01-01 01-02 03-30 05-07 05-28 08-06 11-30 12-25 12-26",
    ),
    (
        2019,
        "01-01 01-02 04-19 05-06 05-27 08-05 12-02 12-25 12-26",
    ),
    (
        2020,
        "01-01 01-02 04-10 05-08 05-25 08-03 11-30 12-25 12-28",
    ),
    (
        2021,
        "01-01 01-04 04-02 05-03 05-31 08-02 11-30 12-27 12-28",
    ),
    (
        2022,
        "01-03 01-04 04-15 05-02 06-02 06-03 08-01 09-19 11-30 12-26 12-27",
    ),
    (
        2023,
        "01-02 01-03 04-07 05-01 05-08 05-29 08-07 11-30 12-25 12-26",
    ),
    (
        2024,
        "01-01 01-02 03-29 05-06 05-27 08-05 12-02 12-25 12-26",
    ),
    (
        2025,
        "01-01 01-02 04-18 05-05 05-26 08-04 12-01 12-25 12-26",
    ),
    (
        2026,
        "01-01 01-02 04-03 05-04 05-25 08-03 11-30 12-25 12-28",
    ),
    (
        2027,
        "01-01 01-04 03-26 05-03 05-31 08-02 11-30 12-27 12-28",
    ),
    (
        2028,
        "01-03 01-04 04-14 05-01 05-29 08-07 11-30 12-25 12-26",
    ),
    (
        2029,
        "01-01 01-02 03-30 05-07 05-28 08-06 11-30 12-25 12-26",
    ),
    (
        2030,
        "01-01 01-02 04-19 05-06 05-27 08-05 12-02 12-25 12-26",
    ),
];

/// Northern Ireland: England and Wales's list plus these two days.
const NORTHERN_IRELAND_EXTRA: &[(i32, &str)] = &[
    (2018, "03-19 07-12"),
    (2019, "03-18 07-12"),
    (2020, "03-17 07-13"),
    (2021, "03-17 07-12"),
    (2022, "03-17 07-12"),
    (2023, "03-17 07-12"),
    (2024, "03-18 07-12"),
    (2025, "03-17 07-14"),
    (2026, "03-17 07-13"),
    (2027, "03-17 07-12"),
    (2028, "03-17 07-12"),
    (2029, "03-19 07-12"),
    (2030, "03-18 07-12"),
];

fn dates(year: i32, list: &str) -> Vec<NaiveDate> {
    let mut out: Vec<NaiveDate> = list
        .split_whitespace()
        .map(|md| {
            NaiveDate::parse_from_str(&format!("{year}-{md}"), "%Y-%m-%d").expect("test date")
        })
        .collect();
    out.sort();
    out
}

fn computed(region: Region, year: i32) -> Vec<NaiveDate> {
    bank_holidays(region, year).iter().map(|h| h.date).collect()
}

#[test]
fn england_and_wales_matches_gov_uk_2018_to_2030() {
    for (year, list) in ENGLAND_AND_WALES {
        assert_eq!(
            computed(Region::EnglandAndWales, *year),
            dates(*year, list),
            "{year}"
        );
    }
}

#[test]
fn scotland_matches_gov_uk_2018_to_2030() {
    for (year, list) in SCOTLAND {
        assert_eq!(
            computed(Region::Scotland, *year),
            dates(*year, list),
            "{year}"
        );
    }
}

#[test]
fn northern_ireland_matches_gov_uk_2018_to_2030() {
    for ((year, ew), (_, extra)) in ENGLAND_AND_WALES.iter().zip(NORTHERN_IRELAND_EXTRA) {
        let mut expected = dates(*year, ew);
        expected.extend(dates(*year, extra));
        expected.sort();
        assert_eq!(computed(Region::NorthernIreland, *year), expected, "{year}");
    }
}

#[test]
fn one_off_days_since_1995_are_kept() {
    let ew = |y| computed(Region::EnglandAndWales, y);
    let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("date");
    assert!(ew(1995).contains(&day(1995, 5, 8)) && !ew(1995).contains(&day(1995, 5, 1)));
    assert!(ew(1999).contains(&day(1999, 12, 31)));
    assert!(ew(2002).contains(&day(2002, 6, 3)) && ew(2002).contains(&day(2002, 6, 4)));
    assert!(!ew(2002).contains(&day(2002, 5, 27)));
    assert!(ew(2011).contains(&day(2011, 4, 29)));
    assert!(ew(2012).contains(&day(2012, 6, 5)) && !ew(2012).contains(&day(2012, 5, 28)));
    // No St Andrew's Day before the 2007 Act.
    assert!(!computed(Region::Scotland, 2006).contains(&day(2006, 11, 30)));
    assert!(computed(Region::Scotland, 2007).contains(&day(2007, 11, 30)));
}

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().expect("test instant")
}

fn whole_day(region: Region) -> &'static Calendar {
    static EW: OnceLock<Calendar> = OnceLock::new();
    static SC: OnceLock<Calendar> = OnceLock::new();
    static NI: OnceLock<Calendar> = OnceLock::new();
    let cell = match region {
        Region::EnglandAndWales => &EW,
        Region::Scotland => &SC,
        Region::NorthernIreland => &NI,
    };
    cell.get_or_init(|| {
        Calendar::new(CalendarSettings {
            region,
            ..CalendarSettings::default()
        })
    })
}

fn office_hours() -> &'static Calendar {
    static CAL: OnceLock<Calendar> = OnceLock::new();
    CAL.get_or_init(|| {
        Calendar::new(CalendarSettings {
            window: Some(Window::parse("08:00-18:00").expect("window")),
            ..CalendarSettings::default()
        })
    })
}

fn deadline(calendar: &Calendar, start: &str, hours: f64) -> String {
    calendar
        .deadline(utc(start), hours)
        .expect("deadline")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[test]
fn an_hour_on_a_working_morning_is_an_hour() {
    let ew = whole_day(Region::EnglandAndWales);
    assert_eq!(
        deadline(ew, "2026-03-02T09:00:00Z", 1.0),
        "2026-03-02T10:00:00Z"
    );
    assert_eq!(
        deadline(ew, "2026-03-02T09:00:00Z", 0.0),
        "2026-03-02T09:00:00Z"
    );
    assert_eq!(
        deadline(ew, "2026-03-02T09:00:00Z", 0.5),
        "2026-03-02T09:30:00Z"
    );
}

#[test]
fn friday_23_30_runs_into_monday() {
    let ew = whole_day(Region::EnglandAndWales);
    assert_eq!(
        deadline(ew, "2026-03-06T23:30:00Z", 1.0),
        "2026-03-09T00:30:00Z"
    );
    assert_eq!(
        deadline(ew, "2026-03-06T23:30:00Z", 24.0),
        "2026-03-09T23:30:00Z"
    );
    // Exactly the rest of Friday: the earliest instant is Friday's midnight.
    assert_eq!(
        deadline(ew, "2026-03-06T23:30:00Z", 0.5),
        "2026-03-07T00:00:00Z"
    );
}

#[test]
fn weekend_triage_starts_the_clock_on_monday() {
    let ew = whole_day(Region::EnglandAndWales);
    assert_eq!(
        deadline(ew, "2026-03-07T15:00:00Z", 1.0),
        "2026-03-09T01:00:00Z"
    );
    // Zero hours: the deadline is the triage instant itself.
    assert_eq!(
        deadline(ew, "2026-03-07T15:00:00Z", 0.0),
        "2026-03-07T15:00:00Z"
    );
}

#[test]
fn clocks_going_forward_and_back_are_counted_in_london_time() {
    let ew = whole_day(Region::EnglandAndWales);
    // Spring forward on Sunday 29 March 2026: Monday starts at 23:00 UTC on Sunday.
    assert_eq!(
        deadline(ew, "2026-03-27T12:00:00Z", 24.0),
        "2026-03-30T11:00:00Z"
    );
    // Fall back on Sunday 25 October 2026: Friday ends at 23:00 UTC, Monday starts at 00:00.
    assert_eq!(
        deadline(ew, "2026-10-23T11:00:00Z", 24.0),
        "2026-10-26T12:00:00Z"
    );
    // A whole week of BST.
    assert_eq!(
        deadline(ew, "2026-07-06T08:00:00Z", 72.0),
        "2026-07-09T08:00:00Z"
    );
}

#[test]
fn bank_holidays_do_not_count() {
    let ew = whole_day(Region::EnglandAndWales);
    // Triaged on Good Friday 2026 at 10:00 BST: the clock starts on Tuesday after Easter Monday.
    assert_eq!(
        deadline(ew, "2026-04-03T09:00:00Z", 1.0),
        "2026-04-07T00:00:00Z"
    );
    // AMBER over Christmas 2026 (Boxing Day's substitute is Monday 28).
    assert_eq!(
        deadline(ew, "2026-12-23T10:00:00Z", 72.0),
        "2026-12-30T10:00:00Z"
    );
}

#[test]
fn regions_differ() {
    // St Andrew's Day 2026 is Monday 30 November.
    let start = "2026-11-30T09:00:00Z";
    assert_eq!(
        deadline(whole_day(Region::EnglandAndWales), start, 1.0),
        "2026-11-30T10:00:00Z"
    );
    assert_eq!(
        deadline(whole_day(Region::Scotland), start, 1.0),
        "2026-12-01T01:00:00Z"
    );
    // St Patrick's Day 2026 is a Tuesday.
    assert_eq!(
        deadline(
            whole_day(Region::NorthernIreland),
            "2026-03-17T09:00:00Z",
            1.0
        ),
        "2026-03-18T01:00:00Z"
    );
}

#[test]
fn a_daily_window_narrows_the_counted_hours() {
    let office = office_hours();
    assert_eq!(
        deadline(office, "2026-03-02T17:30:00Z", 1.0),
        "2026-03-03T08:30:00Z"
    );
    // In summer the window is 07:00-17:00 UTC.
    assert_eq!(
        deadline(office, "2026-07-01T16:30:00Z", 1.0),
        "2026-07-02T07:30:00Z"
    );
    // Before the window: the clock starts at 08:00.
    assert_eq!(
        deadline(office, "2026-03-02T06:00:00Z", 2.0),
        "2026-03-02T10:00:00Z"
    );
    // 24 working hours from Friday 17:00: 1 on Friday, 10 on Monday, 10 on Tuesday, 3 on
    // Wednesday.
    assert_eq!(
        deadline(office, "2026-03-06T17:00:00Z", 24.0),
        "2026-03-11T11:00:00Z"
    );
    let friday = utc("2026-03-06T17:00:00Z").timestamp_millis();
    let monday = utc("2026-03-09T09:00:00Z").timestamp_millis();
    assert_eq!(office.working_between(friday, monday), Ok(2 * 3_600_000));
}

#[test]
fn site_changes_add_and_remove_days() {
    let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("date");
    let calendar = Calendar::new(CalendarSettings {
        added: BTreeSet::from([day(2026, 12, 24)]),
        removed: BTreeSet::from([day(2026, 12, 28)]),
        ..CalendarSettings::default()
    });
    assert!(!calendar.is_working_day(day(2026, 12, 24)));
    assert!(calendar.is_working_day(day(2026, 12, 28)));
    // Wed 23 at 10:00: 14 h on Wednesday, then Monday 28 (worked) gives the other 10.
    assert_eq!(
        deadline(&calendar, "2026-12-23T10:00:00Z", 24.0),
        "2026-12-28T10:00:00Z"
    );
    let names: Vec<String> = calendar
        .days_off_between(day(2026, 12, 20), day(2026, 12, 31))
        .into_iter()
        .map(|h| format!("{} {}", h.date, h.name))
        .collect();
    assert_eq!(
        names,
        ["2026-12-24 Site holiday", "2026-12-25 Christmas Day"]
    );
}

#[test]
fn bad_hours_and_far_instants_are_refused() {
    let ew = whole_day(Region::EnglandAndWales);
    let start = utc("2026-03-02T09:00:00Z");
    assert!(matches!(
        ew.deadline(start, -1.0),
        Err(CalendarError::Hours(_))
    ));
    assert!(matches!(
        ew.deadline(start, f64::NAN),
        Err(CalendarError::Hours(_))
    ));
    assert!(matches!(
        ew.deadline(start, 10_000.5),
        Err(CalendarError::Hours(_))
    ));
    assert!(ew.deadline(start, 10_000.0).is_ok());
    assert_eq!(
        ew.deadline(utc("1990-01-01T00:00:00Z"), 1.0),
        Err(CalendarError::OutOfRange)
    );
    assert_eq!(
        ew.deadline(utc("2100-12-31T12:00:00Z"), 100.0),
        Err(CalendarError::OutOfRange)
    );
    assert!(Window::parse("18:00-08:00").is_err());
    assert!(Window::parse("8am-6pm").is_err());
    assert_eq!(
        Window::parse("08:00-24:00").map(|w| w.label()),
        Ok("08:00-24:00".to_owned())
    );
}

fn any_start() -> impl Strategy<Value = i64> {
    // 2000-01-01 to 2090-01-01.
    946_684_800_000i64..3_786_825_600_000i64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn deadlines_add_up(start in any_start(), a in 0i64..400 * 3_600_000, b in 0i64..400 * 3_600_000, office in any::<bool>()) {
        let calendar = if office { office_hours() } else { whole_day(Region::EnglandAndWales) };
        let first = calendar.deadline_millis(start, a).expect("first");
        let chained = calendar.deadline_millis(first, b).expect("chained");
        let direct = calendar.deadline_millis(start, a + b).expect("direct");
        prop_assert_eq!(chained, direct);
    }

    #[test]
    fn deadlines_are_monotonic_and_exact(start in any_start(), later in 0i64..7 * 86_400_000, a in 0i64..400 * 3_600_000, extra in 0i64..100 * 3_600_000) {
        let calendar = office_hours();
        let d = calendar.deadline_millis(start, a).expect("deadline");
        prop_assert!(d >= start);
        prop_assert!(calendar.deadline_millis(start + later, a).expect("later start") >= d);
        prop_assert!(calendar.deadline_millis(start, a + extra).expect("more hours") >= d);
        // The working time inside [start, deadline] is exactly the hours asked for, and a
        // millisecond earlier it is not yet.
        prop_assert_eq!(calendar.working_between(start, d).expect("worked"), a);
        if a > 0 {
            prop_assert!(calendar.working_between(start, d - 1).expect("worked") < a);
        }
    }
}

//! FHIR time values: formatting `instant`s and reading `date`/`dateTime`/`instant` parameters
//! as the range of time their precision covers.

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
};

/// Milliseconds since the Unix epoch, UTC: how Hearth stores instants.
pub type EpochMillis = i64;

/// Formats an instant the way FHIR `meta.lastUpdated` carries it (UTC, milliseconds).
/// chrono's RFC 3339 writer, not a `format` pattern: a pattern is parsed again on every call,
/// and every AuditEvent formats three instants.
pub fn format_instant(millis: EpochMillis) -> String {
    match Utc.timestamp_millis_opt(millis).single() {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        None => "1970-01-01T00:00:00.000Z".to_owned(),
    }
}

/// Formats an instant as an HTTP date (`Last-Modified`), which has second precision.
pub fn format_http_date(millis: EpochMillis) -> String {
    let seconds = u64::try_from(millis.div_euclid(1000)).unwrap_or(0);
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds))
}

/// Parses an HTTP date (`If-Modified-Since`).
pub fn parse_http_date(text: &str) -> Option<EpochMillis> {
    let time = httpdate::parse_http_date(text).ok()?;
    let seconds = time.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(seconds).ok()?.checked_mul(1000)
}

/// The half-open range `[start, end)` of milliseconds a FHIR date, dateTime or instant covers:
/// `2024` covers the whole year, `2024-03-01T10:00:00Z` one second. Dates without a time zone
/// are read as UTC. Returns `None` for text that is not a FHIR date/time.
pub fn parse_range(text: &str) -> Option<(EpochMillis, EpochMillis)> {
    let date_part = text.get(..text.find('T').unwrap_or(text.len()))?;
    let time_part = text.find('T').map(|i| &text[i + 1..]);
    let pieces: Vec<&str> = date_part.split('-').collect();
    if pieces
        .iter()
        .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    match (pieces.as_slice(), time_part) {
        ([y], None) if y.len() == 4 => {
            let start = NaiveDate::from_ymd_opt(y.parse().ok()?, 1, 1)?;
            let end = NaiveDate::from_ymd_opt(start.year() + 1, 1, 1)?;
            Some((utc_millis(start), utc_millis(end)))
        }
        ([y, m], None) if y.len() == 4 && m.len() == 2 => {
            let start = NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, 1)?;
            let end = start.checked_add_months(chrono::Months::new(1))?;
            Some((utc_millis(start), utc_millis(end)))
        }
        ([y, m, d], None) if y.len() == 4 && m.len() == 2 && d.len() == 2 => {
            let start = NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)?;
            Some((utc_millis(start), utc_millis(start.succ_opt()?)))
        }
        ([_, _, _], Some(time)) => parse_date_time(date_part, time),
        _ => None,
    }
}

fn utc_millis(date: NaiveDate) -> EpochMillis {
    date.and_time(NaiveTime::MIN).and_utc().timestamp_millis()
}

fn parse_date_time(date: &str, time: &str) -> Option<(EpochMillis, EpochMillis)> {
    let split = time.find(['Z', '+', '-']).unwrap_or(time.len());
    let (clock, zone) = time.split_at(split);
    let offset = match zone {
        "" | "Z" => FixedOffset::east_opt(0)?,
        z => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let (h, m) = z[1..].split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            FixedOffset::east_opt(
                sign * (h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60),
            )?
        }
    };
    let (whole, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let parts: Vec<&str> = whole.split(':').collect();
    if parts.len() < 2
        || parts.iter().any(|p| p.len() != 2)
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let seconds = parts
        .get(2)
        .map(|s| s.parse::<u32>())
        .transpose()
        .ok()?
        .unwrap_or(0);
    let naive = NaiveDateTime::new(
        NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?,
        NaiveTime::from_hms_opt(parts[0].parse().ok()?, parts[1].parse().ok()?, seconds)?,
    );
    let start: DateTime<FixedOffset> = offset.from_local_datetime(&naive).single()?;
    let mut start_ms = start.timestamp_millis();
    let width = if parts.len() == 2 {
        Duration::minutes(1).num_milliseconds()
    } else if fraction.is_empty() {
        1000
    } else {
        let digits = &fraction[..fraction.len().min(3)];
        let scale = 10_i64.pow(3 - digits.len() as u32);
        start_ms += digits.parse::<i64>().ok()? * scale;
        scale
    };
    Some((start_ms, start_ms + width))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_precision() {
        let (s, e) = parse_range("2024").unwrap();
        assert_eq!(format_instant(s), "2024-01-01T00:00:00.000Z");
        assert_eq!(format_instant(e), "2025-01-01T00:00:00.000Z");
        let (s, e) = parse_range("2024-02").unwrap();
        assert_eq!(format_instant(e - s + s), "2024-03-01T00:00:00.000Z");
        let (s, _) = parse_range("2024-06-30T23:15:00+01:00").unwrap();
        assert_eq!(format_instant(s), "2024-06-30T22:15:00.000Z");
        let (s, e) = parse_range("2024-06-30T22:15:00.25Z").unwrap();
        assert_eq!(
            (format_instant(s).as_str(), e - s),
            ("2024-06-30T22:15:00.250Z", 10)
        );
        assert!(parse_range("01/02/1970").is_none());
        assert!(parse_range("2024-13-01").is_none());
        assert!(parse_range("2024-01-01T25:00:00Z").is_none());
    }

    #[test]
    fn instants_are_written_as_the_pattern_wrote_them() {
        // From the first instant of year 1 to the last of year 9999 (FHIR's years have four
        // digits), in uneven steps so that every field takes many values.
        let first = -62_135_596_800_000_i64;
        let last = 253_402_300_799_999_i64;
        let instants: Vec<i64> = (0..)
            .map(|i| first + i * 7_888_447_441)
            .take_while(|millis| *millis <= last)
            .chain([first, 0, 1, 999, 1_700_000_000_123, last])
            .collect();
        assert!(instants.len() > 30_000);
        for millis in instants {
            let t = Utc.timestamp_millis_opt(millis).unwrap();
            assert_eq!(
                format_instant(millis),
                t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
            );
        }
        assert_eq!(format_instant(last), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_instant(first), "0001-01-01T00:00:00.000Z");
    }

    #[test]
    fn http_dates_round_trip_at_second_precision() {
        let text = format_http_date(1_700_000_000_123);
        assert_eq!(parse_http_date(&text), Some(1_700_000_000_000));
    }
}

//! Primitive values checked against the R4 datatype rules (the regular expressions and ranges
//! of the R4 datatypes page), which fhirbolt does not check: dates, times, integers and their
//! 32-bit range, codes, ids, URIs, OIDs, UUIDs, base64 and string length. The element types come
//! from `conformance/r4-elements.json`, generated from the R4 StructureDefinitions.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::NaiveDate;
use serde_json::Value;

use super::outcome::{Issue, IssueType};
use super::path::JsonPath;

type ElementTypes = HashMap<String, HashMap<String, String>>;

static ELEMENTS: LazyLock<ElementTypes> = LazyLock::new(|| {
    // Generated data, checked by the unit tests below.
    serde_json::from_str(include_str!("../../conformance/r4-elements.json")).unwrap_or_default()
});

/// The element table of a resource type, complex datatype or backbone element (named by its
/// path, `Observation.component`): element name to type name. Choice elements appear once per
/// type (`valueQuantity`, `valueString`, ...); backbone children are typed by their path.
pub fn element_types(owner: &str) -> Option<&'static HashMap<String, String>> {
    ELEMENTS.get(owner)
}

/// Most issues reported for one resource.
const MAX_ISSUES: usize = 20;
/// FHIR strings are at most 1 MiB.
const MAX_STRING_BYTES: usize = 1024 * 1024;

/// Checks every primitive value of a resource (contained resources included).
pub fn check_primitives(resource: &Value) -> Vec<Issue> {
    let mut issues = Vec::new();
    if let Some(t) = resource.get("resourceType").and_then(Value::as_str) {
        walk_object(
            resource.as_object().into_iter().flatten(),
            t,
            &JsonPath::Root(t),
            &mut issues,
        );
    }
    issues
}

fn walk_object<'a>(
    fields: impl Iterator<Item = (&'a String, &'a Value)>,
    type_name: &str,
    path: &JsonPath<'_>,
    issues: &mut Vec<Issue>,
) {
    let table = ELEMENTS.get(type_name);
    for (key, value) in fields {
        if issues.len() >= MAX_ISSUES {
            return;
        }
        let child = path.field(key);
        // `_name` carries the id and extensions of primitive `name`.
        let code = match key.strip_prefix('_') {
            Some(_) => "Element",
            None => match table.and_then(|t| t.get(key)) {
                Some(code) => code.as_str(),
                None if key == "extension" || key == "modifierExtension" => "Extension",
                None => continue,
            },
        };
        match value {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    check_value(item, code, &child.item(i), issues);
                }
            }
            single => check_value(single, code, &child, issues),
        }
    }
}

fn check_value(value: &Value, code: &str, path: &JsonPath<'_>, issues: &mut Vec<Issue>) {
    match (code, value) {
        (_, Value::Null) => {}
        ("Resource", Value::Object(fields)) => {
            if let Some(t) = fields.get("resourceType").and_then(Value::as_str) {
                walk_object(fields.iter(), t, path, issues);
            }
        }
        ("Element", Value::Object(fields)) => walk_object(fields.iter(), "Element", path, issues),
        (code, Value::Object(fields)) => walk_object(fields.iter(), code, path, issues),
        (code, value) => {
            if let Some(problem) = primitive_problem(code, value) {
                let path = path.to_string();
                issues.push(Issue::error(IssueType::Value, format!("{path}: {problem}")).at(path));
            }
        }
    }
}

/// The first control character of `text` that no FHIR value may hold: U+0000 to U+001F but
/// tab, line feed and carriage return. R4 says strings should not hold them; XML 1.0 cannot
/// carry them at all (a resource written in JSON must still be readable as XML), and
/// PostgreSQL's text refuses U+0000.
pub fn control_character(text: &str) -> Option<char> {
    text.chars()
        .find(|c| *c < ' ' && !matches!(c, '\t' | '\n' | '\r'))
}

fn primitive_problem(code: &str, value: &Value) -> Option<String> {
    let text = value.as_str();
    if let Some(c) = text.and_then(control_character) {
        return Some(format!(
            "holds the control character U+{:04X}, which FHIR values may not hold",
            u32::from(c)
        ));
    }
    let shown = || match value {
        Value::String(s) => format!("'{}'", s.chars().take(60).collect::<String>()),
        other => other.to_string().chars().take(60).collect(),
    };
    let valid = match code {
        "integer" => integer_in(value, i64::from(i32::MIN)),
        "unsignedInt" => integer_in(value, 0),
        "positiveInt" => integer_in(value, 1),
        "date" => text.is_some_and(is_date),
        "dateTime" => text.is_some_and(is_date_time),
        "instant" => text.is_some_and(is_full_date_time),
        "time" => text.is_some_and(is_time),
        "code" => text.is_some_and(is_code),
        "id" => text.is_some_and(|t| {
            (1..=64).contains(&t.len())
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }),
        "uri" | "url" | "canonical" => text.is_some_and(|t| !t.chars().any(char::is_whitespace)),
        "oid" => text.is_some_and(is_oid),
        "uuid" => text.is_some_and(is_uuid),
        "base64Binary" => text.is_some_and(is_base64),
        "string" | "markdown" => text.is_none_or(|t| t.len() <= MAX_STRING_BYTES),
        _ => true,
    };
    (!valid).then(|| format!("{} is not a valid {code}", shown()))
}

fn integer_in(value: &Value, min: i64) -> bool {
    value
        .as_i64()
        .is_some_and(|n| n >= min && n <= i64::from(i32::MAX))
}

fn digits(text: &str, n: usize) -> Option<u32> {
    (text.len() == n && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, a real calendar date, year 0001 to 9999.
fn is_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let Some(year) = parts.first().and_then(|y| digits(y, 4)).filter(|y| *y > 0) else {
        return false;
    };
    match parts.as_slice() {
        [_] => true,
        [_, m] => digits(m, 2).is_some_and(|m| (1..=12).contains(&m)),
        [_, m, d] => match (digits(m, 2), digits(d, 2)) {
            (Some(m), Some(d)) => NaiveDate::from_ymd_opt(year as i32, m, d).is_some(),
            _ => false,
        },
        _ => false,
    }
}

/// `hh:mm:ss` with optional fraction; 60 seconds allowed for a leap second.
fn is_time(text: &str) -> bool {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let parts: Vec<&str> = whole.split(':').collect();
    match parts.as_slice() {
        [h, m, s] => {
            digits(h, 2).is_some_and(|h| h < 24)
                && digits(m, 2).is_some_and(|m| m < 60)
                && digits(s, 2).is_some_and(|s| s <= 60)
                && !fraction.is_empty()
                && fraction.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

/// A date with a time and a time zone (`Z` or `±hh:mm`, at most +14:00).
fn is_full_date_time(text: &str) -> bool {
    let Some((date, rest)) = text.split_once('T') else {
        return false;
    };
    if date.len() != 10 || !is_date(date) {
        return false;
    }
    let (time, zone) = match rest.strip_suffix('Z') {
        Some(time) => (time, None),
        None => match rest
            .len()
            .checked_sub(6)
            .and_then(|i| rest.get(i..).map(|z| (&rest[..i], z)))
        {
            Some((time, zone)) if zone.starts_with(['+', '-']) => (time, Some(&zone[1..])),
            _ => return false,
        },
    };
    let zone_ok = zone.is_none_or(|z| match z.split_once(':') {
        Some((h, m)) => match (digits(h, 2), digits(m, 2)) {
            (Some(h), Some(m)) => m < 60 && (h < 14 || (h == 14 && m == 0)),
            _ => false,
        },
        None => false,
    });
    zone_ok && is_time(time)
}

/// A date, or a date with time and zone (R4 allows no time without seconds and a zone).
fn is_date_time(text: &str) -> bool {
    if text.contains('T') {
        is_full_date_time(text)
    } else {
        is_date(text)
    }
}

/// No leading or trailing whitespace and no runs of whitespace.
fn is_code(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with(char::is_whitespace)
        && !text.ends_with(char::is_whitespace)
        && !text.split(char::is_whitespace).any(str::is_empty)
}

fn is_oid(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("urn:oid:") else {
        return false;
    };
    let arcs: Vec<&str> = rest.split('.').collect();
    arcs.len() >= 2
        && matches!(arcs[0], "0" | "1" | "2")
        && arcs[1..].iter().all(|a| {
            !a.is_empty()
                && a.bytes().all(|b| b.is_ascii_digit())
                && (a == &"0" || !a.starts_with('0'))
        })
}

fn is_uuid(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("urn:uuid:") else {
        return false;
    };
    let groups: Vec<&str> = rest.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| {
            g.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

fn is_base64(text: &str) -> bool {
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    compact.len().is_multiple_of(4)
        && compact
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/' || *b == b'=')
        && compact
            .iter()
            .position(|b| *b == b'=')
            .is_none_or(|i| compact.len() - i <= 2 && compact[i..].iter().all(|b| *b == b'='))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(resource: Value) -> Vec<String> {
        check_primitives(&resource)
            .into_iter()
            .map(|i| i.diagnostics)
            .collect()
    }

    #[test]
    fn element_table_is_loaded() {
        assert_eq!(ELEMENTS["Patient"]["birthDate"], "date");
        assert_eq!(ELEMENTS["Observation"]["valueQuantity"], "Quantity");
        assert_eq!(ELEMENTS["Questionnaire.item"]["item"], "Questionnaire.item");
    }

    #[test]
    fn dates_and_times() {
        for good in ["2024", "2024-02", "2024-02-29"] {
            assert!(is_date(good), "{good}");
        }
        for bad in [
            "01/02/1970",
            "2023-02-29",
            "0000",
            "2024-13",
            "2024-1-01",
            "24",
        ] {
            assert!(!is_date(bad), "{bad}");
        }
        assert!(is_date_time("2015-02-07T13:28:17-05:00"));
        assert!(is_date_time("2015-02-07T13:28:17.239+14:00"));
        assert!(!is_date_time("2015-02-07T13:28"), "R4 needs seconds");
        assert!(
            !is_date_time("2015-02-07T13:28:17"),
            "R4 needs a zone with a time"
        );
        assert!(!is_date_time("2015-02-07T25:28:17Z"));
        assert!(!is_full_date_time("2015-02-07"));
        assert!(is_time("23:59:60.5") && !is_time("24:00:00") && !is_time("12:00"));
    }

    #[test]
    fn other_primitives() {
        assert!(is_code("a b") && !is_code(" a") && !is_code("a  b") && !is_code("a\t"));
        assert!(is_oid("urn:oid:1.2.840.10008") && !is_oid("urn:oid:3.1") && !is_oid("1.2.3"));
        assert!(
            is_uuid("urn:uuid:c757873d-ec9a-4326-a141-556f43239520")
                && !is_uuid("urn:uuid:C757873D-EC9A-4326-A141-556F43239520")
        );
        assert!(
            is_base64("AAAA") && is_base64("QQ==\n") && !is_base64("A=AA") && !is_base64("AAA")
        );
    }

    #[test]
    fn resources_are_checked_by_element_type() {
        assert!(
            problems(
                json!({"resourceType": "Patient", "birthDate": "1970-01-02", "gender": "male"})
            )
            .is_empty()
        );
        let p = problems(json!({"resourceType": "Patient", "birthDate": "01/02/1970"}));
        assert_eq!(p, ["Patient.birthDate: '01/02/1970' is not a valid date"]);
        let p =
            problems(json!({"resourceType": "Patient", "multipleBirthInteger": 2147483648_i64}));
        assert!(p[0].contains("multipleBirthInteger"), "{p:?}");
        let p = problems(
            json!({"resourceType": "Patient", "contact": [{"period": {"start": "yesterday"}}]}),
        );
        assert!(p[0].starts_with("Patient.contact[0].period.start"), "{p:?}");
        let p = problems(
            json!({"resourceType": "Patient", "contained": [{"resourceType": "Observation",
            "status": "final ", "code": {"text": "x"}}]}),
        );
        assert!(p[0].starts_with("Patient.contained[0].status"), "{p:?}");
        let p = problems(
            json!({"resourceType": "Patient", "extension": [{"url": "http://x", "valueDate": "2024-1"}]}),
        );
        assert!(p[0].contains("valueDate"), "{p:?}");
        let p = problems(
            json!({"resourceType": "Patient", "_birthDate": {"extension": [{"url": "u", "valueInteger": 1.5}]}}),
        );
        assert!(p[0].contains("valueInteger"), "{p:?}");
    }

    #[test]
    fn control_characters_are_refused_but_tabs_and_line_breaks() {
        let p = problems(json!({"resourceType": "Patient", "name": [{"family": "a\u{0}b"}]}));
        assert_eq!(
            p,
            [
                "Patient.name[0].family: holds the control character U+0000, which FHIR values may not hold"
            ]
        );
        let p = problems(
            json!({"resourceType": "Patient", "identifier": [{"system": "urn:x\u{1}", "value": "1"}]}),
        );
        assert!(
            p[0].starts_with("Patient.identifier[0].system: holds the control character U+0001"),
            "{p:?}"
        );
        let p = problems(json!({"resourceType": "Patient", "gender": "male\u{1f}"}));
        assert!(p[0].contains("U+001F"), "{p:?}");
        assert!(
            problems(
                json!({"resourceType": "Patient", "name": [{"text": "a\tb\r\nc \u{7f} \u{a0}"}]})
            )
            .is_empty()
        );
        assert_eq!(control_character("ok\t\n\r"), None);
        assert_eq!(control_character("x\u{0}"), Some('\u{0}'));
    }
}

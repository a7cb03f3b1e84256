//! Reading and writing the triage extensions of an echo ServiceRequest as JSON.

use chrono::DateTime;
use serde_json::{Value, json};

use super::url;
use crate::fhir::instant::EpochMillis;

/// SNOMED CT, the system of the echo code.
pub const SNOMED: &str = "http://snomed.info/sct";
/// SNOMED CT 40701008 "Echocardiography".
pub const ECHO_CODE: &str = "40701008";

/// Whether a ServiceRequest asks for an echocardiogram.
pub fn is_echo_request(resource: &Value) -> bool {
    resource["code"]["coding"]
        .as_array()
        .is_some_and(|codings| {
            codings
                .iter()
                .any(|c| c["system"] == SNOMED && c["code"] == ECHO_CODE)
        })
}

/// The top-level extensions with `url`.
pub fn extensions<'a>(resource: &'a Value, ext_url: &'a str) -> impl Iterator<Item = &'a Value> {
    resource["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |e| e["url"] == ext_url)
}

/// The first top-level extension with `url`.
pub fn extension<'a>(resource: &'a Value, ext_url: &str) -> Option<&'a Value> {
    resource["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == ext_url)
}

/// Removes every top-level extension with `url` (and the array when it empties).
pub fn remove_extension(resource: &mut Value, ext_url: &str) {
    if let Some(list) = resource.get_mut("extension").and_then(Value::as_array_mut) {
        list.retain(|e| e["url"] != ext_url);
        if list.is_empty()
            && let Some(object) = resource.as_object_mut()
        {
            object.remove("extension");
        }
    }
}

/// Replaces the extensions with `url` by one carrying `value` under `value_key` (in the place
/// of the first, so the order of the others is kept).
pub fn set_extension(resource: &mut Value, ext_url: &str, value_key: &str, value: Value) {
    let replacement = json!({"url": ext_url, value_key: value});
    if let Some(list) = resource.get_mut("extension").and_then(Value::as_array_mut)
        && let Some(first) = list.iter().position(|e| e["url"] == ext_url)
    {
        list[first] = replacement;
        let mut seen = 0;
        list.retain(|e| {
            if e["url"] != ext_url {
                return true;
            }
            seen += 1;
            seen == 1
        });
        return;
    }
    push_extension(resource, replacement);
}

/// Appends an extension.
pub fn push_extension(resource: &mut Value, extension: Value) {
    let Some(object) = resource.as_object_mut() else {
        return;
    };
    match object.get_mut("extension").and_then(Value::as_array_mut) {
        Some(list) => list.push(extension),
        None => {
            object.insert("extension".into(), Value::Array(vec![extension]));
        }
    }
}

/// The value of a sub-extension of a complex extension.
pub fn sub_value<'a>(extension: &'a Value, name: &str, value_key: &str) -> Option<&'a Value> {
    extension["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == name)
        .and_then(|e| e.get(value_key))
}

/// The pathway code the resource carries, if any.
pub fn pathway_code(resource: &Value) -> Option<&str> {
    extension(resource, url::PATHWAY)?["valueCoding"]["code"].as_str()
}

/// A FHIR dateTime or instant with a time and a zone, as UTC milliseconds.
pub fn parse_instant(text: &str) -> Option<EpochMillis> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// An instant as FHIR carries it, in UTC, with milliseconds only when there are some.
pub fn format_utc(millis: EpochMillis) -> String {
    let Some(t) = DateTime::from_timestamp_millis(millis) else {
        return "1970-01-01T00:00:00Z".to_owned();
    };
    if millis.rem_euclid(1000) == 0 {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }
}

/// The instant a dateTime extension carries: `Ok(None)` when absent, `Err(text)` when it has no
/// time or zone.
pub fn instant_extension(resource: &Value, ext_url: &str) -> Result<Option<EpochMillis>, String> {
    let Some(ext) = extension(resource, ext_url) else {
        return Ok(None);
    };
    let text = ext["valueDateTime"]
        .as_str()
        .or_else(|| ext["valueInstant"].as_str())
        .unwrap_or_default();
    parse_instant(text).map(Some).ok_or_else(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_need_a_zone_and_print_in_utc() {
        assert_eq!(
            parse_instant("2026-03-02T09:00:00+01:00"),
            Some(1772438400000)
        );
        assert_eq!(parse_instant("2026-03-02T09:00:00"), None);
        assert_eq!(parse_instant("2026-03-02"), None);
        assert_eq!(format_utc(1772438400000), "2026-03-02T08:00:00Z");
        assert_eq!(format_utc(1772438400123), "2026-03-02T08:00:00.123Z");
    }

    #[test]
    fn extensions_are_replaced_and_removed() {
        let mut r = json!({"resourceType": "ServiceRequest"});
        set_extension(&mut r, "u", "valueString", json!("a"));
        set_extension(&mut r, "u", "valueString", json!("b"));
        assert_eq!(r["extension"], json!([{"url": "u", "valueString": "b"}]));
        remove_extension(&mut r, "u");
        assert!(r.get("extension").is_none());
    }
}

//! Echo requests as the console shows them: a ServiceRequest (and its patient) read into the
//! fields of a strip or a table row, with times in Europe/London.

use chrono::{DateTime, Utc};
use chrono_tz::Europe::London;
use serde::Serialize;
use serde_json::Value;

use crate::triage::request::{ECHO_CODE, SNOMED, extension, extensions, parse_instant};
use crate::triage::url;

/// The search that finds echo requests.
pub const ECHO_SEARCH: &str = "ServiceRequest?code=http://snomed.info/sct|40701008";

/// The pathways shown on the board, most urgent first.
pub const BOARD_PATHWAYS: [&str; 3] = ["purple", "red", "amber"];

/// An echo request, ready for a template.
#[derive(Debug, Clone, Serialize)]
pub struct EchoView {
    pub id: String,
    pub version: String,
    pub status: String,
    /// `purple`, `red`, `amber`, `green`, or empty when not triaged.
    pub pathway: String,
    pub patient_id: String,
    pub patient_name: String,
    pub mrn: String,
    pub ward: String,
    pub requester: String,
    pub question: String,
    pub sentence: String,
    /// UTC, RFC 3339 (for the live countdown).
    pub deadline: String,
    /// Europe/London, for people.
    pub deadline_local: String,
    pub deadline_ms: Option<i64>,
    pub received_local: String,
    pub received: String,
    pub triaged_local: String,
    pub completed_local: String,
    pub overdue: bool,
    /// How many times the deadline was extended, and the latest reason.
    pub extensions: usize,
    pub extension_reason: String,
}

/// "Tue 1 Dec 14:05" in Europe/London.
pub fn local(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&London)
                .format("%a %-d %b %Y %H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

/// The date in Europe/London, `YYYY-MM-DD`.
pub fn local_date(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&London).format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// A person's name: "Given Family", or the text.
pub fn human_name(resource: &Value) -> String {
    let Some(names) = resource["name"].as_array() else {
        return String::new();
    };
    let name = names
        .iter()
        .find(|n| n["use"] == "official")
        .or(names.first())
        .unwrap_or(&Value::Null);
    if let Some(text) = name["text"].as_str() {
        return text.to_owned();
    }
    let mut parts: Vec<&str> = name["given"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if let Some(family) = name["family"].as_str() {
        parts.push(family);
    }
    parts.join(" ")
}

/// The patient's medical record number: the identifier typed MR, or the first one.
pub fn mrn(patient: &Value) -> String {
    let Some(ids) = patient["identifier"].as_array() else {
        return String::new();
    };
    ids.iter()
        .find(|i| {
            i["type"]["coding"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["code"] == "MR"))
        })
        .or(ids.first())
        .and_then(|i| i["value"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn instant(resource: &Value, ext_url: &str) -> Option<i64> {
    extension(resource, ext_url)
        .and_then(|e| e["valueDateTime"].as_str().or(e["valueInstant"].as_str()))
        .and_then(parse_instant)
}

impl EchoView {
    /// Reads a ServiceRequest; `patient` is its subject when it was included.
    pub fn read(request: &Value, patient: Option<&Value>, now_ms: i64) -> EchoView {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let subject = text(&request["subject"]["reference"]);
        let deadline_ms = instant(request, url::DEADLINE);
        let received_ms = request["authoredOn"].as_str().and_then(parse_instant);
        let status = text(&request["status"]);
        let extended: Vec<&Value> = extensions(request, url::DEADLINE_EXTENSION).collect();
        let extension_reason = extended
            .last()
            .and_then(|e| e["extension"].as_array())
            .and_then(|parts| parts.iter().find(|p| p["url"] == "reason"))
            .map(|p| text(&p["valueString"]))
            .unwrap_or_default();
        let question = request["reasonCode"][0]["text"]
            .as_str()
            .or(request["note"][0]["text"].as_str())
            .unwrap_or_default()
            .to_owned();
        EchoView {
            id: text(&request["id"]),
            version: text(&request["meta"]["versionId"]),
            pathway: extension(request, url::PATHWAY)
                .map(|e| text(&e["valueCoding"]["code"]))
                .unwrap_or_default(),
            patient_id: subject
                .strip_prefix("Patient/")
                .unwrap_or_default()
                .to_owned(),
            patient_name: patient
                .map(human_name)
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| text(&request["subject"]["display"])),
            mrn: patient.map(mrn).unwrap_or_default(),
            ward: extension(request, url::WARD)
                .map(|e| text(&e["valueReference"]["display"]))
                .unwrap_or_default(),
            requester: text(&request["requester"]["display"]),
            question,
            sentence: extension(request, url::SENTENCE)
                .map(|e| text(&e["valueString"]))
                .unwrap_or_default(),
            deadline: deadline_ms
                .map(crate::triage::request::format_utc)
                .unwrap_or_default(),
            deadline_local: deadline_ms.map(local).unwrap_or_default(),
            deadline_ms,
            received_local: received_ms.map(local).unwrap_or_default(),
            received: received_ms.map(local_date).unwrap_or_default(),
            triaged_local: instant(request, url::TRIAGED)
                .map(local)
                .unwrap_or_default(),
            completed_local: instant(request, url::COMPLETED)
                .map(local)
                .unwrap_or_default(),
            overdue: status == "active" && deadline_ms.is_some_and(|d| d < now_ms),
            status,
            extensions: extended.len(),
            extension_reason,
        }
    }
}

/// A new echo ServiceRequest.
pub struct NewRequest<'a> {
    /// `Patient/…` or the `urn:uuid:` of a patient created in the same transaction.
    pub subject: &'a str,
    pub patient_name: &'a str,
    pub ward: Option<(&'a str, &'a str)>,
    pub requester: Option<(&'a str, &'a str)>,
    pub question: &'a str,
    pub notes: &'a str,
}

impl NewRequest<'_> {
    /// The ServiceRequest: active, an order, the echo code; the server adds the rest.
    pub fn resource(&self) -> Value {
        let mut request = serde_json::json!({
            "resourceType": "ServiceRequest",
            "meta": {"profile": [url::ECHO_PROFILE]},
            "status": "active",
            "intent": "order",
            "code": {"coding": [{"system": SNOMED, "code": ECHO_CODE, "display": "Echocardiography"}], "text": "Transthoracic echo"},
            "subject": {"reference": self.subject, "display": self.patient_name},
        });
        if let Some((reference, display)) = self.requester {
            request["requester"] = serde_json::json!({"reference": reference, "display": display});
        }
        if !self.question.trim().is_empty() {
            request["reasonCode"] = serde_json::json!([{"text": self.question.trim()}]);
        }
        if !self.notes.trim().is_empty() {
            request["note"] = serde_json::json!([{"text": self.notes.trim()}]);
        }
        if let Some((reference, display)) = self.ward {
            request["extension"] = serde_json::json!([{"url": url::WARD, "valueReference": {"reference": reference, "display": display}}]);
        }
        request
    }
}

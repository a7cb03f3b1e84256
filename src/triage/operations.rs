//! The rules of the triage operations (`$triage`, `$extend-deadline`, `$deadline`): reading
//! their Parameters and changing the ServiceRequest. Storing the result goes through the
//! ordinary write path, so the write hook checks and completes it like any other update.

use serde_json::{Value, json};

use super::request::{
    extension, format_utc, is_echo_request, parse_instant, pathway_code, push_extension,
    remove_extension, set_extension,
};
use super::{Pathway, Pathways, Triage, url};
use crate::fhir::instant::EpochMillis;
use crate::fhir::outcome::{Issue, IssueType};
use crate::hooks::Refusal;

fn invalid(code: IssueType, message: impl Into<String>, parameter: &str) -> Refusal {
    Refusal::Invalid(Issue::error(code, message).at(format!("Parameters.parameter('{parameter}')")))
}

fn unprocessable(code: IssueType, message: impl Into<String>, at: &str) -> Refusal {
    Refusal::Unprocessable(Issue::error(code, message).at(at))
}

/// The parameter named `name` of a Parameters resource.
fn parameter<'a>(parameters: &'a Value, name: &str) -> Option<&'a Value> {
    parameters["parameter"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
}

/// Refuses a body that is not a Parameters resource, and parameters the operation does not know.
fn check_parameters(parameters: &Value, known: &[&str]) -> Result<(), Refusal> {
    if parameters["resourceType"] != "Parameters" {
        return Err(Refusal::Invalid(Issue::error(
            IssueType::Structure,
            "the body of this operation must be a Parameters resource",
        )));
    }
    for p in parameters["parameter"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or_default();
        if !known.contains(&name) {
            return Err(invalid(
                IssueType::NotSupported,
                format!(
                    "unknown parameter '{name}'; this operation takes {}",
                    known.join(", ")
                ),
                name,
            ));
        }
    }
    Ok(())
}

fn text_parameter(parameters: &Value, name: &str) -> Result<Option<String>, Refusal> {
    match parameter(parameters, name) {
        None => Ok(None),
        Some(p) => {
            let text = p["valueString"]
                .as_str()
                .or_else(|| p["valueMarkdown"].as_str())
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    invalid(
                        IssueType::Value,
                        format!("'{name}' must be a non-empty valueString"),
                        name,
                    )
                })?;
            Ok(Some(text.to_owned()))
        }
    }
}

fn author_parameter(parameters: &Value) -> Option<Value> {
    parameter(parameters, "author").and_then(|p| p.get("valueReference").cloned())
}

/// Reads working hours from a decimal or integer parameter (or query) value.
fn hours_value(value: &Value, name: &str) -> Result<f64, Refusal> {
    let hours = value
        .as_f64()
        .or_else(|| value.as_str().and_then(|t| t.trim().parse::<f64>().ok()))
        .ok_or_else(|| {
            invalid(
                IssueType::Value,
                format!("'{name}' must be a number of working hours"),
                name,
            )
        })?;
    if !(hours > 0.0 && hours <= super::calendar::MAX_HOURS) {
        return Err(invalid(
            IssueType::Value,
            format!("'{name}' must be more than 0 and at most 10000 working hours (got {hours})"),
            name,
        ));
    }
    Ok(hours)
}

/// The pathway a `pathway` parameter names.
fn named_pathway<'a>(pathways: &'a Pathways, code: &str) -> Result<&'a Pathway, Refusal> {
    pathways.get(code).ok_or_else(|| {
        invalid(
            IssueType::CodeInvalid,
            format!(
                "unknown pathway '{code}'; expected one of {}",
                pathways.codes()
            ),
            "pathway",
        )
    })
}

fn check_echo(resource: &Value) -> Result<(), Refusal> {
    if is_echo_request(resource) {
        Ok(())
    } else {
        Err(unprocessable(
            IssueType::BusinessRule,
            "this ServiceRequest is not an echo request (code SNOMED CT 40701008 Echocardiography); only echo requests are triaged",
            "ServiceRequest.code",
        ))
    }
}

impl Triage {
    /// `$triage`: sets the pathway (keeping the triage instant when the pathway does not
    /// change), the sentence and why; the hook then computes the deadline.
    pub fn triage(
        &self,
        resource: &mut Value,
        parameters: &Value,
        now: EpochMillis,
        author: Option<&Value>,
    ) -> Result<(), Refusal> {
        check_parameters(parameters, &["pathway", "sentence", "reason", "author"])?;
        let pathways = self.pathways();
        let code = parameter(parameters, "pathway")
            .and_then(|p| p["valueCode"].as_str())
            .ok_or_else(|| {
                invalid(
                    IssueType::Required,
                    format!("'pathway' (valueCode: {}) is required", pathways.codes()),
                    "pathway",
                )
            })?;
        let pathway = named_pathway(&pathways, code)?;
        let sentence = text_parameter(parameters, "sentence")?;
        let reason = text_parameter(parameters, "reason")?;
        let author = author_parameter(parameters).or_else(|| author.cloned());
        check_echo(resource)?;
        if resource["status"] == "completed" {
            return Err(Refusal::Conflict(
                Issue::error(
                    IssueType::BusinessRule,
                    "this echo request is completed; undo the completion (status active) before triaging it again",
                )
                .at("ServiceRequest.status"),
            ));
        }
        if pathway_code(resource) != Some(pathway.code.as_str()) {
            set_extension(
                resource,
                url::PATHWAY,
                "valueCoding",
                json!({"system": url::PATHWAY_SYSTEM, "code": pathway.code, "display": pathway.display}),
            );
            set_extension(
                resource,
                url::TRIAGED,
                "valueDateTime",
                json!(format_utc(now)),
            );
            remove_extension(resource, url::TRIAGED_BY);
            remove_extension(resource, url::STATUS_REASON);
            remove_extension(resource, url::DEADLINE);
        }
        if let Some(author) = author {
            set_extension(resource, url::TRIAGED_BY, "valueReference", author);
        }
        if let Some(sentence) = sentence {
            set_extension(resource, url::SENTENCE, "valueString", json!(sentence));
        }
        match (pathway.target_hours, reason) {
            (None, reason) => {
                let text = reason
                    .unwrap_or_else(|| format!("Declined at triage ({} pathway)", pathway.display));
                set_extension(
                    resource,
                    url::STATUS_REASON,
                    "valueCodeableConcept",
                    json!({"text": text}),
                );
            }
            (Some(_), reason) => {
                resource["status"] = json!("active");
                if let Some(reason) = reason {
                    let note = json!({"time": format_utc(now), "text": format!("Triaged {}: {reason}", pathway.display)});
                    match resource.get_mut("note").and_then(Value::as_array_mut) {
                        Some(notes) => notes.push(note),
                        None => resource["note"] = json!([note]),
                    }
                }
            }
        }
        Ok(())
    }

    /// `$extend-deadline`: appends a deadline extension by `hours` working hours from the
    /// deadline in force, or to `until`; a reason is mandatory.
    pub fn extend_deadline(
        &self,
        resource: &mut Value,
        parameters: &Value,
        now: EpochMillis,
        author: Option<&Value>,
    ) -> Result<(), Refusal> {
        check_parameters(parameters, &["hours", "until", "reason", "author"])?;
        let hours = match parameter(parameters, "hours") {
            Some(p) => Some(hours_value(
                p.get("valueDecimal")
                    .or_else(|| p.get("valueInteger"))
                    .or_else(|| p.get("valuePositiveInt"))
                    .unwrap_or(&Value::Null),
                "hours",
            )?),
            None => None,
        };
        let until = match parameter(parameters, "until") {
            Some(p) => {
                let text = p["valueInstant"]
                    .as_str()
                    .or_else(|| p["valueDateTime"].as_str())
                    .unwrap_or_default();
                Some(parse_instant(text).ok_or_else(|| {
                    invalid(
                        IssueType::Value,
                        format!("'until' must be an instant with a time zone (got '{text}')"),
                        "until",
                    )
                })?)
            }
            None => None,
        };
        let reason = text_parameter(parameters, "reason")?.ok_or_else(|| {
            Refusal::Unprocessable(
                Issue::error(IssueType::Required, "a deadline extension needs a 'reason'")
                    .at("Parameters.parameter('reason')"),
            )
        })?;
        let author = author_parameter(parameters).or_else(|| author.cloned());
        check_echo(resource)?;
        let current = extension(resource, url::DEADLINE)
            .and_then(|e| e["valueDateTime"].as_str())
            .and_then(parse_instant)
            .filter(|_| resource["status"] == "active")
            .ok_or_else(|| {
                Refusal::Conflict(
                    Issue::error(
                        IssueType::BusinessRule,
                        "this echo request has no deadline in force to extend (it is not triaged, declined, or no longer active)",
                    )
                    .at(format!("ServiceRequest.extension('{}')", url::DEADLINE)),
                )
            })?;
        let new = match (hours, until) {
            (Some(hours), None) => {
                let millis = super::calendar::hours_to_millis(hours)
                    .map_err(|e| invalid(IssueType::Value, e.to_string(), "hours"))?;
                self.calendar()
                    .deadline_millis(current, millis)
                    .map_err(|e| invalid(IssueType::Value, e.to_string(), "hours"))?
            }
            (None, Some(until)) => until,
            _ => {
                return Err(invalid(
                    IssueType::Required,
                    "give exactly one of 'hours' (working hours to add) or 'until' (an instant)",
                    "hours",
                ));
            }
        };
        if new <= current {
            return Err(unprocessable(
                IssueType::BusinessRule,
                format!(
                    "'until' {} is not later than the deadline in force {}",
                    format_utc(new),
                    format_utc(current)
                ),
                "Parameters.parameter('until')",
            ));
        }
        let mut parts = vec![
            json!({"url": "deadline", "valueDateTime": format_utc(new)}),
            json!({"url": "previous", "valueDateTime": format_utc(current)}),
            json!({"url": "reason", "valueString": reason}),
            json!({"url": "when", "valueDateTime": format_utc(now)}),
        ];
        if let Some(author) = author {
            parts.push(json!({"url": "author", "valueReference": author}));
        }
        push_extension(
            resource,
            json!({"url": url::DEADLINE_EXTENSION, "extension": parts}),
        );
        Ok(())
    }

    /// `$deadline`: the engine as a calculator, from query parameters (`start` and one of
    /// `pathway` or `hours`). Answers a Parameters with `deadline` (UTC instant).
    pub fn deadline_preview(&self, query: &[(String, String)]) -> Result<Value, Refusal> {
        let mut start = None;
        let mut pathway = None;
        let mut hours = None;
        for (name, value) in query {
            let slot = match name.as_str() {
                "start" => &mut start,
                "pathway" => &mut pathway,
                "hours" => &mut hours,
                _ => {
                    return Err(invalid(
                        IssueType::NotSupported,
                        format!(
                            "unknown parameter '{name}'; $deadline takes start, pathway and hours"
                        ),
                        name,
                    ));
                }
            };
            if slot.replace(value.clone()).is_some() {
                return Err(invalid(
                    IssueType::Value,
                    format!("'{name}' is given twice"),
                    name,
                ));
            }
        }
        let start_text = start.ok_or_else(|| {
            invalid(
                IssueType::Required,
                "'start' (an instant with a time zone, e.g. 2026-03-02T09:30:00Z) is required",
                "start",
            )
        })?;
        let start = parse_instant(&start_text).ok_or_else(|| {
            invalid(
                IssueType::Value,
                format!(
                    "'start' must be an instant with a time and a time zone (got '{start_text}')"
                ),
                "start",
            )
        })?;
        let pathways = self.pathways();
        let (target, code) = match (pathway, hours) {
            (Some(code), None) => {
                let pathway = named_pathway(&pathways, &code)?;
                let target = pathway.target_hours.ok_or_else(|| {
                    invalid(
                        IssueType::BusinessRule,
                        format!(
                            "the {} pathway declines the request; it has no deadline",
                            pathway.display
                        ),
                        "pathway",
                    )
                })?;
                (target, Some(code))
            }
            (None, Some(hours)) => (hours_value(&Value::String(hours), "hours")?, None),
            _ => {
                return Err(invalid(
                    IssueType::Required,
                    "give exactly one of 'pathway' or 'hours'",
                    "pathway",
                ));
            }
        };
        let millis = super::calendar::hours_to_millis(target)
            .map_err(|e| invalid(IssueType::Value, e.to_string(), "hours"))?;
        let deadline = self
            .calendar()
            .deadline_millis(start, millis)
            .map_err(|e| invalid(IssueType::Value, e.to_string(), "start"))?;
        let mut parameters = vec![
            json!({"name": "deadline", "valueInstant": format_utc(deadline)}),
            json!({"name": "start", "valueInstant": format_utc(start)}),
            json!({"name": "hours", "valueDecimal": target}),
        ];
        if let Some(code) = code {
            parameters.push(json!({"name": "pathway", "valueCode": code}));
        }
        Ok(json!({"resourceType": "Parameters", "parameter": parameters}))
    }
}

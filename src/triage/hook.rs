//! The echo ServiceRequest write hook: whatever a client sends, the stored request carries the
//! deadline the calendar gives for its pathway and triage instant (or the latest extension of
//! it), a declined request is revoked with a reason, and completion is time-stamped.

use serde_json::{Value, json};

use super::request::{
    extension, format_utc, instant_extension, is_echo_request, pathway_code, remove_extension,
    set_extension, sub_value,
};
use super::{Triage, url};
use crate::fhir::instant::EpochMillis;
use crate::fhir::outcome::{Issue, IssueType};
use crate::hooks::{Refusal, WriteContext, WriteHook};

/// How far in the future a client-supplied completion time may lie (clock skew).
const FUTURE_TOLERANCE_MILLIS: i64 = 5 * 60 * 1000;

fn unprocessable(code: IssueType, message: impl Into<String>, at: &str) -> Refusal {
    Refusal::Unprocessable(Issue::error(code, message).at(at))
}

fn at_extension(ext_url: &str) -> String {
    format!("ServiceRequest.extension('{ext_url}')")
}

impl WriteHook for Triage {
    fn wants(&self, resource_type: &str) -> bool {
        matches!(resource_type, "ServiceRequest" | "CodeSystem")
    }

    fn before_write(
        &self,
        context: &WriteContext<'_>,
        resource: &mut Value,
    ) -> Result<Vec<Issue>, Refusal> {
        match context.resource_type {
            "ServiceRequest" => self.service_request(context, resource),
            "CodeSystem" if resource["url"] == url::PATHWAY_SYSTEM => {
                super::Pathways::from_code_system(resource)
                    .map_err(|e| unprocessable(IssueType::BusinessRule, e, "CodeSystem.concept"))?;
                Ok(Vec::new())
            }
            _ => Ok(Vec::new()),
        }
    }

    fn after_write(&self, resource_type: &str, resource: &Value) {
        if resource_type == "CodeSystem" {
            self.reload(resource);
        }
    }
}

impl Triage {
    fn service_request(
        &self,
        context: &WriteContext<'_>,
        resource: &mut Value,
    ) -> Result<Vec<Issue>, Refusal> {
        let mut warnings = Vec::new();
        let echo = is_echo_request(resource);
        if extension(resource, url::PATHWAY).is_none() {
            if extension(resource, url::DEADLINE).is_some() {
                remove_extension(resource, url::DEADLINE);
                warnings.push(
                    Issue::warning(
                        IssueType::BusinessRule,
                        "a triage deadline needs a pathway; the deadline was removed",
                    )
                    .at(at_extension(url::DEADLINE)),
                );
            }
        } else {
            if !echo {
                return Err(unprocessable(
                    IssueType::BusinessRule,
                    "only echo requests (code SNOMED CT 40701008 Echocardiography) are triaged",
                    "ServiceRequest.code",
                ));
            }
            self.triage_rules(context, resource, &mut warnings)?;
        }
        if echo {
            completion(context, resource)?;
            if context.previous.is_none() && resource.get("authoredOn").is_none() {
                resource["authoredOn"] = json!(format_utc(context.now));
            }
        }
        Ok(warnings)
    }

    fn triage_rules(
        &self,
        context: &WriteContext<'_>,
        resource: &mut Value,
        warnings: &mut Vec<Issue>,
    ) -> Result<(), Refusal> {
        let pathways = self.pathways();
        let code = pathway_code(resource).ok_or_else(|| {
            unprocessable(
                IssueType::Required,
                "the triage-pathway extension needs a valueCoding with a code",
                &at_extension(url::PATHWAY),
            )
        })?;
        let pathway = pathways.get(code).ok_or_else(|| {
            unprocessable(
                IssueType::CodeInvalid,
                format!(
                    "unknown pathway '{code}'; expected one of {}",
                    pathways.codes()
                ),
                &at_extension(url::PATHWAY),
            )
        })?;
        set_extension(
            resource,
            url::PATHWAY,
            "valueCoding",
            json!({"system": url::PATHWAY_SYSTEM, "code": pathway.code, "display": pathway.display}),
        );
        let previous = context.previous;
        let previous_code = previous.and_then(pathway_code);
        let previous_time = previous
            .and_then(|p| instant_extension(p, url::TRIAGED).ok())
            .flatten();
        let given_time = instant_extension(resource, url::TRIAGED).map_err(|text| {
            unprocessable(
                IssueType::Value,
                format!("triage-time '{text}' must be a dateTime with a time and a time zone"),
                &at_extension(url::TRIAGED),
            )
        })?;
        let changed = previous_code != Some(pathway.code.as_str());
        let triaged_at = if changed {
            match given_time {
                Some(t) if Some(t) != previous_time => t,
                _ => context.now,
            }
        } else {
            given_time.or(previous_time).unwrap_or(context.now)
        };
        set_extension(
            resource,
            url::TRIAGED,
            "valueDateTime",
            json!(format_utc(triaged_at)),
        );
        if changed
            && extension(resource, url::TRIAGED_BY).is_none()
            && let Some(author) = context.author
        {
            set_extension(resource, url::TRIAGED_BY, "valueReference", author.clone());
        }
        let Some(target) = pathway.target_hours else {
            // A declined request: revoked, with why, and no deadline.
            resource["status"] = json!("revoked");
            remove_extension(resource, url::DEADLINE);
            if extension(resource, url::STATUS_REASON).is_none() {
                set_extension(
                    resource,
                    url::STATUS_REASON,
                    "valueCodeableConcept",
                    json!({"text": format!("Declined at triage ({} pathway)", pathway.display)}),
                );
            }
            return Ok(());
        };
        if changed
            && previous_code
                .and_then(|c| pathways.get(c))
                .is_some_and(|p| p.target_hours.is_none())
            && resource["status"] == "revoked"
        {
            resource["status"] = json!("active");
            remove_extension(resource, url::STATUS_REASON);
        }
        let hours = super::calendar::hours_to_millis(target).map_err(|e| {
            unprocessable(IssueType::BusinessRule, e.to_string(), "CodeSystem.concept")
        })?;
        let base = self
            .calendar()
            .deadline_millis(triaged_at, hours)
            .map_err(|e| {
                unprocessable(
                    IssueType::Value,
                    format!("no deadline for this triage time: {e}"),
                    &at_extension(url::TRIAGED),
                )
            })?;
        let deadline = extensions_of_deadline(context, resource, triaged_at, base)?;
        let given = instant_extension(resource, url::DEADLINE).ok().flatten();
        if extension(resource, url::DEADLINE).is_some() && given != Some(deadline) {
            let shown = extension(resource, url::DEADLINE)
                .and_then(|e| e["valueDateTime"].as_str())
                .unwrap_or("(no value)")
                .to_owned();
            warnings.push(
                Issue::warning(
                    IssueType::BusinessRule,
                    format!(
                        "the triage-deadline {shown} was replaced by the computed deadline {}",
                        format_utc(deadline)
                    ),
                )
                .at(at_extension(url::DEADLINE)),
            );
        }
        set_extension(
            resource,
            url::DEADLINE,
            "valueDateTime",
            json!(format_utc(deadline)),
        );
        Ok(())
    }
}

/// Applies the deadline extensions made since the triage in order, completing the new ones
/// (previous deadline, when, who) and refusing those without a reason or a later deadline.
/// Returns the deadline in force.
fn extensions_of_deadline(
    context: &WriteContext<'_>,
    resource: &mut Value,
    triaged_at: EpochMillis,
    base: EpochMillis,
) -> Result<EpochMillis, Refusal> {
    let known: Vec<Value> = context
        .previous
        .map(|p| {
            super::request::extensions(p, url::DEADLINE_EXTENSION)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let at = at_extension(url::DEADLINE_EXTENSION);
    let mut current = base;
    let Some(list) = resource.get_mut("extension").and_then(Value::as_array_mut) else {
        return Ok(current);
    };
    for ext in list.iter_mut() {
        if ext["url"] != url::DEADLINE_EXTENSION {
            continue;
        }
        let is_new = !known.contains(ext);
        let reason = sub_value(ext, "reason", "valueString")
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or_default();
        if reason.is_empty() {
            return Err(unprocessable(
                IssueType::Required,
                "a deadline-extension needs a reason",
                &at,
            ));
        }
        let when = match sub_value(ext, "when", "valueDateTime").and_then(Value::as_str) {
            Some(text) => super::request::parse_instant(text).ok_or_else(|| {
                unprocessable(
                    IssueType::Value,
                    format!("deadline-extension 'when' '{text}' needs a time and a time zone"),
                    &at,
                )
            })?,
            None if is_new => context.now,
            None => triaged_at,
        };
        if when < triaged_at {
            // It extended the deadline of an earlier triage.
            continue;
        }
        let new_text = sub_value(ext, "deadline", "valueDateTime")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let new = super::request::parse_instant(new_text).ok_or_else(|| {
            unprocessable(
                IssueType::Value,
                format!(
                    "a deadline-extension needs a 'deadline' dateTime with a time and a time zone (got '{new_text}')"
                ),
                &at,
            )
        })?;
        if is_new {
            if new <= current {
                return Err(unprocessable(
                    IssueType::BusinessRule,
                    format!(
                        "the new deadline {} is not later than the deadline in force {}",
                        format_utc(new),
                        format_utc(current)
                    ),
                    &at,
                ));
            }
            let mut parts = vec![
                json!({"url": "deadline", "valueDateTime": format_utc(new)}),
                json!({"url": "previous", "valueDateTime": format_utc(current)}),
                json!({"url": "reason", "valueString": reason}),
                json!({"url": "when", "valueDateTime": format_utc(when)}),
            ];
            let author = sub_value(ext, "author", "valueReference")
                .cloned()
                .or_else(|| context.author.cloned());
            if let Some(author) = author {
                parts.push(json!({"url": "author", "valueReference": author}));
            }
            *ext = json!({"url": url::DEADLINE_EXTENSION, "extension": parts});
        }
        current = new;
    }
    Ok(current)
}

/// Stamps the completion time when a request becomes completed, and removes it when the
/// completion is undone.
fn completion(context: &WriteContext<'_>, resource: &mut Value) -> Result<(), Refusal> {
    if resource["status"] != "completed" {
        remove_extension(resource, url::COMPLETED);
        return Ok(());
    }
    let given = instant_extension(resource, url::COMPLETED).map_err(|text| {
        unprocessable(
            IssueType::Value,
            format!("completion-time '{text}' must be a dateTime with a time and a time zone"),
            &at_extension(url::COMPLETED),
        )
    })?;
    if given.is_some_and(|t| t > context.now + FUTURE_TOLERANCE_MILLIS) {
        return Err(unprocessable(
            IssueType::BusinessRule,
            "completion-time is in the future",
            &at_extension(url::COMPLETED),
        ));
    }
    let was_completed = context.previous.is_some_and(|p| p["status"] == "completed");
    let previous_time = context
        .previous
        .filter(|_| was_completed)
        .and_then(|p| instant_extension(p, url::COMPLETED).ok().flatten());
    let completed_at = given.or(previous_time).unwrap_or(context.now);
    set_extension(
        resource,
        url::COMPLETED,
        "valueDateTime",
        json!(format_utc(completed_at)),
    );
    Ok(())
}

//! The fast structural pre-check that every JSON resource passes before fhirbolt sees a byte:
//! it rejects what FHIR JSON forbids (`null`, empty arrays, empty objects, empty strings) and
//! checks `resourceType` and the resource id. fhirbolt panics on some of these inputs, so this
//! check is a safety fence as much as a validation.

use serde_json::{Map, Value};

use super::ResourceId;
use super::outcome::{Issue, IssueType};
use super::path::JsonPath;

/// Deepest nesting accepted; serde_json already stops at 128 while parsing.
const MAX_DEPTH: usize = 100;

/// Checks a parsed JSON resource and returns its `resourceType`, or the issues found.
///
/// `expected_type` is the type named by the URL, if any.
pub fn check_resource(value: &Value, expected_type: Option<&str>) -> Result<String, Vec<Issue>> {
    let Some(object) = value.as_object() else {
        return Err(vec![Issue::error(
            IssueType::Structure,
            "a FHIR resource must be a JSON object",
        )]);
    };
    let resource_type = match object.get("resourceType") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        Some(_) => {
            return Err(vec![Issue::error(
                IssueType::Structure,
                "resourceType must be a non-empty string",
            )]);
        }
        None => {
            return Err(vec![Issue::error(
                IssueType::Required,
                "the resource has no resourceType",
            )]);
        }
    };
    if let Some(expected) = expected_type
        && expected != resource_type
    {
        return Err(vec![Issue::error(
            IssueType::Invalid,
            format!(
                "resourceType '{resource_type}' does not match the URL, which names '{expected}'"
            ),
        )]);
    }
    if !super::conformance::is_resource_type(&resource_type) {
        return Err(vec![Issue::error(
            IssueType::NotSupported,
            format!("'{resource_type}' is not an R4 resource type"),
        )]);
    }
    let mut issues = Vec::new();
    check_object(object, &JsonPath::Root(&resource_type), 0, &mut issues);
    if let Some(id) = object.get("id") {
        match id.as_str() {
            Some(id) if ResourceId::parse(id).is_ok() => {}
            _ => issues.push(
                Issue::error(
                    IssueType::Value,
                    "id must be 1 to 64 characters of A-Z, a-z, 0-9, '-' and '.'",
                )
                .at(format!("{resource_type}.id")),
            ),
        }
    }
    if issues.is_empty() {
        Ok(resource_type)
    } else {
        Err(issues)
    }
}

fn check_object(
    object: &Map<String, Value>,
    path: &JsonPath<'_>,
    depth: usize,
    issues: &mut Vec<Issue>,
) {
    if depth > MAX_DEPTH {
        issues.push(
            Issue::error(IssueType::TooCostly, "the resource is nested too deeply")
                .at(path.to_string()),
        );
        return;
    }
    if object.is_empty() {
        issues.push(
            Issue::error(
                IssueType::Structure,
                "empty objects are not allowed in FHIR JSON",
            )
            .at(path.to_string()),
        );
        return;
    }
    for (key, value) in object {
        if key.is_empty() {
            issues.push(
                Issue::error(IssueType::Structure, "empty property names are not allowed")
                    .at(path.to_string()),
            );
            continue;
        }
        // A primitive array may hold nulls where its `_key` twin carries the extensions.
        let nulls_allowed =
            key.starts_with('_') || (value.is_array() && object.contains_key(&format!("_{key}")));
        check_value(value, &path.field(key), depth + 1, nulls_allowed, issues);
        if issues.len() >= 20 {
            return;
        }
    }
}

fn check_value(
    value: &Value,
    path: &JsonPath<'_>,
    depth: usize,
    nulls_in_array: bool,
    issues: &mut Vec<Issue>,
) {
    match value {
        Value::Null => issues.push(
            Issue::error(IssueType::Structure, "null is not allowed in FHIR JSON")
                .at(path.to_string()),
        ),
        Value::String(s) if s.is_empty() => {
            issues.push(
                Issue::error(
                    IssueType::Value,
                    "empty strings are not allowed in FHIR JSON",
                )
                .at(path.to_string()),
            );
        }
        Value::Array(items) => {
            if items.is_empty() || items.iter().all(Value::is_null) {
                issues.push(
                    Issue::error(
                        IssueType::Structure,
                        "empty arrays are not allowed in FHIR JSON",
                    )
                    .at(path.to_string()),
                );
                return;
            }
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::Null if nulls_in_array => {}
                    Value::Array(_) => issues.push(
                        Issue::error(IssueType::Structure, "arrays of arrays are not allowed")
                            .at(path.item(i).to_string()),
                    ),
                    _ => check_value(item, &path.item(i), depth + 1, false, issues),
                }
            }
        }
        Value::Object(object) => check_object(object, path, depth, issues),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn diagnostics(value: Value) -> String {
        check_resource(&value, Some("Patient"))
            .unwrap_err()
            .iter()
            .map(|i| format!("{} @ {}", i.diagnostics, i.expression.join(",")))
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[test]
    fn accepts_a_plain_resource() {
        let patient = json!({"resourceType": "Patient", "id": "a.b-1", "name": [{"given": ["Ann", null]}],
            "_name": null});
        // `_name: null` is itself forbidden, the null inside `given` is not allowed without `_given`.
        assert!(check_resource(&patient, Some("Patient")).is_err());
        let patient = json!({"resourceType": "Patient", "name": [{"given": ["Ann", null],
            "_given": [null, {"extension": [{"url": "http://x", "valueString": "y"}]}]}]});
        assert_eq!(
            check_resource(&patient, Some("Patient")).unwrap(),
            "Patient"
        );
    }

    #[test]
    fn rejects_what_fhir_forbids() {
        assert!(
            diagnostics(json!({"resourceType": "Patient", "name": []})).contains("Patient.name")
        );
        assert!(
            diagnostics(json!({"resourceType": "Patient", "name": [{}]})).contains("empty objects")
        );
        assert!(diagnostics(json!({"resourceType": "Patient", "gender": null})).contains("null"));
        assert!(
            diagnostics(json!({"resourceType": "Patient", "gender": ""})).contains("empty strings")
        );
        assert!(
            diagnostics(json!({"resourceType": "Patient", "id": "has space"}))
                .contains("Patient.id")
        );
        assert!(diagnostics(json!({"resourceType": "Observation"})).contains("does not match"));
        assert!(
            diagnostics(json!({"resourceType": "Patient", "id": "x".repeat(65)})).contains("64")
        );
    }

    #[test]
    fn rejects_unknown_types_and_non_objects() {
        assert!(check_resource(&json!({"resourceType": "Pationt"}), None).is_err());
        assert!(check_resource(&json!([1]), None).is_err());
        assert!(check_resource(&json!({"id": "x"}), None).is_err());
    }
}

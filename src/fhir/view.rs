//! Subsetted views of a resource for `_summary` and `_elements` (R4 §3.1.1.5.7-8): which
//! top-level elements are kept, and the SUBSETTED tag that marks the result.

use serde_json::{Map, Value, json};

use super::conformance::{required_elements, summary_elements};

/// The `_summary` modes (R4 search §3.1.1.5.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    /// Only the elements marked as summary in the definition.
    True,
    /// Only `text`, `id`, `meta` and the mandatory top-level elements.
    Text,
    /// Everything but `text`.
    Data,
    /// Only a count of the matches (search only).
    Count,
    /// The whole resource.
    False,
}

impl Summary {
    /// Parses the value of `_summary`.
    pub fn parse(text: &str) -> Option<Summary> {
        Some(match text {
            "true" => Summary::True,
            "text" => Summary::Text,
            "data" => Summary::Data,
            "count" => Summary::Count,
            "false" => Summary::False,
            _ => return None,
        })
    }
}

/// True when a JSON property `key` is the element `name` of a definition, where `name` may be
/// a choice element such as `value[x]` and `key` may be the `_name` twin of a primitive.
fn names_element(key: &str, name: &str) -> bool {
    let key = key.strip_prefix('_').unwrap_or(key);
    match name.strip_suffix("[x]") {
        Some(stem) => key
            .strip_prefix(stem)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase())),
        None => key == name,
    }
}

fn always_kept(key: &str) -> bool {
    matches!(key, "resourceType" | "id" | "meta")
}

fn retain(resource: &Value, keep: impl Fn(&str) -> bool) -> Value {
    let Some(object) = resource.as_object() else {
        return resource.clone();
    };
    let mut subset: Map<String, Value> = object
        .iter()
        .filter(|(k, _)| always_kept(k) || keep(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    mark_subsetted(&mut subset);
    Value::Object(subset)
}

fn mark_subsetted(resource: &mut Map<String, Value>) {
    let tag = json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"});
    let meta = resource.entry("meta").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        match meta.get_mut("tag").and_then(Value::as_array_mut) {
            Some(tags) => tags.push(tag),
            None => {
                meta.insert("tag".into(), json!([tag]));
            }
        }
    }
}

/// Applies `_summary` to a resource; `None` means the resource is returned whole.
pub fn summarize(resource: &Value, summary: Summary) -> Option<Value> {
    let resource_type = resource.get("resourceType")?.as_str()?;
    match summary {
        Summary::False | Summary::Count => None,
        Summary::True => {
            let names = summary_elements(resource_type);
            Some(retain(resource, |k| {
                names.iter().any(|n| names_element(k, n))
            }))
        }
        Summary::Text => {
            let names = required_elements(resource_type);
            Some(retain(resource, |k| {
                k == "text" || names.iter().any(|n| names_element(k, n))
            }))
        }
        Summary::Data => Some(retain(resource, |k| k != "text")),
    }
}

/// Applies `_elements` (a list of top-level element names) to a resource. Mandatory elements
/// are kept too, so the result stays a valid resource.
pub fn select_elements(resource: &Value, elements: &[String]) -> Value {
    let resource_type = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let required = required_elements(resource_type);
    retain(resource, |k| {
        required.iter().any(|n| names_element(k, n))
            || elements
                .iter()
                .any(|e| names_element(k, e) || names_element(k, &format!("{e}[x]")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation() -> Value {
        json!({"resourceType": "Observation", "id": "o", "text": {"status": "generated", "div": "<div/>"},
            "status": "final", "code": {"text": "c"}, "valueString": "v", "_valueString": {"id": "x"},
            "note": [{"text": "n"}]})
    }

    #[test]
    fn summary_true_keeps_summary_elements_and_tags() {
        let s = summarize(&observation(), Summary::True).unwrap();
        assert!(s.get("valueString").is_some() && s.get("_valueString").is_some());
        assert!(s.get("note").is_none() && s.get("text").is_none());
        assert_eq!(s["meta"]["tag"][0]["code"], "SUBSETTED");
    }

    #[test]
    fn summary_text_and_data() {
        let t = summarize(&observation(), Summary::Text).unwrap();
        assert!(
            t.get("text").is_some() && t.get("status").is_some() && t.get("valueString").is_none()
        );
        let d = summarize(&observation(), Summary::Data).unwrap();
        assert!(d.get("text").is_none() && d.get("note").is_some());
        assert!(summarize(&observation(), Summary::False).is_none());
    }

    #[test]
    fn elements_keep_mandatory_and_choice_names() {
        let e = select_elements(&observation(), &["value".into()]);
        assert!(
            e.get("valueString").is_some() && e.get("status").is_some() && e.get("note").is_none()
        );
    }
}

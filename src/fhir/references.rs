//! References between the entries of a Bundle (a transaction, or a file being imported): a resource may point at another entry by
//! its `fullUrl` (`urn:uuid:…`, `urn:oid:…` or an absolute URL), and at a resource on the
//! server by search criteria (`Patient?identifier=…`). Both become `Type/id` before the resource
//! is stored: in `Reference.reference`, in `Attachment.url`, and in links of the narrative.

use std::collections::HashMap;

use serde_json::Value;

/// Replaces every reference found in `map` (from a fullUrl or criteria to `Type/id`).
pub fn rewrite(value: &mut Value, map: &HashMap<String, String>) {
    if map.is_empty() {
        return;
    }
    match value {
        Value::Object(object) => {
            for (key, field) in object.iter_mut() {
                match (key.as_str(), field) {
                    ("reference" | "url", Value::String(text)) => {
                        if let Some(target) = map.get(text.as_str()) {
                            text.clone_from(target);
                        }
                    }
                    ("div", Value::String(xhtml)) if xhtml.contains("urn:") => {
                        rewrite_links(xhtml, map);
                    }
                    (_, field) => rewrite(field, map),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                rewrite(item, map);
            }
        }
        _ => {}
    }
}

/// Rewrites `href="…"` and `src="…"` attributes of a narrative that name a `urn:` fullUrl.
fn rewrite_links(xhtml: &mut String, map: &HashMap<String, String>) {
    for (from, to) in map.iter().filter(|(from, _)| from.starts_with("urn:")) {
        for attribute in ["href", "src"] {
            for quote in ['"', '\''] {
                let old = format!("{attribute}={quote}{from}{quote}");
                if xhtml.contains(&old) {
                    *xhtml = xhtml.replace(&old, &format!("{attribute}={quote}{to}{quote}"));
                }
            }
        }
    }
}

/// True for a conditional reference: a type followed by search criteria.
fn is_conditional(reference: &str) -> bool {
    reference
        .split_once('?')
        .is_some_and(|(t, query)| !query.is_empty() && crate::fhir::check_resource_type(t).is_ok())
}

/// Collects the conditional references of `value` (`Patient?identifier=…`).
pub fn conditional(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            for (key, field) in object {
                match (key.as_str(), field) {
                    ("reference", Value::String(text)) if is_conditional(text) => {
                        if !found.contains(text) {
                            found.push(text.clone());
                        }
                    }
                    (_, field) => conditional(field, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| conditional(item, found)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_attachments_and_narrative_links_are_rewritten() {
        let map = HashMap::from([
            ("urn:uuid:1".to_owned(), "Patient/a".to_owned()),
            (
                "http://other/fhir/Practitioner/9".to_owned(),
                "Practitioner/9".to_owned(),
            ),
        ]);
        let mut resource = json!({
            "resourceType": "Observation",
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"urn:uuid:1\">patient</a></div>"},
            "identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:uuid:1"}],
            "subject": {"reference": "urn:uuid:1"},
            "performer": [{"reference": "http://other/fhir/Practitioner/9"}, {"reference": "urn:uuid:2"}],
            "contained": [{"resourceType": "Media", "content": {"url": "urn:uuid:1"}}]
        });
        rewrite(&mut resource, &map);
        assert_eq!(resource["subject"]["reference"], "Patient/a");
        assert_eq!(resource["performer"][0]["reference"], "Practitioner/9");
        assert_eq!(resource["performer"][1]["reference"], "urn:uuid:2");
        assert_eq!(resource["contained"][0]["content"]["url"], "Patient/a");
        // An identifier that happens to equal a fullUrl is data, not a reference.
        assert_eq!(resource["identifier"][0]["value"], "urn:uuid:1");
        assert!(
            resource["text"]["div"]
                .as_str()
                .unwrap()
                .contains("href=\"Patient/a\"")
        );
    }

    #[test]
    fn conditional_references_are_found_once() {
        let resource = json!({
            "resourceType": "Observation",
            "subject": {"reference": "Patient?identifier=http://h|1"},
            "performer": [{"reference": "Patient?identifier=http://h|1"}, {"reference": "Patient/1"}, {"reference": "Nope?x=1"}]
        });
        let mut found = Vec::new();
        conditional(&resource, &mut found);
        assert_eq!(found, vec!["Patient?identifier=http://h|1".to_owned()]);
    }
}

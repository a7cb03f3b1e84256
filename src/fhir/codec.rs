//! The only file that names fhirbolt: strict structural validation of JSON resources and the
//! conversion between FHIR XML and JSON at the edge. fhirbolt is called through its `Resource`
//! enum from these few non-generic functions only (its generic code is expensive to compile),
//! always in strict mode (the tolerant modes can loop forever), and every call is guarded
//! against panics (it panics on some malformed input).

use std::panic::{AssertUnwindSafe, catch_unwind};

use fhirbolt::model::r4::Resource;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
use serde_json::Value;

use super::narrative;
use super::outcome::{Issue, IssueType};
use super::path::JsonPath;

fn strict() -> Option<DeserializationConfig> {
    Some(DeserializationConfig {
        mode: DeserializationMode::Strict,
    })
}

fn guarded<T>(what: &str, work: impl FnOnce() -> Result<T, Issue>) -> Result<T, Issue> {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => result,
        Err(_) => Err(Issue::error(
            IssueType::Structure,
            format!("the {what} could not be processed"),
        )),
    }
}

/// Validates the structure of a JSON resource against the R4 model: known elements only,
/// required elements present, 0..1 versus arrays, choice-type shape. fhirbolt quietly accepts
/// some misshapen input (a one-item array for a single value), so the typed model is written
/// back and must equal the input.
pub fn validate_structure(value: &Value) -> Result<(), Issue> {
    guarded("resource", || {
        let resource = fhirbolt::json::from_json_value::<Resource>(value.clone(), strict())
            .map_err(|e| Issue::error(IssueType::Structure, format!("invalid resource: {e}")))?;
        let written = fhirbolt::json::to_json_value(resource, None)
            .map_err(|e| Issue::error(IssueType::Structure, format!("invalid resource: {e}")))?;
        let root = value
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("Resource");
        match first_difference(value, &written, &JsonPath::Root(root)) {
            None => Ok(()),
            Some(path) => Err(Issue::error(
                IssueType::Structure,
                format!("{path} does not fit the R4 definition of this element (wrong type or cardinality)"),
            )
            .at(path)),
        }
    })
}

/// The path of the first place where `input` and `model` differ; numbers are equal when their
/// values are (`1E-2` and `0.01`).
fn first_difference(input: &Value, model: &Value, path: &JsonPath<'_>) -> Option<String> {
    match (input, model) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                match b.get(key) {
                    Some(other) => {
                        if let Some(found) = first_difference(value, other, &path.field(key)) {
                            return Some(found);
                        }
                    }
                    None => return Some(path.field(key).to_string()),
                }
            }
            b.keys()
                .find(|k| !a.contains_key(*k))
                .map(|k| path.field(k).to_string())
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                return Some(path.to_string());
            }
            a.iter()
                .zip(b)
                .enumerate()
                .find_map(|(i, (x, y))| first_difference(x, y, &path.item(i)))
        }
        (Value::Number(a), Value::Number(b)) => {
            let same = a == b || a.as_f64().zip(b.as_f64()).is_some_and(|(x, y)| x == y);
            (!same).then(|| path.to_string())
        }
        (a, b) => (a != b).then(|| path.to_string()),
    }
}

/// Parses a FHIR XML resource and returns it as FHIR JSON.
pub fn xml_to_json(bytes: &[u8]) -> Result<Value, Issue> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Issue::error(IssueType::Structure, "the XML body is not UTF-8"))?;
    check_envelope(text)?;
    let mut value = guarded("XML resource", || {
        let resource = fhirbolt::xml::from_slice::<Resource>(bytes, strict()).map_err(|e| {
            Issue::error(IssueType::Structure, format!("invalid XML resource: {e}"))
        })?;
        fhirbolt::json::to_json_value(resource, None).map_err(|e| {
            Issue::error(
                IssueType::Structure,
                format!("XML resource cannot be represented: {e}"),
            )
        })
    })?;
    narrative::keep_source_divs(text, &mut value);
    Ok(value)
}

/// Checks what fhirbolt lets through: the root element must be in the FHIR namespace and the
/// document must end with the root's end tag (fhirbolt accepts a truncated document).
fn check_envelope(xml: &str) -> Result<(), Issue> {
    let structure = |message: &str| Err(Issue::error(IssueType::Structure, message));
    let mut rest = xml.trim_start_matches('\u{feff}');
    loop {
        rest = rest.trim_start();
        let skipped = if let Some(after) = rest.strip_prefix("<?") {
            after.find("?>").map(|end| &after[end + 2..])
        } else if let Some(after) = rest.strip_prefix("<!--") {
            after.find("-->").map(|end| &after[end + 3..])
        } else {
            break;
        };
        match skipped {
            Some(after) => rest = after,
            None => return structure("the XML body is not well-formed"),
        }
    }
    let Some(tag) = rest.strip_prefix('<').and_then(|r| r.split('>').next()) else {
        return structure("the XML body has no root element");
    };
    if !(tag.contains("xmlns=\"http://hl7.org/fhir\"")
        || tag.contains("xmlns='http://hl7.org/fhir'"))
    {
        return structure(
            "the XML root element must be a resource in the namespace http://hl7.org/fhir",
        );
    }
    let name: String = tag
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '/')
        .collect();
    let end = rest.trim_end();
    let end = end.strip_suffix('>').unwrap_or(end);
    let complete = if tag.ends_with('/') {
        rest.trim_end().len() == tag.len() + 2
    } else {
        end.trim_end()
            .strip_suffix(name.as_str())
            .is_some_and(|e| e.trim_end().ends_with("</"))
    };
    if complete {
        Ok(())
    } else {
        structure("the XML body ends before its root element is closed")
    }
}

/// Serializes a JSON resource as FHIR XML.
pub fn json_to_xml(value: &Value) -> Result<Vec<u8>, Issue> {
    let (xml, ordered) = guarded("resource", || {
        let failed = |e: String| {
            Issue::error(
                IssueType::Exception,
                format!("resource cannot be written as XML: {e}"),
            )
        };
        let resource = fhirbolt::json::from_json_value::<Resource>(value.clone(), strict())
            .map_err(|e| failed(e.to_string()))?;
        let xml = fhirbolt::xml::to_string(&resource, None).map_err(|e| failed(e.to_string()))?;
        // The narrative divs in XML document order, to put back what the writer reformatted.
        let ordered = if xml.contains(narrative::XHTML) {
            Some(fhirbolt::json::to_json_value(resource, None).map_err(|e| failed(e.to_string()))?)
        } else {
            None
        };
        Ok((xml, ordered))
    })?;
    Ok(match ordered {
        Some(ordered) => narrative::restore_divs(&xml, &ordered).into_bytes(),
        None => xml.into_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strict_validation_rejects_unknown_elements_and_bad_cardinality() {
        assert!(validate_structure(&json!({"resourceType": "Patient", "gender": "male"})).is_ok());
        assert!(validate_structure(&json!({"resourceType": "Patient", "colour": "red"})).is_err());
        assert!(
            validate_structure(&json!({"resourceType": "Patient", "gender": ["male"]})).is_err()
        );
        assert!(
            validate_structure(&json!({"resourceType": "Patient", "name": {"family": "x"}}))
                .is_err()
        );
        assert!(
            validate_structure(&json!({"resourceType": "Observation", "code": {"text": "x"}}))
                .is_err()
        );
    }

    #[test]
    fn xml_round_trips_and_keeps_decimal_precision() {
        let observation = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "valueQuantity": {"value": serde_json::from_str::<Value>("1.50").unwrap()}});
        let xml = json_to_xml(&observation).unwrap();
        let text = String::from_utf8(xml.clone()).unwrap();
        assert!(text.contains("<value value=\"1.50\"/>"), "{text}");
        let back = xml_to_json(&xml).unwrap();
        assert_eq!(back, observation);
        assert_eq!(
            serde_json::to_string(&back["valueQuantity"]["value"]).unwrap(),
            "1.50"
        );
    }

    #[test]
    fn narrative_whitespace_survives_xml_both_ways() {
        let div = "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p><b>A</b> x <i>y</i></p>\n <p>z &amp; w</p></div>";
        let patient = json!({"resourceType": "Patient", "text": {"status": "generated", "div": div},
            "contained": [{"resourceType": "Patient", "id": "c", "text": {"status": "generated", "div": div}}]});
        let xml = String::from_utf8(json_to_xml(&patient).unwrap()).unwrap();
        assert_eq!(xml.matches("<b>A</b> x <i>y</i>").count(), 2, "{xml}");
        let back = xml_to_json(xml.as_bytes()).unwrap();
        assert_eq!(back["text"]["div"], div);
        assert_eq!(back["contained"][0]["text"]["div"], div);
    }

    #[test]
    fn xml_outside_the_fhir_namespace_is_refused() {
        assert!(xml_to_json(b"<Patient><active value=\"true\"/></Patient>").is_err());
        assert!(
            xml_to_json(b"<?xml version=\"1.0\"?><!-- c --><Patient xmlns='http://hl7.org/fhir'/>")
                .is_ok()
        );
        assert!(
            xml_to_json(
                b"<Patient xmlns='http://hl7.org/fhir'><active value='true'/></Patient >\n"
            )
            .is_ok()
        );
        assert!(
            xml_to_json(b"<Patient xmlns='http://hl7.org/fhir'><active value='true'/>").is_err()
        );
        assert!(
            xml_to_json(b"<Patient xmlns='http://hl7.org/fhir'><active value='true'/></Pat>")
                .is_err()
        );
    }

    #[test]
    fn garbage_xml_is_an_issue_not_a_panic() {
        assert!(
            xml_to_json(b"<Patient xmlns=\"http://hl7.org/fhir\"><name><family value=\"x\"")
                .is_err()
        );
        assert!(xml_to_json(b"not xml").is_err());
        assert!(xml_to_json(b"<Bogus xmlns=\"http://hl7.org/fhir\"/>").is_err());
    }
}

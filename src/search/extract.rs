//! Extraction at write time: each search parameter's expression is evaluated on the resource
//! and its values become rows of the typed index tables.

use std::collections::HashSet;

use serde_json::Value;

use super::fhirpath::{Node, evaluate, evaluate_in};
use super::registry::{ParamType, Registry, SearchParam};
use super::{normalize, reference_parts, truncate};
use crate::fhir::instant::parse_range;

/// A `search_string` row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StringRow {
    pub code: String,
    pub normalized: String,
    pub exact: String,
}

/// A `search_token` row. `display` is normalized text (`:text` searches it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenRow {
    pub code: String,
    pub system: Option<String>,
    pub value: Option<String>,
    pub display: Option<String>,
}

/// A `search_date` row: the half-open range `[start, end)` in epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DateRow {
    pub code: String,
    pub start: i64,
    pub end: i64,
}

/// A `search_number` row.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberRow {
    pub code: String,
    pub low: f64,
    pub high: f64,
}

/// A `search_quantity` row.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantityRow {
    pub code: String,
    pub system: Option<String>,
    pub unit: Option<String>,
    pub low: f64,
    pub high: f64,
}

/// A `search_reference` row: a local target (`target_type`, `target_id`) or an external or
/// canonical URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReferenceRow {
    pub code: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub target_url: Option<String>,
}

/// A `search_uri` row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UriRow {
    pub code: String,
    pub value: String,
}

/// One component value of a composite row: text parts and a numeric range, as the
/// component's type uses them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Slot {
    pub system: Option<String>,
    pub value: Option<String>,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

/// A `search_composite` row.
#[derive(Debug, Clone, PartialEq)]
pub struct CompositeRow {
    pub code: String,
    pub slots: [Slot; 3],
}

/// Every index row of one resource.
#[derive(Debug, Clone, Default)]
pub struct IndexRows {
    pub strings: Vec<StringRow>,
    pub tokens: Vec<TokenRow>,
    pub dates: Vec<DateRow>,
    pub numbers: Vec<NumberRow>,
    pub quantities: Vec<QuantityRow>,
    pub references: Vec<ReferenceRow>,
    pub uris: Vec<UriRow>,
    pub composites: Vec<CompositeRow>,
}

impl IndexRows {
    fn dedup(&mut self) {
        fn unique<T: Eq + std::hash::Hash>(rows: &mut Vec<T>) {
            let mut seen = HashSet::with_capacity(rows.len());
            let keep: Vec<bool> = rows.iter().map(|r| seen.insert(r)).collect();
            let mut keep = keep.into_iter();
            rows.retain(|_| keep.next().unwrap_or(true));
        }
        unique(&mut self.strings);
        unique(&mut self.tokens);
        unique(&mut self.dates);
        unique(&mut self.references);
        unique(&mut self.uris);
        self.numbers.dedup();
        self.quantities.dedup();
    }
}

/// Extracts the index rows of `resource` for every parameter of its type. `base` is this
/// server's FHIR base URL: absolute references to it are local references.
pub fn extract(registry: &Registry, resource: &Value, base: &str) -> IndexRows {
    let mut rows = IndexRows::default();
    let Some(t) = resource.get("resourceType").and_then(Value::as_str) else {
        return rows;
    };
    let root = [Node::resource(resource)];
    for param in registry.params(t) {
        // A parameter that shares another's rows (`Registry::share_rows`) writes none.
        if super::registry::ENGINE_PARAMS.contains(&param.code.as_str())
            || param.stored_as.is_some()
        {
            continue;
        }
        let Some(expr) = &param.expression else {
            continue;
        };
        let nodes = evaluate(expr, &root);
        if param.kind == ParamType::Composite {
            composite(param, &root[0], &nodes, base, &mut rows);
            continue;
        }
        for node in &nodes {
            index_node(param.kind, &param.code, node, base, &mut rows);
        }
    }
    rows.dedup();
    rows
}

fn index_node(kind: ParamType, code: &str, node: &Node<'_>, base: &str, rows: &mut IndexRows) {
    let value = node.value.as_ref();
    let ty = node.ty.as_ref();
    match kind {
        ParamType::String => strings(value, ty, &mut |s| {
            rows.strings.push(StringRow {
                code: code.to_owned(),
                normalized: truncate(&normalize(s)),
                exact: truncate(s),
            })
        }),
        ParamType::Token => tokens(value, ty, code, rows),
        ParamType::Reference => references(value, ty, code, base, rows),
        ParamType::Date => {
            if let Some((start, end)) = date_range(value, ty) {
                rows.dates.push(DateRow {
                    code: code.to_owned(),
                    start,
                    end,
                });
            }
            if ty == "Timing" {
                for event in value["event"].as_array().into_iter().flatten() {
                    if let Some((start, end)) = event.as_str().and_then(parse_range) {
                        rows.dates.push(DateRow {
                            code: code.to_owned(),
                            start,
                            end,
                        });
                    }
                }
            }
        }
        ParamType::Number => {
            if let Some(n) = number(value) {
                rows.numbers.push(NumberRow {
                    code: code.to_owned(),
                    low: n,
                    high: n,
                });
            } else if let Some((low, high)) = range(value) {
                rows.numbers.push(NumberRow {
                    code: code.to_owned(),
                    low,
                    high,
                });
            }
        }
        ParamType::Quantity => {
            for (system, unit, low, high) in quantities(value, ty) {
                rows.quantities.push(QuantityRow {
                    code: code.to_owned(),
                    system,
                    unit,
                    low,
                    high,
                });
            }
        }
        ParamType::Uri => {
            if let Some(s) = value.as_str() {
                rows.uris.push(UriRow {
                    code: code.to_owned(),
                    value: truncate(s),
                });
            }
        }
        ParamType::Composite | ParamType::Special => {}
    }
}

fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(truncate)
}

/// The string values of a node: a primitive itself; the parts of a HumanName or Address; the
/// string leaves of anything else.
fn strings(value: &Value, ty: &str, out: &mut impl FnMut(&str)) {
    let parts: &[&str] = match ty {
        "HumanName" => &["family", "given", "prefix", "suffix", "text"],
        "Address" => &[
            "line",
            "city",
            "district",
            "state",
            "postalCode",
            "country",
            "text",
        ],
        _ => &[],
    };
    match value {
        Value::String(s) => out(s),
        Value::Object(object) if !parts.is_empty() => {
            for part in parts {
                match object.get(*part) {
                    Some(Value::String(s)) => out(s),
                    Some(Value::Array(items)) => {
                        items.iter().filter_map(Value::as_str).for_each(&mut *out)
                    }
                    _ => {}
                }
            }
        }
        Value::Object(object) => {
            for (key, v) in object {
                if key != "extension" && key != "id" {
                    strings(v, "", out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| strings(v, "", out)),
        _ => {}
    }
}

fn tokens(value: &Value, ty: &str, code: &str, rows: &mut IndexRows) {
    let mut push = |system: Option<String>, value: Option<String>, display: Option<String>| {
        if value.is_some() || display.is_some() || system.is_some() {
            rows.tokens.push(TokenRow {
                code: code.to_owned(),
                system,
                value,
                display: display.map(|d| truncate(&normalize(&d))),
            });
        }
    };
    match value {
        Value::Bool(b) => push(None, Some(b.to_string()), None),
        Value::String(s) => push(None, Some(truncate(s)), None),
        Value::Object(_) => match ty {
            "CodeableConcept" => {
                for coding in value["coding"].as_array().into_iter().flatten() {
                    push(
                        text(coding, "system"),
                        text(coding, "code"),
                        text(coding, "display"),
                    );
                }
                if let Some(t) = text(value, "text") {
                    push(None, None, Some(t));
                }
            }
            "Identifier" => {
                push(text(value, "system"), text(value, "value"), None);
                if let Some(v) = text(value, "value") {
                    for coding in value["type"]["coding"].as_array().into_iter().flatten() {
                        if let Some(type_code) = text(coding, "code") {
                            rows.tokens.push(TokenRow {
                                code: format!("{code}:of-type"),
                                system: text(coding, "system"),
                                value: Some(truncate(&format!("{type_code}|{v}"))),
                                display: None,
                            });
                        }
                    }
                }
            }
            "ContactPoint" => push(text(value, "system"), text(value, "value"), None),
            "Quantity" | "Age" | "Duration" | "Distance" | "Count" | "Money" => {
                push(text(value, "system"), text(value, "code"), None)
            }
            _ if value.get("coding").is_some() => tokens(value, "CodeableConcept", code, rows),
            _ => push(
                text(value, "system"),
                text(value, "code").or_else(|| text(value, "value")),
                text(value, "display"),
            ),
        },
        _ => {}
    }
}

fn references(value: &Value, ty: &str, code: &str, base: &str, rows: &mut IndexRows) {
    match value {
        Value::String(url) => rows.references.push(ReferenceRow {
            code: code.to_owned(),
            target_type: None,
            target_id: None,
            target_url: Some(truncate(url)),
        }),
        Value::Object(_) => {
            if let Some(reference) = value["reference"].as_str()
                && let Some(row) = reference_row(code, reference, base)
            {
                rows.references.push(row);
            }
            if ty == "Reference" || ty.is_empty() {
                let identifier = &value["identifier"];
                if identifier.is_object() {
                    rows.tokens.push(TokenRow {
                        code: format!("{code}:identifier"),
                        system: text(identifier, "system"),
                        value: text(identifier, "value"),
                        display: None,
                    });
                }
            }
        }
        _ => {}
    }
}

/// The row for a reference string: `Type/id` (or an absolute URL on this server) is local;
/// contained references (`#x`) are not indexed; anything else is kept as a URL.
fn reference_row(code: &str, reference: &str, base: &str) -> Option<ReferenceRow> {
    if reference.starts_with('#') {
        return None;
    }
    let local = reference
        .strip_prefix(base)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(reference);
    let is_absolute = local.contains("://") || local.starts_with("urn:");
    match reference_parts(local) {
        Some((t, id)) if !is_absolute => Some(ReferenceRow {
            code: code.to_owned(),
            target_type: Some(t.to_owned()),
            target_id: Some(id.to_owned()),
            target_url: None,
        }),
        parts => Some(ReferenceRow {
            code: code.to_owned(),
            target_type: parts.map(|(t, _)| t.to_owned()),
            target_id: None,
            target_url: Some(truncate(reference)),
        }),
    }
}

/// The `[start, end)` range of a date-like node.
fn date_range(value: &Value, ty: &str) -> Option<(i64, i64)> {
    match value {
        Value::String(s) => parse_range(s),
        Value::Object(_)
            if ty == "Period" || value.get("start").is_some() || value.get("end").is_some() =>
        {
            let start = value["start"].as_str().and_then(parse_range).map(|r| r.0);
            let end = value["end"].as_str().and_then(parse_range).map(|r| r.1);
            if start.is_none() && end.is_none() {
                return None;
            }
            Some((start.unwrap_or(i64::MIN), end.unwrap_or(i64::MAX)))
        }
        Value::Object(_) if ty == "Timing" => {
            let bounds = &value["repeat"]["boundsPeriod"];
            if bounds.is_object() {
                date_range(bounds, "Period")
            } else {
                None
            }
        }
        _ => None,
    }
}

fn number(value: &Value) -> Option<f64> {
    value.as_f64().or_else(|| match value {
        Value::Number(n) => n.to_string().parse().ok(),
        _ => None,
    })
}

fn range(value: &Value) -> Option<(f64, f64)> {
    let low = value["low"].get("value").and_then(number);
    let high = value["high"].get("value").and_then(number);
    if low.is_none() && high.is_none() {
        return None;
    }
    Some((low.unwrap_or(f64::MIN), high.unwrap_or(f64::MAX)))
}

/// `(system, unit code, low, high)` of a Quantity (or Money, or Range).
fn quantities(value: &Value, ty: &str) -> Vec<(Option<String>, Option<String>, f64, f64)> {
    if ty == "Range" {
        let unit = |q: &Value| text(q, "code").or_else(|| text(q, "unit"));
        let low = &value["low"];
        let high = &value["high"];
        return match range(value) {
            Some((l, h)) => {
                let sample = if low.is_object() { low } else { high };
                vec![(text(sample, "system"), unit(sample), l, h)]
            }
            None => Vec::new(),
        };
    }
    if ty == "Money" {
        return match value.get("value").and_then(number) {
            Some(n) => vec![(
                Some("urn:iso:std:iso:4217".to_owned()),
                text(value, "currency"),
                n,
                n,
            )],
            None => Vec::new(),
        };
    }
    match value.get("value").and_then(number) {
        Some(n) => vec![(
            text(value, "system"),
            text(value, "code").or_else(|| text(value, "unit")),
            n,
            n,
        )],
        None => Vec::new(),
    }
}

fn composite<'a>(
    param: &SearchParam,
    root: &Node<'a>,
    nodes: &[Node<'a>],
    base: &str,
    rows: &mut IndexRows,
) {
    for node in nodes {
        let mut per_component: Vec<Vec<Slot>> = Vec::new();
        for component in &param.components {
            let values = evaluate_in(&component.expression, std::slice::from_ref(node), root);
            let mut slots = Vec::new();
            for value in &values {
                let mut scratch = IndexRows::default();
                index_node(component.kind, "", value, base, &mut scratch);
                slots.extend(scratch.strings.into_iter().map(|s| Slot {
                    value: Some(s.normalized),
                    ..Slot::default()
                }));
                slots.extend(
                    scratch
                        .tokens
                        .into_iter()
                        .filter(|t| t.code.is_empty() && t.value.is_some())
                        .map(|t| Slot {
                            system: t.system,
                            value: t.value,
                            ..Slot::default()
                        }),
                );
                slots.extend(scratch.references.into_iter().map(|r| Slot {
                    value: match (r.target_type, r.target_id) {
                        (Some(t), Some(id)) => Some(format!("{t}/{id}")),
                        _ => r.target_url,
                    },
                    ..Slot::default()
                }));
                slots.extend(scratch.uris.into_iter().map(|u| Slot {
                    value: Some(u.value),
                    ..Slot::default()
                }));
                slots.extend(scratch.dates.into_iter().map(|d| Slot {
                    low: Some(d.start as f64),
                    high: Some(d.end as f64),
                    ..Slot::default()
                }));
                slots.extend(scratch.numbers.into_iter().map(|n| Slot {
                    low: Some(n.low),
                    high: Some(n.high),
                    ..Slot::default()
                }));
                slots.extend(scratch.quantities.into_iter().map(|q| Slot {
                    system: q.system,
                    value: q.unit,
                    low: Some(q.low),
                    high: Some(q.high),
                }));
            }
            if slots.is_empty() {
                break;
            }
            per_component.push(slots);
        }
        if per_component.len() != param.components.len() {
            continue;
        }
        // Every combination of the components' values of this node, at most 256 when several
        // components hold several values. When only one does, the rows are one per value and
        // none is left out: a search by the plain parameters of its components may be
        // rewritten to this composite (`search::implied`), which relies on every pair being
        // here.
        let several = per_component.iter().filter(|s| s.len() > 1).count();
        let limit = if several > 1 { 256 } else { usize::MAX };
        let mut combos: Vec<Vec<Slot>> = vec![Vec::new()];
        for slots in &per_component {
            combos = combos
                .into_iter()
                .flat_map(|prefix| {
                    slots.iter().map(move |s| {
                        let mut c = prefix.clone();
                        c.push(s.clone());
                        c
                    })
                })
                .take(limit)
                .collect();
        }
        for mut combo in combos {
            combo.resize(3, Slot::default());
            let mut it = combo.into_iter();
            let slots = [
                it.next().unwrap_or_default(),
                it.next().unwrap_or_default(),
                it.next().unwrap_or_default(),
            ];
            rows.composites.push(CompositeRow {
                code: param.code.clone(),
                slots,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BASE: &str = "http://localhost:8080/fhir";

    fn rows(resource: Value) -> IndexRows {
        extract(&Registry::r4(), &resource, BASE)
    }

    #[test]
    fn patient_strings_tokens_and_dates() {
        let r = rows(json!({"resourceType": "Patient", "id": "x",
            "identifier": [{"system": "urn:mrn", "value": "123", "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}}],
            "name": [{"family": "Müller", "given": ["Zoë"]}], "gender": "female", "birthDate": "1970-03",
            "active": true, "telecom": [{"system": "email", "value": "z@x.org"}],
            "generalPractitioner": [{"reference": "http://localhost:8080/fhir/Practitioner/7"}],
            "managingOrganization": {"reference": "Organization/1", "identifier": {"system": "urn:org", "value": "o1"}}}));
        let name: Vec<&str> = r
            .strings
            .iter()
            .filter(|s| s.code == "name")
            .map(|s| s.normalized.as_str())
            .collect();
        assert!(
            name.contains(&"muller") && name.contains(&"zoe"),
            "{name:?}"
        );
        // `phonetic` reads `name`'s rows (`Registry::share_rows`) and writes none of its own.
        assert!(!r.strings.iter().any(|s| s.code == "phonetic"));
        assert!(
            r.strings
                .iter()
                .any(|s| s.code == "family" && s.exact == "Müller")
        );
        assert!(r.tokens.contains(&TokenRow {
            code: "gender".into(),
            system: None,
            value: Some("female".into()),
            display: None
        }));
        assert!(
            r.tokens
                .iter()
                .any(|t| t.code == "identifier" && t.system.as_deref() == Some("urn:mrn"))
        );
        assert!(
            r.tokens
                .iter()
                .any(|t| t.code == "identifier:of-type" && t.value.as_deref() == Some("MR|123"))
        );
        assert!(
            r.tokens
                .iter()
                .any(|t| t.code == "email" && t.value.as_deref() == Some("z@x.org"))
        );
        assert!(
            r.tokens
                .iter()
                .any(|t| t.code == "active" && t.value.as_deref() == Some("true"))
        );
        assert!(
            !r.tokens.iter().any(|t| t.code == "_id"),
            "the engine answers _id from the resources table"
        );
        let birth = r.dates.iter().find(|d| d.code == "birthdate").unwrap();
        assert_eq!(birth.end - birth.start, 31 * 86_400_000);
        assert!(r.references.contains(&ReferenceRow {
            code: "general-practitioner".into(),
            target_type: Some("Practitioner".into()),
            target_id: Some("7".into()),
            target_url: None
        }));
        assert!(
            r.references
                .iter()
                .any(|x| x.code == "organization" && x.target_id.as_deref() == Some("1"))
        );
        assert!(
            r.tokens
                .iter()
                .any(|t| t.code == "organization:identifier" && t.value.as_deref() == Some("o1"))
        );
    }

    #[test]
    fn observation_quantities_and_composites() {
        let r = rows(json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6", "display": "Systolic"}], "text": "BP"},
            "subject": {"reference": "Patient/p1"}, "effectivePeriod": {"start": "2024-01-01T10:00:00Z"},
            "valueQuantity": {"value": 120.5, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}));
        assert!(r.quantities.iter().any(|q| q.code == "value-quantity"
            && q.low == 120.5
            && q.unit.as_deref() == Some("mm[Hg]")));
        assert!(
            r.references
                .iter()
                .any(|x| x.code == "patient" && x.target_id.as_deref() == Some("p1"))
        );
        assert!(
            r.references
                .iter()
                .any(|x| x.code == "subject" && x.target_type.as_deref() == Some("Patient"))
        );
        assert!(
            r.tokens
                .iter()
                .any(|t| t.code == "code" && t.display.as_deref() == Some("bp"))
        );
        let date = r.dates.iter().find(|d| d.code == "date").unwrap();
        assert_eq!(date.end, i64::MAX);
        let composite = r
            .composites
            .iter()
            .find(|c| c.code == "code-value-quantity")
            .unwrap();
        assert_eq!(composite.slots[0].value.as_deref(), Some("8480-6"));
        assert_eq!(composite.slots[1].low, Some(120.5));
    }

    /// What `search::implied` relies on: a composite row for every coding of the code paired
    /// with the value, however many codings; the same value rows as the plain parameter.
    #[test]
    fn a_code_and_its_value_are_paired_for_every_coding() {
        let many = |value: (&str, Value)| {
            let codings: Vec<Value> = (0..300)
                .map(|i| json!({"system": "http://acme.org", "code": format!("c{i}")}))
                .collect();
            let mut o = json!({"resourceType": "Observation", "status": "final",
                "code": {"coding": codings}});
            o[value.0] = value.1;
            rows(o)
        };
        let pairs = |r: &IndexRows, code: &str| {
            r.composites
                .iter()
                .filter(|c| c.code == code)
                .map(|c| c.slots[0].value.clone().unwrap())
                .collect::<HashSet<_>>()
        };
        let quantity = many(("valueQuantity", json!({"value": 7, "code": "kg"})));
        let codes: HashSet<String> = quantity
            .tokens
            .iter()
            .filter(|t| t.code == "code")
            .filter_map(|t| t.value.clone())
            .collect();
        assert_eq!(codes.len(), 300);
        assert_eq!(pairs(&quantity, "code-value-quantity"), codes);
        let date = many(("valueDateTime", json!("2024-03-01")));
        assert_eq!(pairs(&date, "code-value-date"), codes);
        let sampled = many((
            "valueSampledData",
            json!({"origin": {"value": 1}, "period": 10, "dimensions": 1, "data": "1 2"}),
        ));
        assert!(
            sampled
                .quantities
                .iter()
                .all(|q| q.code != "value-quantity")
        );
        assert!(pairs(&sampled, "code-value-quantity").is_empty());
        // Two components with several values each are still cut at 256 combinations.
        let mut concept = many(("valueCodeableConcept", json!({})));
        concept
            .composites
            .retain(|c| c.code == "code-value-concept");
        assert!(concept.composites.is_empty());
        let values: Vec<Value> = (0..20).map(|i| json!({"code": format!("v{i}")})).collect();
        let both = many(("valueCodeableConcept", json!({"coding": values})));
        let n = both
            .composites
            .iter()
            .filter(|c| c.code == "code-value-concept")
            .count();
        assert_eq!(n, 256);
    }
}

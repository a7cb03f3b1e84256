//! The CapabilityStatement cannot drift from what search does: every search parameter it lists
//! answers a query, and every listed parameter that the official R4 examples give a value is
//! indexed — a query built from an extracted value finds the example.

use reqwest::Method;
use serde_json::Value;

use crate::on_both_backends;
use crate::support::{TestServer, json_with_status};
use hearth::search::{Registry, extract};

on_both_backends!(listed_parameters_are_indexed_and_answer);

/// `+`, `&`, `#` and the like must be percent-encoded in a query value.
fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn listed_parameters_are_indexed_and_answer(s: &TestServer) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/r4-examples");
    let mut examples = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let example: Value = serde_json::from_str(&text).unwrap();
        let t = example["resourceType"].as_str().unwrap().to_owned();
        let id = example["id"].as_str().unwrap().to_owned();
        let response = s
            .request(Method::PUT, &format!("{t}/{id}"))
            .header("content-type", "application/fhir+json")
            .body(text)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{t}/{id}");
        examples.push(example);
    }
    let statement = json_with_status(s.get("metadata").await, 200).await;
    let mut listed = 0;
    let mut failures = Vec::new();
    for resource in statement["rest"][0]["resource"].as_array().unwrap() {
        let t = resource["type"].as_str().unwrap();
        for param in resource["searchParam"].as_array().unwrap() {
            let name = param["name"].as_str().unwrap();
            listed += 1;
            let response = s
                .get(&format!("{t}?{name}:missing=false&_summary=count"))
                .await;
            let query_name = if name == "_id" || name == "_lastUpdated" {
                None
            } else {
                Some(name)
            };
            if let Some(name) = query_name
                && response.status() != 200
            {
                failures.push(format!(
                    "{t}?{name}:missing=false answered {}",
                    response.status()
                ));
            }
        }
    }
    // Values extracted from the examples, searched back.
    let registry = Registry::r4();
    let mut checked = std::collections::BTreeSet::new();
    for example in &examples {
        let t = example["resourceType"].as_str().unwrap();
        let id = example["id"].as_str().unwrap();
        let rows = extract(&registry, example, &s.base);
        let mut queries: Vec<(String, String)> = Vec::new();
        for r in &rows.strings {
            let prefix: String = r.normalized.chars().take(3).collect();
            queries.push((r.code.clone(), format!("{}={}", r.code, encode(&prefix))));
        }
        for r in rows.tokens.iter().filter(|r| !r.code.contains(':')) {
            if let Some(value) = &r.value {
                let escaped = value
                    .replace('\\', "\\\\")
                    .replace(',', "\\,")
                    .replace('|', "\\|")
                    .replace('$', "\\$");
                let token = match &r.system {
                    Some(system) => format!(
                        "{}|{escaped}",
                        system.replace(',', "\\,").replace('|', "\\|")
                    ),
                    None => format!("|{escaped}"),
                };
                queries.push((r.code.clone(), format!("{}={}", r.code, encode(&token))));
            }
        }
        for r in &rows.references {
            if let (Some(target_type), Some(target_id)) = (&r.target_type, &r.target_id) {
                queries.push((
                    r.code.clone(),
                    format!("{}={target_type}/{target_id}", r.code),
                ));
            }
        }
        for r in &rows.uris {
            queries.push((r.code.clone(), format!("{}={}", r.code, encode(&r.value))));
        }
        let others = rows
            .dates
            .iter()
            .map(|r| &r.code)
            .chain(rows.numbers.iter().map(|r| &r.code))
            .chain(rows.quantities.iter().map(|r| &r.code))
            .chain(rows.composites.iter().map(|r| &r.code));
        for code in others {
            queries.push((code.clone(), format!("{code}:missing=false")));
        }
        for (code, query) in queries {
            if !checked.insert((t.to_owned(), code.clone(), id.to_owned())) {
                continue;
            }
            let bundle = json_with_status(s.get(&format!("{t}?_id={id}&{query}")).await, 200).await;
            if bundle["total"] != 1 {
                failures.push(format!("{t}/{id} not found by {t}?{query}"));
            }
        }
    }
    let parameters: std::collections::BTreeSet<(String, String)> = checked
        .iter()
        .map(|(t, code, _)| (t.clone(), code.clone()))
        .collect();
    eprintln!(
        "{listed} listed parameters answer; {} of them found their example by value ({} queries)",
        parameters.len(),
        checked.len()
    );
    assert!(listed > 1300, "{listed}");
    assert!(parameters.len() > 250, "{}", parameters.len());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

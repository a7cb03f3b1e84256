//! The triage pathways and their targets, read from the pathway CodeSystem (so a site changes a
//! target by updating that CodeSystem, without a new build).

use serde_json::Value;

use super::url;

/// One pathway.
#[derive(Debug, Clone, PartialEq)]
pub struct Pathway {
    /// Its code (`purple`, `red`, `amber`, `green`).
    pub code: String,
    /// Its display (`PURPLE`…).
    pub display: String,
    /// The completion target in working hours; `None` when the pathway declines the request.
    pub target_hours: Option<f64>,
}

/// The pathways of the CodeSystem.
#[derive(Debug, Clone, PartialEq)]
pub struct Pathways {
    list: Vec<Pathway>,
}

impl Pathways {
    /// Reads the pathway CodeSystem: each concept with a `target-hours` property has a deadline;
    /// a concept without one declines the request.
    pub fn from_code_system(code_system: &Value) -> Result<Pathways, String> {
        if code_system["url"] != url::PATHWAY_SYSTEM {
            return Err(format!("expected the CodeSystem {}", url::PATHWAY_SYSTEM));
        }
        let mut list = Vec::new();
        for concept in code_system["concept"].as_array().into_iter().flatten() {
            let Some(code) = concept["code"].as_str() else {
                continue;
            };
            let target_hours = concept["property"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["code"] == "target-hours")
                .and_then(|p| {
                    p["valueDecimal"]
                        .as_f64()
                        .or_else(|| p["valueInteger"].as_f64())
                });
            if let Some(hours) = target_hours
                && super::calendar::hours_to_millis(hours).is_err()
            {
                return Err(format!(
                    "pathway '{code}': target-hours {hours} is not between 0 and 10000"
                ));
            }
            list.push(Pathway {
                code: code.to_owned(),
                display: concept["display"].as_str().unwrap_or(code).to_owned(),
                target_hours,
            });
        }
        if list.is_empty() {
            return Err("the pathway CodeSystem has no concepts".into());
        }
        Ok(Pathways { list })
    }

    /// The pathway with `code`.
    pub fn get(&self, code: &str) -> Option<&Pathway> {
        self.list.iter().find(|p| p.code == code)
    }

    /// Every pathway, in the CodeSystem's order.
    pub fn all(&self) -> &[Pathway] {
        &self.list
    }

    /// The codes, comma-separated (for messages).
    pub fn codes(&self) -> String {
        self.list
            .iter()
            .map(|p| p.code.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

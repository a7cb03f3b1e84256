//! The search-parameter registry: every official R4 SearchParameter (vendored in
//! `conformance/r4-search-parameters.json`), Hearth's own from `profiles/`, and those created
//! through the REST API. Expressions are parsed once, and each parameter keeps, per resource
//! type, only the branches of its expression that can apply to that type.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::fhirpath::{self, Expr};
use crate::fhir::conformance::{is_resource_type, resource_types};

/// The type of a search parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamType {
    /// `number`.
    Number,
    /// `date` (date, dateTime, instant, Period, Timing).
    Date,
    /// `string`.
    String,
    /// `token`.
    Token,
    /// `reference`.
    Reference,
    /// `composite`.
    Composite,
    /// `quantity`.
    Quantity,
    /// `uri`.
    Uri,
    /// `special`: not indexed.
    Special,
}

impl ParamType {
    fn parse(code: &str) -> Option<ParamType> {
        Some(match code {
            "number" => ParamType::Number,
            "date" => ParamType::Date,
            "string" => ParamType::String,
            "token" => ParamType::Token,
            "reference" => ParamType::Reference,
            "composite" => ParamType::Composite,
            "quantity" => ParamType::Quantity,
            "uri" => ParamType::Uri,
            "special" => ParamType::Special,
            _ => return None,
        })
    }

    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            ParamType::Number => "number",
            ParamType::Date => "date",
            ParamType::String => "string",
            ParamType::Token => "token",
            ParamType::Reference => "reference",
            ParamType::Composite => "composite",
            ParamType::Quantity => "quantity",
            ParamType::Uri => "uri",
            ParamType::Special => "special",
        }
    }
}

/// One component of a composite parameter.
#[derive(Debug, Clone)]
pub struct Component {
    /// The component's own parameter type.
    pub kind: ParamType,
    /// Its expression, relative to the composite's nodes.
    pub expression: Expr,
}

/// A search parameter as it applies to one resource type.
#[derive(Debug, Clone)]
pub struct SearchParam {
    /// The name used in URLs.
    pub code: String,
    /// The canonical URL.
    pub url: String,
    /// The type.
    pub kind: ParamType,
    /// The expression, reduced to this resource type; `None` for parameters that cannot be
    /// indexed (`_text`, `_content`, `near`).
    pub expression: Option<Expr>,
    /// The expression as written.
    pub expression_text: String,
    /// Resource types a reference parameter may point to.
    pub targets: Vec<String>,
    /// Components of a composite parameter.
    pub components: Vec<Component>,
    /// The parameter whose index rows this one reads, when they would be the same rows: an
    /// official string parameter with the same expression on this type as an official one
    /// whose code sorts first (`Patient.phonetic` is `Patient.name`). Its own rows are not
    /// written. See `Registry::share_rows`.
    pub stored_as: Option<String>,
}

impl SearchParam {
    /// The code its index rows are stored under.
    pub fn stored_code(&self) -> &str {
        self.stored_as.as_deref().unwrap_or(&self.code)
    }
}

/// The canonical URLs of the official R4 parameters start with this.
const OFFICIAL: &str = "http://hl7.org/fhir/SearchParameter/";

/// The registry. Lookups go through [`SharedRegistry::current`], which hands out a snapshot.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    by_type: HashMap<String, BTreeMap<String, Arc<SearchParam>>>,
    /// Every loaded definition, by canonical URL (for composite components).
    definitions: HashMap<String, Value>,
}

/// Parameters handled by the query engine itself rather than by an index table.
pub const ENGINE_PARAMS: [&str; 2] = ["_id", "_lastUpdated"];

impl Registry {
    /// The official R4 parameters.
    pub fn r4() -> Registry {
        let bundle: Value =
            serde_json::from_str(include_str!("../../conformance/r4-search-parameters.json"))
                .unwrap_or_default();
        let definitions: Vec<Value> = bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["resource"].clone())
            .collect();
        let mut registry = Registry::default();
        for definition in &definitions {
            if let Some(url) = definition["url"].as_str() {
                registry
                    .definitions
                    .insert(url.to_owned(), definition.clone());
            }
        }
        for definition in &definitions {
            // The official definitions are checked by a unit test; one that does not load is
            // left out rather than stopping the server.
            let _ = registry.add(definition);
        }
        registry
    }

    /// Adds (or replaces) a SearchParameter resource. Returns what is wrong with it.
    pub fn add(&mut self, definition: &Value) -> Result<(), String> {
        let code = definition["code"]
            .as_str()
            .ok_or("a SearchParameter needs a code")?;
        let kind = definition["type"]
            .as_str()
            .and_then(ParamType::parse)
            .ok_or("a SearchParameter needs a valid type")?;
        let url = definition["url"].as_str().unwrap_or_default().to_owned();
        let bases: Vec<&str> = definition["base"]
            .as_array()
            .map(|b| b.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if bases.is_empty() {
            return Err("a SearchParameter needs a base".into());
        }
        let expression_text = definition["expression"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let expression = if expression_text.is_empty() {
            None
        } else {
            Some(fhirpath::parse(&expression_text)?)
        };
        let targets: Vec<String> = definition["target"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let mut components = Vec::new();
        for component in definition["component"].as_array().into_iter().flatten() {
            let reference = component["definition"].as_str().unwrap_or_default();
            let kind = self
                .definitions
                .get(reference)
                .and_then(|d| d["type"].as_str())
                .and_then(ParamType::parse)
                .ok_or_else(|| format!("component {reference} is not a known parameter"))?;
            let expression = fhirpath::parse(component["expression"].as_str().unwrap_or("$this"))?;
            components.push(Component { kind, expression });
        }
        if kind == ParamType::Composite && !(2..=3).contains(&components.len()) {
            return Err("a composite parameter needs two or three components".into());
        }
        if !url.is_empty() {
            self.definitions.insert(url.clone(), definition.clone());
        }
        let types: Vec<&str> = if bases
            .iter()
            .any(|b| *b == "Resource" || *b == "DomainResource")
        {
            let domain_only = !bases.contains(&"Resource");
            resource_types()
                .filter(|t| !domain_only || !matches!(*t, "Bundle" | "Binary" | "Parameters"))
                .collect()
        } else {
            bases.clone()
        };
        for t in types {
            if !is_resource_type(t) {
                return Err(format!("base '{t}' is not a resource type"));
            }
            let reduced = expression.as_ref().and_then(|e| for_type(e, t));
            if expression.is_some() && reduced.is_none() {
                continue;
            }
            let param = SearchParam {
                code: code.to_owned(),
                url: url.clone(),
                kind,
                expression: reduced,
                expression_text: expression_text.clone(),
                targets: targets.clone(),
                components: components.clone(),
                stored_as: None,
            };
            self.by_type
                .entry(t.to_owned())
                .or_default()
                .insert(code.to_owned(), Arc::new(param));
            self.share_rows(t);
        }
        Ok(())
    }

    /// Removes the parameter with canonical `url` from every type.
    pub fn remove(&mut self, url: &str) {
        let types: Vec<String> = self.by_type.keys().cloned().collect();
        for t in types {
            if let Some(params) = self.by_type.get_mut(&t) {
                params.retain(|_, p| p.url != url);
            }
            self.share_rows(&t);
        }
    }

    /// Lets official string parameters of `resource_type` with the same expression share one
    /// set of index rows, under the code that sorts first: their rows would be the same, and
    /// each row costs a create two B-tree inserts (`benches/README.md`). Only official
    /// parameters share: a SearchParameter created through the API writes rows under its own
    /// code, so rows already stored never move to another code when one is added. When a
    /// shared parameter is replaced by another definition, the other keeps its own code from
    /// then on, and `$reindex` fills its rows for resources written before.
    fn share_rows(&mut self, resource_type: &str) {
        let Some(params) = self.by_type.get_mut(resource_type) else {
            return;
        };
        let mut first_of: Vec<(Expr, String)> = Vec::new();
        for param in params.values_mut() {
            let shares = match &param.expression {
                Some(expression)
                    if param.kind == ParamType::String && param.url.starts_with(OFFICIAL) =>
                {
                    match first_of.iter().find(|(e, _)| e == expression) {
                        Some((_, code)) => Some(code.clone()),
                        None => {
                            first_of.push((expression.clone(), param.code.clone()));
                            None
                        }
                    }
                }
                _ => None,
            };
            if param.stored_as != shares {
                Arc::make_mut(param).stored_as = shares;
            }
        }
    }

    /// The parameter `code` of `resource_type`.
    pub fn get(&self, resource_type: &str, code: &str) -> Option<&Arc<SearchParam>> {
        self.by_type.get(resource_type)?.get(code)
    }

    /// Every parameter of `resource_type`, by code.
    pub fn params(&self, resource_type: &str) -> impl Iterator<Item = &Arc<SearchParam>> {
        self.by_type
            .get(resource_type)
            .into_iter()
            .flat_map(|p| p.values())
    }
}

/// The branches of a union that can apply to `resource_type`: `Patient.name | Practitioner.name`
/// reduces to `Patient.name` for Patient. `None` when no branch applies.
pub(super) fn for_type(expr: &Expr, resource_type: &str) -> Option<Expr> {
    if let Expr::Union(left, right) = expr {
        return match (
            for_type(left, resource_type),
            for_type(right, resource_type),
        ) {
            (Some(l), Some(r)) => Some(Expr::Union(Box::new(l), Box::new(r))),
            (one, None) | (None, one) => one,
        };
    }
    match leading_name(expr) {
        Some(name)
            if name != resource_type
                && name != "Resource"
                && name != "DomainResource"
                && is_resource_type(name) =>
        {
            None
        }
        _ => Some(expr.clone()),
    }
}

fn leading_name(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Name(n) => Some(n),
        Expr::Child(base, _)
        | Expr::Index(base, _)
        | Expr::Is(base, _)
        | Expr::As(base, _)
        | Expr::Call(base, _, _) => leading_name(base),
        Expr::Equals(l, _, _) | Expr::And(l, _) | Expr::Or(l, _) => leading_name(l),
        _ => None,
    }
}

/// The registry shared by every request; SearchParameters written through the API change it.
#[derive(Clone)]
pub struct SharedRegistry(Arc<RwLock<Arc<Registry>>>);

impl SharedRegistry {
    /// A shared registry starting from `registry`.
    pub fn new(registry: Registry) -> SharedRegistry {
        SharedRegistry(Arc::new(RwLock::new(Arc::new(registry))))
    }

    /// A snapshot of the registry as it is now.
    pub fn current(&self) -> Arc<Registry> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the whole registry.
    pub fn replace(&self, registry: Registry) {
        let mut guard = match self.0.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(registry);
    }

    /// Changes the registry: `change` works on a copy that then replaces it.
    pub fn update<T>(&self, change: impl FnOnce(&mut Registry) -> T) -> T {
        let mut guard = match self.0.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut copy = (**guard).clone();
        let result = change(&mut copy);
        *guard = Arc::new(copy);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_every_official_parameter() {
        let bundle: Value =
            serde_json::from_str(include_str!("../../conformance/r4-search-parameters.json"))
                .unwrap();
        let mut registry = Registry::r4();
        for entry in bundle["entry"].as_array().unwrap() {
            registry
                .add(&entry["resource"])
                .unwrap_or_else(|e| panic!("{}: {e}", entry["resource"]["url"]));
        }
        let name = registry.get("Patient", "name").unwrap();
        assert_eq!(name.kind, ParamType::String);
        assert_eq!(
            name.expression,
            Some(fhirpath::parse("Patient.name").unwrap())
        );
        assert!(registry.get("Observation", "_lastUpdated").is_some());
        assert!(
            registry.get("Binary", "_text").is_none(),
            "_text is for DomainResource"
        );
        assert_eq!(
            registry
                .get("Observation", "code-value-quantity")
                .unwrap()
                .components
                .len(),
            2
        );
        assert!(
            registry
                .get("Observation", "patient")
                .unwrap()
                .targets
                .contains(&"Patient".to_owned())
        );
        assert!(registry.params("Patient").count() > 25);
    }

    fn stored_code(registry: &Registry, t: &str, code: &str) -> String {
        registry.get(t, code).unwrap().stored_code().to_owned()
    }

    #[test]
    fn official_string_parameters_with_one_expression_share_their_rows() {
        let mut registry = Registry::r4();
        for t in ["Patient", "Practitioner", "Person", "RelatedPerson"] {
            assert_eq!(stored_code(&registry, t, "phonetic"), "name", "{t}");
            assert_eq!(stored_code(&registry, t, "name"), "name", "{t}");
        }
        assert_eq!(stored_code(&registry, "Patient", "family"), "family");
        // References with one expression (`Coverage.patient` is `Coverage.beneficiary`) keep
        // their own rows: includes, compartments and the access checks read them by code.
        assert_eq!(stored_code(&registry, "Coverage", "patient"), "patient");
        // A parameter created through the API never takes over rows, nor gives its own away.
        registry
            .add(&serde_json::json!({
                "url": "http://example.org/SearchParameter/alias", "code": "alias",
                "type": "string", "base": ["Patient"], "expression": "Patient.name"
            }))
            .unwrap();
        assert_eq!(stored_code(&registry, "Patient", "alias"), "alias");
        assert_eq!(stored_code(&registry, "Patient", "phonetic"), "name");
        // When the parameter a code shares with is replaced, the code keeps its own rows again.
        registry
            .add(&serde_json::json!({
                "url": "http://example.org/SearchParameter/name", "code": "name",
                "type": "string", "base": ["Patient"], "expression": "Patient.name.family"
            }))
            .unwrap();
        assert_eq!(stored_code(&registry, "Patient", "phonetic"), "phonetic");
        assert_eq!(stored_code(&registry, "Practitioner", "phonetic"), "name");
        registry.remove("http://example.org/SearchParameter/name");
        assert_eq!(stored_code(&registry, "Patient", "phonetic"), "phonetic");
    }
}

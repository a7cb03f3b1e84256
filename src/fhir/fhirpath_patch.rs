//! FHIRPath Patch (R4 §2.41, <http://hl7.org/fhir/R4/fhirpatch.html>): a `Parameters` resource
//! whose `operation` parameters add, insert, delete, replace or move elements named by FHIRPath
//! expressions. Paths are the subset patches use: element names (choice elements by their
//! short name, `value` for `valueQuantity`), indexers `[n]`, `where(a = 'x' and b = 'y')`,
//! `first()`, `last()` and `extension('url')`. Each path is resolved to locations in the JSON
//! resource, so an operation changes exactly the element it names.

use serde_json::{Map, Value};

use super::outcome::{Issue, IssueType};

/// One step of a location: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

type Location = Vec<Step>;

/// A segment of a path.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Child(String),
    Index(usize),
    Where(Vec<(String, Value)>),
    First,
    Last,
    Extension(String),
}

fn invalid(message: impl Into<String>) -> Issue {
    Issue::error(IssueType::Invalid, message)
}

fn unprocessable(message: impl Into<String>) -> Issue {
    Issue::error(IssueType::Processing, message)
}

/// Parses a path: `Type(.segment)*`.
fn parse_path(text: &str) -> Result<(String, Vec<Segment>), Issue> {
    let bad = |why: &str| invalid(format!("the path '{text}' is not supported: {why}"));
    let mut rest = text.trim();
    let root_len = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let root = rest[..root_len].to_owned();
    if root.is_empty() {
        return Err(bad("it must start with the resource type"));
    }
    rest = &rest[root_len..];
    let mut segments = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let close = after.find(']').ok_or_else(|| bad("an unclosed '['"))?;
            let index = after[..close]
                .trim()
                .parse()
                .map_err(|_| bad("an index must be a whole number"))?;
            segments.push(Segment::Index(index));
            rest = &after[close + 1..];
            continue;
        }
        let Some(after) = rest.strip_prefix('.') else {
            return Err(bad("expected '.', '[' or the end"));
        };
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..name_len];
        if name.is_empty() {
            return Err(bad("an empty name"));
        }
        rest = &after[name_len..];
        if let Some(args) = rest.strip_prefix('(') {
            let close = closing_paren(args).ok_or_else(|| bad("an unclosed '('"))?;
            let inside = args[..close].trim();
            rest = &args[close + 1..];
            segments.push(match (name, inside) {
                ("first", "") => Segment::First,
                ("last", "") => Segment::Last,
                ("where", condition) => {
                    Segment::Where(parse_condition(condition).map_err(|why| bad(&why))?)
                }
                ("extension", url) => Segment::Extension(
                    string_literal(url).ok_or_else(|| bad("extension() takes a quoted URL"))?,
                ),
                (other, _) => return Err(bad(&format!("the function {other}() is not supported"))),
            });
        } else {
            segments.push(Segment::Child(name.to_owned()));
        }
    }
    Ok((root, segments))
}

fn closing_paren(text: &str) -> Option<usize> {
    let mut depth = 0;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth == 0 => return Some(i),
            ')' if !quoted => depth -= 1,
            _ => {}
        }
    }
    None
}

fn string_literal(text: &str) -> Option<String> {
    let inner = text.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    Some(inner.replace("\\'", "'"))
}

/// `a = 'x' and b = true`: equalities joined by `and`.
fn parse_condition(text: &str) -> Result<Vec<(String, Value)>, String> {
    let mut tests = Vec::new();
    for part in text.split(" and ") {
        let (name, literal) = part
            .split_once('=')
            .ok_or_else(|| format!("where() takes name = value tests, not '{part}'"))?;
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("'{name}' is not an element name"));
        }
        let literal = literal.trim();
        let value = match string_literal(literal) {
            Some(s) => Value::String(s),
            None => match literal {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                number => serde_json::from_str::<serde_json::Number>(number)
                    .map(Value::Number)
                    .map_err(|_| format!("'{literal}' is not a literal"))?,
            },
        };
        tests.push((name.to_owned(), value));
    }
    Ok(tests)
}

fn get<'a>(root: &'a Value, location: &[Step]) -> Option<&'a Value> {
    location.iter().try_fold(root, |value, step| match step {
        Step::Key(k) => value.get(k),
        Step::Index(i) => value.get(*i),
    })
}

fn get_mut<'a>(root: &'a mut Value, location: &[Step]) -> Option<&'a mut Value> {
    location.iter().try_fold(root, |value, step| match step {
        Step::Key(k) => value.get_mut(k),
        Step::Index(i) => value.get_mut(*i),
    })
}

/// The key of element `name` in `object`: itself, or a choice element (`valueQuantity` for
/// `value`).
fn key_of(object: &Map<String, Value>, name: &str) -> Option<String> {
    if object.contains_key(name) {
        return Some(name.to_owned());
    }
    object
        .keys()
        .find(|k| {
            k.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
        })
        .cloned()
}

fn children(root: &Value, locations: Vec<Location>, name: &str) -> Vec<Location> {
    let mut found = Vec::new();
    for location in locations {
        let Some(object) = get(root, &location).and_then(Value::as_object) else {
            continue;
        };
        let Some(key) = key_of(object, name) else {
            continue;
        };
        let mut at = location.clone();
        at.push(Step::Key(key.clone()));
        match &object[&key] {
            Value::Array(items) => {
                for i in 0..items.len() {
                    let mut item = at.clone();
                    item.push(Step::Index(i));
                    found.push(item);
                }
            }
            _ => found.push(at),
        }
    }
    found
}

fn matches(value: Option<&Value>, tests: &[(String, Value)]) -> bool {
    let Some(object) = value.and_then(Value::as_object) else {
        return false;
    };
    tests.iter().all(|(name, expected)| match object.get(name) {
        Some(Value::Number(n)) => expected
            .as_f64()
            .zip(n.as_f64())
            .is_some_and(|(a, b)| a == b),
        Some(actual) => actual == expected,
        None => false,
    })
}

/// The locations a path names in `resource`.
fn evaluate(resource: &Value, path: &str) -> Result<Vec<Location>, Issue> {
    let (root, segments) = parse_path(path)?;
    let resource_type = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if root != resource_type {
        return Err(invalid(format!(
            "the path '{path}' starts with '{root}', but the resource is a {resource_type}"
        )));
    }
    let mut current: Vec<Location> = vec![Vec::new()];
    for segment in segments {
        current = match segment {
            Segment::Child(name) => children(resource, current, &name),
            Segment::Index(i) => current.into_iter().nth(i).into_iter().collect(),
            Segment::First => current.into_iter().take(1).collect(),
            Segment::Last => current.into_iter().last().into_iter().collect(),
            Segment::Where(tests) => current
                .into_iter()
                .filter(|l| matches(get(resource, l), &tests))
                .collect(),
            Segment::Extension(url) => children(resource, current, "extension")
                .into_iter()
                .filter(|l| {
                    matches(
                        get(resource, l),
                        &[("url".into(), Value::String(url.clone()))],
                    )
                })
                .collect(),
        };
    }
    Ok(current)
}

/// The parent container of a path: the path without its last element name, and that name.
fn split_last(path: &str) -> Result<(&str, &str), Issue> {
    let trimmed = path.trim();
    let (parent, name) = trimmed.rsplit_once('.').ok_or_else(|| {
        invalid(format!(
            "the path '{path}' must name an element of the resource"
        ))
    })?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(invalid(format!(
            "the path '{path}' must end with an element name for this operation"
        )));
    }
    Ok((parent, name))
}

fn one(resource: &Value, path: &str, what: &str) -> Result<Location, Issue> {
    let mut found = evaluate(resource, path)?;
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(unprocessable(format!(
            "{what}: the path '{path}' matches nothing"
        ))),
        n => Err(unprocessable(format!(
            "{what}: the path '{path}' matches {n} elements; it must match one"
        ))),
    }
}

/// The value of an operation: a `value[x]`, or `part`s naming the elements of a complex value.
fn operation_value(parts: &[Value]) -> Option<Value> {
    let part = parts.iter().find(|p| p["name"] == "value")?;
    part_value(part)
}

fn part_value(part: &Value) -> Option<Value> {
    let object = part.as_object()?;
    if let Some((_, value)) = object.iter().find(|(k, _)| {
        k.strip_prefix("value")
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
    }) {
        return Some(value.clone());
    }
    let nested = object.get("part")?.as_array()?;
    let mut built = Map::new();
    for child in nested {
        let name = child.get("name")?.as_str()?.to_owned();
        let value = part_value(child)?;
        match built.get_mut(&name) {
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                built.insert(name, value);
            }
        }
    }
    Some(Value::Object(built))
}

fn text_part<'a>(parts: &'a [Value], name: &str) -> Option<&'a str> {
    parts
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| {
            ["valueString", "valueCode", "valueUri"]
                .iter()
                .find_map(|k| p.get(*k))
        })
        .and_then(Value::as_str)
}

fn integer_part(parts: &[Value], name: &str) -> Option<usize> {
    parts
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p.get("valueInteger"))
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
}

/// Applies a FHIRPath Patch `Parameters` to `resource`. `fits` tells whether a resource is
/// structurally valid; it decides whether an added element is a list or a single value (the
/// one shape that validates). Errors are issues: `invalid` for a malformed patch, `processing`
/// for one that cannot apply.
pub fn apply(
    resource: &mut Value,
    patch: &Value,
    fits: &dyn Fn(&Value) -> bool,
) -> Result<(), Issue> {
    if patch.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(invalid("a FHIRPath Patch is a Parameters resource"));
    }
    let operations: Vec<&Value> = patch
        .get("parameter")
        .and_then(Value::as_array)
        .map(|ps| ps.iter().filter(|p| p["name"] == "operation").collect())
        .unwrap_or_default();
    if operations.is_empty() {
        return Err(invalid(
            "the Parameters hold no 'operation' parameter; nothing to patch",
        ));
    }
    for (n, operation) in operations.into_iter().enumerate() {
        let parts = operation
            .get("part")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let kind = text_part(parts, "type").unwrap_or_default();
        let path = text_part(parts, "path")
            .ok_or_else(|| invalid(format!("operation {}: 'path' is required", n + 1)))?;
        let what = format!("operation {} ({kind} {path})", n + 1);
        match kind {
            "add" => {
                let name = text_part(parts, "name")
                    .ok_or_else(|| invalid(format!("{what}: 'name' is required")))?;
                let value = operation_value(parts)
                    .ok_or_else(|| invalid(format!("{what}: 'value' is required")))?;
                let at = one(resource, path, &what)?;
                add(resource, &at, name, value, fits, &what)?;
            }
            "insert" => {
                let index = integer_part(parts, "index")
                    .ok_or_else(|| invalid(format!("{what}: 'index' is required")))?;
                let value = operation_value(parts)
                    .ok_or_else(|| invalid(format!("{what}: 'value' is required")))?;
                let list = list_of(resource, path, &what, true)?;
                if index > list.len() {
                    return Err(unprocessable(format!(
                        "{what}: index {index} is past the end of the list ({} items)",
                        list.len()
                    )));
                }
                list.insert(index, value);
            }
            "delete" => {
                let mut found = evaluate(resource, path)?;
                match found.len() {
                    0 => {}
                    1 => remove(resource, found.remove(0)),
                    n => {
                        return Err(unprocessable(format!(
                            "{what}: the path matches {n} elements; delete removes one"
                        )));
                    }
                }
            }
            "replace" => {
                let value = operation_value(parts)
                    .ok_or_else(|| invalid(format!("{what}: 'value' is required")))?;
                let at = one(resource, path, &what)?;
                if let Some(slot) = get_mut(resource, &at) {
                    *slot = value;
                }
            }
            "move" => {
                let source = integer_part(parts, "source")
                    .ok_or_else(|| invalid(format!("{what}: 'source' is required")))?;
                let destination = integer_part(parts, "destination")
                    .ok_or_else(|| invalid(format!("{what}: 'destination' is required")))?;
                let list = list_of(resource, path, &what, false)?;
                if source >= list.len() || destination >= list.len() {
                    return Err(unprocessable(format!(
                        "{what}: the list has {} items; source {source} and destination {destination} must be within it",
                        list.len()
                    )));
                }
                let item = list.remove(source);
                list.insert(destination, item);
            }
            other => {
                return Err(invalid(format!(
                    "operation {}: type '{other}' is not add, insert, delete, replace or move",
                    n + 1
                )));
            }
        }
    }
    Ok(())
}

/// The list a path names (`Patient.identifier`): the array in its parent element, created
/// empty when `create` is set and it is absent.
fn list_of<'a>(
    resource: &'a mut Value,
    path: &str,
    what: &str,
    create: bool,
) -> Result<&'a mut Vec<Value>, Issue> {
    let (parent, name) = split_last(path)?;
    let at = one(resource, parent, what)?;
    let object = get_mut(resource, &at)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| {
            unprocessable(format!(
                "{what}: '{parent}' is not an element with children"
            ))
        })?;
    let key = key_of(object, name).unwrap_or_else(|| name.to_owned());
    if !object.contains_key(&key) {
        if !create {
            return Err(unprocessable(format!("{what}: '{path}' is empty")));
        }
        object.insert(key.clone(), Value::Array(Vec::new()));
    }
    object
        .get_mut(&key)
        .and_then(Value::as_array_mut)
        .ok_or_else(|| unprocessable(format!("{what}: '{path}' is not a list")))
}

fn add(
    resource: &mut Value,
    at: &[Step],
    name: &str,
    value: Value,
    fits: &dyn Fn(&Value) -> bool,
    what: &str,
) -> Result<(), Issue> {
    let object = get_mut(resource, at)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| {
            unprocessable(format!(
                "{what}: the path does not name an element with children"
            ))
        })?;
    match object.get_mut(name) {
        Some(Value::Array(items)) => {
            items.push(value);
            return Ok(());
        }
        Some(_) => {
            return Err(unprocessable(format!(
                "{what}: '{name}' already has a value; use replace"
            )));
        }
        None => {}
    }
    // Absent: a list or a single value, whichever shape the resource accepts.
    object.insert(name.to_owned(), Value::Array(vec![value.clone()]));
    if fits(resource) {
        return Ok(());
    }
    if let Some(object) = get_mut(resource, at).and_then(Value::as_object_mut) {
        object.insert(name.to_owned(), value);
    }
    Ok(())
}

/// Removes the element at `location`, and containers it leaves empty (FHIR has no empty
/// arrays or objects).
fn remove(resource: &mut Value, mut location: Location) {
    while let Some(last) = location.pop() {
        let Some(parent) = get_mut(resource, &location) else {
            return;
        };
        match (parent, last) {
            (Value::Object(object), Step::Key(key)) => {
                object.shift_remove(&key);
                if !object.is_empty() || location.is_empty() {
                    return;
                }
            }
            (Value::Array(items), Step::Index(i)) => {
                if i < items.len() {
                    items.remove(i);
                }
                if !items.is_empty() {
                    return;
                }
            }
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(kind: &str, path: &str, extra: Vec<Value>) -> Value {
        let mut part = vec![
            json!({"name": "type", "valueCode": kind}),
            json!({"name": "path", "valueString": path}),
        ];
        part.extend(extra);
        json!({"name": "operation", "part": part})
    }

    fn patch(ops: Vec<Value>) -> Value {
        json!({"resourceType": "Parameters", "parameter": ops})
    }

    /// A stand-in for the structural check: `birthDate` and `active` are single, the rest lists.
    fn fits(resource: &Value) -> bool {
        !resource["birthDate"].is_array() && !resource["active"].is_array()
    }

    fn patient() -> Value {
        json!({
            "resourceType": "Patient",
            "identifier": [{"system": "urn:a", "value": "1"}, {"system": "urn:b", "value": "2"}],
            "name": [{"use": "official", "family": "Lee", "given": ["Ann"]}, {"use": "nickname", "given": ["Annie"]}],
            "contact": [{"gender": "male"}],
            "extension": [{"url": "http://x/ext", "valueString": "e"}],
            "deceasedBoolean": false
        })
    }

    #[test]
    fn the_five_operations() {
        let mut p = patient();
        let ops = patch(vec![
            op(
                "add",
                "Patient",
                vec![
                    json!({"name": "name", "valueString": "birthDate"}),
                    json!({"name": "value", "valueDate": "1970-01-01"}),
                ],
            ),
            op(
                "add",
                "Patient",
                vec![
                    json!({"name": "name", "valueString": "telecom"}),
                    json!({"name": "value", "part": [{"name": "system", "valueCode": "phone"}, {"name": "value", "valueString": "0123"}]}),
                ],
            ),
            op(
                "insert",
                "Patient.identifier",
                vec![
                    json!({"name": "index", "valueInteger": 0}),
                    json!({"name": "value", "valueIdentifier": {"system": "urn:c", "value": "3"}}),
                ],
            ),
            op("delete", "Patient.contact[0].gender", vec![]),
            op(
                "replace",
                "Patient.name.where(use = 'official').family",
                vec![json!({"name": "value", "valueString": "Li"})],
            ),
            op(
                "move",
                "Patient.identifier",
                vec![
                    json!({"name": "source", "valueInteger": 0}),
                    json!({"name": "destination", "valueInteger": 2}),
                ],
            ),
            op(
                "replace",
                "Patient.deceased",
                vec![json!({"name": "value", "valueBoolean": true})],
            ),
            op("delete", "Patient.extension('http://x/ext')", vec![]),
            op("delete", "Patient.photo", vec![]),
        ]);
        apply(&mut p, &ops, &fits).unwrap();
        assert_eq!(p["birthDate"], "1970-01-01");
        assert_eq!(p["telecom"], json!([{"system": "phone", "value": "0123"}]));
        let systems: Vec<&str> = p["identifier"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["system"].as_str().unwrap())
            .collect();
        assert_eq!(systems, ["urn:a", "urn:b", "urn:c"]);
        assert!(p.get("contact").is_none(), "an emptied contact goes: {p}");
        assert_eq!(p["name"][0]["family"], "Li");
        assert_eq!(p["deceasedBoolean"], true);
        assert!(p.get("extension").is_none());
    }

    #[test]
    fn errors_name_the_operation() {
        let mut p = patient();
        let several = patch(vec![op(
            "replace",
            "Patient.name.given",
            vec![json!({"name": "value", "valueString": "x"})],
        )]);
        let issue = apply(&mut p, &several, &fits).unwrap_err();
        assert_eq!(issue.code, IssueType::Processing);
        assert!(
            issue.diagnostics.contains("operation 1") && issue.diagnostics.contains("2 elements"),
            "{}",
            issue.diagnostics
        );
        let wrong_root = patch(vec![op("delete", "Observation.status", vec![])]);
        assert_eq!(
            apply(&mut p, &wrong_root, &fits).unwrap_err().code,
            IssueType::Invalid
        );
        let unknown = patch(vec![op("rename", "Patient.name", vec![])]);
        assert!(
            apply(&mut p, &unknown, &fits)
                .unwrap_err()
                .diagnostics
                .contains("rename")
        );
        let function = patch(vec![op("delete", "Patient.name.descendants()", vec![])]);
        assert!(
            apply(&mut p, &function, &fits)
                .unwrap_err()
                .diagnostics
                .contains("descendants")
        );
        let past = patch(vec![op(
            "insert",
            "Patient.identifier",
            vec![
                json!({"name": "index", "valueInteger": 9}),
                json!({"name": "value", "valueIdentifier": {"value": "x"}}),
            ],
        )]);
        assert!(
            apply(&mut p, &past, &fits)
                .unwrap_err()
                .diagnostics
                .contains("past the end")
        );
        assert!(apply(&mut p, &json!({"resourceType": "Parameters"}), &fits).is_err());
    }
}

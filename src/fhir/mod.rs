//! FHIR data without HTTP or SQL: parsing and serializing resources (JSON and XML), typed ids,
//! OperationOutcome, Bundles, subsetted views and the R4 definitions shipped in `conformance/`.
//! Inside Hearth a resource is a `serde_json::Value` (numbers keep their exact text); fhirbolt is
//! named only in `codec.rs`.

mod codec;
pub mod conformance;
pub mod fhirpath_patch;
pub mod instant;
mod json_check;
mod narrative;
pub mod outcome;
mod path;
pub mod primitives;
pub mod profiles;
pub mod references;
pub mod view;

use std::fmt;

use serde_json::Value;

pub use codec::{json_to_xml, xml_to_json};
use outcome::{Issue, IssueType};

/// A logical resource id: `[A-Za-z0-9\-\.]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId(String);

impl ResourceId {
    /// Checks `text` against the R4 id pattern.
    pub fn parse(text: &str) -> Result<ResourceId, Issue> {
        let valid = (1..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if valid {
            Ok(ResourceId(text.to_owned()))
        } else {
            Err(Issue::error(
                IssueType::Value,
                format!(
                    "'{}' is not a valid resource id (1 to 64 of A-Z, a-z, 0-9, '-', '.')",
                    truncate(text)
                ),
            ))
        }
    }

    /// A new server-assigned id: a time-ordered UUID (version 7: 48 bits of milliseconds, 74
    /// random bits). New ids sort after older ones, so each write adds to the right-hand end of
    /// the id indexes instead of a random page of each: a commit dirties a few pages, not one
    /// per index per resource.
    pub fn generate() -> ResourceId {
        ResourceId(uuid::Uuid::now_v7().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A version of a resource: 1 for the first, one more for every later write (deletes included).
pub type VersionId = i64;

fn truncate(text: &str) -> String {
    text.chars().take(80).collect()
}

/// Checks that `name` is a concrete R4 resource type.
pub fn check_resource_type(name: &str) -> Result<(), Issue> {
    if conformance::is_resource_type(name) {
        Ok(())
    } else {
        Err(Issue::error(
            IssueType::NotSupported,
            format!("'{}' is not a resource type Hearth serves", truncate(name)),
        ))
    }
}

/// The wire formats of FHIR resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/fhir+json`
    Json,
    /// `application/fhir+xml`
    Xml,
}

/// Parses and validates a resource received from a client: JSON or XML, checked by the fast
/// pre-check and then by the strict R4 model. `expected_type` is the type in the URL.
pub fn parse_resource(
    body: &[u8],
    format: Format,
    expected_type: Option<&str>,
) -> Result<Value, Vec<Issue>> {
    let value = match format {
        Format::Json => serde_json::from_slice::<Value>(body).map_err(|e| {
            vec![Issue::error(
                IssueType::Structure,
                format!("the body is not valid JSON: {e}"),
            )]
        })?,
        Format::Xml => codec::xml_to_json(body).map_err(|issue| vec![issue])?,
    };
    check_value(&value, expected_type)?;
    Ok(value)
}

/// Validates a resource already parsed as JSON (an entry of a Bundle) as [`parse_resource`]
/// does: the fast pre-check, the primitive checks, then the strict R4 model.
pub fn check_value(value: &Value, expected_type: Option<&str>) -> Result<(), Vec<Issue>> {
    json_check::check_resource(value, expected_type)?;
    // Primitive checks first: their diagnostics name the element, fhirbolt's often do not.
    let issues = primitives::check_primitives(value);
    if !issues.is_empty() {
        return Err(issues);
    }
    codec::validate_structure(value).map_err(|issue| vec![issue])
}

/// Removes the server-owned `meta.versionId` and `meta.lastUpdated` (and `meta` when nothing
/// else is left in it): what a resource is without the version it was stored as.
pub fn strip_version_meta(resource: &mut Value) {
    if let Some(meta) = resource.get_mut("meta").and_then(Value::as_object_mut) {
        meta.shift_remove("versionId");
        meta.shift_remove("lastUpdated");
        if meta.is_empty()
            && let Some(object) = resource.as_object_mut()
        {
            object.shift_remove("meta");
        }
    }
}

/// Sets the server-owned fields of a resource about to be stored: `id`, `meta.versionId` and
/// `meta.lastUpdated`, keeping `resourceType`, `id` and `meta` first. Returns the bytes stored
/// and served. (A write that knows its resource before its version uses [`Unstamped`].)
pub fn stamp(
    resource: &Value,
    id: &ResourceId,
    version: VersionId,
    last_updated: instant::EpochMillis,
) -> Vec<u8> {
    Unstamped::new(resource).stamp(id, version, last_updated)
}

/// A resource serialized before its write, all but the fields the write assigns (`id`,
/// `meta.versionId` and `meta.lastUpdated`): [`Unstamped::stamp`] only puts those in front of
/// bytes written earlier. A write's version and time are known only inside the database
/// transaction, and on SQLite that runs on the one writer thread, which is the limit on
/// writes; so the serializing is done before, on the request's own thread.
#[derive(Debug, Clone)]
pub struct Unstamped {
    /// `resourceType`'s value, serialized (empty when the resource has none).
    resource_type: Vec<u8>,
    /// `meta`'s other fields, each as `,"name":value`.
    meta: Vec<u8>,
    /// The resource's other fields, each as `,"name":value`.
    rest: Vec<u8>,
    /// Set when the resource is not a JSON object: stored as it is.
    whole: Option<Vec<u8>>,
}

impl Unstamped {
    /// Serializes `resource` but for its `id`, `meta.versionId` and `meta.lastUpdated`.
    pub fn new(resource: &Value) -> Unstamped {
        let Value::Object(fields) = resource else {
            return Unstamped {
                resource_type: Vec::new(),
                meta: Vec::new(),
                rest: Vec::new(),
                whole: Some(serde_json::to_vec(resource).unwrap_or_default()),
            };
        };
        let resource_type = fields
            .get("resourceType")
            .and_then(|t| serde_json::to_vec(t).ok())
            .unwrap_or_default();
        let mut meta = Vec::new();
        if let Some(Value::Object(entries)) = fields.get("meta") {
            for (name, value) in entries {
                if !matches!(name.as_str(), "versionId" | "lastUpdated") {
                    write_entry(&mut meta, name, value);
                }
            }
        }
        let mut rest = Vec::with_capacity(1024);
        for (name, value) in fields {
            if !matches!(name.as_str(), "resourceType" | "id" | "meta") {
                write_entry(&mut rest, name, value);
            }
        }
        Unstamped {
            resource_type,
            meta,
            rest,
            whole: None,
        }
    }

    /// The stored bytes of this resource as version `version` of `id`, written at
    /// `last_updated`: `resourceType`, `id` and `meta` first, the version and time first in
    /// `meta`, as compact JSON.
    pub fn stamp(
        &self,
        id: &ResourceId,
        version: VersionId,
        last_updated: instant::EpochMillis,
    ) -> Vec<u8> {
        if let Some(whole) = &self.whole {
            return whole.clone();
        }
        let mut out = Vec::with_capacity(self.rest.len() + self.meta.len() + 160);
        out.push(b'{');
        if !self.resource_type.is_empty() {
            out.extend_from_slice(b"\"resourceType\":");
            out.extend_from_slice(&self.resource_type);
            out.push(b',');
        }
        out.extend_from_slice(b"\"id\":");
        write_json(&mut out, id.as_str());
        out.extend_from_slice(b",\"meta\":{\"versionId\":");
        write_json(&mut out, &version.to_string());
        out.extend_from_slice(b",\"lastUpdated\":");
        write_json(&mut out, &instant::format_instant(last_updated));
        out.extend_from_slice(&self.meta);
        out.push(b'}');
        out.extend_from_slice(&self.rest);
        out.push(b'}');
        out
    }
}

/// Appends `,"name":value` as compact JSON.
fn write_entry(out: &mut Vec<u8>, name: &str, value: &Value) {
    out.push(b',');
    write_json(out, name);
    out.push(b':');
    write_json(out, value);
}

/// Appends `value` as compact JSON (writing to a `Vec` fails only for a value that is not
/// JSON, which a `Value` and a `str` never are).
fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let _ = serde_json::to_writer(&mut *out, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stamp_puts_server_fields_first_and_replaces_client_ones() {
        let resource = json!({"gender": "male", "meta": {"versionId": "9", "profile": ["http://p"]},
            "resourceType": "Patient", "id": "client"});
        let bytes = stamp(&resource, &ResourceId::parse("abc").unwrap(), 2, 0);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"resourceType":"Patient","id":"abc","meta":{"versionId":"2","lastUpdated":"1970-01-01T00:00:00.000Z","profile":["http://p"]},"gender":"male"}"#
        );
    }

    #[test]
    fn unstamped_writes_what_serde_json_writes() {
        let id = ResourceId::parse("x.1").unwrap();
        for resource in [
            json!({"resourceType": "Observation", "status": "final", "valueString": "a \"q\" \u{e9}\n",
                "meta": {"lastUpdated": "2001-01-01T00:00:00Z", "tag": [{"code": "t"}]}, "id": "old"}),
            json!({"resourceType": "Basic", "meta": {"versionId": "3"}}),
            json!({"resourceType": "Basic"}),
            json!({"code": {"text": "no type"}}),
            json!(["not", "a", "resource"]),
        ] {
            let mut expected = json!({});
            if let Some(t) = resource.get("resourceType") {
                expected["resourceType"] = t.clone();
            }
            let bytes = stamp(&resource, &id, 12, 1_000);
            if !resource.is_object() {
                assert_eq!(bytes, serde_json::to_vec(&resource).unwrap());
                continue;
            }
            expected["id"] = json!("x.1");
            let mut meta = json!({"versionId": "12", "lastUpdated": "1970-01-01T00:00:01.000Z"});
            for (k, v) in resource
                .get("meta")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                if k != "versionId" && k != "lastUpdated" {
                    meta[k] = v.clone();
                }
            }
            expected["meta"] = meta;
            for (k, v) in resource.as_object().unwrap() {
                if !matches!(k.as_str(), "resourceType" | "id" | "meta") {
                    expected[k] = v.clone();
                }
            }
            assert_eq!(String::from_utf8(bytes).unwrap(), expected.to_string());
        }
    }

    #[test]
    fn ids_follow_the_r4_pattern() {
        assert!(ResourceId::parse("a-B.9").is_ok());
        assert!(ResourceId::parse("").is_err());
        assert!(ResourceId::parse("a_b").is_err());
        assert!(ResourceId::parse(&"x".repeat(64)).is_ok());
        assert!(ResourceId::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn parse_rejects_bad_json_before_fhirbolt() {
        assert!(
            parse_resource(
                br#"{"resourceType":"Patient","name":[]}"#,
                Format::Json,
                Some("Patient")
            )
            .is_err()
        );
        assert!(parse_resource(b"{", Format::Json, None).is_err());
        let ok = parse_resource(
            br#"{"resourceType":"Patient","active":true}"#,
            Format::Json,
            Some("Patient"),
        );
        assert_eq!(ok.unwrap()["active"], true);
    }
}

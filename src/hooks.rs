//! The one small interface through which domain rules (echo triage, later audit) take part in
//! FHIR writes, so the REST layer never names a domain module's internals: before a version is
//! stored a hook may change the resource, add warnings or refuse the write; after it is stored
//! a hook may refresh what it caches.

use serde_json::Value;

use crate::fhir::instant::EpochMillis;
use crate::fhir::outcome::Issue;

/// What a hook knows about a write.
#[derive(Debug, Clone, Copy)]
pub struct WriteContext<'a> {
    /// The resource type written.
    pub resource_type: &'a str,
    /// The current version before this write (`None` on create or for a deleted resource).
    pub previous: Option<&'a Value>,
    /// The instant of the write.
    pub now: EpochMillis,
    /// The person or system writing, as a FHIR Reference, when known.
    pub author: Option<&'a Value>,
}

/// Why a hook refused a write: a client error answered with an OperationOutcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The content breaks a business rule (HTTP 422).
    Unprocessable(Issue),
    /// The request itself is malformed (HTTP 400).
    Invalid(Issue),
    /// The resource is in a state that does not allow the change (HTTP 409).
    Conflict(Issue),
}

/// A domain rule that takes part in writes.
pub trait WriteHook: Send + Sync + 'static {
    /// Whether writes of `resource_type` concern this hook (so the REST layer reads the
    /// previous version only when a hook needs it).
    fn wants(&self, resource_type: &str) -> bool;

    /// Checks and completes `resource` before it is stored; returns warnings for the client.
    fn before_write(
        &self,
        context: &WriteContext<'_>,
        resource: &mut Value,
    ) -> Result<Vec<Issue>, Refusal>;

    /// Runs after a version of a wanted type was stored.
    fn after_write(&self, _resource_type: &str, _resource: &Value) {}
}

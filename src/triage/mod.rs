//! Echo triage (DESIGN §4): pathways and their targets, the UK working-hours calendar, the
//! deadline engine, the write hook that keeps an echo ServiceRequest's deadline right, the
//! triage operations' rules and the statistics. Pure: `now` is always a parameter; storage and
//! HTTP belong to the callers.

pub mod calendar;
pub mod holidays;
pub mod hook;
pub mod operations;
pub mod pathways;
pub mod request;
pub mod stats;

use std::sync::{Arc, RwLock};

use serde_json::Value;

pub use calendar::{Calendar, CalendarError, CalendarSettings, Window};
pub use holidays::Region;
pub use pathways::{Pathway, Pathways};

/// The canonical URLs of Hearth's triage definitions (listed in `profiles/README.md`).
pub mod url {
    /// The canonical base of everything Hearth defines.
    pub const BASE: &str = "http://hearth.health/fhir";
    /// The echo ServiceRequest profile.
    pub const ECHO_PROFILE: &str =
        "http://hearth.health/fhir/StructureDefinition/echo-service-request";
    /// Extension: the pathway (Coding).
    pub const PATHWAY: &str = "http://hearth.health/fhir/StructureDefinition/triage-pathway";
    /// Extension: the deadline (dateTime, UTC).
    pub const DEADLINE: &str = "http://hearth.health/fhir/StructureDefinition/triage-deadline";
    /// Extension: when the request was triaged (dateTime).
    pub const TRIAGED: &str = "http://hearth.health/fhir/StructureDefinition/triage-time";
    /// Extension: who triaged it (Reference).
    pub const TRIAGED_BY: &str = "http://hearth.health/fhir/StructureDefinition/triage-author";
    /// Extension: the response text sent back to the requester (string).
    pub const SENTENCE: &str = "http://hearth.health/fhir/StructureDefinition/triage-sentence";
    /// Extension (complex): one extension of the deadline.
    pub const DEADLINE_EXTENSION: &str =
        "http://hearth.health/fhir/StructureDefinition/deadline-extension";
    /// Extension: when the echo was completed (dateTime).
    pub const COMPLETED: &str = "http://hearth.health/fhir/StructureDefinition/completion-time";
    /// Extension: the ward the patient is on (Reference(Location)).
    pub const WARD: &str = "http://hearth.health/fhir/StructureDefinition/ward";
    /// The pathway CodeSystem.
    pub const PATHWAY_SYSTEM: &str = "http://hearth.health/fhir/CodeSystem/triage-pathway";
    /// The core extension that carries why a request was declined.
    pub const STATUS_REASON: &str = "http://hl7.org/fhir/StructureDefinition/request-statusReason";
    /// The code of a triage sentence template (a `Basic` resource).
    pub const SENTENCE_TEMPLATE_SYSTEM: &str =
        "http://hearth.health/fhir/CodeSystem/hearth-resource-kind";
}

/// The id of the pathway CodeSystem as Hearth installs it.
pub const PATHWAY_CODE_SYSTEM_ID: &str = "triage-pathway";

/// The triage service: a site's calendar and the current pathway targets.
#[derive(Clone)]
pub struct Triage {
    calendar: Arc<Calendar>,
    pathways: Arc<RwLock<Arc<Pathways>>>,
}

impl Triage {
    /// A service over `calendar` with `pathways` (from the pathway CodeSystem).
    pub fn new(calendar: Calendar, pathways: Pathways) -> Triage {
        Triage {
            calendar: Arc::new(calendar),
            pathways: Arc::new(RwLock::new(Arc::new(pathways))),
        }
    }

    /// The calendar.
    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }

    /// The current pathways.
    pub fn pathways(&self) -> Arc<Pathways> {
        match self.pathways.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Takes new targets from a stored pathway CodeSystem (ignoring any other resource).
    pub fn reload(&self, code_system: &Value) {
        if code_system["url"] != url::PATHWAY_SYSTEM {
            return;
        }
        match Pathways::from_code_system(code_system) {
            Ok(pathways) => {
                let pathways = Arc::new(pathways);
                match self.pathways.write() {
                    Ok(mut guard) => *guard = pathways,
                    Err(poisoned) => *poisoned.into_inner() = pathways,
                }
            }
            Err(e) => tracing::warn!("the stored pathway CodeSystem is not usable: {e}"),
        }
    }
}

#[cfg(test)]
mod tests;

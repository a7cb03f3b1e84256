//! Security events as FHIR AuditEvent resources (R4), stored through the FHIR write path so
//! that they are versioned and searchable like any other resource.

use serde_json::{Value, json};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A successful login.
    Login,
    /// A refused login (wrong password, unknown email, throttled, unverified, disabled).
    LoginFailed,
    /// A logout.
    Logout,
    /// An account was created (registration, invitation, command line, bootstrap).
    AccountCreated,
    /// An email address was verified.
    Verified,
    /// A password was reset through an emailed link.
    PasswordReset,
    /// A password was changed by its owner.
    PasswordChanged,
    /// An administrator changed a role.
    RoleChanged,
    /// An administrator disabled or enabled an account.
    StatusChanged,
}

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const HEARTH_EVENTS: &str = "http://hearth.health/fhir/CodeSystem/account-event";

impl Event {
    /// DICOM event type and subtype codes where DICOM has them, else Hearth's.
    fn codes(self) -> (Value, Value) {
        let authentication =
            json!({"system": DCM, "code": "110114", "display": "User Authentication"});
        let security = json!({"system": DCM, "code": "110113", "display": "Security Alert"});
        let (kind, code, display, system) = match self {
            Event::Login => (authentication, "110122", "Login", DCM),
            Event::LoginFailed => (authentication, "110122", "Login", DCM),
            Event::Logout => (authentication, "110123", "Logout", DCM),
            Event::AccountCreated => (
                security,
                "account-created",
                "Account created",
                HEARTH_EVENTS,
            ),
            Event::Verified => (security, "email-verified", "Email verified", HEARTH_EVENTS),
            Event::PasswordReset => (security, "password-reset", "Password reset", HEARTH_EVENTS),
            Event::PasswordChanged => (
                security,
                "password-changed",
                "Password changed",
                HEARTH_EVENTS,
            ),
            Event::RoleChanged => (security, "110136", "Security Roles Changed", DCM),
            Event::StatusChanged => (security, "110137", "User Security Attributes Changed", DCM),
        };
        (
            kind,
            json!({"system": system, "code": code, "display": display}),
        )
    }
}

/// Who did it and to whom.
#[derive(Debug, Clone, Default)]
pub struct Parties<'a> {
    /// The person acting: FHIR reference (if any) and email.
    pub actor: Option<(Option<&'a str>, &'a str)>,
    /// The network address of the request.
    pub address: Option<&'a str>,
    /// The account acted on, when not the actor: FHIR reference (if any) and email.
    pub subject: Option<(Option<&'a str>, &'a str)>,
}

/// An AuditEvent for `event` at `recorded` (FHIR instant), successful or not.
pub fn audit_event(
    event: Event,
    success: bool,
    recorded: &str,
    parties: &Parties<'_>,
    description: &str,
) -> Value {
    let (kind, subtype) = event.codes();
    let mut who = json!({"display": "anonymous"});
    if let Some((reference, email)) = parties.actor {
        who = json!({"display": email});
        if let Some(reference) = reference {
            who["reference"] = json!(reference);
        }
    }
    let mut agent = json!({
        "type": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
            "code": "IRCP", "display": "information recipient"}]},
        "who": who,
        "requestor": true,
    });
    if let Some(address) = parties.address {
        agent["network"] = json!({"address": address, "type": "2"});
    }
    let mut resource = json!({
        "resourceType": "AuditEvent",
        "type": kind,
        "subtype": [subtype],
        "action": "E",
        "recorded": recorded,
        "outcome": if success { "0" } else { "4" },
        "outcomeDesc": description,
        "agent": [agent],
        "source": {
            "observer": {"display": "Hearth"},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                      "code": "4", "display": "Application Server"}]
        }
    });
    if let Some((reference, email)) = parties.subject {
        let mut what = json!({"display": email});
        if let Some(reference) = reference {
            what["reference"] = json!(reference);
        }
        resource["entity"] = json!([{"what": what, "description": "account"}]);
    }
    resource
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_login_names_the_address_and_the_email() {
        let event = audit_event(
            Event::LoginFailed,
            false,
            "2026-12-01T10:00:00.000Z",
            &Parties {
                actor: Some((None, "a@b.org")),
                address: Some("10.0.0.1"),
                subject: None,
            },
            "wrong password",
        );
        assert_eq!(event["outcome"], "4");
        assert_eq!(event["subtype"][0]["code"], "110122");
        assert_eq!(event["agent"][0]["network"]["address"], "10.0.0.1");
        assert_eq!(event["agent"][0]["who"]["display"], "a@b.org");
        assert!(event.get("entity").is_none());
    }
}

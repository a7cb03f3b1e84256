//! OperationOutcome: the closed set of R4 IssueType codes and the builder every surface uses to
//! tell a FHIR client what happened.

use serde_json::{Value, json};

/// R4 `IssueSeverity` (<http://hl7.org/fhir/issue-severity>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The issue caused the action to fail and no further checking could be performed.
    Fatal,
    /// The issue is sufficiently important to cause the action to fail.
    Error,
    /// The issue is not important enough to cause the action to fail.
    Warning,
    /// The issue has no relation to the degree of success of the action.
    Information,
}

impl Severity {
    /// The FHIR code of this severity.
    pub fn code(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// R4 `IssueType` (<http://hl7.org/fhir/issue-type>), the codes Hearth reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueType {
    /// Content invalid against the specification or a profile.
    Invalid,
    /// A structural issue in the content such as wrong namespace or unparseable JSON/XML.
    Structure,
    /// A required element is missing.
    Required,
    /// An element or header value is invalid.
    Value,
    /// A content validation rule failed.
    Invariant,
    /// An authentication/authorization/permissions issue of some kind.
    Security,
    /// The client needs to initiate an authentication process.
    Login,
    /// The user or system was not able to be authenticated.
    Unknown,
    /// User session expired.
    Expired,
    /// The user does not have the rights to perform this action.
    Forbidden,
    /// Some information was not or might not have been returned due to business rules.
    Suppressed,
    /// Processing issues.
    Processing,
    /// The interaction, operation, resource or profile is not supported.
    NotSupported,
    /// An attempt was made to create a duplicate record.
    Duplicate,
    /// Multiple matching records were found when the operation required only one match.
    MultipleMatches,
    /// The reference provided was not found.
    NotFound,
    /// The reference pointed to content that has been deleted.
    Deleted,
    /// Provided content is too long.
    TooLong,
    /// The code or system could not be understood.
    CodeInvalid,
    /// An extension was unrecognized or is invalid.
    Extension,
    /// The operation was stopped to protect server resources.
    TooCostly,
    /// The content/operation failed to pass a business rule.
    BusinessRule,
    /// Content could not be accepted because of an edit conflict.
    Conflict,
    /// Transient processing issues.
    Transient,
    /// A resource/record locking failure.
    LockError,
    /// The persistent store is unavailable.
    NoStore,
    /// An unexpected internal error has occurred.
    Exception,
    /// An internal timeout has occurred.
    Timeout,
    /// Not all data sources typically accessed could be reached.
    Incomplete,
    /// The system is not prepared to handle this request due to load management.
    Throttled,
    /// A message unrelated to the processing success of the completed operation.
    Informational,
}

impl IssueType {
    /// The FHIR code of this issue type.
    pub fn code(self) -> &'static str {
        match self {
            IssueType::Invalid => "invalid",
            IssueType::Structure => "structure",
            IssueType::Required => "required",
            IssueType::Value => "value",
            IssueType::Invariant => "invariant",
            IssueType::Security => "security",
            IssueType::Login => "login",
            IssueType::Unknown => "unknown",
            IssueType::Expired => "expired",
            IssueType::Forbidden => "forbidden",
            IssueType::Suppressed => "suppressed",
            IssueType::Processing => "processing",
            IssueType::NotSupported => "not-supported",
            IssueType::Duplicate => "duplicate",
            IssueType::MultipleMatches => "multiple-matches",
            IssueType::NotFound => "not-found",
            IssueType::Deleted => "deleted",
            IssueType::TooLong => "too-long",
            IssueType::CodeInvalid => "code-invalid",
            IssueType::Extension => "extension",
            IssueType::TooCostly => "too-costly",
            IssueType::BusinessRule => "business-rule",
            IssueType::Conflict => "conflict",
            IssueType::Transient => "transient",
            IssueType::LockError => "lock-error",
            IssueType::NoStore => "no-store",
            IssueType::Exception => "exception",
            IssueType::Timeout => "timeout",
            IssueType::Incomplete => "incomplete",
            IssueType::Throttled => "throttled",
            IssueType::Informational => "informational",
        }
    }
}

/// One issue of an OperationOutcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// How bad the issue is.
    pub severity: Severity,
    /// What kind of issue it is.
    pub code: IssueType,
    /// Human-readable detail for the client.
    pub diagnostics: String,
    /// FHIRPath expressions of the elements concerned, if known.
    pub expression: Vec<String>,
}

impl Issue {
    /// An error-level issue.
    pub fn error(code: IssueType, diagnostics: impl Into<String>) -> Self {
        Issue {
            severity: Severity::Error,
            code,
            diagnostics: diagnostics.into(),
            expression: Vec::new(),
        }
    }

    /// A warning: the request succeeded, but the client should know.
    pub fn warning(code: IssueType, diagnostics: impl Into<String>) -> Self {
        Issue {
            severity: Severity::Warning,
            code,
            diagnostics: diagnostics.into(),
            expression: Vec::new(),
        }
    }

    /// An information-level issue.
    pub fn information(diagnostics: impl Into<String>) -> Self {
        Issue {
            severity: Severity::Information,
            code: IssueType::Informational,
            diagnostics: diagnostics.into(),
            expression: Vec::new(),
        }
    }

    /// Adds the FHIRPath expression of the element concerned.
    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression.push(expression.into());
        self
    }
}

/// `text` with each control character that no FHIR value may hold written as an escape
/// (`\u{0}`): diagnostics quote what clients sent, and the OperationOutcome must still be a
/// valid FHIR resource, in XML too.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if super::primitives::control_character(text).is_none() {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c.to_string(),
            c if c < ' ' => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// Builds an OperationOutcome resource from its issues.
pub fn operation_outcome(issues: &[Issue]) -> Value {
    let issues: Vec<Value> = issues
        .iter()
        .map(|issue| {
            let mut entry = json!({
                "severity": issue.severity.code(),
                "code": issue.code.code(),
                "diagnostics": printable(&issue.diagnostics),
            });
            if !issue.expression.is_empty() {
                let expression: Vec<_> = issue.expression.iter().map(|e| printable(e)).collect();
                entry["expression"] = json!(expression);
            }
            entry
        })
        .collect();
    json!({ "resourceType": "OperationOutcome", "issue": issues })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_carries_codes_and_expressions() {
        let outcome =
            operation_outcome(&[Issue::error(IssueType::Value, "bad id").at("Patient.id")]);
        assert_eq!(outcome["issue"][0]["code"], "value");
        assert_eq!(outcome["issue"][0]["severity"], "error");
        assert_eq!(outcome["issue"][0]["expression"][0], "Patient.id");
    }

    #[test]
    fn control_characters_that_clients_sent_are_escaped() {
        let outcome =
            operation_outcome(&[Issue::error(IssueType::Value, "'a\u{0}b\u{1f}' is bad\n")
                .at("Patient.name[\u{1}]")]);
        assert_eq!(
            outcome["issue"][0]["diagnostics"],
            "'a\\u{0}b\\u{1f}' is bad\n"
        );
        assert_eq!(outcome["issue"][0]["expression"][0], "Patient.name[\\u{1}]");
    }
}

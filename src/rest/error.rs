//! The FHIR API's error type and the one table that turns conditions from the layers below into
//! HTTP statuses and OperationOutcome issues. Internal details of 5xx errors are handed to the
//! edge middleware for logging, never to the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::response::FhirBody;
use crate::fhir::outcome::{Issue, IssueType, operation_outcome};
use crate::storage::StorageError;

/// Detail of an internal failure, logged once by the edge middleware with the request id.
#[derive(Debug, Clone)]
pub struct InternalDetail(pub String);

/// An error answered with an OperationOutcome.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    issues: Vec<Issue>,
    internal: Option<String>,
}

impl ApiError {
    /// An error with one issue.
    pub fn new(status: StatusCode, code: IssueType, diagnostics: impl Into<String>) -> Self {
        ApiError {
            status,
            issues: vec![Issue::error(code, diagnostics)],
            internal: None,
        }
    }

    /// An error with the issues found in a request.
    pub fn with_issues(status: StatusCode, issues: Vec<Issue>) -> Self {
        ApiError {
            status,
            issues,
            internal: None,
        }
    }

    /// 400 for content or parameters the server cannot accept.
    pub fn bad_request(code: IssueType, diagnostics: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, diagnostics)
    }

    /// 500 with a generic message; `detail` is logged, not shown.
    pub fn internal(detail: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            issues: vec![Issue::error(IssueType::Exception, "internal error")],
            internal: Some(detail.into()),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The issues.
    pub fn issues(&self) -> &[Issue] {
        &self.issues
    }

    /// The same error about entry `index` of a Bundle (`label` is its request, such as
    /// `POST Patient`): diagnostics name the entry and expressions point into the Bundle.
    pub fn in_entry(mut self, index: usize, label: &str) -> Self {
        if self.internal.is_some() {
            return self;
        }
        let entry = format!("Bundle.entry[{index}]");
        for issue in &mut self.issues {
            issue.diagnostics = format!("{entry} ({label}): {}", issue.diagnostics);
            for expression in &mut issue.expression {
                // `Patient.name[0]` is `Bundle.entry[i].resource.name[0]`.
                let rest = match expression.split_once('.') {
                    Some((head, rest)) if head.starts_with(|c: char| c.is_ascii_uppercase()) => {
                        format!(".{rest}")
                    }
                    None if expression.starts_with(|c: char| c.is_ascii_uppercase()) => {
                        String::new()
                    }
                    _ => format!(".{expression}"),
                };
                *expression = format!("{entry}.resource{rest}");
            }
            if issue.expression.is_empty() {
                issue.expression.push(entry.clone());
            }
        }
        self
    }
}

impl From<Issue> for ApiError {
    fn from(issue: Issue) -> Self {
        ApiError::with_issues(StatusCode::BAD_REQUEST, vec![issue])
    }
}

impl From<Vec<Issue>> for ApiError {
    fn from(issues: Vec<Issue>) -> Self {
        ApiError::with_issues(StatusCode::BAD_REQUEST, issues)
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::VersionConflict { expected, current } => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                IssueType::Conflict,
                match current {
                    Some(current) => format!(
                        "If-Match expected version {expected}, but the current version is {current}"
                    ),
                    None => format!(
                        "If-Match expected version {expected}, but the resource does not exist"
                    ),
                },
            ),
            StorageError::Contention => ApiError::new(
                StatusCode::CONFLICT,
                IssueType::Conflict,
                "the resource is being changed by other requests; retry",
            ),
            StorageError::Unavailable(detail) => ApiError {
                internal: Some(detail),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    IssueType::Transient,
                    "the database is busy or unavailable; retry",
                )
            },
            StorageError::Timeout(detail) => ApiError {
                internal: Some(detail),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    IssueType::Timeout,
                    "the database did not answer within its 30 s limit; retry, or narrow the request",
                )
            },
            StorageError::BadCursor(detail) => ApiError::bad_request(IssueType::Value, detail),
            StorageError::Entry { entry, source } => {
                ApiError::from(*source).in_entry(entry, "transaction")
            }
            StorageError::Stale(detail) => ApiError::new(
                StatusCode::CONFLICT,
                IssueType::Conflict,
                format!("{detail}; other requests kept changing the resources concerned; retry"),
            ),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response
            .extensions_mut()
            .insert(FhirBody::Value(operation_outcome(&self.issues)));
        if let Some(detail) = self.internal {
            response.extensions_mut().insert(InternalDetail(detail));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_past_the_database_s_limit_is_a_503_timeout() {
        let error = ApiError::from(StorageError::Timeout(
            "canceling statement due to statement timeout".into(),
        ));
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error.issues.len(), 1);
        assert_eq!(error.issues[0].code, IssueType::Timeout);
        assert!(error.issues[0].diagnostics.contains("30 s"));
        assert_eq!(
            error.internal.as_deref(),
            Some("canceling statement due to statement timeout")
        );
    }
}

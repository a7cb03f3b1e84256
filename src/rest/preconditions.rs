//! Request headers that shape an interaction: `If-Match`, `If-None-Match`, `If-Modified-Since`
//! and `Prefer: return=…`.

use axum::http::{HeaderMap, header};

use super::error::ApiError;
use crate::fhir::VersionId;
use crate::fhir::instant::{EpochMillis, parse_http_date};
use crate::fhir::outcome::IssueType;

/// The version a weak or strong ETag names (`W/"3"`, `"3"`, `3`).
pub fn version_of_etag(tag: &str) -> Option<VersionId> {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.trim_matches('"')
        .parse::<VersionId>()
        .ok()
        .filter(|v| *v > 0)
}

/// The version named by `If-Match` (`W/"3"`), if the header is present.
pub fn if_match(headers: &HeaderMap) -> Result<Option<VersionId>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default();
    version_of_etag(text).map(Some).ok_or_else(|| {
        ApiError::bad_request(
            IssueType::Value,
            format!("If-Match '{text}' is not a version ETag such as W/\"3\""),
        )
    })
}

/// True when `If-None-Match` names `version` (or `*`): the client already has it.
pub fn if_none_match_hits(headers: &HeaderMap, version: VersionId) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|value| {
            value
                .split(',')
                .any(|tag| tag.trim() == "*" || version_of_etag(tag) == Some(version))
        })
}

/// True when `If-Modified-Since` is at or after `last_updated` (HTTP dates have second
/// precision, so the comparison is in whole seconds).
pub fn not_modified_since(headers: &HeaderMap, last_updated: EpochMillis) -> bool {
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date)
        .is_some_and(|since| last_updated.div_euclid(1000) * 1000 <= since)
}

/// What the client asked to get back from a write (`Prefer: return=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreferReturn {
    /// No body.
    Minimal,
    /// The resource as stored (the default).
    Representation,
    /// An OperationOutcome describing what happened.
    OperationOutcome,
}

/// Reads `Prefer: return=…`; unknown or absent values mean `representation`.
pub fn prefer_return(headers: &HeaderMap) -> PreferReturn {
    let values = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']));
    for token in values {
        match token.trim().replace(' ', "").as_str() {
            "return=minimal" => return PreferReturn::Minimal,
            "return=OperationOutcome" => return PreferReturn::OperationOutcome,
            "return=representation" => return PreferReturn::Representation,
            _ => {}
        }
    }
    PreferReturn::Representation
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(name: &'static str, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn etags_and_preferences() {
        assert_eq!(if_match(&headers("if-match", "W/\"3\"")).unwrap(), Some(3));
        assert_eq!(if_match(&headers("if-match", "\"12\"")).unwrap(), Some(12));
        assert!(if_match(&headers("if-match", "W/\"x\"")).is_err());
        assert_eq!(if_match(&HeaderMap::new()).unwrap(), None);
        assert!(if_none_match_hits(
            &headers("if-none-match", "W/\"1\", W/\"2\""),
            2
        ));
        assert!(!if_none_match_hits(&headers("if-none-match", "W/\"1\""), 2));
        assert_eq!(
            prefer_return(&headers("prefer", "return=minimal")),
            PreferReturn::Minimal
        );
        assert_eq!(
            prefer_return(&headers(
                "prefer",
                "handling=strict, return=OperationOutcome"
            )),
            PreferReturn::OperationOutcome
        );
        assert_eq!(
            prefer_return(&HeaderMap::new()),
            PreferReturn::Representation
        );
    }

    #[test]
    fn modified_since_compares_whole_seconds() {
        let h = headers("if-modified-since", "Tue, 14 Nov 2023 22:13:20 GMT");
        assert!(not_modified_since(&h, 1_700_000_000_999));
        assert!(!not_modified_since(&h, 1_700_000_001_000));
    }
}

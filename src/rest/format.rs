//! Content negotiation (R4 http §3.1.0.1.6): the response format from `_format` or `Accept`,
//! `_pretty`, and the format of a request body from `Content-Type`.

use axum::http::{HeaderMap, StatusCode, header};

use super::error::ApiError;
use crate::fhir::Format;
use crate::fhir::outcome::IssueType;

/// The negotiated way to write response bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// JSON or XML.
    pub format: Format,
    /// `_pretty=true`.
    pub pretty: bool,
}

impl Default for Negotiated {
    fn default() -> Self {
        Negotiated {
            format: Format::Json,
            pretty: false,
        }
    }
}

/// The `Content-Type` of a rendered body.
pub fn content_type(format: Format) -> &'static str {
    match format {
        Format::Json => "application/fhir+json; charset=utf-8",
        Format::Xml => "application/fhir+xml; charset=utf-8",
    }
}

fn essence(mime: &str) -> String {
    mime.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn format_of_mime(essence: &str) -> Option<Format> {
    match essence {
        "application/fhir+json"
        | "application/json"
        | "application/json+fhir"
        | "text/json"
        | "json" => Some(Format::Json),
        "application/fhir+xml"
        | "application/xml"
        | "application/xml+fhir"
        | "text/xml"
        | "xml" => Some(Format::Xml),
        _ => None,
    }
}

/// Picks the response format: `_format` wins over `Accept`; JSON when neither says.
pub fn negotiate(headers: &HeaderMap, query: Option<&str>) -> Result<Negotiated, ApiError> {
    let mut negotiated = Negotiated::default();
    let mut explicit = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "_format" => {
                explicit = Some(format_of_mime(&essence(&value)).ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_ACCEPTABLE,
                        IssueType::NotSupported,
                        format!("_format '{value}' is not supported; use json or xml"),
                    )
                })?);
            }
            "_pretty" => negotiated.pretty = value == "true",
            _ => {}
        }
    }
    negotiated.format = match explicit {
        Some(format) => format,
        None => from_accept(headers)?,
    };
    Ok(negotiated)
}

fn from_accept(headers: &HeaderMap) -> Result<Format, ApiError> {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    if accept.trim().is_empty() {
        return Ok(Format::Json);
    }
    let mut ranges: Vec<(f32, String)> = accept
        .split(',')
        .filter(|r| !r.trim().is_empty())
        .map(|range| {
            let q = range
                .split(';')
                .skip(1)
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (q, essence(range))
        })
        .collect();
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (q, range) in &ranges {
        if *q <= 0.0 {
            continue;
        }
        if let Some(format) = format_of_mime(range) {
            return Ok(format);
        }
        if range == "*/*" || range == "application/*" {
            return Ok(Format::Json);
        }
        if range == "text/*" {
            return Ok(Format::Xml);
        }
    }
    Err(ApiError::new(
        StatusCode::NOT_ACCEPTABLE,
        IssueType::NotSupported,
        format!(
            "cannot answer in any of the accepted types ({accept}); Hearth writes application/fhir+json and application/fhir+xml"
        ),
    ))
}

/// The format of a request body, from its `Content-Type`.
pub fn body_format(headers: &HeaderMap) -> Result<Format, ApiError> {
    let unsupported = |message: String| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IssueType::NotSupported,
            message,
        )
    };
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(unsupported(
            "Content-Type is required: application/fhir+json or application/fhir+xml".into(),
        ));
    };
    let value = value.to_str().unwrap_or_default();
    let charset = value
        .split(';')
        .skip(1)
        .filter_map(|p| p.trim().strip_prefix("charset="))
        .map(|c| c.trim_matches('"').to_ascii_lowercase())
        .next();
    if charset
        .as_deref()
        .is_some_and(|c| c != "utf-8" && c != "utf8")
    {
        return Err(unsupported(format!(
            "charset in '{value}' is not supported; FHIR bodies are UTF-8"
        )));
    }
    format_of_mime(&essence(value)).ok_or_else(|| {
        unsupported(format!("Content-Type '{value}' is not supported; use application/fhir+json or application/fhir+xml"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accept(value: &str) -> Result<Format, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        negotiate(&headers, None).map(|n| n.format)
    }

    #[test]
    fn accept_and_format() {
        assert_eq!(accept("application/fhir+xml").unwrap(), Format::Xml);
        assert_eq!(
            accept("application/fhir+json;fhirVersion=4.0").unwrap(),
            Format::Json
        );
        assert_eq!(
            accept("text/html,application/xml;q=0.9,*/*;q=0.8").unwrap(),
            Format::Xml
        );
        assert_eq!(
            accept("application/json;q=0.5, application/fhir+xml").unwrap(),
            Format::Xml
        );
        assert_eq!(accept("*/*").unwrap(), Format::Json);
        assert_eq!(
            accept("text/plain").unwrap_err().status(),
            StatusCode::NOT_ACCEPTABLE
        );
        let n = negotiate(&HeaderMap::new(), Some("_format=xml&_pretty=true")).unwrap();
        assert_eq!(
            n,
            Negotiated {
                format: Format::Xml,
                pretty: true
            }
        );
        assert!(negotiate(&HeaderMap::new(), Some("_format=ttl")).is_err());
    }

    #[test]
    fn body_content_types() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            body_format(&headers).unwrap_err().status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/fhir+json; charset=UTF-8"),
        );
        assert_eq!(body_format(&headers).unwrap(), Format::Json);
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(body_format(&headers).is_err());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/fhir+xml;charset=latin1"),
        );
        assert!(body_format(&headers).is_err());
    }
}

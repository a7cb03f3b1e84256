//! Values of search parameters (R4 search §3.1.1.4): escapes, token `system|code`, references,
//! comparison prefixes, dates, numbers and quantities with their implicit precision, composite
//! parts.

use super::normalize;
use super::query::{Prefix, QueryError, StringMode, SystemMatch, UriMode, ValueMatch};
use super::reference_parts;
use super::registry::{ParamType, SearchParam};
use crate::fhir::instant::parse_range;

type Result<T> = std::result::Result<T, QueryError>;

/// Splits on `separator` where it is not escaped with a backslash; `\,`, `\|`, `\$` and `\\`
/// become the plain character.
pub fn split_unescaped(text: &str, separator: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(next) if next == separator => {
                    parts.last_mut().map(|p| p.push(next)).unwrap_or_default()
                }
                Some(next) => {
                    if let Some(p) = parts.last_mut() {
                        p.push('\\');
                        p.push(next);
                    }
                }
                None => parts.last_mut().map(|p| p.push('\\')).unwrap_or_default(),
            }
        } else if c == separator {
            parts.push(String::new());
        } else if let Some(p) = parts.last_mut() {
            p.push(c);
        }
    }
    if separator == ',' {
        // The other escapes stay for the value parsers; `\\` and `\$` are plain here.
        return parts;
    }
    parts
}

pub(super) fn parse_token(value: &str) -> ValueMatch {
    let parts = split_unescaped(value, '|');
    match parts.as_slice() {
        [code] => ValueMatch::Token {
            system: SystemMatch::Any,
            code: Some(unescape(code)),
        },
        [system, code] => ValueMatch::Token {
            system: if system.is_empty() {
                SystemMatch::None
            } else {
                SystemMatch::Is(unescape(system))
            },
            code: (!code.is_empty()).then(|| unescape(code)),
        },
        _ => {
            // More than one bar: everything after the first belongs to the code.
            let (system, code) = value.split_once('|').unwrap_or_default();
            ValueMatch::Token {
                system: SystemMatch::Is(system.to_owned()),
                code: Some(code.to_owned()),
            }
        }
    }
}

fn unescape(text: &str) -> String {
    text.replace("\\$", "$").replace("\\\\", "\\")
}

pub(super) fn parse_reference(
    param: &SearchParam,
    type_modifier: Option<&str>,
    value: &str,
    base: &str,
) -> Result<ValueMatch> {
    let local = value
        .strip_prefix(base)
        .and_then(|v| v.strip_prefix('/'))
        .unwrap_or(value);
    if local.contains("://") || local.starts_with("urn:") {
        return Ok(ValueMatch::Reference {
            target_type: None,
            id: None,
            url: Some(value.to_owned()),
        });
    }
    if let Some((t, id)) = reference_parts(local) {
        if type_modifier.is_some_and(|m| m != t) {
            return Err(QueryError::invalid(format!(
                "'{value}' does not match the modifier :{}",
                type_modifier.unwrap_or_default()
            )));
        }
        return Ok(ValueMatch::Reference {
            target_type: Some(t.to_owned()),
            id: Some(id.to_owned()),
            url: None,
        });
    }
    if crate::fhir::ResourceId::parse(local).is_err() {
        return Err(QueryError::invalid(format!(
            "{} '{value}' is not a resource id, Type/id or absolute URL",
            param.code
        )));
    }
    let target_type = type_modifier
        .map(str::to_owned)
        .or_else(|| (param.targets.len() == 1).then(|| param.targets[0].clone()));
    Ok(ValueMatch::Reference {
        target_type,
        id: Some(local.to_owned()),
        url: None,
    })
}

/// Splits a leading comparison prefix off a value.
fn split_prefix(value: &str) -> (Prefix, &str) {
    let prefix = match value.get(..2) {
        Some("eq") => Prefix::Eq,
        Some("ne") => Prefix::Ne,
        Some("gt") => Prefix::Gt,
        Some("lt") => Prefix::Lt,
        Some("ge") => Prefix::Ge,
        Some("le") => Prefix::Le,
        Some("sa") => Prefix::Sa,
        Some("eb") => Prefix::Eb,
        Some("ap") => Prefix::Ap,
        _ => return (Prefix::Eq, value),
    };
    (prefix, &value[2..])
}

pub(super) fn parse_date(code: &str, value: &str) -> Result<ValueMatch> {
    let (prefix, text) = split_prefix(value);
    // A `+` in a time zone arrives as a space when the client did not encode it.
    let text = text.replace(' ', "+");
    let (start, end) = parse_range(&text).ok_or_else(|| {
        QueryError::invalid(format!(
            "{code} '{value}' is not a FHIR date or dateTime (with an optional prefix such as ge)"
        ))
    })?;
    Ok(ValueMatch::Date { prefix, start, end })
}

/// A number and the range its written precision implies: `100` is `[99.5, 100.5)`, `1.50`
/// is `[1.495, 1.505)`, `1e2` is `[50, 150)`.
pub(super) fn parse_decimal(text: &str) -> Option<(f64, f64, f64)> {
    if text.is_empty()
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
    {
        return None;
    }
    let value: f64 = text.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    let (mantissa, exponent) = match lower.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (lower.as_str(), 0),
    };
    let decimals = mantissa.split_once('.').map_or(0, |(_, d)| d.len() as i32);
    let half = 0.5 * 10f64.powi(exponent - decimals);
    Some((value, value - half, value + half))
}

pub(super) fn parse_number(code: &str, value: &str) -> Result<ValueMatch> {
    let (prefix, text) = split_prefix(value);
    let (value, low, high) = parse_decimal(text).ok_or_else(|| {
        QueryError::invalid(format!(
            "{code} '{value}' is not a number (with an optional prefix such as gt)"
        ))
    })?;
    Ok(ValueMatch::Number {
        prefix,
        value,
        low,
        high,
    })
}

pub(super) fn parse_quantity(code: &str, value: &str) -> Result<ValueMatch> {
    let parts = split_unescaped(value, '|');
    let (number, system, unit) = match parts.as_slice() {
        [n] => (n.as_str(), None, None),
        [n, s, u] => (
            n.as_str(),
            (!s.is_empty()).then(|| s.clone()),
            (!u.is_empty()).then(|| u.clone()),
        ),
        _ => {
            return Err(QueryError::invalid(format!(
                "{code} '{value}' is not [prefix]number|system|code"
            )));
        }
    };
    let (prefix, text) = split_prefix(number);
    let (value, low, high) = parse_decimal(text).ok_or_else(|| {
        QueryError::invalid(format!(
            "{code} '{number}' is not a number (with an optional prefix such as gt)"
        ))
    })?;
    Ok(ValueMatch::Quantity {
        prefix,
        value,
        low,
        high,
        system,
        unit,
    })
}

pub(super) fn parse_composite(
    param: &SearchParam,
    code: &str,
    value: &str,
    base: &str,
) -> Result<ValueMatch> {
    let parts = split_unescaped(value, '$');
    if parts.len() != param.components.len() {
        return Err(QueryError::invalid(format!(
            "{code} takes {} values separated by $, not '{value}'",
            param.components.len()
        )));
    }
    let mut matches = Vec::new();
    for (component, part) in param.components.iter().zip(&parts) {
        // An empty part would match an empty code or text, which no resource holds.
        if part.is_empty() {
            return Err(QueryError::invalid(format!(
                "{code} '{value}' has an empty part: each of its {} values separated by $ is needed",
                param.components.len()
            )));
        }
        matches.push(match component.kind {
            ParamType::Token => parse_token(part),
            ParamType::Quantity => parse_quantity(code, part)?,
            ParamType::Number => parse_number(code, part)?,
            ParamType::Date => parse_date(code, part)?,
            ParamType::String => ValueMatch::String {
                mode: StringMode::Prefix,
                text: normalize(part),
            },
            ParamType::Uri => ValueMatch::Uri {
                mode: UriMode::Equal,
                value: part.clone(),
            },
            ParamType::Reference => {
                let fake = SearchParam {
                    targets: Vec::new(),
                    ..param.clone()
                };
                parse_reference(&fake, None, part, base)?
            }
            ParamType::Composite | ParamType::Special => {
                return Err(QueryError::unsupported(format!(
                    "{code} has a component that cannot be searched"
                )));
            }
        });
    }
    Ok(ValueMatch::Composite(matches))
}

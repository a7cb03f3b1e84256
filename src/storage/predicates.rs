//! The SQL predicates of search values (R4 search §3.1.1.4): strings by prefix, exactly or
//! inside; tokens by system and code; references; date ranges with every prefix; numbers and
//! quantities with their precision; URIs above and below; composite components.

use super::sql::{Bind, Sql};
use crate::search::query::{Prefix, StringMode, SystemMatch, UriMode, ValueMatch};

/// The largest character: `prefix || MAX_CHAR` bounds every string that starts with `prefix`.
pub(super) const MAX_CHAR: char = '\u{10FFFF}';

/// `column` starts with `prefix` (a range, so an index serves it).
fn starts_with(sql: &mut Sql, column: &str, prefix: &str) {
    sql.push("(").push(column).push(" >= ").text(prefix);
    sql.push(" AND ").push(column).push(" < ");
    sql.text(&format!("{prefix}{MAX_CHAR}")).push(")");
}

fn like_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// R4 search §3.1.1.4.2: the target range `[rs, re)` against the search range
/// `[start, end)`.
pub(super) fn date_predicate(
    sql: &mut Sql,
    rs: &str,
    re: &str,
    prefix: Prefix,
    start: i64,
    end: i64,
) {
    let (s, e) = (Bind::Int(start), Bind::Int(end));
    // `rs <= e` follows from `rs <= re <= e`; it bounds the start on both sides, so the
    // start index reads only the search value's own range rather than every earlier end.
    let contained = |sql: &mut Sql| {
        sql.push("(").push(rs).push(" >= ").bind(s.clone());
        sql.push(" AND ").push(rs).push(" <= ").bind(e.clone());
        sql.push(" AND ")
            .push(re)
            .push(" <= ")
            .bind(e.clone())
            .push(")");
    };
    // Stored ranges have start <= end, so each prefix also bounds one column on its own (the
    // redundant conjuncts below), which lets an index on start or end serve the search.
    match prefix {
        Prefix::Eq => {
            sql.push("(")
                .push(rs)
                .push(" < ")
                .bind(e.clone())
                .push(" AND ");
            contained(sql);
            sql.push(")");
        }
        Prefix::Ne => {
            sql.push("NOT ");
            contained(sql);
        }
        Prefix::Gt => {
            sql.push("(").push(re).push(" > ").bind(e.clone()).push(")");
        }
        Prefix::Lt => {
            sql.push("(").push(rs).push(" < ").bind(s.clone()).push(")");
        }
        // Either side of the `OR` ends at or after the search value's start (`re > e >= s`, or
        // `re >= rs >= s`): said on its own, that bound lets an index on the end read only
        // the ranges that can match, where the `OR` alone made every row a candidate.
        Prefix::Ge => {
            sql.push("(").push(re).push(" >= ").bind(s.clone());
            sql.push(" AND (")
                .push(re)
                .push(" > ")
                .bind(e.clone())
                .push(" OR ");
            contained(sql);
            sql.push("))");
        }
        // Likewise, either side starts at or before the search value's end.
        Prefix::Le => {
            sql.push("(").push(rs).push(" <= ").bind(e.clone());
            sql.push(" AND (")
                .push(rs)
                .push(" < ")
                .bind(s.clone())
                .push(" OR ");
            contained(sql);
            sql.push("))");
        }
        Prefix::Sa => {
            sql.push("(")
                .push(rs)
                .push(" >= ")
                .bind(e.clone())
                .push(")");
        }
        Prefix::Eb => {
            sql.push("(")
                .push(re)
                .push(" <= ")
                .bind(s.clone())
                .push(")");
        }
        Prefix::Ap => {
            // Within 10% of the distance between the value and now, and at least a day.
            let now = chrono::Utc::now().timestamp_millis();
            let gap = ((now - start).abs() / 10).max(86_400_000);
            sql.push("(")
                .push(rs)
                .push(" < ")
                .bind(Bind::Int(end.saturating_add(gap)));
            sql.push(" AND ")
                .push(re)
                .push(" > ")
                .bind(Bind::Int(start.saturating_sub(gap)));
            sql.push(")");
        }
    }
}

/// Numbers: the stored `[low, high]` against the search value and its precision range.
fn number_predicate(
    sql: &mut Sql,
    low: &str,
    high: &str,
    prefix: Prefix,
    v: f64,
    pl: f64,
    ph: f64,
) {
    let within = |sql: &mut Sql| {
        sql.push("(").push(low).push(" >= ").bind(Bind::Float(pl));
        sql.push(" AND ")
            .push(high)
            .push(" < ")
            .bind(Bind::Float(ph))
            .push(")");
    };
    match prefix {
        Prefix::Eq => within(sql),
        Prefix::Ne => {
            sql.push("NOT ");
            within(sql);
        }
        Prefix::Gt => {
            sql.push("(")
                .push(high)
                .push(" > ")
                .bind(Bind::Float(v))
                .push(")");
        }
        Prefix::Lt => {
            sql.push("(")
                .push(low)
                .push(" < ")
                .bind(Bind::Float(v))
                .push(")");
        }
        Prefix::Ge => {
            sql.push("(")
                .push(high)
                .push(" >= ")
                .bind(Bind::Float(v))
                .push(")");
        }
        Prefix::Le => {
            sql.push("(")
                .push(low)
                .push(" <= ")
                .bind(Bind::Float(v))
                .push(")");
        }
        Prefix::Sa => {
            sql.push("(")
                .push(low)
                .push(" > ")
                .bind(Bind::Float(v))
                .push(")");
        }
        Prefix::Eb => {
            sql.push("(")
                .push(high)
                .push(" < ")
                .bind(Bind::Float(v))
                .push(")");
        }
        Prefix::Ap => {
            let gap = (v.abs() / 10.0).max(ph - pl);
            sql.push("(")
                .push(low)
                .push(" >= ")
                .bind(Bind::Float(v - gap));
            sql.push(" AND ")
                .push(high)
                .push(" <= ")
                .bind(Bind::Float(v + gap))
                .push(")");
        }
    }
}

fn token_predicate(
    sql: &mut Sql,
    system_col: &str,
    value_col: &str,
    system: &SystemMatch,
    code: Option<&str>,
) {
    sql.push("(");
    let mut first = true;
    if let Some(code) = code {
        sql.push(value_col).push(" = ").text(code);
        first = false;
    }
    match system {
        SystemMatch::Any => {}
        SystemMatch::None => {
            if !first {
                sql.push(" AND ");
            }
            sql.push(system_col).push(" IS NULL");
            first = false;
        }
        SystemMatch::Is(s) => {
            if !first {
                sql.push(" AND ");
            }
            sql.push(system_col).push(" = ").text(s);
            first = false;
        }
    }
    if first {
        sql.push("1 = 1");
    }
    sql.push(")");
}

/// Every `/`-bounded prefix of a URI, itself included (for `:above`).
fn uri_prefixes(value: &str) -> Vec<String> {
    let start = value.find("://").map_or(0, |i| i + 3);
    let mut out = vec![value.to_owned()];
    let mut end = value.len();
    while let Some(i) = value[..end].rfind('/') {
        if i < start {
            break;
        }
        out.push(value[..i].to_owned());
        end = i;
    }
    out
}

pub(super) fn value_predicate(sql: &mut Sql, a: &str, value: &ValueMatch) {
    match value {
        ValueMatch::String { mode, text } => match mode {
            StringMode::Prefix => starts_with(sql, &format!("{a}.value_normalized"), text),
            StringMode::Exact => {
                sql.push(&format!("{a}.value_exact = ")).text(text);
            }
            StringMode::Contains => {
                sql.push(&format!("{a}.value_normalized LIKE "))
                    .text(&like_escaped(text))
                    .push(" ESCAPE '\\'");
            }
        },
        ValueMatch::Token { system, code } => token_predicate(
            sql,
            &format!("{a}.system"),
            &format!("{a}.value"),
            system,
            code.as_deref(),
        ),
        ValueMatch::TokenText(text) => starts_with(sql, &format!("{a}.display"), text),
        ValueMatch::Reference {
            target_type,
            id,
            url,
        } => {
            sql.push("(1 = 1");
            if let Some(t) = target_type {
                sql.push(&format!(" AND {a}.target_type = ")).text(t);
            }
            if let Some(id) = id {
                sql.push(&format!(" AND {a}.target_id = ")).text(id);
            }
            if let Some(url) = url {
                sql.push(&format!(" AND {a}.target_url = ")).text(url);
            }
            sql.push(")");
        }
        ValueMatch::Date { prefix, start, end } => date_predicate(
            sql,
            &format!("{a}.start_ms"),
            &format!("{a}.end_ms"),
            *prefix,
            *start,
            *end,
        ),
        ValueMatch::Number {
            prefix,
            value,
            low,
            high,
        } => number_predicate(
            sql,
            &format!("{a}.low"),
            &format!("{a}.high"),
            *prefix,
            *value,
            *low,
            *high,
        ),
        ValueMatch::Quantity {
            prefix,
            value,
            low,
            high,
            system,
            unit,
        } => {
            sql.push("(");
            number_predicate(
                sql,
                &format!("{a}.low"),
                &format!("{a}.high"),
                *prefix,
                *value,
                *low,
                *high,
            );
            if let Some(s) = system {
                sql.push(&format!(" AND {a}.system = ")).text(s);
            }
            if let Some(u) = unit {
                sql.push(&format!(" AND {a}.unit_code = ")).text(u);
            }
            sql.push(")");
        }
        ValueMatch::Uri { mode, value } => match mode {
            UriMode::Equal => {
                sql.push(&format!("{a}.value = ")).text(value);
            }
            UriMode::Below => starts_with(sql, &format!("{a}.value"), value),
            UriMode::Above => {
                sql.push(&format!("{a}.value IN ("));
                sql.text_list(&uri_prefixes(value));
                sql.push(")");
            }
        },
        ValueMatch::Composite(parts) => {
            sql.push("(1 = 1");
            for (i, part) in parts.iter().enumerate() {
                let slot = format!("{a}.s{}", i + 1);
                sql.push(" AND ");
                slot_predicate(sql, &slot, part);
            }
            sql.push(")");
        }
    }
}

/// One component of a composite match against slot columns `{slot}_system`, `_value`, `_low`,
/// `_high`.
fn slot_predicate(sql: &mut Sql, slot: &str, value: &ValueMatch) {
    let (system, text, low, high) = (
        format!("{slot}_system"),
        format!("{slot}_value"),
        format!("{slot}_low"),
        format!("{slot}_high"),
    );
    match value {
        ValueMatch::Token { system: s, code } => {
            token_predicate(sql, &system, &text, s, code.as_deref())
        }
        ValueMatch::String { text: t, .. } => starts_with(sql, &text, t),
        ValueMatch::Uri { value, .. } => {
            sql.push(&text).push(" = ").text(value);
        }
        ValueMatch::Reference {
            target_type,
            id,
            url,
        } => {
            let value = match (target_type, id, url) {
                (_, _, Some(url)) => url.clone(),
                (Some(t), Some(id), None) => format!("{t}/{id}"),
                (None, Some(id), None) => id.clone(),
                _ => String::new(),
            };
            if target_type.is_none() && url.is_none() {
                // A bare id matches any type: the stored value ends in "/id".
                sql.push(&text).push(" LIKE ").text(&format!("%/{value}"));
            } else {
                sql.push(&text).push(" = ").text(&value);
            }
        }
        // The slot holds a date's range in milliseconds as doubles, exact below 2^53; an open
        // end is `i64::MAX`, which a cast back to BIGINT would refuse on PostgreSQL. The
        // columns are compared as they are, so the lookup index can range over the end.
        ValueMatch::Date { prefix, start, end } => {
            date_predicate(sql, &low, &high, *prefix, *start, *end)
        }
        ValueMatch::Number {
            prefix,
            value,
            low: pl,
            high: ph,
        } => number_predicate(sql, &low, &high, *prefix, *value, *pl, *ph),
        ValueMatch::Quantity {
            prefix,
            value,
            low: pl,
            high: ph,
            system: s,
            unit,
        } => {
            sql.push("(");
            number_predicate(sql, &low, &high, *prefix, *value, *pl, *ph);
            if let Some(s) = s {
                sql.push(" AND ").push(&system).push(" = ").text(s);
            }
            if let Some(u) = unit {
                sql.push(" AND ").push(&text).push(" = ").text(u);
            }
            sql.push(")");
        }
        ValueMatch::TokenText(t) => starts_with(sql, &text, t),
        ValueMatch::Composite(_) => {
            sql.push("1 = 0");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_prefixes_stop_at_the_authority() {
        assert_eq!(
            uri_prefixes("http://acme.org/fhir/ValueSet/1"),
            [
                "http://acme.org/fhir/ValueSet/1",
                "http://acme.org/fhir/ValueSet",
                "http://acme.org/fhir",
                "http://acme.org"
            ]
        );
    }
}

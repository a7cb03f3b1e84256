//! The conditions of a search as SQL: each clause's index rows (`_id`, `_lastUpdated`,
//! matches and `:not`, `:missing`, chains, `_has`), read as the driving set of a page (`IN`)
//! or probed for each candidate (`EXISTS`). Values are always bound, never spliced into the
//! SQL text.

use std::fmt::Write as _;

use super::plans::Plan;
use super::predicates::{date_predicate, value_predicate};
use super::sql::Sql;
use crate::search::query::{Condition, SearchQuery, Table, ValueMatch};

pub(super) fn table_name(table: Table) -> &'static str {
    match table {
        Table::String => "search_string",
        Table::Token => "search_token",
        Table::Date => "search_date",
        Table::Number => "search_number",
        Table::Quantity => "search_quantity",
        Table::Reference => "search_reference",
        Table::Uri => "search_uri",
        Table::Composite => "search_composite",
    }
}

/// How a condition on index rows is written: `row.resource_id IN (SELECT …)`, which lets the
/// database drive the query from the index lookup, or a correlated `EXISTS (…)` probe of the
/// owner index for a row found another way. One condition of a search drives; the rest probe,
/// so a broad condition (every Observation with a common code) is never read in full just to
/// test a few candidates.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Probe {
    In,
    Exists,
}

/// Opens a condition on index table `table` (alias `a`) for the row `row` of type `t`:
/// `row.resource_id [NOT] IN (SELECT a.resource_id FROM table a WHERE a.resource_type = t` or
/// `[NOT] EXISTS (SELECT 1 FROM table a WHERE a.resource_type = t AND a.resource_id = row.resource_id`.
/// The caller adds `AND …` and closes it with `)`.
fn open_owned(sql: &mut Sql, probe: Probe, negate: bool, row: &str, table: &str, a: &str, t: &str) {
    match probe {
        Probe::In => {
            sql.push(row).push(if negate {
                ".resource_id NOT IN ("
            } else {
                ".resource_id IN ("
            });
            let _ = write!(
                sql.text,
                "SELECT {a}.resource_id FROM {table} {a} WHERE {a}.resource_type = "
            );
            sql.text(t);
        }
        Probe::Exists => {
            sql.push(if negate { "NOT EXISTS (" } else { "EXISTS (" });
            let _ = write!(sql.text, "SELECT 1 FROM {table} {a}");
            sql.owner_index(table)
                .push(&format!(" WHERE {a}.resource_type = "))
                .text(t);
            let _ = write!(sql.text, " AND {a}.resource_id = {row}.resource_id");
        }
    }
}

/// Writes the condition that resource alias `row` (of type `t`) meets `cond`.
fn condition(sql: &mut Sql, t: &str, row: &str, cond: &Condition, probe: Probe) {
    match cond {
        Condition::Ids(ids) => {
            sql.push(row).push(".resource_id IN (");
            sql.text_list(ids);
            sql.push(")");
        }
        Condition::LastUpdated(alternatives) => {
            sql.push("(");
            for (i, alternative) in alternatives.iter().enumerate() {
                if i > 0 {
                    sql.push(" OR ");
                }
                if let ValueMatch::Date { prefix, start, end } = alternative {
                    let at = format!("{row}.last_updated");
                    let after = format!("({row}.last_updated + 1)");
                    date_predicate(sql, &at, &after, *prefix, *start, *end);
                } else {
                    sql.push("1 = 0");
                }
            }
            sql.push(")");
        }
        Condition::Match {
            table,
            code,
            alternatives,
            negate,
        } => {
            let a = sql.alias();
            open_owned(sql, probe, *negate, row, table_name(*table), &a, t);
            sql.push(&format!(" AND {a}.code = "))
                .text(code)
                .push(" AND (");
            any_of(sql, &a, alternatives);
            sql.push("))");
        }
        Condition::Missing {
            table,
            code,
            missing,
        } => {
            let a = sql.alias();
            open_owned(sql, probe, *missing, row, table_name(*table), &a, t);
            sql.push(&format!(" AND {a}.code = ")).text(code).push(")");
        }
        Condition::Chain { code, targets } => {
            let a = sql.alias();
            open_owned(sql, probe, false, row, "search_reference", &a, t);
            chain_targets(sql, &a, code, targets);
            sql.push(")");
        }
        Condition::Has {
            source_type,
            code,
            inner,
        } => {
            let a = sql.alias();
            match probe {
                Probe::In => {
                    sql.push(row).push(".resource_id IN (");
                    let _ = write!(
                        sql.text,
                        "SELECT {a}.target_id FROM search_reference {a} WHERE {a}.resource_type = "
                    );
                    sql.text(source_type);
                }
                Probe::Exists => {
                    let _ = write!(
                        sql.text,
                        "EXISTS (SELECT 1 FROM search_reference {a} WHERE {a}.resource_type = "
                    );
                    sql.text(source_type);
                    let _ = write!(sql.text, " AND {a}.target_id = {row}.resource_id");
                }
            }
            sql.push(&format!(" AND {a}.code = "))
                .text(code)
                .push(&format!(" AND {a}.target_type = "))
                .text(t)
                .push(&format!(" AND {a}.resource_id IN ("));
            matching_ids(sql, source_type, inner);
            sql.push("))");
        }
        Condition::Or(conditions) => {
            sql.push("(");
            for (i, c) in conditions.iter().enumerate() {
                if i > 0 {
                    sql.push(" OR ");
                }
                condition(sql, t, row, c, probe);
            }
            if conditions.is_empty() {
                sql.push("1 = 0");
            }
            sql.push(")");
        }
    }
}

/// `SELECT resource_id` of the index rows of type `t` that a plain match selects, read from
/// its lookup index alone (whether their resources are live is for the caller to check).
/// `false`, and nothing written, for any other condition.
pub(super) fn index_ids(sql: &mut Sql, t: &str, cond: &Condition) -> bool {
    match_rows(sql, t, cond, Some("resource_id"))
}

/// `SELECT {column}` (a column of the index table; the constant `1` for `None`) of the index rows
/// of type `t` that a plain match selects; `false`, and nothing written, for any other condition.
pub(super) fn match_rows(sql: &mut Sql, t: &str, cond: &Condition, column: Option<&str>) -> bool {
    let Condition::Match {
        table,
        code,
        alternatives,
        negate: false,
    } = cond
    else {
        return false;
    };
    let a = sql.alias();
    let selected = column.map_or_else(|| "1".to_owned(), |column| format!("{a}.{column}"));
    let _ = write!(
        sql.text,
        "SELECT {selected} FROM {} {a}",
        table_name(*table)
    );
    // A composite's rows are always found by type and code first (`search::implied`).
    if *table == Table::Composite {
        sql.indexed_by("search_composite_lookup");
    }
    let _ = write!(sql.text, " WHERE {a}.resource_type = ");
    sql.text(t)
        .push(&format!(" AND {a}.code = "))
        .text(code)
        .push(" AND (");
    any_of(sql, &a, alternatives);
    sql.push(")");
    true
}

/// ` AND {a}.code = … AND (…)`: reference rows (alias `a`) through `code` to any of `targets`
/// that meets its condition.
fn chain_targets(sql: &mut Sql, a: &str, code: &str, targets: &[(String, Condition)]) {
    sql.push(&format!(" AND {a}.code = "))
        .text(code)
        .push(" AND (");
    for (i, (target, inner)) in targets.iter().enumerate() {
        if i > 0 {
            sql.push(" OR ");
        }
        let _ = write!(sql.text, "({a}.target_type = ");
        sql.text(target).push(&format!(" AND {a}.target_id IN ("));
        matching_ids(sql, target, inner);
        sql.push("))");
    }
    sql.push(")");
}

/// `SELECT resource_id` of the index rows of type `t` that a plain match or a chain selects.
/// Only live resources have index rows, so these are live resources, found without reading
/// `resources`. `false`, and nothing written, for any other condition.
pub(super) fn owner_ids(sql: &mut Sql, t: &str, cond: &Condition) -> bool {
    match cond {
        Condition::Chain { code, targets } => {
            let a = sql.alias();
            let _ = write!(
                sql.text,
                "SELECT {a}.resource_id FROM search_reference {a} WHERE {a}.resource_type = "
            );
            sql.text(t);
            chain_targets(sql, &a, code, targets);
            true
        }
        _ => index_ids(sql, t, cond),
    }
}

/// ` AND EXISTS (…)` for each clause of a single-type query, probing the resource `row`.
pub(super) fn probe_clauses(sql: &mut Sql, row: &str, clauses: &[crate::search::query::Clause]) {
    for clause in clauses {
        for (t, c) in &clause.per_type {
            sql.push(" AND ");
            condition(sql, t, row, c, Probe::Exists);
        }
    }
}

/// The alternatives of a parameter (comma-separated values), ORed, on index alias `a`, as a
/// balanced tree: SQLite nests `x OR y OR z` one level per term and refuses an expression past
/// 1,000 levels, which a few hundred values inside nested `_has` reached (a 500).
pub(super) fn any_of(sql: &mut Sql, a: &str, alternatives: &[ValueMatch]) {
    match alternatives {
        [] => {}
        [one] => value_predicate(sql, a, one),
        many => {
            let (left, right) = many.split_at(many.len() / 2);
            sql.push("(");
            any_of(sql, a, left);
            sql.push(") OR (");
            any_of(sql, a, right);
            sql.push(")");
        }
    }
}

/// `SELECT resource_id` of the live resources of type `t` that meet `inner`.
fn matching_ids(sql: &mut Sql, t: &str, inner: &Condition) {
    if owner_ids(sql, t, inner) {
        return;
    }
    let r = sql.alias();
    let _ = write!(
        sql.text,
        "SELECT {r}.resource_id FROM resources {r} WHERE {r}.resource_type = "
    );
    sql.text(t);
    let _ = write!(sql.text, " AND {r}.deleted = FALSE AND ");
    condition(sql, t, &r, inner, Probe::In);
}

fn ordered_clauses(query: &SearchQuery) -> Vec<&crate::search::query::Clause> {
    query.clauses.iter().collect()
}

/// The `WHERE` body of an already [`planned`] query, its narrowest clause driving.
pub(super) fn planned_filter(sql: &mut Sql, query: &SearchQuery) {
    filter(sql, query, Plan::Drive);
}

/// The `WHERE` body shared by the page and the count: live resources of the searched types
/// that meet every clause.
pub(super) fn filter(sql: &mut Sql, query: &SearchQuery, plan: Plan) {
    sql.push("r.resource_type IN (");
    sql.text_list(&query.types);
    sql.push(") AND r.deleted = FALSE");
    let single = query.types.len() == 1;
    // The narrowest clause drives (IN); the others probe each candidate (EXISTS).
    for (n, clause) in ordered_clauses(query).into_iter().enumerate() {
        let probe = if !single || (n == 0 && plan == Plan::Drive) {
            Probe::In
        } else {
            Probe::Exists
        };
        sql.push(" AND (");
        for (i, (t, c)) in clause.per_type.iter().enumerate() {
            if i > 0 {
                sql.push(" OR ");
            }
            if single {
                condition(sql, t, "r", c, probe);
            } else {
                sql.push("(r.resource_type = ").text(t).push(" AND ");
                condition(sql, t, "r", c, probe);
                sql.push(")");
            }
        }
        sql.push(")");
    }
}

//! How a search is planned: which of its clauses drives (the narrowest, measured by bounded
//! counts of index rows), whether its page reads the driving index or walks the resources in
//! order, and whether PostgreSQL may plan its statements once for all values.

use super::StorageResult;
use super::clauses::match_rows;
use super::connection::DbConnection;
use super::counts::Counts;
use super::search::CountRow;
use super::sql::{Bind, Sql, load};
use crate::search::query::{
    Condition, SearchQuery, SortBy, StringMode, SystemMatch, Table, ValueMatch,
};

/// How narrow a condition usually is (lower: fewer matches). The narrowest one drives the
/// query.
fn narrowness(cond: &Condition) -> u8 {
    match cond {
        Condition::Ids(_) => 0,
        Condition::Match { negate: true, .. } | Condition::Missing { .. } => 9,
        Condition::Match {
            table,
            alternatives,
            ..
        } => match table {
            Table::Reference => 1,
            Table::String
                if alternatives.iter().all(|a| {
                    matches!(
                        a,
                        ValueMatch::String {
                            mode: StringMode::Exact,
                            ..
                        }
                    )
                }) =>
            {
                2
            }
            Table::Token
                if alternatives.iter().all(|a| {
                    matches!(
                        a,
                        ValueMatch::Token {
                            system: SystemMatch::Is(_),
                            code: Some(_)
                        }
                    )
                }) =>
            {
                3
            }
            Table::Token | Table::Uri => 4,
            Table::String => 3,
            Table::Composite => 5,
            Table::Date | Table::Number | Table::Quantity => 7,
        },
        Condition::Or(conditions) => conditions.iter().map(narrowness).max().unwrap_or(9),
        Condition::Chain { .. } | Condition::Has { .. } => 6,
        Condition::LastUpdated(_) => 8,
    }
}

/// How the database finds the matches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Plan {
    /// The narrowest clause is read from its index (IN) and the others probe each candidate.
    Drive,
    /// The resources of the type are walked in result order and every clause probes each
    /// (EXISTS); the walk stops when the page is full. Right when matches are many, so the
    /// first page is found long before the end.
    Scan,
}

/// Candidates beyond which reading the driving index costs more than walking in order.
const DRIVE_LIMIT: i64 = 2000;

/// When several clauses reach [`DRIVE_LIMIT`], how far they are counted to tell them apart.
const TIE_LIMIT: i64 = 50_000;

/// Counts the index rows of a plain match, up to `limit`; a count of the last seconds in
/// `counts` answers without a statement ([`Counts`]).
fn bounded_count(
    conn: &mut DbConnection,
    counts: Option<&Counts>,
    t: &str,
    cond: &Condition,
    limit: i64,
) -> StorageResult<Option<i64>> {
    let postgres = matches!(conn, DbConnection::Postgres(_));
    let mut sql = Sql::new(postgres);
    sql.push("SELECT COUNT(*) AS n FROM (");
    if !match_rows(&mut sql, t, cond, None) {
        return Ok(None);
    }
    let remembered = counts.map(|c| (c, super::counts::key(&sql)));
    if let Some(n) = remembered.and_then(|(c, key)| c.get(key, limit)) {
        return Ok(Some(n));
    }
    sql.push(" LIMIT ").bind(Bind::Int(limit)).push(") c");
    let n = load!(conn, &sql, CountRow)?.first().map_or(0, |r| r.n);
    if let Some((c, key)) = remembered {
        c.put(key, limit, n);
    }
    Ok(Some(n))
}

/// The query with its clauses narrowest first, so the first drives and the others probe. In
/// a single-type search with several clauses, each plain match is measured by a bounded count
/// of its index rows (a token shared by every resource must not drive when a date range
/// matches a few hundred); other conditions, and ties, go by their kind.
pub(super) fn planned<'q>(
    conn: &mut DbConnection,
    counts: Option<&Counts>,
    query: &'q SearchQuery,
) -> StorageResult<std::borrow::Cow<'q, SearchQuery>> {
    Ok(measured(conn, counts, query)?.0)
}

/// [`planned`], with the index rows its driving clause was counted to, when they were.
pub(super) fn measured<'q>(
    conn: &mut DbConnection,
    counts: Option<&Counts>,
    query: &'q SearchQuery,
) -> StorageResult<(std::borrow::Cow<'q, SearchQuery>, Option<i64>)> {
    if query.clauses.len() < 2 {
        return Ok((std::borrow::Cow::Borrowed(query), None));
    }
    let measure = query.types.len() == 1;
    // The clauses likely narrowest by their kind are counted first, and each count stops one
    // row past the narrowest so far: which clause drives is all the counts decide, and a
    // patient's dozen Observations need not wait for a common code to be counted to 2,000.
    let mut clauses: Vec<_> = query
        .clauses
        .iter()
        .map(|clause| {
            let kind = clause.per_type.iter().map(|(_, c)| narrowness(c)).max();
            (kind.unwrap_or(9), clause)
        })
        .collect();
    clauses.sort_by_key(|(kind, _)| *kind);
    let mut narrowest = DRIVE_LIMIT;
    let mut keyed = Vec::with_capacity(clauses.len());
    for (kind, clause) in clauses {
        let rows = match (measure, clause.per_type.as_slice()) {
            (true, [(t, cond)]) if !matches!(cond, Condition::Ids(_)) => {
                let limit = (narrowest + 1).min(DRIVE_LIMIT);
                bounded_count(conn, counts, t, cond, limit)?.unwrap_or(DRIVE_LIMIT)
            }
            (true, [(_, Condition::Ids(_))]) => 0,
            _ => DRIVE_LIMIT,
        };
        narrowest = narrowest.min(rows);
        keyed.push(((rows, kind), clause.clone()));
    }
    // Two broad matches: count further, so the smaller of them drives.
    let capped = |clause: &crate::search::query::Clause| {
        matches!(
            clause.per_type.as_slice(),
            [(_, Condition::Match { negate: false, .. })]
        )
    };
    if measure
        && keyed
            .iter()
            .filter(|((rows, _), c)| *rows == DRIVE_LIMIT && capped(c))
            .count()
            >= 2
    {
        for ((rows, _), clause) in keyed.iter_mut() {
            if *rows == DRIVE_LIMIT
                && let [(t, cond)] = clause.per_type.as_slice()
                && let Some(n) = bounded_count(conn, counts, t, cond, TIE_LIMIT)?
            {
                *rows = n;
            }
        }
    }
    keyed.sort_by_key(|(key, _)| *key);
    let driver = keyed
        .first()
        .map(|((rows, _), _)| *rows)
        .filter(|_| measure);
    let mut ordered = query.clone();
    ordered.clauses = keyed.into_iter().map(|(_, c)| c).collect();
    Ok((std::borrow::Cow::Owned(ordered), driver))
}

/// Chooses the plan of a page: drive from the narrowest clause, unless the page is in id
/// order and that clause matches so many resources (a quick bounded count says so) that
/// walking the resources in id order fills the page sooner.
pub(super) fn choose_plan(
    conn: &mut DbConnection,
    counts: Option<&Counts>,
    query: &SearchQuery,
) -> StorageResult<Plan> {
    let single = query.types.len() == 1;
    let in_id_order = query
        .sort
        .iter()
        .all(|k| k.by == SortBy::Id && !k.descending);
    // With several conditions the intersection may be empty, and a walk would then read
    // every resource of the type; reading the narrowest index bounds the cost instead.
    let [first] = query.clauses.as_slice() else {
        return Ok(Plan::Drive);
    };
    if !single || !in_id_order {
        return Ok(Plan::Drive);
    }
    let (t, cond) = &first.per_type[0];
    match cond {
        Condition::Match { negate: false, .. } if narrowness(cond) >= 3 => {
            let n = bounded_count(conn, counts, t, cond, DRIVE_LIMIT)?.unwrap_or(0);
            Ok(if n >= DRIVE_LIMIT {
                Plan::Scan
            } else {
                Plan::Drive
            })
        }
        Condition::Missing { .. }
        | Condition::Match { negate: true, .. }
        | Condition::LastUpdated(_) => Ok(Plan::Scan),
        _ => Ok(Plan::Drive),
    }
}

/// Whether a search is of one type by plain (not negated) matches and `_id`s only: one in id
/// order (but for a date, number or quantity: [`ranged`]), or several, whose driver is then
/// measured ([`measured`]) and must be narrow and found by equality ([`drives_by_equality`]);
/// or by one chain of one link alone that ends in such a match ([`chain_to_a_match`]), whose
/// matches are then counted ([`narrow_chain`]). Other chains, `_has` and the like are planned
/// with their values. So are composites: a code and a threshold (`search::implied`) match
/// anything from none to every row of the code, and a plan made without them walked all
/// 240,000 Observations of a data set to find none.
pub(super) fn plain_matches(query: &SearchQuery) -> bool {
    if let [clause] = query.clauses.as_slice()
        && let [(_, chain @ Condition::Chain { .. })] = clause.per_type.as_slice()
    {
        return query.types.len() == 1 && query.sort.is_empty() && chain_to_a_match(chain);
    }
    let plain = |clause: &crate::search::query::Clause| {
        matches!(
            clause.per_type.as_slice(),
            [(
                _,
                Condition::Match {
                    negate: false,
                    table: Table::String
                        | Table::Token
                        | Table::Date
                        | Table::Number
                        | Table::Quantity
                        | Table::Reference
                        | Table::Uri,
                    ..
                } | Condition::Ids(_)
            )]
        )
    };
    query.types.len() == 1
        && !query.clauses.is_empty()
        && query.clauses.iter().all(plain)
        && (query.clauses.len() > 1 || query.sort.is_empty())
        && !(query.clauses.len() == 1 && query.clauses.first().is_some_and(ranged))
}

/// Whether a chain of one link (`patient.name=`) ends, in every target type, in a plain match
/// of a string, token, reference or URI, or in `_id`s. Its page reads the target's lookup index
/// for those values, then the chain's references to the matches, and takes the first ids:
/// PostgreSQL makes that plan without the values too (a name's prefix is estimated as a few
/// hundred rows), and planning it with them cost 1.2–1.8 ms of a 5–18 ms statement
/// (`benches/README.md`). Whether the values are that few is counted ([`narrow_chain`]). A
/// chain to a date, number or quantity keeps plans made with its values: an open range is
/// estimated as a third of its rows, which could make PostgreSQL read every reference of the
/// chain instead. So does a longer chain, whose first link's matches can each stand for
/// thousands (an organization's patients).
fn chain_to_a_match(cond: &Condition) -> bool {
    match cond {
        Condition::Chain { targets, .. } => {
            !targets.is_empty()
                && targets.iter().all(|(_, inner)| {
                    matches!(
                        inner,
                        Condition::Ids(_)
                            | Condition::Match {
                                negate: false,
                                table: Table::String | Table::Token | Table::Reference | Table::Uri,
                                ..
                            }
                    )
                })
        }
        _ => false,
    }
}

/// Whether the chain that is `query`'s one clause ([`chain_to_a_match`]) matches fewer than
/// [`DRIVE_LIMIT`] index rows in each target type (bounded counts, remembered in `counts`);
/// `true` for any other query. A plan made once probes the chain's references for every match
/// of the target, as a plan made with a few values does; for a broad one (`patient.name=s`,
/// thousands of names) PostgreSQL, given the values, walks the chain's resources in id order
/// instead and fills the page sooner: 19 ms against 57 ms on the million.
pub(super) fn narrow_chain(
    conn: &mut DbConnection,
    counts: Option<&Counts>,
    query: &SearchQuery,
) -> StorageResult<bool> {
    let [clause] = query.clauses.as_slice() else {
        return Ok(true);
    };
    let [(_, Condition::Chain { targets, .. })] = clause.per_type.as_slice() else {
        return Ok(true);
    };
    for (t, cond) in targets {
        if bounded_count(conn, counts, t, cond, DRIVE_LIMIT)?.unwrap_or(0) >= DRIVE_LIMIT {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether a clause is a date, number or quantity, which most prefixes match by a range open
/// on one side (`ge1990`, `gt120`). Planned once, PostgreSQL estimates such a range as a third
/// of its rows whatever its value, and for a narrow one (`birthdate=ge2019`) counted and paged
/// it by walking every row of the parameter in id order: 28 ms alone and about 100 ms under
/// load for a page of none, where the range read from its index takes a fraction of a
/// millisecond.
fn ranged(clause: &crate::search::query::Clause) -> bool {
    matches!(
        clause.per_type.as_slice(),
        [(
            _,
            Condition::Match {
                table: Table::Date | Table::Number | Table::Quantity,
                ..
            }
        )]
    )
}

/// Whether a [`plain_matches`] search, [`measured`] (`driver`: the index rows its driving clause
/// was counted to), may still be planned once: it has one clause, or its driver is narrow and
/// found by equality.
pub(super) fn still_once(query: &SearchQuery, driver: Option<i64>) -> bool {
    query.clauses.len() < 2
        || (driver.is_some_and(|rows| rows < DRIVE_LIMIT)
            && query.clauses.first().is_some_and(drives_by_equality))
}

/// Whether a driving clause finds its index rows by equality: `_id`s, references, tokens with
/// a code. A plan made once estimates such a match as the few rows it is, and drives from it.
/// A range (a name's prefix, a date, a threshold) it estimates as a share of the table, and
/// with another clause to probe it could choose to walk every resource of the type in id order
/// instead, as it does for `Observation?code=&value-quantity=gt` (`benches/README.md`).
fn drives_by_equality(clause: &crate::search::query::Clause) -> bool {
    match clause.per_type.as_slice() {
        [(_, Condition::Ids(_))] => true,
        [
            (
                _,
                Condition::Match {
                    table,
                    alternatives,
                    negate: false,
                    ..
                },
            ),
        ] => match table {
            Table::Reference => true,
            Table::Token => alternatives
                .iter()
                .all(|a| matches!(a, ValueMatch::Token { code: Some(_), .. })),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::plain_matches;
    use crate::search::Registry;

    /// Whether `Type?query` would be planned once for all values.
    fn once(registry: &Registry, t: &str, query: &str) -> bool {
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let parsed = crate::search::query::parse(registry, vec![t.into()], &params, "", true)
            .unwrap_or_else(|e| panic!("{t}?{query}: {e:?}"));
        plain_matches(&parsed)
    }

    #[test]
    fn chains_to_a_name_or_a_code_are_planned_once_and_others_with_their_values() {
        let registry = Registry::r4();
        for (t, query, expected) in [
            ("Encounter", "patient.name=smith", true),
            ("Encounter", "patient.identifier=urn:x|1", true),
            ("Encounter", "subject:Patient.organization.name=acme", false),
            ("Encounter", "patient._id=p1", true),
            ("Observation", "patient.birthdate=ge1990", false),
            ("Encounter", "patient.name:missing=true", false),
            ("Encounter", "patient.gender:not=male", false),
            (
                "Encounter",
                "patient.organization.name=acme&status=finished",
                false,
            ),
            ("Encounter", "patient.name=smith&_sort=date", false),
            ("Patient", "_has:Observation:patient:code=1234", false),
            // Plain matches as before.
            ("Patient", "name=smith", true),
            ("Patient", "birthdate=ge1990", false),
        ] {
            assert_eq!(once(&registry, t, query), expected, "{t}?{query}");
        }
    }
}

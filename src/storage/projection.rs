//! Projections: the token and date index values of the resources that match any of several
//! searches, read straight from the index tables in one statement, for figures over many
//! resources (the triage statistics) that would cost far more as pages of whole resources.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::StorageResult;
use super::clauses::{index_ids, planned_filter, probe_clauses};
use super::connection::DbConnection;
use super::sql::{Sql, load};
use crate::search::query::{Clause, Condition, SearchQuery};

/// One index value of a projected resource.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct IndexValue {
    /// The resource id.
    #[diesel(sql_type = Text)]
    pub resource_id: String,
    /// The search parameter code.
    #[diesel(sql_type = Text)]
    pub code: String,
    /// A token's code (empty for a date).
    #[diesel(sql_type = Text)]
    pub token: String,
    /// A date's start, UTC milliseconds (0 for a token).
    #[diesel(sql_type = BigInt)]
    pub start_ms: i64,
}

/// The values of the token parameters `tokens` and date parameters `dates` of the resources of
/// `resource_type` that match any of `queries` (each of that one type).
///
/// When the queries share all their clauses but one plain match each (the triage statistics:
/// the echo code, and the status or a date window), the candidates are read from those
/// matches' lookup indexes alone, and the shared clauses and the resource's liveness are
/// checked once per candidate rather than once per query. Otherwise each query is a branch of
/// its own, its first clause driving: the caller puts the narrowest first, and no round trip
/// is spent measuring the clauses (see `planned`).
pub(super) fn project(
    conn: &mut DbConnection,
    resource_type: &str,
    queries: &[SearchQuery],
    tokens: &[String],
    dates: &[String],
) -> StorageResult<Vec<IndexValue>> {
    let postgres = matches!(conn, DbConnection::Postgres(_));
    let mut sql = Sql::new(postgres);
    match shared(queries) {
        Some(Shared { common, own }) => {
            sql.push("WITH u(resource_id) AS (");
            for (i, (t, cond)) in own.into_iter().enumerate() {
                if i > 0 {
                    sql.push(" UNION ");
                }
                index_ids(&mut sql, t, cond);
            }
            sql.push("), c(resource_id) AS (SELECT r.resource_id FROM u CROSS JOIN resources r WHERE r.resource_type = ")
                .text(resource_type)
                .push(" AND r.resource_id = u.resource_id AND r.deleted = FALSE");
            probe_clauses(&mut sql, "r", &common);
        }
        None => {
            sql.push("WITH c(resource_id) AS (");
            for (i, query) in queries.iter().enumerate() {
                if i > 0 {
                    sql.push(" UNION ");
                }
                sql.push("SELECT r.resource_id FROM resources r WHERE ");
                planned_filter(&mut sql, query);
            }
        }
    }
    // `CROSS JOIN` makes SQLite read the candidates first and look each one up by the owner
    // index, rather than walk every row of the codes and probe the candidates.
    sql.push(") SELECT t.resource_id, t.code, COALESCE(t.value, '') AS token, 0 AS start_ms FROM c CROSS JOIN search_token t")
        .owner_index("search_token")
        .push(" WHERE t.resource_type = ")
        .text(resource_type)
        .push(" AND t.resource_id = c.resource_id AND t.code IN (");
    sql.text_list(tokens);
    sql.push(") UNION ALL SELECT d.resource_id, d.code, '' AS token, d.start_ms FROM c CROSS JOIN search_date d")
        .owner_index("search_date")
        .push(" WHERE d.resource_type = ")
        .text(resource_type)
        .push(" AND d.resource_id = c.resource_id AND d.code IN (");
    sql.text_list(dates);
    sql.push(")");
    Ok(load!(conn, &sql, IndexValue)?)
}

/// What several searches share.
struct Shared<'q> {
    /// The clauses every search has.
    common: Vec<Clause>,
    /// The one other clause of each search: a plain match of its type.
    own: Vec<(&'q str, &'q Condition)>,
}

/// The clauses every query has, and the one other clause of each, when that is a plain match
/// of the query's one type (see [`index_ids`]); `None` otherwise.
fn shared(queries: &[SearchQuery]) -> Option<Shared<'_>> {
    let first = queries.first()?;
    let single = |c: &Clause| c.per_type.len() == 1;
    let common: Vec<Clause> = first
        .clauses
        .iter()
        .filter(|c| single(c) && queries.iter().all(|q| q.clauses.contains(c)))
        .cloned()
        .collect();
    let mut own = Vec::with_capacity(queries.len());
    for query in queries {
        let mut rest = query.clauses.iter().filter(|c| !common.contains(c));
        match (rest.next(), rest.next()) {
            (Some(clause), None) => match clause.per_type.as_slice() {
                [(t, cond @ Condition::Match { negate: false, .. })] => {
                    own.push((t.as_str(), cond))
                }
                _ => return None,
            },
            _ => return None,
        }
    }
    Some(Shared { common, own })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    /// The resources a projection finds, by family name, on a real SQLite file: searches that
    /// share all but one plain match each take the lookup-index path, others a branch each.
    #[test]
    fn projections_find_what_any_search_finds() {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::config::DatabaseUrl::Sqlite(dir.path().join("p.db"));
        let rt = tokio::runtime::Runtime::new().unwrap();
        let storage =
            crate::storage::Storage::open(&url, 2, std::sync::Arc::new(crate::clock::SystemClock))
                .unwrap();
        let registry = crate::search::Registry::r4();
        let mut families = std::collections::HashMap::new();
        for (family, gender, born) in [
            ("Ann", "female", "1985"),
            ("Bea", "female", "1970"),
            ("Cat", "female", "1990"),
            ("Dan", "male", "1990"),
        ] {
            let patient = json!({"resourceType": "Patient", "name": [{"family": family}],
                "gender": gender, "birthDate": born});
            let index = crate::search::extract(&registry, &patient, "http://h/fhir");
            let stored = rt
                .block_on(storage.create("Patient", patient, index))
                .unwrap();
            families.insert(stored.id, family);
        }
        let query = |params: &[(&str, &str)]| {
            let params: Vec<(String, String)> = params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            crate::search::query::parse(&registry, vec!["Patient".into()], &params, "", true)
                .unwrap()
        };
        let found = |queries: Vec<crate::search::query::SearchQuery>| {
            let values = rt
                .block_on(storage.project(
                    "Patient",
                    queries,
                    vec!["gender".into()],
                    vec!["birthdate".into()],
                ))
                .unwrap();
            values
                .iter()
                .map(|v| families[&v.resource_id])
                .collect::<BTreeSet<_>>()
        };
        let born_since_1980 = || query(&[("gender", "female"), ("birthdate", "ge1980")]);
        // Shared: the gender, then a date window or a name.
        assert_eq!(
            found(vec![
                born_since_1980(),
                query(&[("gender", "female"), ("family", "bea")])
            ]),
            BTreeSet::from(["Ann", "Bea", "Cat"])
        );
        // Nothing shared: a branch each.
        assert_eq!(
            found(vec![
                born_since_1980(),
                query(&[("gender", "male"), ("family", "dan")])
            ]),
            BTreeSet::from(["Ann", "Cat", "Dan"])
        );
        // One search alone.
        assert_eq!(
            found(vec![query(&[("gender", "male")])]),
            BTreeSet::from(["Dan"])
        );
    }
}

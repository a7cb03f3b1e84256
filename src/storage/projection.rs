//! Projections: the token and date index values of the resources that match any of several
//! searches, read straight from the index tables in one statement, for figures over many
//! resources (the triage statistics) that would cost far more as pages of whole resources.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::StorageResult;
use super::connection::DbConnection;
use super::search::{planned, planned_filter};
use super::sql::{Sql, load};
use crate::search::query::SearchQuery;

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
pub(super) fn project(
    conn: &mut DbConnection,
    resource_type: &str,
    queries: &[SearchQuery],
    tokens: &[String],
    dates: &[String],
) -> StorageResult<Vec<IndexValue>> {
    let postgres = matches!(conn, DbConnection::Postgres(_));
    let mut sql = Sql::new(postgres);
    sql.push("WITH c(resource_id) AS (");
    for (i, query) in queries.iter().enumerate() {
        if i > 0 {
            sql.push(" UNION ");
        }
        let query = planned(conn, postgres, query)?;
        sql.push("SELECT r.resource_id FROM resources r WHERE ");
        planned_filter(&mut sql, &query);
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

//! Search as SQL over the index tables. A parsed [`SearchQuery`] becomes one query for the
//! page (keyset-paged on the sort keys, with the resource type and id as the final tiebreak),
//! one count when a total is wanted, and a few for `_include`/`_revinclude`. The conditions
//! are written by `storage::clauses`, and the plan chosen by `storage::plans`. Values are
//! always bound, never spliced into the SQL text.

use std::fmt::Write as _;

use base64::Engine as _;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Double, Nullable, Text};
use serde::{Deserialize, Serialize};

use super::clauses::{any_of, filter, owner_ids, table_name};
use super::connection::{DbConnection, plan_once};
use super::contents::{Contents, Kind, no_content};
use super::counts::Counts;
use super::includes::{TargetRow, includes};
use super::plans::{Plan, choose_plan, measured, narrow_chain, plain_matches, planned, still_once};
use super::predicates::MAX_CHAR;
use super::sql::{Bind, Sql, load};
use super::{StorageError, StorageResult};
use crate::search::query::{Condition, SearchQuery, SortBy, SortKey, Table, Total};

/// A resource found by a search.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Its type.
    pub resource_type: String,
    /// Its id.
    pub id: String,
    /// Its current content.
    pub content: std::sync::Arc<[u8]>,
}

/// One page of results.
#[derive(Debug, Default)]
pub struct SearchPage {
    /// The matches, in order.
    pub matches: Vec<Hit>,
    /// Resources added by `_include`/`_revinclude`.
    pub included: Vec<Hit>,
    /// The number of matches, when asked for (or known).
    pub total: Option<i64>,
    /// The cursor of the next page.
    pub next: Option<String>,
    /// The cursor of the previous page.
    pub previous: Option<String>,
}

/// The kind of value a sort key holds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum KeyKind {
    Text,
    Int,
    Float,
}

fn key_kind(by: &SortBy) -> KeyKind {
    match by {
        SortBy::Id => KeyKind::Text,
        SortBy::LastUpdated => KeyKind::Int,
        SortBy::Param { table, .. } => match table {
            Table::Date => KeyKind::Int,
            Table::Number | Table::Quantity => KeyKind::Float,
            _ => KeyKind::Text,
        },
    }
}

/// The SQL of a sort key for resource alias `r`. Resources without a value sort last in both
/// directions (a sentinel stands in for the missing value).
fn key_expression(sql: &mut Sql, key: &SortKey) {
    match &key.by {
        SortBy::Id => {
            sql.push("r.resource_id");
        }
        SortBy::LastUpdated => {
            sql.push("r.last_updated");
        }
        SortBy::Param { table, code } => {
            let column = match table {
                Table::String => "value_normalized",
                Table::Token => "value",
                Table::Date => "start_ms",
                Table::Number | Table::Quantity => "low",
                Table::Reference => "target_id",
                Table::Uri => "value",
                Table::Composite => "s1_value",
            };
            let aggregate = if key.descending { "MAX" } else { "MIN" };
            let a = sql.alias();
            let _ = write!(
                sql.text,
                "COALESCE((SELECT {aggregate}({a}.{column}) FROM {} {a}",
                table_name(*table)
            );
            sql.owner_index(table_name(*table));
            let _ = write!(
                sql.text,
                " WHERE {a}.resource_type = r.resource_type AND {a}.resource_id = r.resource_id AND {a}.code = "
            );
            sql.text(code).push("), ");
            let sentinel = match (key_kind(&key.by), key.descending) {
                (KeyKind::Text, false) => Bind::Text(MAX_CHAR.to_string()),
                (KeyKind::Text, true) => Bind::Text(String::new()),
                (KeyKind::Int, false) => Bind::Int(i64::MAX),
                (KeyKind::Int, true) => Bind::Int(i64::MIN),
                (KeyKind::Float, false) => Bind::Float(f64::MAX),
                (KeyKind::Float, true) => Bind::Float(f64::MIN),
            };
            sql.bind(sentinel).push(")");
        }
    }
}

/// A position in the result order, carried by `next`/`previous` links.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cursor {
    /// True for "the page before this position".
    #[serde(rename = "b")]
    before: bool,
    /// Sort key values, then type and id.
    #[serde(rename = "k")]
    keys: Vec<Bind>,
}

impl Cursor {
    fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    fn decode(text: &str) -> Option<Cursor> {
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()?;
        let cursor: Cursor = serde_json::from_slice(&json).ok()?;
        // Its text came from the database, which holds no NUL (PostgreSQL's text refuses it).
        let text_ok = |key: &Bind| match key {
            Bind::Text(t) | Bind::OptText(Some(t)) => !t.contains('\0'),
            _ => true,
        };
        cursor.keys.iter().all(text_ok).then_some(cursor)
    }
}

#[derive(QueryableByName)]
struct PageRow {
    #[diesel(sql_type = Text)]
    resource_type: String,
    #[diesel(sql_type = Text)]
    resource_id: String,
    #[diesel(sql_type = BigInt)]
    version_id: i64,
    #[diesel(sql_type = Nullable<Binary>)]
    content: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Text>)]
    t0: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    i0: Option<i64>,
    #[diesel(sql_type = Nullable<Double>)]
    f0: Option<f64>,
    #[diesel(sql_type = Nullable<Text>)]
    t1: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    i1: Option<i64>,
    #[diesel(sql_type = Nullable<Double>)]
    f1: Option<f64>,
    #[diesel(sql_type = Nullable<Text>)]
    t2: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    i2: Option<i64>,
    #[diesel(sql_type = Nullable<Double>)]
    f2: Option<f64>,
}

impl PageRow {
    fn cursor(&self, kinds: &[KeyKind], before: bool) -> Cursor {
        let slots = [
            (&self.t0, self.i0, self.f0),
            (&self.t1, self.i1, self.f1),
            (&self.t2, self.i2, self.f2),
        ];
        let mut keys: Vec<Bind> = kinds
            .iter()
            .zip(slots)
            .map(|(kind, (t, i, f))| match kind {
                KeyKind::Text => Bind::Text(t.clone().unwrap_or_default()),
                KeyKind::Int => Bind::Int(i.unwrap_or_default()),
                KeyKind::Float => Bind::Float(f.unwrap_or_default()),
            })
            .collect();
        keys.push(Bind::Text(self.resource_type.clone()));
        keys.push(Bind::Text(self.resource_id.clone()));
        Cursor { before, keys }
    }
}

#[derive(QueryableByName)]
pub(super) struct CountRow {
    #[diesel(sql_type = BigInt)]
    pub(super) n: i64,
}

/// Runs a search.
pub(super) fn search(
    conn: &mut DbConnection,
    contents: &Contents,
    counts: &Counts,
    query: &SearchQuery,
) -> StorageResult<SearchPage> {
    let postgres = matches!(conn, DbConnection::Postgres(_));
    // A search of one type by plain conditions (or by one chain to a plain match) reads its
    // lookup indexes the same way for every value: on PostgreSQL its statements are planned
    // once ([`plan_once`]), unless its driver or its chain's matches, once measured, or its
    // page's plan (below) call for plans made with the values.
    let once = plain_matches(query);
    plan_once(conn, once)?;
    let (query, driver) = measured(conn, Some(counts), query)?;
    let query = &*query;
    if once
        && !(still_once(query, driver) && (!postgres || narrow_chain(conn, Some(counts), query)?))
    {
        plan_once(conn, false)?;
    }
    let mut page = SearchPage::default();
    let count_only = query.summary == Some(crate::fhir::view::Summary::Count);
    if count_only || matches!(query.total, Total::Accurate | Total::Estimate) {
        let sql = count_sql(query, postgres);
        let rows = load!(conn, &sql, CountRow)?;
        page.total = rows.first().map(|r| r.n);
    }
    if count_only || query.count == 0 {
        return Ok(page);
    }
    let cursor = match &query.cursor {
        Some(text) => Some(Cursor::decode(text).ok_or_else(|| {
            StorageError::BadCursor(format!(
                "the page cursor '{text}' is not one this server issued"
            ))
        })?),
        None => None,
    };
    let kinds: Vec<KeyKind> = query.sort.iter().map(|k| key_kind(&k.by)).collect();
    if let Some(c) = &cursor
        && (c.keys.len() != kinds.len() + 2
            || !c.keys.iter().zip(&kinds).all(|(b, k)| {
                matches!(
                    (b, k),
                    (Bind::Text(_), KeyKind::Text)
                        | (Bind::Int(_), KeyKind::Int)
                        | (Bind::Float(_), KeyKind::Float)
                )
            }))
    {
        return Err(StorageError::BadCursor(
            "the page cursor does not belong to this search (its _sort changed)".into(),
        ));
    }
    let before = cursor.as_ref().is_some_and(|c| c.before);
    let plan = choose_plan(conn, Some(counts), query)?;
    if once && plan != Plan::Drive {
        plan_once(conn, false)?;
    }
    let kind = Kind::search(query);
    let with_content = !contents.warm(kind);
    let sql = page_sql(query, &kinds, cursor.as_ref(), postgres, plan, with_content);
    tracing::debug!(sql = sql.text, binds = ?sql.binds, "search page");
    let mut rows = load!(conn, &sql, PageRow)?;
    let more = rows.len() > query.count;
    rows.truncate(query.count);
    if before {
        rows.reverse();
    }
    // Links: forward paging knows whether more follow; a backward page always has one after it.
    let (has_next, has_previous) = match (&cursor, before) {
        (None, _) => (more, false),
        (Some(_), false) => (more, true),
        (Some(_), true) => (true, more),
    };
    if has_next && let Some(last) = rows.last() {
        page.next = Some(last.cursor(&kinds, false).encode());
    }
    if has_previous && let Some(first) = rows.first() {
        page.previous = Some(first.cursor(&kinds, true).encode());
    }
    if page.total.is_none() && query.total == Total::Default && cursor.is_none() && !more {
        page.total = Some(rows.len() as i64);
    }
    let rows = rows
        .into_iter()
        .map(|r| ((r.resource_type, r.resource_id, r.version_id), r.content))
        .collect();
    page.matches = contents.complete(conn, postgres, kind, rows)?;
    if !query.includes.is_empty() || !query.revincludes.is_empty() {
        page.included = includes(conn, contents, postgres, query, &page.matches)?;
    }
    Ok(page)
}

/// The count of matches. A search of one type with one plain condition counts its index rows
/// directly (only live resources have index rows), without touching `resources`.
fn count_sql(query: &SearchQuery, postgres: bool) -> Sql {
    let mut sql = Sql::new(postgres);
    if let ([t], [clause]) = (query.types.as_slice(), query.clauses.as_slice())
        && let [
            (
                _,
                Condition::Match {
                    table,
                    code,
                    alternatives,
                    negate: false,
                },
            ),
        ] = clause.per_type.as_slice()
    {
        let a = "x";
        // On SQLite the unary `+` keeps the planner from walking the owner index (in
        // resource_id order, for the DISTINCT) instead of the lookup index.
        let plus = if postgres { "" } else { "+" };
        let _ = write!(
            sql.text,
            "SELECT COUNT(DISTINCT {plus}{a}.resource_id) AS n FROM {} {a} WHERE {a}.resource_type = ",
            table_name(*table)
        );
        sql.text(t).push(" AND x.code = ").text(code).push(" AND (");
        any_of(&mut sql, a, alternatives);
        sql.push(")");
        return sql;
    }
    sql.push("SELECT COUNT(*) AS n FROM resources r WHERE ");
    filter(&mut sql, query, Plan::Drive);
    sql
}

/// The page query: the matches with their current versions and sort keys, ordered and limited
/// (after the cursor when there is one), and only then joined to their contents, unless they
/// are to come from memory ([`Contents::complete`]).
fn page_sql(
    query: &SearchQuery,
    kinds: &[KeyKind],
    cursor: Option<&Cursor>,
    postgres: bool,
    plan: Plan,
    with_content: bool,
) -> Sql {
    let before = cursor.is_some_and(|c| c.before);
    let mut sql = Sql::new(postgres);
    sql.push("SELECT p.resource_type, p.resource_id, p.version_id");
    sql.push(", ").push(if with_content {
        "v.content"
    } else {
        no_content(postgres)
    });
    for slot in 0..3 {
        let kind = kinds.get(slot).copied();
        let column = |k: KeyKind, cast: &str| {
            if kind == Some(k) {
                format!("p.k{slot}")
            } else {
                format!("CAST(NULL AS {cast})")
            }
        };
        let _ = write!(
            sql.text,
            ", {} AS t{slot}, {} AS i{slot}, {} AS f{slot}",
            column(KeyKind::Text, "TEXT"),
            column(KeyKind::Int, "BIGINT"),
            column(KeyKind::Float, "DOUBLE PRECISION")
        );
    }
    let keys: String = (0..query.sort.len()).map(|i| format!(", s.k{i}")).collect();
    let _ = write!(
        sql.text,
        " FROM (SELECT s.resource_type, s.resource_id, s.version_id{keys} FROM (SELECT r.resource_type, r.resource_id, r.version_id"
    );
    for (i, key) in query.sort.iter().enumerate() {
        sql.push(", ");
        key_expression(&mut sql, key);
        let _ = write!(sql.text, " AS k{i}");
    }
    sql.push(" FROM resources r WHERE ");
    match windowed(query, plan) {
        Some((t, cond)) => window(&mut sql, t, cond, cursor, query.count),
        None => filter(&mut sql, query, plan),
    }
    sql.push(") s");
    // Columns in order with their direction; the type and id break ties, ascending.
    let mut columns: Vec<(String, bool)> = query
        .sort
        .iter()
        .enumerate()
        .map(|(i, k)| (format!("s.k{i}"), k.descending))
        .collect();
    columns.push(("s.resource_type".into(), false));
    columns.push(("s.resource_id".into(), false));
    if let Some(c) = cursor {
        sql.push(" WHERE ");
        keyset(&mut sql, &columns, &c.keys, c.before);
    }
    let order = |sql: &mut Sql, alias: &str| {
        sql.push(" ORDER BY ");
        for (i, (column, descending)) in columns.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            // A page before the cursor is read backwards, then turned around.
            let desc = *descending != before;
            sql.push(&column.replacen("s.", alias, 1));
            sql.push(if desc { " DESC" } else { " ASC" });
        }
    };
    order(&mut sql, "s.");
    sql.push(" LIMIT ").bind(Bind::Int(query.count as i64 + 1));
    sql.push(") p");
    if with_content {
        sql.push(" JOIN resource_versions v ON v.resource_type = p.resource_type AND v.resource_id = p.resource_id AND v.version_id = p.version_id");
    }
    order(&mut sql, "p.");
    sql
}

/// The one condition of a page in id order that its index rows alone can answer (a plain
/// match or a chain, driving): the page's ids are then chosen from the index before any
/// resource is read.
fn windowed(query: &SearchQuery, plan: Plan) -> Option<(&str, &Condition)> {
    if plan != Plan::Drive || !query.sort.is_empty() {
        return None;
    }
    let ([_], [clause]) = (query.types.as_slice(), query.clauses.as_slice()) else {
        return None;
    };
    match clause.per_type.as_slice() {
        [(t, cond @ (Condition::Match { negate: false, .. } | Condition::Chain { .. }))] => {
            Some((t.as_str(), cond))
        }
        _ => None,
    }
}

/// The `WHERE` body of a [`windowed`] page: the live resources among the first `count + 1`
/// distinct owners of the matching index rows after (or before) the cursor, in id order. A
/// name shared by 300 patients reads 52 resources, not 300.
fn window(sql: &mut Sql, t: &str, cond: &Condition, cursor: Option<&Cursor>, count: usize) {
    sql.push("r.resource_type = ").text(t);
    sql.push(" AND r.deleted = FALSE AND r.resource_id IN (SELECT DISTINCT w.resource_id FROM (");
    owner_ids(sql, t, cond);
    // PostgreSQL estimates a composite's code and threshold as if they were independent (a
    // respiratory rate above 50 as a tenth of the codes times most values), and would walk
    // every row of the composite in id order for a page that has no match. Dates, numbers
    // and quantities the same: the statistics of `end_ms` are those of every code together
    // (a birth date after 2020 as the share of all dates after 2020, AuditEvents included).
    // The driving set was counted below 2,000 rows: it is read whole from the lookup index,
    // then sorted.
    if matches!(
        cond,
        Condition::Match {
            table: Table::Composite | Table::Date | Table::Number | Table::Quantity,
            ..
        }
    ) {
        sql.fence();
    }
    sql.push(") w");
    let before = cursor.is_some_and(|c| c.before);
    // Without `_sort`, a cursor holds the type and the id.
    if let Some(c) = cursor
        && let [_, id] = c.keys.as_slice()
    {
        sql.push(" WHERE ");
        keyset(
            sql,
            &[("w.resource_id".into(), false)],
            std::slice::from_ref(id),
            before,
        );
    }
    sql.push(if before {
        " ORDER BY w.resource_id DESC LIMIT "
    } else {
        " ORDER BY w.resource_id LIMIT "
    })
    .bind(Bind::Int(count as i64 + 1))
    .push(")");
}

/// The query plans of a search (the page query and, when a total is asked for, the count), as
/// the database reports them: `EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN` on PostgreSQL.
pub(super) fn explain(conn: &mut DbConnection, query: &SearchQuery) -> StorageResult<String> {
    let postgres = matches!(conn, DbConnection::Postgres(_));
    let query = &*planned(conn, None, query)?;
    let kinds: Vec<KeyKind> = query.sort.iter().map(|k| key_kind(&k.by)).collect();
    let plan = choose_plan(conn, None, query)?;
    let mut statements = vec![page_sql(query, &kinds, None, postgres, plan, true)];
    if matches!(query.total, Total::Accurate | Total::Estimate) {
        statements.push(count_sql(query, postgres));
    }
    let mut out = String::new();
    for statement in statements {
        let mut plan = Sql::new(postgres);
        plan.push(if postgres {
            "EXPLAIN "
        } else {
            "EXPLAIN QUERY PLAN "
        });
        plan.append(statement);
        if postgres {
            for row in load!(conn, &plan, PgPlanRow)? {
                out.push_str(&row.plan);
                out.push('\n');
            }
        } else {
            for row in load!(conn, &plan, SqlitePlanRow)? {
                let _ = writeln!(out, "{}{}", "  ".repeat(depth_of(row.parent)), row.detail);
            }
        }
        out.push('\n');
    }
    Ok(out)
}

fn depth_of(parent: i64) -> usize {
    usize::from(parent != 0)
}

#[derive(QueryableByName)]
struct PgPlanRow {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    plan: String,
}

#[derive(QueryableByName)]
struct SqlitePlanRow {
    #[diesel(sql_type = BigInt)]
    parent: i64,
    #[diesel(sql_type = Text)]
    detail: String,
}

/// Rows after (or before) the cursor position in the order of `columns`.
fn keyset(sql: &mut Sql, columns: &[(String, bool)], values: &[Bind], before: bool) {
    sql.push("(");
    for i in 0..columns.len() {
        if i > 0 {
            sql.push(" OR ");
        }
        sql.push("(");
        for (column, value) in columns.iter().zip(values).take(i) {
            sql.push(&column.0)
                .push(" = ")
                .bind(value.clone())
                .push(" AND ");
        }
        let (column, descending) = &columns[i];
        // Ascending forward (or descending backward) pages go up from the cursor.
        let up = *descending == before;
        sql.push(column).push(if up { " > " } else { " < " });
        sql.bind(values[i].clone()).push(")");
    }
    sql.push(")");
}

/// The ids of live resources of `query`'s type that match it (for conditional interactions),
/// at most `limit`.
pub(super) fn matching(
    conn: &mut DbConnection,
    query: &SearchQuery,
    limit: usize,
) -> StorageResult<Vec<String>> {
    let postgres = matches!(conn, DbConnection::Postgres(_));
    let query = &*planned(conn, None, query)?;
    let mut sql = Sql::new(postgres);
    sql.push("SELECT r.resource_type, r.resource_id FROM resources r WHERE ");
    filter(&mut sql, query, Plan::Drive);
    sql.push(" ORDER BY r.resource_id LIMIT ")
        .bind(Bind::Int(limit as i64));
    Ok(load!(conn, &sql, TargetRow)?
        .into_iter()
        .map(|r| r.resource_id)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c = Cursor {
            before: true,
            keys: vec![Bind::Text("a".into()), Bind::Int(-3), Bind::Float(1.5)],
        };
        let back = Cursor::decode(&c.encode()).unwrap();
        assert!(back.before);
        assert_eq!(back.keys, c.keys);
        assert!(Cursor::decode("not a cursor").is_none());
        let nul = Cursor {
            before: false,
            keys: vec![Bind::Text("a\0".into()), Bind::Text("Patient".into())],
        };
        assert!(
            Cursor::decode(&nul.encode()).is_none(),
            "no text of ours holds a NUL"
        );
    }

    /// Which clause drives is decided by counts of index rows, each stopped one row past the
    /// narrowest so far: the narrowest still drives whether it is counted first or last, and
    /// whatever the order of the parameters.
    #[test]
    fn the_narrowest_clause_drives_though_counts_stop_early() {
        use crate::search::extract::{ReferenceRow, TokenRow};
        use r2d2::ManageConnection;
        let dir = tempfile::tempdir().unwrap();
        let url = crate::config::DatabaseUrl::Sqlite(dir.path().join("p.db"));
        let mut conn = super::super::manager_for(&url).connect().unwrap();
        super::super::connection::run_migrations(&mut conn).unwrap();
        // 40 Observations: all of patient `many`'s, all with code `common`; 3 with code `rare`;
        // 2 of them (with code `common`) also with performer `few`.
        for i in 0..40 {
            let code = |c: &str| TokenRow {
                code: "code".into(),
                system: Some("s".into()),
                value: Some(c.into()),
                display: None,
            };
            let reference = |code: &str, id: &str| ReferenceRow {
                code: code.into(),
                target_type: Some("Patient".into()),
                target_id: Some(id.into()),
                target_url: None,
            };
            let mut rows = crate::search::IndexRows {
                tokens: vec![code("common")],
                references: vec![reference("patient", "many")],
                ..Default::default()
            };
            if i < 3 {
                rows.tokens.push(code("rare"));
            }
            if (10..12).contains(&i) {
                rows.references.push(reference("performer", "few"));
            }
            super::super::index::insert(
                &mut conn,
                "Observation",
                &format!("o{i}"),
                super::super::index::Rows::Extracted(&rows),
            )
            .unwrap();
        }
        let driver = |conn: &mut DbConnection, params: &[(&str, &str)]| {
            let params: Vec<(String, String)> = params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let registry = crate::search::Registry::r4();
            let query = crate::search::query::parse(
                &registry,
                vec!["Observation".into()],
                &params,
                "",
                true,
            )
            .unwrap();
            let planned = planned(conn, None, &query).unwrap();
            format!("{:?}", planned.clauses[0].per_type[0].1)
        };
        // A reference is counted first by its kind; the token after it, to at most 41 rows.
        let first = driver(&mut conn, &[("patient", "many"), ("code", "s|rare")]);
        assert!(first.contains("\"rare\""), "{first}");
        let first = driver(&mut conn, &[("code", "s|rare"), ("patient", "many")]);
        assert!(first.contains("\"rare\""), "{first}");
        // The reference is narrowest: the token is counted to 3 rows only, and still loses.
        let first = driver(&mut conn, &[("code", "s|common"), ("performer", "few")]);
        assert!(first.contains("\"few\""), "{first}");
        let first = driver(&mut conn, &[("code", "s|rare"), ("performer", "few")]);
        assert!(first.contains("\"few\""), "{first}");
    }

    #[test]
    fn placeholders_follow_the_backend() {
        let mut pg = Sql::new(true);
        pg.text("a").push(" ").text("b");
        assert_eq!(pg.text, "$1 $2");
        let mut lite = Sql::new(false);
        lite.text("a").push(" ").text("b");
        assert_eq!(lite.text, "? ?");
    }
}

//! Index rows are written with their version, in the same transaction: a write replaces every
//! row of the resource, one multi-row INSERT per table (in chunks that stay under the bind
//! limits), and a delete removes them.

use diesel::prelude::*;

use super::StorageResult;
use super::connection::{DbConnection, on_backend};
use super::schema::{
    search_composite, search_date, search_number, search_quantity, search_reference, search_string,
    search_token, search_uri,
};
use super::sql::{Bind, Sql, execute};
use crate::search::IndexRows;

/// Rows per INSERT: 16 columns × 1000 stays under SQLite's 32,766 binds.
const CHUNK: usize = 1000;

/// The index tables.
const TABLES: [&str; 8] = [
    "search_string",
    "search_token",
    "search_date",
    "search_number",
    "search_quantity",
    "search_reference",
    "search_uri",
    "search_composite",
];

/// Removes every index row of a resource. On PostgreSQL, where each statement is a round trip
/// to the server, the tables' DELETEs go as one statement (`WITH w0 AS (DELETE …), … DELETE …`).
pub(super) fn clear(conn: &mut DbConnection, t: &str, id: &str) -> StorageResult<()> {
    if let DbConnection::Postgres(_) = conn {
        let deletes = TABLES
            .iter()
            .map(|table| {
                let mut sql = Sql::new(true);
                sql.push("DELETE FROM ")
                    .push(table)
                    .push(" WHERE resource_type = ")
                    .text(t)
                    .push(" AND resource_id = ")
                    .text(id);
                sql
            })
            .collect();
        execute!(conn, &with_clauses(deletes))?;
        return Ok(());
    }
    macro_rules! clear_table {
        ($table:ident) => {
            on_backend!(conn, c => diesel::delete(
                $table::table
                    .filter($table::resource_type.eq(t))
                    .filter($table::resource_id.eq(id)),
            )
            .execute(c))?
        };
    }
    clear_table!(search_string);
    clear_table!(search_token);
    clear_table!(search_date);
    clear_table!(search_number);
    clear_table!(search_quantity);
    clear_table!(search_reference);
    clear_table!(search_uri);
    clear_table!(search_composite);
    Ok(())
}

/// The index rows a write stores with its version: extracted, or already made into their
/// INSERT statements.
#[derive(Clone, Copy)]
pub(super) enum Rows<'a> {
    /// Extracted rows, whose statements the write builds.
    Extracted(&'a IndexRows),
    /// Statements built before the write ([`Inserts::new`]).
    Built(&'a Inserts),
}

/// Writes the index rows of a resource (after [`clear`] when it had rows before): one
/// multi-row INSERT per table.
pub(super) fn insert(
    conn: &mut DbConnection,
    t: &str,
    id: &str,
    rows: Rows<'_>,
) -> StorageResult<()> {
    match rows {
        Rows::Extracted(rows) => insert_many(conn, &[(t, id, rows)]),
        Rows::Built(inserts) => inserts.run(conn),
    }
}

/// The rows of one index table for `resources`, each starting with its owner's type and id
/// and, on SQLite, its `ord`: its place among the owner's rows in this table, which completes
/// the table's primary key `(resource_type, resource_id, code, ord)` there (see the migration
/// `clustered_index_rows`; a write deletes all of a resource's rows before it writes them
/// again, so numbering from 0 each time cannot collide).
fn each<R>(
    resources: &[(&str, &str, &IndexRows)],
    ord: bool,
    table: impl Fn(&IndexRows) -> &Vec<R>,
    row: impl Fn(&R) -> Vec<Bind>,
) -> Vec<Vec<Bind>> {
    let mut all = Vec::new();
    for &(t, id, rows) in resources {
        for (i, r) in table(rows).iter().enumerate() {
            let mut values = vec![Bind::Text(t.to_owned()), Bind::Text(id.to_owned())];
            if ord {
                values.push(Bind::Int(i as i64));
            }
            values.extend(row(r));
            all.push(values);
        }
    }
    all
}

/// Writes the index rows of many resources: one multi-row INSERT per table for all of them (in
/// chunks that stay under the bind limits), not one per resource.
pub(super) fn insert_many(
    conn: &mut DbConnection,
    resources: &[(&str, &str, &IndexRows)],
) -> StorageResult<()> {
    let postgres = matches!(conn, DbConnection::Postgres(_));
    Inserts::new(postgres, resources).run(conn)
}

/// The INSERT statements of index rows. They are built as SQL text so that each backend caches
/// one prepared statement per table and row count (diesel does not cache its own multi-row
/// inserts, and preparing them was most of a write's cost on SQLite). A write whose resource
/// and id are known before it runs builds them first, on the request's thread: on SQLite the
/// write itself runs on the one writer thread, the limit on writes.
pub(super) struct Inserts {
    /// One multi-row INSERT per table (per chunk of rows).
    statements: Vec<Sql>,
    postgres: bool,
}

impl Inserts {
    /// The statements writing `resources`' rows, for PostgreSQL or SQLite.
    pub(super) fn new(postgres: bool, resources: &[(&str, &str, &IndexRows)]) -> Inserts {
        Inserts {
            statements: statements(postgres, resources),
            postgres,
        }
    }

    /// Runs the statements: on SQLite one per table, on PostgreSQL as few as
    /// [`Inserts::after`] makes.
    pub(super) fn run(&self, conn: &mut DbConnection) -> StorageResult<()> {
        if !self.postgres {
            for sql in &self.statements {
                execute!(conn, sql)?;
            }
            return Ok(());
        }
        for sql in &self.after(Vec::new()) {
            execute!(conn, sql)?;
        }
        Ok(())
    }

    /// PostgreSQL statements that run `leading` and then these inserts. Each statement is a
    /// round trip to the server, so they go as one statement (`WITH w0 AS (INSERT …), w1 AS
    /// (INSERT …) INSERT …`) as long as its binds stay under the protocol's limit.
    pub(super) fn after(&self, leading: Vec<Sql>) -> Vec<Sql> {
        let mut joined = Vec::new();
        let mut group: Vec<Sql> = Vec::new();
        let mut binds = 0;
        for sql in leading.into_iter().chain(self.statements.iter().cloned()) {
            if !group.is_empty() && binds + sql.binds.len() > POSTGRES_BINDS {
                joined.push(with_clauses(std::mem::take(&mut group)));
                binds = 0;
            }
            binds += sql.binds.len();
            group.push(sql);
        }
        if !group.is_empty() {
            joined.push(with_clauses(group));
        }
        joined
    }
}

/// Most binds in one PostgreSQL statement (the protocol counts them in 16 bits).
const POSTGRES_BINDS: usize = 65_535;

/// PostgreSQL statements run as one: all but the last as data-modifying `WITH` clauses.
fn with_clauses(mut group: Vec<Sql>) -> Sql {
    let Some(last) = group.pop() else {
        return Sql::new(true);
    };
    if group.is_empty() {
        return last;
    }
    let mut sql = Sql::new(true);
    for (i, part) in group.into_iter().enumerate() {
        sql.push(if i == 0 { "WITH " } else { ", " })
            .push(&format!("w{i} AS ("))
            .append(part)
            .push(")");
    }
    sql.push(" ").append(last);
    sql
}

/// One multi-row INSERT per table that has rows (per chunk of [`CHUNK`] rows).
fn statements(postgres: bool, resources: &[(&str, &str, &IndexRows)]) -> Vec<Sql> {
    let text = |s: &str| Bind::Text(s.to_owned());
    let opt = |s: &Option<String>| Bind::OptText(s.clone());
    let mut tables: Vec<(&str, &str, Vec<Vec<Bind>>)> = Vec::with_capacity(8);
    tables.push((
        "search_string",
        "code, value_normalized, value_exact",
        each(
            resources,
            !postgres,
            |rows| &rows.strings,
            |r| vec![text(&r.code), text(&r.normalized), text(&r.exact)],
        ),
    ));
    tables.push((
        "search_token",
        "code, system, value, display",
        each(
            resources,
            !postgres,
            |rows| &rows.tokens,
            |r| {
                vec![
                    text(&r.code),
                    opt(&r.system),
                    opt(&r.value),
                    opt(&r.display),
                ]
            },
        ),
    ));
    tables.push((
        "search_date",
        "code, start_ms, end_ms",
        each(
            resources,
            !postgres,
            |rows| &rows.dates,
            |r| vec![text(&r.code), Bind::Int(r.start), Bind::Int(r.end)],
        ),
    ));
    tables.push((
        "search_number",
        "code, low, high",
        each(
            resources,
            !postgres,
            |rows| &rows.numbers,
            |r| vec![text(&r.code), Bind::Float(r.low), Bind::Float(r.high)],
        ),
    ));
    tables.push((
        "search_quantity",
        "code, system, unit_code, low, high",
        each(
            resources,
            !postgres,
            |rows| &rows.quantities,
            |r| {
                vec![
                    text(&r.code),
                    opt(&r.system),
                    opt(&r.unit),
                    Bind::Float(r.low),
                    Bind::Float(r.high),
                ]
            },
        ),
    ));
    tables.push((
        "search_reference",
        "code, target_type, target_id, target_url",
        each(
            resources,
            !postgres,
            |rows| &rows.references,
            |r| {
                vec![
                    text(&r.code),
                    opt(&r.target_type),
                    opt(&r.target_id),
                    opt(&r.target_url),
                ]
            },
        ),
    ));
    tables.push((
        "search_uri",
        "code, value",
        each(
            resources,
            !postgres,
            |rows| &rows.uris,
            |r| vec![text(&r.code), text(&r.value)],
        ),
    ));
    tables.push((
        "search_composite",
        "code, s1_system, s1_value, s1_low, s1_high, s2_system, s2_value, s2_low, s2_high, s3_system, s3_value, s3_low, s3_high",
        each(resources, !postgres, |rows| &rows.composites, |r| {
                let mut values = vec![text(&r.code)];
                for slot in &r.slots {
                    values.extend([
                        opt(&slot.system),
                        opt(&slot.value),
                        Bind::OptFloat(slot.low),
                        Bind::OptFloat(slot.high),
                    ]);
                }
                values
            }),
    ));
    let mut statements = Vec::new();
    for (table, columns, values) in tables {
        let mut rows = values.into_iter().peekable();
        while rows.peek().is_some() {
            let mut sql = Sql::new(postgres);
            // `OR FAIL` on SQLite: a multi-row INSERT that may abort (these tables have NOT
            // NULL columns) otherwise first copies every page it changes into a statement
            // journal, so that a failing row could undo the statement alone. Here a failure
            // undoes the whole write anyway (the writer's transaction, or a write's savepoint),
            // and those copies were a tenth of the group-commit writer's time in a create.
            sql.push(if postgres {
                "INSERT INTO "
            } else {
                "INSERT OR FAIL INTO "
            })
            .push(table)
            .push(if postgres {
                " (resource_type, resource_id, "
            } else {
                " (resource_type, resource_id, ord, "
            })
            .push(columns)
            .push(") VALUES ");
            for (i, row) in rows.by_ref().take(CHUNK).enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                for (j, value) in row.into_iter().enumerate() {
                    if j > 0 {
                        sql.push(", ");
                    }
                    sql.bind(value);
                }
                sql.push(")");
            }
            statements.push(sql);
        }
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::extract::{StringRow, TokenRow};

    /// A resource's rows: `strings` string rows (5 binds each on PostgreSQL) and `tokens`
    /// token rows (6 each).
    fn rows(strings: usize, tokens: usize) -> IndexRows {
        IndexRows {
            strings: (0..strings)
                .map(|i| StringRow {
                    code: "name".into(),
                    normalized: format!("n{i}"),
                    exact: format!("N{i}"),
                })
                .collect(),
            tokens: (0..tokens)
                .map(|i| TokenRow {
                    code: "identifier".into(),
                    system: Some("urn:s".into()),
                    value: Some(format!("v{i}")),
                    display: None,
                })
                .collect(),
            ..IndexRows::default()
        }
    }

    #[test]
    fn postgres_joins_the_tables_inserts_into_one_statement_under_the_bind_limit() {
        let few = rows(3, 2);
        let joined = Inserts::new(true, &[("Patient", "a", &few)]).after(Vec::new());
        assert_eq!(joined.len(), 1);
        assert!(
            joined[0]
                .text
                .starts_with("WITH w0 AS (INSERT INTO search_string")
        );
        assert_eq!(joined[0].binds.len(), 3 * 5 + 2 * 6);
        // SQLite runs one statement per table.
        assert_eq!(
            Inserts::new(false, &[("Patient", "a", &few)])
                .statements
                .len(),
            2
        );
        // Leading statements go first, in the same statement.
        let mut version = Sql::new(true);
        version
            .push("INSERT INTO resources (resource_id) VALUES (")
            .text("a")
            .push(")");
        let with_version = Inserts::new(true, &[("Patient", "a", &few)]).after(vec![version]);
        assert_eq!(with_version.len(), 1);
        assert!(
            with_version[0]
                .text
                .starts_with("WITH w0 AS (INSERT INTO resources (resource_id) VALUES ($1)), w1 AS (INSERT INTO search_string")
        );
        assert_eq!(with_version[0].binds[0], Bind::Text("a".into()));

        // 12 chunks of 1,000 rows: 60,000 string binds and 12,000 token binds, more than one
        // PostgreSQL statement may carry.
        let many = rows(12_000, 2_000);
        let split = Inserts::new(true, &[("Patient", "a", &many)]).after(Vec::new());
        assert!(split.len() >= 2, "{} statements", split.len());
        assert!(split.iter().all(|s| s.binds.len() <= POSTGRES_BINDS));
        let total: usize = split.iter().map(|s| s.binds.len()).sum();
        assert_eq!(total, 12_000 * 5 + 2_000 * 6);
    }
}

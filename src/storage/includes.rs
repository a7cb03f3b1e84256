//! `_include` and `_revinclude` (with `:iterate`): the resources a page's matches point at, or
//! that point at them, fetched after the page.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Nullable, Text};

use super::StorageResult;
use super::connection::DbConnection;
use super::contents::{Contents, Kind, no_content};
use super::search::Hit;
use super::sql::{Sql, load};
use crate::search::query::{Include, SearchQuery};

/// Most resources `_include`/`_revinclude` add to one page.
const MAX_INCLUDED: usize = 1000;
/// Rounds of `:iterate`.
const MAX_ITERATIONS: usize = 4;
/// Bound values in one statement of a `_revinclude` of `*`, at most.
const WILDCARD_BINDS: usize = 16_000;

#[derive(QueryableByName)]
pub(super) struct TargetRow {
    #[diesel(sql_type = Text)]
    pub(super) resource_type: String,
    #[diesel(sql_type = Text)]
    pub(super) resource_id: String,
}

pub(super) fn includes(
    conn: &mut DbConnection,
    contents: &Contents,
    postgres: bool,
    query: &SearchQuery,
    matches: &[Hit],
) -> StorageResult<Vec<Hit>> {
    use std::collections::HashSet;
    let mut seen: HashSet<(String, String)> = matches
        .iter()
        .map(|h| (h.resource_type.clone(), h.id.clone()))
        .collect();
    let mut included: Vec<Hit> = Vec::new();
    let mut sources: Vec<(String, String)> = seen.iter().cloned().collect();
    for round in 0..MAX_ITERATIONS {
        let mut wanted: Vec<(String, String)> = Vec::new();
        let specs = |list: &[Include]| -> Vec<Include> {
            list.iter()
                .filter(|i| round == 0 || i.iterate)
                .cloned()
                .collect()
        };
        for include in specs(&query.includes) {
            wanted.extend(include_targets(conn, postgres, &include, &sources)?);
        }
        for include in specs(&query.revincludes) {
            wanted.extend(revinclude_sources(conn, postgres, &include, &sources)?);
        }
        wanted.retain(|key| seen.insert(key.clone()));
        if wanted.is_empty() {
            break;
        }
        wanted.truncate(MAX_INCLUDED.saturating_sub(included.len()));
        // What these resources have in common: the include parameters of the round.
        let kind = Kind::of((
            round,
            format!(
                "{:?}{:?}",
                specs(&query.includes),
                specs(&query.revincludes)
            ),
        ));
        let found = fetch(conn, contents, kind, postgres, &wanted)?;
        sources = found
            .iter()
            .map(|h| (h.resource_type.clone(), h.id.clone()))
            .collect();
        included.extend(found);
        if included.len() >= MAX_INCLUDED {
            break;
        }
    }
    Ok(included)
}

fn include_targets(
    conn: &mut DbConnection,
    postgres: bool,
    include: &Include,
    sources: &[(String, String)],
) -> StorageResult<Vec<(String, String)>> {
    let ids: Vec<&str> = sources
        .iter()
        .filter(|(t, _)| include.source_type == "*" || *t == include.source_type)
        .map(|(_, id)| id.as_str())
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let types: Vec<&str> = if include.source_type == "*" {
        let mut ts: Vec<&str> = sources.iter().map(|(t, _)| t.as_str()).collect();
        ts.sort_unstable();
        ts.dedup();
        ts
    } else {
        vec![include.source_type.as_str()]
    };
    for t in types {
        let ids: Vec<&str> = sources
            .iter()
            .filter(|(st, _)| st == t)
            .map(|(_, id)| id.as_str())
            .collect();
        let mut sql = Sql::new(postgres);
        sql.push("SELECT DISTINCT x.target_type AS resource_type, x.target_id AS resource_id FROM search_reference x WHERE x.resource_type = ");
        sql.text(t)
            .push(" AND x.target_id IS NOT NULL AND x.resource_id IN (");
        sql.text_list(&ids);
        sql.push(")");
        if let Some(code) = &include.code {
            sql.push(" AND x.code = ").text(code);
        }
        if let Some(target) = &include.target_type {
            sql.push(" AND x.target_type = ").text(target);
        }
        out.extend(
            load!(conn, &sql, TargetRow)?
                .into_iter()
                .map(|r| (r.resource_type, r.resource_id)),
        );
    }
    Ok(out)
}

fn revinclude_sources(
    conn: &mut DbConnection,
    postgres: bool,
    include: &Include,
    targets: &[(String, String)],
) -> StorageResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut types: Vec<&str> = targets
        .iter()
        .map(|(t, _)| t.as_str())
        .filter(|t| include.target_type.as_deref().is_none_or(|want| want == *t))
        .collect();
    types.sort_unstable();
    types.dedup();
    // The parameters to follow back: the one named, or every one `*` stands for. Each is a
    // probe of its own lookup `(resource_type, target_id, code, …)`.
    let params: Vec<(&str, &str)> = match &include.code {
        Some(code) => vec![(include.source_type.as_str(), code.as_str())],
        None => include
            .wildcard
            .iter()
            .map(|(source, code)| (source.as_str(), code.as_str()))
            .collect(),
    };
    for t in types {
        let ids: Vec<&str> = targets
            .iter()
            .filter(|(tt, _)| tt == t)
            .map(|(_, id)| id.as_str())
            .collect();
        // Branches of one statement: each binds the ids again, and SQLite allows 500 at most.
        let branches = (WILDCARD_BINDS / (ids.len() + 3)).clamp(1, 100);
        for chunk in params.chunks(branches) {
            let mut sql = Sql::new(postgres);
            for (i, (source, code)) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(" UNION ALL ");
                }
                sql.push("SELECT x.resource_type, x.resource_id FROM search_reference x WHERE x.resource_type = ")
                    .text(source)
                    .push(" AND x.code = ")
                    .text(code)
                    .push(" AND x.target_id IN (")
                    .text_list(&ids)
                    .push(") AND x.target_type = ")
                    .text(t);
            }
            out.extend(
                load!(conn, &sql, TargetRow)?
                    .into_iter()
                    .map(|r| (r.resource_type, r.resource_id)),
            );
        }
    }
    Ok(out)
}

#[derive(QueryableByName)]
struct CurrentRow {
    #[diesel(sql_type = Text)]
    resource_type: String,
    #[diesel(sql_type = Text)]
    resource_id: String,
    #[diesel(sql_type = BigInt)]
    version_id: i64,
    #[diesel(sql_type = Nullable<Binary>)]
    content: Option<Vec<u8>>,
}

/// The current content of live resources, by `(type, id)`: their versions from `resources`
/// with their contents, or without them when includes of `kind` find them in memory
/// ([`Contents::complete`]).
fn fetch(
    conn: &mut DbConnection,
    contents: &Contents,
    kind: Kind,
    postgres: bool,
    keys: &[(String, String)],
) -> StorageResult<Vec<Hit>> {
    let with_content = !contents.warm(kind);
    let mut current = Vec::new();
    for chunk in keys.chunks(500) {
        let mut sql = Sql::new(postgres);
        sql.push("SELECT r.resource_type, r.resource_id, r.version_id, ");
        if with_content {
            sql.push("v.content FROM resources r JOIN resource_versions v ON v.resource_type = r.resource_type AND v.resource_id = r.resource_id AND v.version_id = r.version_id");
        } else {
            sql.push(no_content(postgres)).push(" FROM resources r");
        }
        sql.push(" WHERE r.deleted = FALSE AND (");
        for (i, (t, id)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(" OR ");
            }
            sql.push("(r.resource_type = ")
                .text(t)
                .push(" AND r.resource_id = ")
                .text(id)
                .push(")");
        }
        sql.push(") ORDER BY r.resource_type, r.resource_id");
        current.extend(
            load!(conn, &sql, CurrentRow)?
                .into_iter()
                .map(|r| ((r.resource_type, r.resource_id, r.version_id), r.content)),
        );
    }
    contents.complete(conn, postgres, kind, current)
}

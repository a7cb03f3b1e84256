//! Conditional create, update and delete: the search and the write run in one transaction, so
//! two clients sending the same conditional create at once cannot both create. On PostgreSQL a
//! transaction-level advisory lock on the criteria serializes identical requests; on SQLite the
//! single writer already does.

use diesel::prelude::*;

use super::connection::DbConnection;
use super::index::Rows;
use super::{DeleteOutcome, StorageResult, StoredVersion, search, versions};
use crate::fhir::instant::EpochMillis;
use crate::fhir::{ResourceId, Unstamped, VersionId};
use crate::search::IndexRows;
use crate::search::query::SearchQuery;

/// What a conditional write did.
#[derive(Debug)]
pub enum Conditional {
    /// The criteria matched these resources (and nothing was written), where the interaction
    /// calls for that: one match for a create, several for an update.
    Matched(Vec<String>),
    /// The resource was written.
    Written(StoredVersion),
    /// The body's id differs from the id of the one matching resource.
    IdMismatch(String),
}

/// Most resources one conditional delete removes.
pub const MAX_CONDITIONAL_DELETES: usize = 100;

pub(super) fn lock(conn: &mut DbConnection, key: &str) -> StorageResult<()> {
    if let DbConnection::Postgres(c) = conn {
        // FNV-1a of the resource type and criteria.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.bytes() {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
            .bind::<diesel::sql_types::BigInt, _>(hash as i64)
            .execute(c)?;
    }
    Ok(())
}

pub(super) fn create(
    conn: &mut DbConnection,
    query: &SearchQuery,
    key: &str,
    resource: &Unstamped,
    index: &IndexRows,
    now: EpochMillis,
) -> StorageResult<Conditional> {
    lock(conn, key)?;
    let found = search::matching(conn, query, 2)?;
    if !found.is_empty() {
        return Ok(Conditional::Matched(found));
    }
    let t = &query.types[0];
    let id = ResourceId::generate();
    versions::create(conn, (t, &id), resource, Rows::Extracted(index), now)
        .map(Conditional::Written)
}

pub(super) fn update(
    conn: &mut DbConnection,
    query: &SearchQuery,
    key: &str,
    (resource, body_id): (&Unstamped, Option<&str>),
    index: &IndexRows,
    if_match: Option<VersionId>,
    now: EpochMillis,
) -> StorageResult<Conditional> {
    lock(conn, key)?;
    let t = &query.types[0];
    let rows = Rows::Extracted(index);
    let found = search::matching(conn, query, 2)?;
    match found.as_slice() {
        [] => match body_id.and_then(|id| ResourceId::parse(id).ok()) {
            Some(id) => versions::update(conn, t, &id, resource, rows, if_match, now),
            None => versions::create(conn, (t, &ResourceId::generate()), resource, rows, now),
        }
        .map(Conditional::Written),
        [one] => {
            if body_id.is_some_and(|b| b != one) {
                return Ok(Conditional::IdMismatch(one.clone()));
            }
            let id = ResourceId::parse(one).map_err(|e| {
                super::StorageError::Task(format!("stored id is invalid: {}", e.diagnostics))
            })?;
            // The stored resource takes the match's id (the body's, if any, is the same).
            versions::update(conn, t, &id, resource, rows, if_match, now).map(Conditional::Written)
        }
        _ => Ok(Conditional::Matched(found)),
    }
}

pub(super) fn delete(
    conn: &mut DbConnection,
    query: &SearchQuery,
    key: &str,
    now: EpochMillis,
) -> StorageResult<Result<Vec<StoredVersion>, usize>> {
    lock(conn, key)?;
    let t = &query.types[0];
    let found = search::matching(conn, query, MAX_CONDITIONAL_DELETES + 1)?;
    if found.len() > MAX_CONDITIONAL_DELETES {
        return Ok(Err(found.len()));
    }
    let mut deleted = Vec::new();
    for id in found {
        let Ok(id) = ResourceId::parse(&id) else {
            continue;
        };
        if let DeleteOutcome::Deleted(v) = versions::delete(conn, t, &id, None, now)? {
            deleted.push(v);
        }
    }
    Ok(Ok(deleted))
}

//! Bulk import: many resources with their own ids written in one database transaction. A
//! resource whose current version already has the same content is left alone, so loading the
//! same files again adds no versions.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use diesel::sql_types::{Array, Text};
use serde_json::Value;

use super::connection::{DbConnection, on_backend};
use super::schema::{resource_versions, resources};
use super::{StorageResult, StoredVersion, WriteMethod, index, versions};
use crate::fhir::instant::EpochMillis;
use crate::fhir::{self, ResourceId};
use crate::search::IndexRows;

/// A resource to import.
#[derive(Debug, Clone)]
pub struct ImportItem {
    /// The type.
    pub resource_type: String,
    /// Its id (from the file, or assigned).
    pub id: ResourceId,
    /// The resource.
    pub resource: Value,
    /// Its index rows.
    pub index: IndexRows,
}

/// What importing one resource did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    /// A new resource (or a deleted one brought back).
    Created,
    /// A new version of an existing resource.
    Updated,
    /// The current version already had this content.
    Unchanged,
}

/// The content of a resource without the server-owned `meta.versionId` and `meta.lastUpdated`.
fn comparable(mut value: Value) -> Value {
    fhir::strip_version_meta(&mut value);
    value
}

/// Rows per multi-row statement.
const CHUNK: usize = 500;

/// What a batch's write can use that is made before it runs (on SQLite the write runs on the
/// one writer thread, the limit on writes): each item's stored bytes but for the version, and
/// the index inserts of all items, for the usual case where every item is written.
pub(super) struct Prepared {
    bodies: Vec<fhir::Unstamped>,
    inserts: index::Inserts,
}

/// Prepares the write of `items` for PostgreSQL or SQLite.
pub(super) fn prepare(postgres: bool, items: &[ImportItem]) -> Prepared {
    let rows: Vec<(&str, &str, &IndexRows)> = items
        .iter()
        .map(|i| (i.resource_type.as_str(), i.id.as_str(), &i.index))
        .collect();
    Prepared {
        bodies: items
            .iter()
            .map(|i| fhir::Unstamped::new(&i.resource))
            .collect(),
        inserts: index::Inserts::new(postgres, &rows),
    }
}

/// Writes a batch: the current versions are read in one query per type, and the new versions,
/// current-version rows and index rows are written with one multi-row statement per table.
pub(super) fn run(
    conn: &mut DbConnection,
    items: &[ImportItem],
    prepared: Option<&Prepared>,
    now: EpochMillis,
) -> StorageResult<Vec<Imported>> {
    let mut keys = HashSet::new();
    if !items
        .iter()
        .all(|i| keys.insert((i.resource_type.as_str(), i.id.as_str())))
    {
        // The same resource twice: the second version builds on the first.
        return one_by_one(conn, items, now);
    }
    let current = currents(conn, items)?;
    let mut done = Vec::with_capacity(items.len());
    let mut new_versions = Vec::new();
    let mut written = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let (t, id) = (item.resource_type.as_str(), item.id.as_str());
        let previous = current.get(&(t.to_owned(), id.to_owned()));
        let live = previous.filter(|p| !p.deleted);
        if let Some(p) = live
            && serde_json::from_slice::<Value>(&p.content)
                .is_ok_and(|s| comparable(s) == comparable(item.resource.clone()))
        {
            done.push(Imported::Unchanged);
            continue;
        }
        let version_id = previous.map_or(1, |p| p.version_id + 1);
        let last_updated = previous.map_or(now, |p| now.max(p.last_updated));
        let content = match prepared {
            Some(p) => p.bodies[i].stamp(&item.id, version_id, last_updated),
            None => fhir::stamp(&item.resource, &item.id, version_id, last_updated),
        };
        if live.is_some() {
            index::clear(conn, t, id)?;
        }
        if previous.is_some() {
            on_backend!(conn, c => diesel::update(resources::table)
                .filter(resources::resource_type.eq(t))
                .filter(resources::resource_id.eq(id))
                .set((
                    resources::version_id.eq(version_id),
                    resources::last_updated.eq(last_updated),
                    resources::deleted.eq(false),
                ))
                .execute(c))?;
        }
        done.push(if live.is_some() {
            Imported::Updated
        } else {
            Imported::Created
        });
        new_versions.push((
            item,
            version_id,
            last_updated,
            content,
            previous.is_none(),
            live.is_none(),
        ));
        written.push(item);
    }
    for chunk in new_versions.chunks(CHUNK) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|(item, version_id, last_updated, content, _, created)| {
                (
                    resource_versions::resource_type.eq(item.resource_type.as_str()),
                    resource_versions::resource_id.eq(item.id.as_str()),
                    resource_versions::version_id.eq(*version_id),
                    resource_versions::last_updated.eq(*last_updated),
                    resource_versions::method.eq(WriteMethod::Put.as_str()),
                    resource_versions::deleted.eq(false),
                    resource_versions::content.eq(content.as_slice()),
                    resource_versions::created.eq(*created),
                )
            })
            .collect();
        on_backend!(conn, c => diesel::insert_into(resource_versions::table).values(&rows).execute(c))?;
        let fresh: Vec<_> = chunk
            .iter()
            .filter(|(_, _, _, _, is_new, _)| *is_new)
            .map(|(item, version_id, last_updated, ..)| {
                (
                    resources::resource_type.eq(item.resource_type.as_str()),
                    resources::resource_id.eq(item.id.as_str()),
                    resources::version_id.eq(*version_id),
                    resources::last_updated.eq(*last_updated),
                    resources::deleted.eq(false),
                )
            })
            .collect();
        if !fresh.is_empty() {
            on_backend!(conn, c => diesel::insert_into(resources::table).values(&fresh).execute(c))?;
        }
    }
    match prepared {
        Some(p) if written.len() == items.len() => p.inserts.run(conn)?,
        _ => {
            let rows: Vec<(&str, &str, &IndexRows)> = written
                .iter()
                .map(|i| (i.resource_type.as_str(), i.id.as_str(), &i.index))
                .collect();
            index::insert_many(conn, &rows)?;
        }
    }
    Ok(done)
}

/// The current versions of the resources of `items`, by type and id.
///
/// On PostgreSQL each id is looked up on its own, inside a fenced `LATERAL` subquery, so that
/// the type and the id are always both used to descend the primary key. As `resource_id =
/// ANY($2)` the planner was free to read the type's whole range instead, filtering the ids,
/// and it did whenever its statistics were older than the type's rows: a type that was small
/// when last analysed (the audit trail's AuditEvents, a type that a large import brings in)
/// made every batch read every row of that type written since, one batch slower than the last.
fn currents(
    conn: &mut DbConnection,
    items: &[ImportItem],
) -> StorageResult<HashMap<(String, String), StoredVersion>> {
    let mut by_type: HashMap<&str, Vec<&str>> = HashMap::new();
    for item in items {
        by_type
            .entry(item.resource_type.as_str())
            .or_default()
            .push(item.id.as_str());
    }
    let mut found = HashMap::new();
    for (t, ids) in by_type {
        for chunk in ids.chunks(CHUNK) {
            let rows: Vec<versions::VersionRow> = match conn {
                DbConnection::Postgres(c) => diesel::sql_query(
                    "SELECT v.seq, v.resource_type, v.resource_id, v.version_id, v.last_updated, \
                     v.method, v.deleted, v.content, v.created FROM unnest($2) AS k(id) \
                     CROSS JOIN LATERAL (SELECT w.* FROM resources r JOIN resource_versions w \
                     ON w.resource_type = r.resource_type AND w.resource_id = r.resource_id \
                     AND w.version_id = r.version_id \
                     WHERE r.resource_type = $1 AND r.resource_id = k.id OFFSET 0) v",
                )
                .bind::<Text, _>(t)
                .bind::<Array<Text>, _>(chunk)
                .load(c)?,
                DbConnection::Sqlite(c) => versions::with_current_version()
                    .filter(resources::resource_type.eq(t))
                    .filter(resources::resource_id.eq_any(chunk))
                    .select(versions::VersionRow::as_select())
                    .load(c)?,
            };
            for row in rows {
                let version = StoredVersion::from(row);
                found.insert((version.resource_type.clone(), version.id.clone()), version);
            }
        }
    }
    Ok(found)
}

/// Writes a batch one resource at a time.
fn one_by_one(
    conn: &mut DbConnection,
    items: &[ImportItem],
    now: EpochMillis,
) -> StorageResult<Vec<Imported>> {
    let mut done = Vec::with_capacity(items.len());
    for item in items {
        let t = item.resource_type.as_str();
        let current = versions::find_current(conn, t, &item.id)?;
        if let Some(current) = current.as_ref().filter(|c| !c.deleted) {
            let stored = serde_json::from_slice::<Value>(&current.content).map(comparable);
            if stored.is_ok_and(|s| s == comparable(item.resource.clone())) {
                done.push(Imported::Unchanged);
                continue;
            }
        }
        let previous = current.map(|c| versions::Current {
            version_id: c.version_id,
            last_updated: c.last_updated,
            deleted: c.deleted,
        });
        let content = |version, at| fhir::stamp(&item.resource, &item.id, version, at);
        let version = versions::append(
            conn,
            (t, &item.id),
            previous.as_ref(),
            WriteMethod::Put,
            content,
            Some(index::Rows::Extracted(&item.index)),
            now,
        )?;
        done.push(if version.created {
            Imported::Created
        } else {
            Imported::Updated
        });
    }
    Ok(done)
}

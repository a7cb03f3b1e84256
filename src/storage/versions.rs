//! Reads and writes of resource versions. Each write is one transaction that appends a version
//! and moves the current-version row; the caller retries when the unique key on
//! `(type, id, version)` shows that a concurrent writer got there first.

use diesel::prelude::*;

use super::connection::{DbConnection, on_backend};
use super::index::{Inserts, Rows};
use super::sql::{Bind, Sql, execute};

// Lookups by key use `get_result`, not `first`: `first` binds `LIMIT ?`, and SQLite re-prepares
// a statement whose bound LIMIT value it planned with, on every execution.
use super::schema::{resource_versions, resources};
use super::{DeleteOutcome, StorageError, StorageResult, StoredVersion, WriteMethod};
use crate::fhir::instant::EpochMillis;
use crate::fhir::{ResourceId, Unstamped, VersionId};

/// A row of `resource_versions`.
#[derive(Queryable, QueryableByName, Selectable)]
#[diesel(table_name = resource_versions)]
pub(super) struct VersionRow {
    seq: i64,
    resource_type: String,
    resource_id: String,
    version_id: i64,
    last_updated: i64,
    method: String,
    deleted: bool,
    content: Vec<u8>,
    created: bool,
}

impl From<VersionRow> for StoredVersion {
    fn from(row: VersionRow) -> StoredVersion {
        let method = WriteMethod::parse(&row.method);
        StoredVersion {
            seq: row.seq,
            created: row.created,
            resource_type: row.resource_type,
            id: row.resource_id,
            version_id: row.version_id,
            last_updated: row.last_updated,
            method,
            deleted: row.deleted,
            content: row.content,
        }
    }
}

pub(super) struct Current {
    pub(super) version_id: VersionId,
    pub(super) last_updated: EpochMillis,
    pub(super) deleted: bool,
}

/// `resources` joined to each one's current version.
#[diesel::dsl::auto_type]
pub(super) fn with_current_version() -> _ {
    resources::table.inner_join(
        resource_versions::table.on(resource_versions::resource_type
            .eq(resources::resource_type)
            .and(resource_versions::resource_id.eq(resources::resource_id))
            .and(resource_versions::version_id.eq(resources::version_id))),
    )
}

pub(super) fn find_current(
    conn: &mut DbConnection,
    t: &str,
    id: &ResourceId,
) -> StorageResult<Option<StoredVersion>> {
    let row = on_backend!(conn, c => with_current_version()
        .filter(resources::resource_type.eq(t))
        .filter(resources::resource_id.eq(id.as_str()))
        .select(VersionRow::as_select())
        .get_result(c)
        .optional())?;
    Ok(row.map(StoredVersion::from))
}

pub(super) fn find_version(
    conn: &mut DbConnection,
    t: &str,
    id: &ResourceId,
    version: VersionId,
) -> StorageResult<Option<StoredVersion>> {
    let row = on_backend!(conn, c => resource_versions::table
        .filter(resource_versions::resource_type.eq(t))
        .filter(resource_versions::resource_id.eq(id.as_str()))
        .filter(resource_versions::version_id.eq(version))
        .select(VersionRow::as_select())
        .get_result(c)
        .optional())?;
    Ok(row.map(StoredVersion::from))
}

pub(super) fn current(
    conn: &mut DbConnection,
    t: &str,
    id: &ResourceId,
) -> StorageResult<Option<Current>> {
    let row = on_backend!(conn, c => resources::table
        .filter(resources::resource_type.eq(t))
        .filter(resources::resource_id.eq(id.as_str()))
        .select((
            resources::version_id,
            resources::last_updated,
            resources::deleted,
        ))
        .get_result::<(i64, i64, bool)>(c)
        .optional())?;
    Ok(row.map(|(version_id, last_updated, deleted)| Current {
        version_id,
        last_updated,
        deleted,
    }))
}

/// Appends a version and points the current-version row at it. `content` makes the stored
/// bytes from the version number and time this function assigns.
pub(super) fn append(
    conn: &mut DbConnection,
    (t, id): (&str, &ResourceId),
    previous: Option<&Current>,
    method: WriteMethod,
    content: impl FnOnce(VersionId, EpochMillis) -> Vec<u8>,
    index: Option<Rows<'_>>,
    now: EpochMillis,
) -> StorageResult<StoredVersion> {
    let version_id = previous.map_or(1, |p| p.version_id + 1);
    // Versions of one resource never go back in time, even if the clock does.
    let last_updated = previous.map_or(now, |p| now.max(p.last_updated));
    let content = content(version_id, last_updated);
    let deleted = method == WriteMethod::Delete;
    let created = !deleted && previous.is_none_or(|p| p.deleted);
    on_backend!(conn, c => diesel::insert_into(resource_versions::table)
        .values((
            resource_versions::resource_type.eq(t),
            resource_versions::resource_id.eq(id.as_str()),
            resource_versions::version_id.eq(version_id),
            resource_versions::last_updated.eq(last_updated),
            resource_versions::method.eq(method.as_str()),
            resource_versions::deleted.eq(deleted),
            resource_versions::content.eq(&content),
            resource_versions::created.eq(created),
        ))
        .execute(c))?;
    if previous.is_some() {
        on_backend!(conn, c => diesel::update(resources::table)
            .filter(resources::resource_type.eq(t))
            .filter(resources::resource_id.eq(id.as_str()))
            .set((
                resources::version_id.eq(version_id),
                resources::last_updated.eq(last_updated),
                resources::deleted.eq(deleted),
            ))
            .execute(c))?;
    } else {
        on_backend!(conn, c => diesel::insert_into(resources::table)
            .values((
                resources::resource_type.eq(t),
                resources::resource_id.eq(id.as_str()),
                resources::version_id.eq(version_id),
                resources::last_updated.eq(last_updated),
                resources::deleted.eq(deleted),
            ))
            .execute(c))?;
    }
    // The index describes the current version only: a tombstone has no rows.
    if previous.is_some_and(|p| !p.deleted) {
        super::index::clear(conn, t, id.as_str())?;
    }
    if let Some(rows) = index.filter(|_| !deleted) {
        super::index::insert(conn, t, id.as_str(), rows)?;
    }
    Ok(StoredVersion {
        seq: 0,
        resource_type: t.to_owned(),
        id: id.to_string(),
        version_id,
        last_updated,
        method,
        deleted,
        created,
        content,
    })
}

/// Creates resource `id` (a new server-assigned id, [`ResourceId::generate`]).
pub(super) fn create(
    conn: &mut DbConnection,
    (t, id): (&str, &ResourceId),
    resource: &Unstamped,
    index: Rows<'_>,
    now: EpochMillis,
) -> StorageResult<StoredVersion> {
    let content = |version, at| resource.stamp(id, version, at);
    append(
        conn,
        (t, id),
        None,
        WriteMethod::Post,
        content,
        Some(index),
        now,
    )
}

/// Creates resource `id` on PostgreSQL with one statement where it can: the version, the
/// current-version row and the index rows as data-modifying `WITH` clauses. A statement alone
/// is its own transaction, so a create is one round trip to the server where it was five
/// (`BEGIN`, three statements, `COMMIT`), and it is acknowledged only once committed. Index
/// rows too many for one statement's binds go in a transaction of several.
pub(super) fn create_postgres(
    conn: &mut DbConnection,
    (t, id): (&str, &ResourceId),
    resource: &Unstamped,
    inserts: &Inserts,
    now: EpochMillis,
) -> StorageResult<StoredVersion> {
    let content = resource.stamp(id, 1, now);
    let mut version = Sql::new(true);
    version
        .push("INSERT INTO resource_versions (resource_type, resource_id, version_id, last_updated, method, deleted, content, created) VALUES (")
        .text(t)
        .push(", ")
        .text(id.as_str())
        .push(", 1, ")
        .bind(Bind::Int(now))
        .push(", ")
        .text(WriteMethod::Post.as_str())
        .push(", FALSE, ")
        .bind(Bind::Bytes(content.clone()))
        .push(", TRUE)");
    let mut current = Sql::new(true);
    current
        .push("INSERT INTO resources (resource_type, resource_id, version_id, last_updated, deleted) VALUES (")
        .text(t)
        .push(", ")
        .text(id.as_str())
        .push(", 1, ")
        .bind(Bind::Int(now))
        .push(", FALSE)");
    let statements = inserts.after(vec![version, current]);
    if let [one] = statements.as_slice() {
        execute!(conn, one)?;
    } else {
        conn.transaction(|conn| {
            for sql in &statements {
                execute!(conn, sql)?;
            }
            Ok::<_, StorageError>(())
        })?;
    }
    Ok(StoredVersion {
        seq: 0,
        resource_type: t.to_owned(),
        id: id.to_string(),
        version_id: 1,
        last_updated: now,
        method: WriteMethod::Post,
        deleted: false,
        created: true,
        content,
    })
}

fn check_precondition(current: Option<&Current>, if_match: Option<VersionId>) -> StorageResult<()> {
    match (if_match, current) {
        (Some(expected), Some(c)) if c.version_id == expected => Ok(()),
        (Some(expected), c) => Err(StorageError::VersionConflict {
            expected,
            current: c.map(|c| c.version_id),
        }),
        (None, _) => Ok(()),
    }
}

pub(super) fn update(
    conn: &mut DbConnection,
    t: &str,
    id: &ResourceId,
    resource: &Unstamped,
    index: Rows<'_>,
    if_match: Option<VersionId>,
    now: EpochMillis,
) -> StorageResult<StoredVersion> {
    let previous = current(conn, t, id)?;
    check_precondition(previous.as_ref(), if_match)?;
    let content = |version, at| resource.stamp(id, version, at);
    append(
        conn,
        (t, id),
        previous.as_ref(),
        WriteMethod::Put,
        content,
        Some(index),
        now,
    )
}

pub(super) fn delete(
    conn: &mut DbConnection,
    t: &str,
    id: &ResourceId,
    if_match: Option<VersionId>,
    now: EpochMillis,
) -> StorageResult<DeleteOutcome> {
    let Some(previous) = current(conn, t, id)? else {
        return match if_match {
            Some(expected) => Err(StorageError::VersionConflict {
                expected,
                current: None,
            }),
            None => Ok(DeleteOutcome::NotFound),
        };
    };
    check_precondition(Some(&previous), if_match)?;
    if previous.deleted {
        let tombstone = find_version(conn, t, id, previous.version_id)?;
        return Ok(tombstone.map_or(DeleteOutcome::NotFound, DeleteOutcome::AlreadyDeleted));
    }
    append(
        conn,
        (t, id),
        Some(&previous),
        WriteMethod::Delete,
        |_, _| Vec::new(),
        None,
        now,
    )
    .map(DeleteOutcome::Deleted)
}

#[cfg(test)]
mod tests {
    use diesel::connection::{Instrumentation, InstrumentationEvent};
    use std::sync::atomic::{AtomicUsize, Ordering};

    static STARTS: AtomicUsize = AtomicUsize::new(0);
    static CACHES: AtomicUsize = AtomicUsize::new(0);
    /// The database file only this test opens. The default instrumentation is process-wide,
    /// so connections of tests running alongside must not be counted.
    const PROBE_FILE: &str = "statement-cache-probe.db";

    #[derive(Default)]
    struct Count {
        mine: bool,
    }
    impl Instrumentation for Count {
        fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
            match event {
                InstrumentationEvent::StartEstablishConnection { url, .. } => {
                    self.mine = url.contains(PROBE_FILE);
                }
                InstrumentationEvent::CacheQuery { .. } if self.mine => {
                    CACHES.fetch_add(1, Ordering::SeqCst);
                }
                InstrumentationEvent::StartQuery { .. } if self.mine => {
                    STARTS.fetch_add(1, Ordering::SeqCst);
                }
                _ => {}
            }
        }
    }

    #[test]
    /// Reads must hit each connection's prepared-statement cache (queries through diesel's
    /// `MultiConnection` wrapper would be prepared anew on every call).
    fn statements_are_cached_through_the_pool() {
        diesel::connection::set_default_instrumentation(|| Some(Box::new(Count::default())))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let url = crate::config::DatabaseUrl::Sqlite(dir.path().join(PROBE_FILE));
        let rt = tokio::runtime::Runtime::new().unwrap();
        let storage =
            crate::storage::Storage::open(&url, 4, std::sync::Arc::new(crate::clock::SystemClock))
                .unwrap();
        let created = rt
            .block_on(storage.create(
                "Patient",
                serde_json::json!({"resourceType": "Patient"}),
                crate::search::IndexRows::default(),
            ))
            .unwrap();
        let id = crate::fhir::ResourceId::parse(&created.id).unwrap();
        let before = (STARTS.load(Ordering::SeqCst), CACHES.load(Ordering::SeqCst));
        for _ in 0..50 {
            rt.block_on(storage.find_current("Patient", &id)).unwrap();
        }
        let starts = STARTS.load(Ordering::SeqCst) - before.0;
        let prepared = CACHES.load(Ordering::SeqCst) - before.1;
        assert!(starts >= 50, "{starts}");
        assert!(
            prepared <= 4,
            "{prepared} statements prepared for 50 reads on a pool of 4"
        );
        // Writes with index rows, and searches, reuse their statements too: each shape is
        // prepared at most once per connection (7 here alone; a pool of 4 readers plus the
        // writer bounds it at 20), where preparing per call would be 60 or more.
        let registry = crate::search::Registry::r4();
        let before = CACHES.load(Ordering::SeqCst);
        for n in 0..30 {
            let patient = serde_json::json!({"resourceType": "Patient", "name": [{"family": format!("F{n}")}], "birthDate": "1970"});
            let index = crate::search::extract(&registry, &patient, "http://h/fhir");
            rt.block_on(storage.create("Patient", patient, index))
                .unwrap();
            let params = vec![("name".to_owned(), format!("f{n}"))];
            let query =
                crate::search::query::parse(&registry, vec!["Patient".into()], &params, "", true)
                    .unwrap();
            let page = rt.block_on(storage.search(query)).unwrap();
            assert_eq!(page.matches.len(), 1);
        }
        let prepared = CACHES.load(Ordering::SeqCst) - before;
        assert!(
            prepared <= 20,
            "{prepared} statements prepared for 30 indexed creates and 30 searches"
        );
    }
}

//! History queries (instance, type and system level), newest first, paged by a cursor on the
//! global write order so pages stay correct while new versions arrive.

use diesel::dsl::{exists, not};
use diesel::prelude::*;

use super::connection::{DbConnection, on_backend};
use super::schema::resource_versions;
use super::versions::VersionRow;
use super::{StorageResult, StoredVersion};
use crate::fhir::ResourceId;
use crate::fhir::instant::EpochMillis;

/// Which versions a history covers.
#[derive(Debug, Clone)]
pub enum HistoryScope {
    /// Every resource.
    System,
    /// Every resource of a type.
    Type(String),
    /// One resource.
    Instance(String, ResourceId),
}

/// A history request.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    /// Which versions.
    pub scope: HistoryScope,
    /// `_since`: only versions written at or after this instant.
    pub since: Option<EpochMillis>,
    /// `_at`: only versions that were current at some point in `[start, end)`.
    pub at: Option<(EpochMillis, EpochMillis)>,
    /// Paging cursor: only versions written before this position.
    pub before_seq: Option<i64>,
    /// Page size.
    pub count: i64,
}

pub(super) fn history(
    conn: &mut DbConnection,
    q: &HistoryQuery,
) -> StorageResult<Vec<StoredVersion>> {
    let rows = on_backend!(conn, c => {
    let next = diesel::alias!(resource_versions as next_version);
    let mut query = resource_versions::table
        .select(VersionRow::as_select())
        .into_boxed();
    // A type's versions, newest first, are read backwards from the type's range of
    // `(resource_type, seq)`, from the cursor on, the only index ordered that way: with the
    // type compared for equality and ordered by `seq` alone, PostgreSQL may walk the whole
    // write order backwards filtering by type instead (always with plans made once for all
    // types, which a plain search leaves on its connection), reading every version for a type
    // that has few.
    let mut by_type = false;
    match &q.scope {
        HistoryScope::System => {}
        HistoryScope::Type(t) => {
            by_type = true;
            query = query.filter(resource_versions::resource_type.ge(t.clone()));
            query = match q.before_seq {
                Some(before) => query.filter(
                    diesel::dsl::sql::<diesel::sql_types::Bool>("(resource_type, seq) < (")
                        .bind::<diesel::sql_types::Text, _>(t.clone())
                        .sql(", ")
                        .bind::<diesel::sql_types::BigInt, _>(before)
                        .sql(")"),
                ),
                None => query.filter(resource_versions::resource_type.le(t.clone())),
            };
        }
        HistoryScope::Instance(t, id) => {
            query = query
                .filter(resource_versions::resource_type.eq(t.clone()))
                .filter(resource_versions::resource_id.eq(id.to_string()));
        }
    }
    if let Some(since) = q.since {
        query = query.filter(resource_versions::last_updated.ge(since));
    }
    if let Some((start, end)) = q.at {
        // Current during [start, end): written before the end, and not replaced before the start.
        query = query
            .filter(resource_versions::last_updated.lt(end))
            .filter(not(exists(
                next.filter(
                    next.field(resource_versions::resource_type)
                        .eq(resource_versions::resource_type),
                )
                .filter(
                    next.field(resource_versions::resource_id)
                        .eq(resource_versions::resource_id),
                )
                .filter(
                    next.field(resource_versions::version_id)
                        .eq(resource_versions::version_id + 1),
                )
                .filter(next.field(resource_versions::last_updated).le(start)),
            )));
    }
    if let Some(before) = q.before_seq.filter(|_| !by_type) {
        query = query.filter(resource_versions::seq.lt(before));
    }
    query = if by_type {
        query.order((
            resource_versions::resource_type.desc(),
            resource_versions::seq.desc(),
        ))
    } else {
        query.order(resource_versions::seq.desc())
    };
    query.limit(q.count).load::<VersionRow>(c)
    })?;
    Ok(rows.into_iter().map(StoredVersion::from).collect())
}

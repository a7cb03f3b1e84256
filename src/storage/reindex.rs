//! `$reindex`: index rows rebuilt from the current content, in batches walked in key order.
//! A resource that changes between the read of a batch and its write keeps the rows its own
//! write gave it.

use diesel::prelude::*;

use super::connection::{DbConnection, on_backend};
use super::schema::{resource_versions, resources};
use super::{StorageResult, index};
use crate::search::IndexRows;

/// One current resource.
#[derive(Debug, Clone)]
pub struct Current {
    pub resource_type: String,
    pub id: String,
    pub version_id: i64,
    pub content: Vec<u8>,
}

/// Live resources after `(type, id)` in key order, of one type or every type, at most `limit`.
pub(super) fn batch(
    conn: &mut DbConnection,
    only_type: Option<&str>,
    only_id: Option<&str>,
    after: Option<&(String, String)>,
    limit: i64,
) -> StorageResult<Vec<Current>> {
    let rows: Vec<(String, String, i64, Vec<u8>)> = on_backend!(conn, c => {
        let mut query = super::versions::with_current_version()
            .filter(resources::deleted.eq(false))
            .select((
                resources::resource_type,
                resources::resource_id,
                resources::version_id,
                resource_versions::content,
            ))
            .order((resources::resource_type, resources::resource_id))
            .limit(limit)
            .into_boxed();
        if let Some(t) = only_type {
            query = query.filter(resources::resource_type.eq(t.to_owned()));
        }
        if let Some(id) = only_id {
            query = query.filter(resources::resource_id.eq(id.to_owned()));
        }
        if let Some((t, id)) = after {
            query = query.filter(
                resources::resource_type
                    .gt(t.clone())
                    .or(resources::resource_type.eq(t.clone()).and(resources::resource_id.gt(id.clone()))),
            );
        }
        query.load(c)
    })?;
    Ok(rows
        .into_iter()
        .map(|(resource_type, id, version_id, content)| Current {
            resource_type,
            id,
            version_id,
            content,
        })
        .collect())
}

/// Replaces the index rows of each resource that is still at the version that was read.
pub(super) fn rewrite(
    conn: &mut DbConnection,
    batch: &[(Current, IndexRows)],
) -> StorageResult<usize> {
    let mut done = 0;
    for (resource, rows) in batch {
        let version: Option<(i64, bool)> = on_backend!(conn, c => resources::table
            .filter(resources::resource_type.eq(&resource.resource_type))
            .filter(resources::resource_id.eq(&resource.id))
            .select((resources::version_id, resources::deleted))
            .get_result(c)
            .optional())?;
        if version != Some((resource.version_id, false)) {
            continue;
        }
        index::clear(conn, &resource.resource_type, &resource.id)?;
        index::insert_many(conn, &[(&resource.resource_type, &resource.id, rows)])?;
        done += 1;
    }
    Ok(done)
}

//! Bulk import: many resources with their own ids written in one database transaction. A
//! resource whose current version already has the same content is left alone, so loading the
//! same files again adds no versions.

use serde_json::Value;

use super::connection::DbConnection;
use super::{StorageResult, WriteMethod, versions};
use crate::fhir::instant::EpochMillis;
use crate::fhir::{self, ResourceId};
use crate::search::IndexRows;

/// A resource to import.
#[derive(Debug)]
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
    if let Some(meta) = value.get_mut("meta").and_then(Value::as_object_mut) {
        meta.remove("versionId");
        meta.remove("lastUpdated");
        if meta.is_empty()
            && let Some(object) = value.as_object_mut()
        {
            object.remove("meta");
        }
    }
    value
}

pub(super) fn run(
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
        let content = |version, at| fhir::stamp(item.resource.clone(), &item.id, version, at);
        let version = versions::append(
            conn,
            (t, &item.id),
            previous.as_ref(),
            WriteMethod::Put,
            content,
            Some(&item.index),
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

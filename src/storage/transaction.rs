//! FHIR transactions: every write of a transaction Bundle in one database transaction, all or
//! nothing. The REST layer resolves identities, conditional matches and references beforehand
//! (reading outside the transaction); each write here says what it expects of the current
//! version, and each conditional match is checked again, so a transaction whose reads went stale
//! fails as a whole with [`StorageError::Stale`] and can be planned again.

use super::connection::DbConnection;
use super::{
    StorageError, StorageResult, StoredVersion, WriteMethod, conditional, index, search, versions,
};
use crate::fhir::instant::EpochMillis;
use crate::fhir::{ResourceId, Unstamped, VersionId};
use crate::search::IndexRows;
use crate::search::query::SearchQuery;

/// What a write expects of the resource's current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Whatever is there.
    Any,
    /// No live version (never created, or deleted).
    Absent,
    /// Exactly this version is current.
    Version(VersionId),
}

/// Where an expectation came from: the client's `ifMatch` (a failure is the client's 412), or
/// a read made while planning (a failure means the plan is stale).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `Bundle.entry.request.ifMatch`.
    Client,
    /// The planner's own read.
    Planner,
}

/// One step of a transaction; `entry` is the Bundle entry it comes from.
#[derive(Debug)]
pub enum TxStep {
    /// Writes a tombstone (nothing when the resource does not exist or is already deleted).
    Delete {
        /// The Bundle entry.
        entry: usize,
        /// The type.
        resource_type: String,
        /// The id.
        id: ResourceId,
        /// What the current version must be.
        expect: (Expect, Source),
    },
    /// Stores a version (create or update).
    Write {
        /// The Bundle entry.
        entry: usize,
        /// The type.
        resource_type: String,
        /// The id (assigned by the planner for a create).
        id: ResourceId,
        /// The resource, references resolved, serialized but for its version.
        resource: Unstamped,
        /// Its index rows.
        index: IndexRows,
        /// `POST` or `PUT`.
        method: WriteMethod,
        /// What the current version must be.
        expect: (Expect, Source),
    },
    /// Checks that conditional criteria still match exactly the ids the planner found.
    Matches {
        /// The Bundle entry.
        entry: usize,
        /// The criteria.
        query: SearchQuery,
        /// A key naming them (serializes identical criteria on PostgreSQL).
        key: String,
        /// The ids found while planning, sorted.
        ids: Vec<String>,
    },
}

impl TxStep {
    fn entry(&self) -> usize {
        match self {
            TxStep::Delete { entry, .. }
            | TxStep::Write { entry, .. }
            | TxStep::Matches { entry, .. } => *entry,
        }
    }
}

/// What one step did.
#[derive(Debug)]
pub enum TxDone {
    /// A version was stored (a tombstone for a delete).
    Stored(StoredVersion),
    /// A delete found nothing live to delete.
    NothingToDelete,
    /// A check held.
    Checked,
}

fn met(
    current: Option<&versions::Current>,
    (expect, source): (Expect, Source),
    what: &str,
) -> StorageResult<()> {
    let live = current.filter(|c| !c.deleted).map(|c| c.version_id);
    let holds = match expect {
        Expect::Any => true,
        Expect::Absent => live.is_none(),
        Expect::Version(v) => live == Some(v),
    };
    match (holds, expect, source) {
        (true, _, _) => Ok(()),
        (false, Expect::Version(expected), Source::Client) => Err(StorageError::VersionConflict {
            expected,
            current: live,
        }),
        (false, _, _) => Err(StorageError::Stale(format!("{what} changed meanwhile"))),
    }
}

/// The index inserts of each step that writes a resource, built before the transaction runs
/// (see [`index::Inserts`]).
pub(super) fn inserts(postgres: bool, steps: &[TxStep]) -> Vec<Option<index::Inserts>> {
    steps
        .iter()
        .map(|step| match step {
            TxStep::Write {
                resource_type,
                id,
                index,
                ..
            } => Some(index::Inserts::new(
                postgres,
                &[(resource_type, id.as_str(), index)],
            )),
            _ => None,
        })
        .collect()
}

fn step(
    conn: &mut DbConnection,
    step: &TxStep,
    inserts: Option<&index::Inserts>,
    now: EpochMillis,
) -> StorageResult<TxDone> {
    match step {
        TxStep::Delete {
            resource_type,
            id,
            expect,
            ..
        } => {
            let previous = versions::current(conn, resource_type, id)?;
            met(previous.as_ref(), *expect, &format!("{resource_type}/{id}"))?;
            let Some(previous) = previous.filter(|p| !p.deleted) else {
                return Ok(TxDone::NothingToDelete);
            };
            versions::append(
                conn,
                (resource_type, id),
                Some(&previous),
                WriteMethod::Delete,
                |_, _| Vec::new(),
                None,
                now,
            )
            .map(TxDone::Stored)
        }
        TxStep::Write {
            resource_type,
            id,
            resource,
            index,
            method,
            expect,
            ..
        } => {
            // A server-assigned id is new: nothing to read.
            let previous = if *method == WriteMethod::Post {
                None
            } else {
                versions::current(conn, resource_type, id)?
            };
            met(previous.as_ref(), *expect, &format!("{resource_type}/{id}"))?;
            let content = |version, at| resource.stamp(id, version, at);
            versions::append(
                conn,
                (resource_type, id),
                previous.as_ref(),
                *method,
                content,
                Some(inserts.map_or(index::Rows::Extracted(index), index::Rows::Built)),
                now,
            )
            .map(TxDone::Stored)
        }
        TxStep::Matches {
            query, key, ids, ..
        } => {
            conditional::lock(conn, key)?;
            let mut found = search::matching(conn, query, ids.len() + 1)?;
            found.sort();
            if &found == ids {
                Ok(TxDone::Checked)
            } else {
                Err(StorageError::Stale(format!(
                    "the resources matching {key} changed meanwhile"
                )))
            }
        }
    }
}

/// Runs every step in order; the first failure undoes them all and names its entry.
pub(super) fn run(
    conn: &mut DbConnection,
    steps: &[TxStep],
    inserts: &[Option<index::Inserts>],
    now: EpochMillis,
) -> StorageResult<Vec<TxDone>> {
    let mut done = Vec::with_capacity(steps.len());
    for (i, s) in steps.iter().enumerate() {
        match step(conn, s, inserts.get(i).and_then(Option::as_ref), now) {
            Ok(d) => done.push(d),
            // Database errors stay as they are: the PostgreSQL path retries unique violations.
            Err(e @ StorageError::Database(_)) => return Err(e),
            Err(e) => {
                return Err(StorageError::Entry {
                    entry: s.entry(),
                    source: Box::new(e),
                });
            }
        }
    }
    Ok(done)
}

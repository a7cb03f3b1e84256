//! The write path every FHIR write shares (interactions, operations, start-up installs, the
//! demo): the domain hooks see the previous version and may complete or refuse the resource,
//! the index rows are extracted from the result, and the version is stored. An update whose
//! hooks read the previous version is stored only if that version is still current (retried
//! otherwise), so a hook never decides on a stale version.

use axum::http::StatusCode;
use serde_json::Value;

use super::{ApiError, RestState};
use crate::auth::Interaction;
use crate::fhir::outcome::Issue;
use crate::fhir::{ResourceId, VersionId};
use crate::hooks::{Refusal, WriteContext};
use crate::search::IndexRows;
use crate::storage::{StorageError, StoredVersion};

/// How often an update is retried when another write changed the resource between reading the
/// previous version for the hooks and storing.
const HOOK_RETRIES: usize = 5;

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Unprocessable(issue) => {
                ApiError::with_issues(StatusCode::UNPROCESSABLE_ENTITY, vec![issue])
            }
            Refusal::Invalid(issue) => ApiError::with_issues(StatusCode::BAD_REQUEST, vec![issue]),
            Refusal::Conflict(issue) => ApiError::with_issues(StatusCode::CONFLICT, vec![issue]),
        }
    }
}

/// A resource that passed the hooks, its index rows, and what the hooks said.
pub struct Prepared {
    /// The resource to store.
    pub resource: Value,
    /// Its search index rows.
    pub index: IndexRows,
    /// Warnings for the client.
    pub warnings: Vec<Issue>,
}

impl RestState {
    /// Whether a hook needs the previous version of resources of this type.
    pub fn hooked(&self, resource_type: &str) -> bool {
        self.hooks.iter().any(|h| h.wants(resource_type))
    }

    /// Runs the hooks over a resource about to be stored and extracts its index rows.
    pub fn prepare(
        &self,
        resource_type: &str,
        mut resource: Value,
        previous: Option<&Value>,
        interaction: Interaction,
    ) -> Result<Prepared, ApiError> {
        let permit = super::guard::current_permit(resource_type, interaction)?;
        if resource_type == "SearchParameter" {
            super::search_parameters::check(self, &resource)?;
        }
        let context = WriteContext {
            resource_type,
            previous,
            now: self.clock.now_millis(),
            author: None,
        };
        let mut warnings = Vec::new();
        for hook in self.hooks.iter().filter(|h| h.wants(resource_type)) {
            warnings.extend(hook.before_write(&context, &mut resource)?);
        }
        let index = self.index(&resource);
        self.within_permit(&permit, resource_type, &resource, Some(&index), true)?;
        Ok(Prepared {
            resource,
            index,
            warnings,
        })
    }

    /// The current content of a resource as JSON, with its version (`None` when it does not
    /// exist or is deleted).
    pub async fn current_value(
        &self,
        resource_type: &str,
        id: &ResourceId,
    ) -> Result<Option<(Value, VersionId)>, ApiError> {
        let Some(version) = self.storage.find_current(resource_type, id).await? else {
            return Ok(None);
        };
        if version.deleted {
            return Ok(None);
        }
        let value = serde_json::from_slice(&version.content)
            .map_err(|e| ApiError::internal(format!("stored JSON unreadable: {e}")))?;
        Ok(Some((value, version.version_id)))
    }

    /// Creates a resource with a server-assigned id, through the hooks.
    pub async fn create_through_hooks(
        &self,
        resource_type: &str,
        resource: Value,
    ) -> Result<(StoredVersion, Vec<Issue>), ApiError> {
        let Prepared {
            resource,
            index,
            warnings,
        } = self.prepare(resource_type, resource, None, Interaction::Create)?;
        let version = self.storage.create(resource_type, resource, index).await?;
        self.after_store(resource_type, &version);
        Ok((version, warnings))
    }

    /// Updates (or creates) a resource with a client-chosen id, through the hooks. `if_match`
    /// is the version the client expects to replace.
    pub async fn update_through_hooks(
        &self,
        resource_type: &str,
        id: &ResourceId,
        resource: Value,
        if_match: Option<VersionId>,
    ) -> Result<(StoredVersion, Vec<Issue>), ApiError> {
        self.check_existing(resource_type, id, Interaction::Update)
            .await?;
        if !self.hooked(resource_type) {
            let Prepared {
                resource,
                index,
                warnings,
            } = self.prepare(resource_type, resource, None, Interaction::Update)?;
            let version = self
                .storage
                .update(resource_type, id, resource, index, if_match)
                .await?;
            self.after_store(resource_type, &version);
            return Ok((version, warnings));
        }
        let mut attempts = 0;
        loop {
            attempts += 1;
            let previous = self.current_value(resource_type, id).await?;
            let expected = if_match.or(previous.as_ref().map(|(_, v)| *v));
            let Prepared {
                resource: prepared,
                index,
                warnings,
            } = self.prepare(
                resource_type,
                resource.clone(),
                previous.as_ref().map(|(v, _)| v),
                Interaction::Update,
            )?;
            match self
                .storage
                .update(resource_type, id, prepared, index, expected)
                .await
            {
                Ok(version) => {
                    self.after_store(resource_type, &version);
                    return Ok((version, warnings));
                }
                Err(StorageError::VersionConflict { .. })
                    if if_match.is_none() && attempts < HOOK_RETRIES => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Runs what follows a stored write: a SearchParameter joins the registry, and the hooks
    /// that want the type see the stored resource.
    pub fn after_store(&self, resource_type: &str, version: &StoredVersion) {
        if resource_type != "SearchParameter" && !self.hooked(resource_type) {
            return;
        }
        let Ok(stored) = serde_json::from_slice::<Value>(&version.content) else {
            return;
        };
        if resource_type == "SearchParameter" {
            super::search_parameters::written(self, &stored);
        }
        for hook in self.hooks.iter().filter(|h| h.wants(resource_type)) {
            hook.after_write(resource_type, &stored);
        }
    }
}

//! SearchParameter resources written through the API extend the registry: a new parameter
//! takes effect for writes at once (existing resources need `$reindex`). Every node rebuilds
//! its registry from the official definitions plus the stored SearchParameters at start, and
//! again whenever it sees a newer SearchParameter version (polled), so nodes agree.

use std::time::Duration;

use serde_json::Value;

use super::{ApiError, RestState};
use crate::fhir::outcome::IssueType;
use crate::search::Registry;
use crate::storage::{Storage, StorageResult};

/// How often a node looks for SearchParameters written by other nodes.
const SYNC_INTERVAL: Duration = Duration::from_secs(5);

/// Refuses a SearchParameter that search could not use (no code, base or type, or an
/// expression that does not parse).
pub fn check(state: &RestState, resource: &Value) -> Result<(), ApiError> {
    let mut scratch = (*state.registry.current()).clone();
    scratch.add(resource).map_err(|e| {
        ApiError::bad_request(
            IssueType::Invalid,
            format!("this SearchParameter cannot be used for search: {e}"),
        )
    })
}

/// Brings a written SearchParameter into the registry.
pub fn written(state: &RestState, resource: &Value) {
    let added = state.registry.update(|r| r.add(resource));
    if let Err(e) = added {
        tracing::warn!("a stored SearchParameter was not registered: {e}");
    }
    state.refresh_capabilities();
}

/// Takes a deleted SearchParameter out of the registry.
pub fn deleted(state: &RestState, resource: &Value) {
    if let Some(url) = resource.get("url").and_then(Value::as_str) {
        state.registry.update(|r| r.remove(url));
        // An official parameter it replaced comes back at the next rebuild.
        state.refresh_capabilities();
    }
}

/// The official parameters plus every stored SearchParameter.
pub async fn rebuild(storage: &Storage) -> StorageResult<Registry> {
    let mut registry = Registry::r4();
    let mut after = None;
    loop {
        let batch = storage
            .current_batch(Some("SearchParameter".into()), None, after.clone(), 500)
            .await?;
        let Some(last) = batch.last() else {
            return Ok(registry);
        };
        after = Some((last.resource_type.clone(), last.id.clone()));
        for stored in &batch {
            if let Ok(value) = serde_json::from_slice::<Value>(&stored.content)
                && let Err(e) = registry.add(&value)
            {
                tracing::warn!(
                    id = stored.id,
                    "a stored SearchParameter was not registered: {e}"
                );
            }
        }
    }
}

/// Keeps this node's registry in step with the stored SearchParameters, and its pathway
/// targets with the stored pathway CodeSystem.
pub fn spawn_sync(state: RestState, mut seen: Option<i64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut code_systems_seen = state.storage.latest_seq("CodeSystem").await.ok().flatten();
        loop {
            tokio::time::sleep(SYNC_INTERVAL).await;
            if let Ok(latest) = state.storage.latest_seq("CodeSystem").await
                && latest != code_systems_seen
            {
                code_systems_seen = latest;
                if let Ok(id) =
                    crate::fhir::ResourceId::parse(crate::triage::PATHWAY_CODE_SYSTEM_ID)
                    && let Ok(Some((code_system, _))) = state.current_value("CodeSystem", &id).await
                {
                    state.triage.reload(&code_system);
                }
            }
            let Ok(latest) = state.storage.latest_seq("SearchParameter").await else {
                continue;
            };
            if latest == seen {
                continue;
            }
            if let Ok(registry) = rebuild(&state.storage).await {
                state.registry.replace(registry);
                state.refresh_capabilities();
                seen = latest;
            }
        }
    })
}

//! Installs Hearth's own definitions (`profiles/`) at start: each resource that never existed in
//! the database is stored through the ordinary write path (so the SearchParameters join the
//! registry and the pathway CodeSystem is checked). A resource that exists, or was deleted, is
//! the site's to change and is left alone. The triage service then takes its pathway targets
//! from the stored CodeSystem.

use crate::fhir::ResourceId;
use crate::rest::RestState;
use crate::triage::PATHWAY_CODE_SYSTEM_ID;

use super::AppError;

/// The order of installation: the pathways before what refers to them.
fn rank(resource_type: &str) -> u8 {
    match resource_type {
        "CodeSystem" => 0,
        "ValueSet" => 1,
        "StructureDefinition" => 2,
        "SearchParameter" => 3,
        "OperationDefinition" => 4,
        _ => 5,
    }
}

/// Stores the missing definitions and reads the pathway targets.
pub async fn install_profiles(state: &RestState) -> Result<(), AppError> {
    let mut resources = crate::fhir::profiles::resources();
    resources.sort_by_key(|r| rank(r["resourceType"].as_str().unwrap_or_default()));
    let mut installed = 0;
    for resource in resources {
        let resource_type = resource["resourceType"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let id = ResourceId::parse(resource["id"].as_str().unwrap_or_default())
            .map_err(|e| AppError::Install(format!("profiles: {}", e.diagnostics)))?;
        if state
            .storage
            .find_current(&resource_type, &id)
            .await?
            .is_some()
        {
            continue;
        }
        state
            .update_through_hooks(&resource_type, &id, resource, None)
            .await
            .map_err(|e| {
                AppError::Install(format!(
                    "cannot install {resource_type}/{id} from profiles/: HTTP {}",
                    e.status()
                ))
            })?;
        installed += 1;
    }
    if installed > 0 {
        tracing::info!("installed {installed} definitions from profiles/");
    }
    let id =
        ResourceId::parse(PATHWAY_CODE_SYSTEM_ID).map_err(|e| AppError::Install(e.diagnostics))?;
    match state.current_value("CodeSystem", &id).await {
        Ok(Some((code_system, _))) => state.triage.reload(&code_system),
        Ok(None) => tracing::warn!(
            "CodeSystem/{PATHWAY_CODE_SYSTEM_ID} was deleted; triage uses the built-in pathway targets"
        ),
        Err(e) => {
            return Err(AppError::Install(format!(
                "cannot read the pathway CodeSystem: HTTP {}",
                e.status()
            )));
        }
    }
    Ok(())
}

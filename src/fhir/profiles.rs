//! Hearth's own conformance resources (`profiles/`): profiles, extensions, the pathway
//! CodeSystem, SearchParameters, OperationDefinitions and the default triage sentence
//! templates, built into the binary and installed into the database at start.

use serde_json::Value;

/// The files of `profiles/`, one resource each.
const FILES: &[&str] = &[
    include_str!("../../profiles/Basic-triage-sentence-amber-1.json"),
    include_str!("../../profiles/Basic-triage-sentence-amber-2.json"),
    include_str!("../../profiles/Basic-triage-sentence-green-1.json"),
    include_str!("../../profiles/Basic-triage-sentence-green-2.json"),
    include_str!("../../profiles/Basic-triage-sentence-purple-1.json"),
    include_str!("../../profiles/Basic-triage-sentence-red-1.json"),
    include_str!("../../profiles/Basic-triage-sentence-red-2.json"),
    include_str!("../../profiles/CodeSystem-hearth-resource-kind.json"),
    include_str!("../../profiles/CodeSystem-triage-pathway.json"),
    include_str!("../../profiles/OperationDefinition-ServiceRequest-deadline.json"),
    include_str!("../../profiles/OperationDefinition-ServiceRequest-extend-deadline.json"),
    include_str!("../../profiles/OperationDefinition-ServiceRequest-triage-stats.json"),
    include_str!("../../profiles/OperationDefinition-ServiceRequest-triage.json"),
    include_str!("../../profiles/SearchParameter-ServiceRequest-completed.json"),
    include_str!("../../profiles/SearchParameter-ServiceRequest-deadline.json"),
    include_str!("../../profiles/SearchParameter-ServiceRequest-pathway.json"),
    include_str!("../../profiles/SearchParameter-ServiceRequest-triaged.json"),
    include_str!("../../profiles/SearchParameter-ServiceRequest-ward.json"),
    include_str!("../../profiles/StructureDefinition-completion-time.json"),
    include_str!("../../profiles/StructureDefinition-deadline-extension.json"),
    include_str!("../../profiles/StructureDefinition-echo-service-request.json"),
    include_str!("../../profiles/StructureDefinition-triage-author.json"),
    include_str!("../../profiles/StructureDefinition-triage-deadline.json"),
    include_str!("../../profiles/StructureDefinition-triage-pathway.json"),
    include_str!("../../profiles/StructureDefinition-triage-sentence.json"),
    include_str!("../../profiles/StructureDefinition-triage-time.json"),
    include_str!("../../profiles/StructureDefinition-ward.json"),
    include_str!("../../profiles/ValueSet-triage-pathway.json"),
];

/// Every resource of `profiles/`.
pub fn resources() -> Vec<Value> {
    FILES
        .iter()
        .filter_map(|text| serde_json::from_str(text).ok())
        .collect()
}

/// The shipped resource with this type and id.
pub fn find(resource_type: &str, id: &str) -> Option<Value> {
    resources()
        .into_iter()
        .find(|r| r["resourceType"] == resource_type && r["id"] == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_built_in_and_valid_fhir() {
        let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles"))
            .expect("profiles folder")
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .count();
        assert_eq!(
            FILES.len(),
            on_disk,
            "list every profiles/*.json file in FILES"
        );
        assert_eq!(resources().len(), FILES.len());
        for resource in resources() {
            let text = serde_json::to_vec(&resource).expect("json");
            let t = resource["resourceType"].as_str().expect("type");
            crate::fhir::parse_resource(&text, crate::fhir::Format::Json, Some(t))
                .unwrap_or_else(|e| panic!("{t}/{}: {e:?}", resource["id"]));
        }
    }
}

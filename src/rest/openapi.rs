//! The OpenAPI description of the FHIR API (served at `/openapi.json`, browsable at `/docs`).

use utoipa::OpenApi;

use super::interactions::{capabilities, create, delete, history, read, update, vread};

/// Hearth's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Hearth FHIR R4 API", description = "FHIR R4 REST interactions. Bodies are application/fhir+json or application/fhir+xml; every error is an OperationOutcome."),
    paths(
        capabilities::read_capabilities,
        create::create_resource,
        read::read_resource,
        vread::vread_resource,
        update::update_resource,
        delete::delete_resource,
        history::system_history,
        history::type_history,
        history::instance_history,
    ),
    tags((name = "FHIR", description = "FHIR R4 RESTful interactions"))
)]
pub struct ApiDoc;

//! The OpenAPI description of the FHIR API (served at `/openapi.json`, browsable at `/docs`).

use utoipa::OpenApi;

use super::bundles;
use super::interactions::{
    capabilities, create, delete, history, patch, read, reindex, search, update, vread,
};
use super::operations::{deadline, extend_deadline, triage, triage_stats};

/// Hearth's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Hearth FHIR R4 API", description = "FHIR R4 REST interactions. Bodies are application/fhir+json or application/fhir+xml; every error is an OperationOutcome."),
    paths(
        capabilities::read_capabilities,
        bundles::process_bundle,
        create::create_resource,
        read::read_resource,
        vread::vread_resource,
        update::update_resource,
        update::conditional_update,
        patch::patch_resource,
        patch::conditional_patch,
        delete::delete_resource,
        history::system_history,
        history::type_history,
        history::instance_history,
        search::type_search,
        search::type_search_post,
        search::system_search,
        search::system_search_post,
        search::compartment_search,
        reindex::reindex_system,
        reindex::reindex_type,
        reindex::reindex_instance,
        triage::triage_request,
        extend_deadline::extend_deadline,
        deadline::compute_deadline,
        triage_stats::triage_stats,
        crate::auth::http::smart_configuration,
        crate::auth::http::openid_configuration,
        crate::auth::http::jwks,
        crate::auth::http::authorize::authorize_get,
        crate::auth::http::token::token,
        crate::auth::http::token::introspect,
        crate::auth::http::token::revoke,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags((name = "FHIR", description = "FHIR R4 RESTful interactions"),
        (name = "Triage", description = "Echo triage operations on ServiceRequest (definitions under profiles/)"),
        (name = "SMART", description = "SMART on FHIR authorization server and discovery"))
)]
pub struct ApiDoc;

/// Every FHIR request carries a bearer token (a JWT from `/auth/token` or `hearth token`).
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("SMART access token"))
                    .build(),
            ),
        );
    }
}

//! The authorization server over HTTP: discovery (`/fhir/.well-known/smart-configuration`,
//! `/.well-known/openid-configuration`), the JWK Set, `/auth/authorize` (GET and POST, with the
//! login, consent and patient-picker pages), `/auth/token`, `/auth/introspect` (RFC 7662) and
//! `/auth/revoke` (RFC 7009). Token-endpoint errors are RFC 6749 JSON; authorization errors go
//! back to the app's redirect URI, or are shown when that URI cannot be trusted.

pub mod authorize;
pub mod token;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use oauth2::StandardErrorResponse;
use oauth2::basic::BasicErrorResponseType;
use serde_json::{Value, json};

use super::Auth;
use super::clients::OAuthError;
use authorize::authorize_get;
use token::{introspect, revoke, token};

/// A boxed future of the directory.
pub type Found<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// Finds patients for the patient picker and checks that a chosen one exists; provided by the
/// composition root (it searches through the FHIR layer).
pub trait Directory: Send + Sync + 'static {
    /// Up to 50 patients whose name matches `name` (all when empty): `(id, label)`.
    fn patients(&self, name: &str) -> Found<'_, Vec<(String, String)>>;
    /// Whether `Patient/id` exists.
    fn patient_exists(&self, id: &str) -> Found<'_, bool>;
}

/// What the auth routes share.
#[derive(Clone)]
pub struct AuthState {
    /// The authorization server.
    pub auth: Auth,
    /// The patient directory.
    pub directory: Arc<dyn Directory>,
}

/// The routes of the authorization server and discovery.
pub fn router(state: AuthState) -> Router {
    Router::new()
        .route(
            "/fhir/.well-known/smart-configuration",
            get(smart_configuration).options(preflight_any),
        )
        .route(
            "/.well-known/openid-configuration",
            get(openid_configuration).options(preflight_any),
        )
        .route("/auth/jwks", get(jwks).options(preflight_any))
        .route(
            "/auth/smart-style.json",
            get(smart_style).options(preflight_any),
        )
        .route(
            "/auth/authorize",
            get(authorize_get).post(authorize::authorize_post),
        )
        .route("/auth/authorize/decide", post(authorize::decide))
        .route("/auth/token", post(token).options(preflight_registered))
        .route(
            "/auth/introspect",
            post(introspect).options(preflight_registered),
        )
        .route("/auth/revoke", post(revoke).options(preflight_registered))
        .with_state(state)
}

// ---------------------------------------------------------------------------------------------
// Discovery

/// The capabilities Hearth declares.
pub const CAPABILITIES: &[&str] = &[
    "launch-ehr",
    "launch-standalone",
    "authorize-post",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "context-ehr-patient",
    "context-ehr-encounter",
    "context-standalone-patient",
    "context-banner",
    "context-style",
    "sso-openid-connect",
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
];

/// The scopes Hearth supports (wildcards stand for every type).
const SCOPES_SUPPORTED: &[&str] = &[
    "openid",
    "fhirUser",
    "profile",
    "launch",
    "launch/patient",
    "launch/encounter",
    "offline_access",
    "online_access",
    "patient/*.cruds",
    "patient/*.rs",
    "user/*.cruds",
    "user/*.rs",
    "system/*.cruds",
    "system/*.rs",
    "patient/*.read",
    "patient/*.write",
    "patient/*.*",
    "user/*.read",
    "user/*.write",
    "user/*.*",
    "system/*.read",
    "system/*.write",
    "system/*.*",
];

fn open_json(value: Value) -> Response {
    let mut response = (StatusCode::OK, axum::Json(value)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    response
}

async fn preflight_any() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    allow_preflight(
        &mut response,
        HeaderValue::from_static("*"),
        "GET, OPTIONS",
        "Accept, Content-Type",
    );
    response
}

/// The headers of a CORS preflight answer that lets `origin` send `methods` with `headers`.
fn allow_preflight(
    response: &mut Response,
    origin: HeaderValue,
    methods: &'static str,
    headers: &'static str,
) {
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(headers),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
}

/// `GET /fhir/.well-known/smart-configuration`: JSON whatever the Accept header.
#[utoipa::path(get, path = "/fhir/.well-known/smart-configuration", tag = "SMART",
    responses((status = 200, description = "The SMART configuration (JSON whatever the Accept header; CORS open)")))]
pub async fn smart_configuration(State(state): State<AuthState>) -> Response {
    open_json(smart_configuration_document(state.auth.settings()))
}

/// The SMART configuration document.
pub fn smart_configuration_document(settings: &super::AuthSettings) -> Value {
    let root = &settings.public_url;
    json!({
        "issuer": root,
        "jwks_uri": format!("{root}/auth/jwks"),
        "authorization_endpoint": format!("{root}/auth/authorize"),
        "token_endpoint": format!("{root}/auth/token"),
        "introspection_endpoint": format!("{root}/auth/introspect"),
        "revocation_endpoint": format!("{root}/auth/revoke"),
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": SCOPES_SUPPORTED,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": CAPABILITIES,
    })
}

/// `GET /.well-known/openid-configuration`.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "SMART",
    responses((status = 200, description = "OpenID Connect discovery")))]
pub async fn openid_configuration(State(state): State<AuthState>) -> Response {
    let root = &state.auth.settings().public_url;
    open_json(json!({
        "issuer": root,
        "jwks_uri": format!("{root}/auth/jwks"),
        "authorization_endpoint": format!("{root}/auth/authorize"),
        "token_endpoint": format!("{root}/auth/token"),
        "introspection_endpoint": format!("{root}/auth/introspect"),
        "revocation_endpoint": format!("{root}/auth/revoke"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": SCOPES_SUPPORTED,
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "fhirUser"],
    }))
}

/// `GET /auth/jwks`.
#[utoipa::path(get, path = "/auth/jwks", tag = "SMART",
    responses((status = 200, description = "The server's public keys (JWK Set)")))]
pub async fn jwks(State(state): State<AuthState>) -> Response {
    open_json(state.auth.jwks())
}

/// `GET /auth/smart-style.json`: the style apps may follow (`smart_style_url`).
async fn smart_style() -> Response {
    open_json(json!({
        "color_background": "#f7f5f2",
        "color_error": "#b3261e",
        "color_highlight": "#8a3b12",
        "color_modal_backdrop": "",
        "color_success": "#2e7d32",
        "color_text": "#1c1b1a",
        "dim_border_radius": "6px",
        "dim_font_size": "16px",
        "dim_spacing_size": "16px",
        "font_family_body": "system-ui, sans-serif",
        "font_family_heading": "system-ui, sans-serif",
    }))
}

// ---------------------------------------------------------------------------------------------
// CORS for registered origins

fn origin(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The origin (`scheme://host[:port]`) of a URL.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then(|| format!("{scheme}://{host}"))
}

impl Auth {
    /// Whether `origin` is the origin of a redirect URI of an active client. The set is read
    /// from the database at most every ten seconds.
    pub async fn registered_origin(&self, origin: &str) -> bool {
        const FRESH_MS: i64 = 10_000;
        let now = self.now_ms();
        if let Ok(cache) = self.inner.origins.lock()
            && now - cache.0 < FRESH_MS
        {
            return cache.1.contains(origin);
        }
        let Ok(clients) = self.storage().clients().await else {
            return false;
        };
        let origins: std::collections::HashSet<String> = clients
            .iter()
            .filter(|c| c.status == "active")
            .flat_map(|c| serde_json::from_str::<Vec<String>>(&c.redirect_uris).unwrap_or_default())
            .filter_map(|u| origin_of(&u))
            .collect();
        let allowed = origins.contains(origin);
        if let Ok(mut cache) = self.inner.origins.lock() {
            *cache = (now, origins);
        }
        allowed
    }
}

/// Adds CORS headers to `response` when the request came from a registered origin.
pub async fn allow_registered_origin(auth: &Auth, headers: &HeaderMap, response: &mut Response) {
    if let Some(origin) = origin(headers)
        && auth.registered_origin(&origin).await
        && let Ok(value) = HeaderValue::from_str(&origin)
    {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(
                "Location, ETag, Last-Modified, Content-Location, WWW-Authenticate",
            ),
        );
    }
}

/// A CORS preflight answer for registered origins (a refusal for others).
pub async fn preflight(auth: &Auth, headers: &HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Some(origin) = origin(headers)
        && auth.registered_origin(&origin).await
        && let Ok(value) = HeaderValue::from_str(&origin)
    {
        allow_preflight(
            &mut response,
            value,
            "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
            "Authorization, Accept, Content-Type, If-Match, If-None-Match, If-None-Exist, If-Modified-Since, Prefer",
        );
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

async fn preflight_registered(State(state): State<AuthState>, headers: HeaderMap) -> Response {
    preflight(&state.auth, &headers).await
}

// ---------------------------------------------------------------------------------------------
// Shared by the token endpoints and the pages

/// `response` marked as never to be stored (tokens, codes, consent).
fn no_store(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let error: BasicErrorResponseType = serde_json::from_value(json!(self.error))
            .unwrap_or(BasicErrorResponseType::Extension(self.error.to_owned()));
        let body = StandardErrorResponse::new(error, Some(self.description), None);
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut response = no_store((status, axum::Json(body)).into_response());
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"hearth\""),
            );
        }
        response
    }
}

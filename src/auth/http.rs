//! The authorization server over HTTP: discovery (`/fhir/.well-known/smart-configuration`,
//! `/.well-known/openid-configuration`), the JWK Set, `/auth/authorize` (GET and POST, with the
//! login, consent and patient-picker pages), `/auth/token`, `/auth/introspect` (RFC 7662) and
//! `/auth/revoke` (RFC 7009). Token-endpoint errors are RFC 6749 JSON; authorization errors go
//! back to the app's redirect URI, or are shown when that URI cannot be trusted.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::{Query, RawForm, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use oauth2::StandardErrorResponse;
use oauth2::basic::BasicErrorResponseType;
use serde_json::{Value, json};

use super::clients::{ClientCredentials, OAuthError, basic_credentials};
use super::grants::{Grant, LaunchContext};
use super::{Auth, Level, Scopes};
use crate::accounts::{Role, SESSION_COOKIE, Status, User};
use crate::storage::oauth::ClientRow;

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
        .route("/auth/authorize", get(authorize_get).post(authorize_post))
        .route("/auth/authorize/decide", post(decide))
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
// Token, introspection, revocation

fn form_map(body: &[u8]) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    map
}

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

fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<ClientCredentials, OAuthError> {
    let basic = match headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        Some(value) if value.to_ascii_lowercase().starts_with("basic ") => {
            Some(basic_credentials(value).ok_or_else(|| {
                OAuthError::invalid_client("the Basic credentials cannot be read")
            })?)
        }
        _ => None,
    };
    Ok(ClientCredentials {
        basic,
        client_id: form.get("client_id").cloned(),
        client_secret: form.get("client_secret").cloned(),
        assertion_type: form.get("client_assertion_type").cloned(),
        assertion: form.get("client_assertion").cloned(),
    })
}

fn check_form_content(headers: &HeaderMap) -> Result<(), OAuthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.split(';').next().is_some_and(|t| {
        t.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    }) {
        Ok(())
    } else {
        Err(OAuthError::bad(
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        ))
    }
}

/// `POST /auth/token`.
#[utoipa::path(post, path = "/auth/token", tag = "SMART",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "grant_type authorization_code (code, redirect_uri, code_verifier), refresh_token (refresh_token, scope) or client_credentials (scope, client_assertion_type, client_assertion); client authentication by HTTP Basic, client_id/client_secret or a client assertion"),
    responses((status = 200, description = "Token response (access_token, token_type Bearer, expires_in, scope, patient, encounter, id_token, refresh_token)"),
        (status = 400, description = "RFC 6749 error (invalid_request, invalid_grant, invalid_scope, unsupported_grant_type, unauthorized_client)"),
        (status = 401, description = "invalid_client")))]
pub async fn token(
    State(state): State<AuthState>,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let result = token_grant(&state.auth, &headers, &body).await;
    let mut response = match result {
        Ok(value) => no_store((StatusCode::OK, axum::Json(value)).into_response()),
        Err(e) => e.into_response(),
    };
    allow_registered_origin(&state.auth, &headers, &mut response).await;
    response
}

async fn token_grant(auth: &Auth, headers: &HeaderMap, body: &[u8]) -> Result<Value, OAuthError> {
    check_form_content(headers)?;
    let form = form_map(body);
    let grant_type = form
        .get("grant_type")
        .ok_or_else(|| OAuthError::bad("invalid_request", "grant_type is missing"))?;
    let client = auth
        .authenticate_client(&client_credentials(headers, &form)?)
        .await?;
    let get = |k: &str| form.get(k).map(String::as_str);
    let response = match grant_type.as_str() {
        "authorization_code" => {
            auth.exchange_code(
                &client.id,
                get("code"),
                get("redirect_uri"),
                get("code_verifier"),
            )
            .await?
        }
        "refresh_token" => {
            auth.refresh(&client.id, get("refresh_token"), get("scope"))
                .await?
        }
        "client_credentials" => {
            if client.kind != "asymmetric" {
                return Err(OAuthError::bad(
                    "unauthorized_client",
                    "client_credentials is for backend services that authenticate with a signed assertion (private_key_jwt)",
                ));
            }
            auth.client_credentials(&client, get("scope")).await?
        }
        other => {
            return Err(OAuthError::bad(
                "unsupported_grant_type",
                format!(
                    "grant_type '{other}' is not supported; use authorization_code, refresh_token or client_credentials"
                ),
            ));
        }
    };
    serde_json::to_value(response).map_err(OAuthError::server)
}

/// `POST /auth/introspect` (RFC 7662): for authenticated clients, or the bearer of a valid
/// token.
#[utoipa::path(post, path = "/auth/introspect", tag = "SMART",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "token"),
    responses((status = 200, description = "{active, scope, client_id, exp, sub, patient, fhirUser, …}"),
        (status = 401, description = "invalid_client")))]
pub async fn introspect(
    State(state): State<AuthState>,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let result = async {
        check_form_content(&headers)?;
        let form = form_map(&body);
        authorize_caller(&state.auth, &headers, &form).await?;
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::bad("invalid_request", "token is missing"))?;
        Ok::<Value, OAuthError>(introspection(&state.auth, token).await)
    }
    .await;
    let mut response = match result {
        Ok(value) => no_store((StatusCode::OK, axum::Json(value)).into_response()),
        Err(e) => e.into_response(),
    };
    allow_registered_origin(&state.auth, &headers, &mut response).await;
    response
}

/// Who may introspect: a client that authenticates, or the bearer of a valid token.
async fn authorize_caller(
    auth: &Auth,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<(), OAuthError> {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return auth
            .verify(bearer.trim())
            .await
            .map(|_| ())
            .map_err(|e| OAuthError::invalid_client(e.to_string()));
    }
    auth.authenticate_client(&client_credentials(headers, form)?)
        .await
        .map(|_| ())
}

async fn introspection(auth: &Auth, token: &str) -> Value {
    match auth.verify(token).await {
        Ok(access) => {
            let mut body = access.claims.clone();
            body["active"] = json!(true);
            body["token_type"] = json!("Bearer");
            body
        }
        Err(_) => {
            // A refresh token is active while it is unused and current.
            if let Ok(Some(row)) = auth
                .storage()
                .refresh_token(&super::hash_secret(token))
                .await
                && row.used_ms.is_none()
                && row.expires_ms > auth.now_ms()
                && let Ok(grant) = serde_json::from_str::<Grant>(&row.grant_json)
            {
                return json!({
                    "active": true,
                    "token_type": "refresh_token",
                    "client_id": grant.client_id,
                    "scope": grant.scope,
                    "exp": row.expires_ms / 1000,
                    "sub": grant.user_id,
                });
            }
            json!({"active": false})
        }
    }
}

/// `POST /auth/revoke` (RFC 7009): revokes an access token or a refresh token (and its grant).
/// Unknown tokens are not an error.
#[utoipa::path(post, path = "/auth/revoke", tag = "SMART",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "token"),
    responses((status = 200, description = "Revoked (or unknown)"), (status = 401, description = "invalid_client")))]
pub async fn revoke(
    State(state): State<AuthState>,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let result = async {
        check_form_content(&headers)?;
        let form = form_map(&body);
        let client = state
            .auth
            .authenticate_client(&client_credentials(&headers, &form)?)
            .await?;
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::bad("invalid_request", "token is missing"))?;
        if let Ok(access) = state.auth.verify(token).await {
            if access.client_id != client.id {
                return Err(OAuthError::bad(
                    "unauthorized_client",
                    "the token was issued to another client",
                ));
            }
            state.auth.revoke_access(&access).await?;
        } else {
            let hash = super::hash_secret(token);
            if let Some(row) = state.auth.storage().refresh_token(&hash).await? {
                if row.client_id != client.id {
                    return Err(OAuthError::bad(
                        "unauthorized_client",
                        "the token was issued to another client",
                    ));
                }
                state.auth.storage().revoke_refresh(&hash).await?;
            }
        }
        Ok::<(), OAuthError>(())
    }
    .await;
    let mut response = match result {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => e.into_response(),
    };
    allow_registered_origin(&state.auth, &headers, &mut response).await;
    response
}

// ---------------------------------------------------------------------------------------------
// Authorize

/// A validated authorization request.
struct AuthzRequest {
    params: Vec<(String, String)>,
    client: ClientRow,
    redirect_uri: String,
    state: String,
    code_challenge: String,
    requested: Scopes,
    launch: Option<LaunchContext>,
    nonce: Option<String>,
}

/// Why an authorization request failed.
enum AuthzFailure {
    /// Shown to the user: the redirect URI cannot be trusted.
    Show(StatusCode, String),
    /// Sent back to the app.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
    /// The server failed.
    Server(String),
}

impl AuthzFailure {
    fn into_response(self) -> Response {
        match self {
            AuthzFailure::Show(status, message) => {
                message_page(status, "This app cannot sign you in", &message)
            }
            AuthzFailure::Redirect {
                redirect_uri,
                state,
                error,
                description,
            } => {
                let mut query = form_urlencoded::Serializer::new(String::new());
                query.append_pair("error", error);
                query.append_pair("error_description", &description);
                if let Some(state) = state {
                    query.append_pair("state", &state);
                }
                let joiner = if redirect_uri.contains('?') { '&' } else { '?' };
                no_store(
                    Redirect::to(&format!("{redirect_uri}{joiner}{}", query.finish()))
                        .into_response(),
                )
            }
            AuthzFailure::Server(message) => {
                tracing::error!("authorize: {message}");
                message_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The server could not complete the sign-in. Try again in a moment.",
                )
            }
        }
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

async fn validate(
    auth: &Auth,
    params: Vec<(String, String)>,
) -> Result<AuthzRequest, AuthzFailure> {
    let show = |m: String| AuthzFailure::Show(StatusCode::BAD_REQUEST, m);
    let client_id = param(&params, "client_id")
        .ok_or_else(|| show("The request names no app (client_id is missing).".into()))?;
    let client = auth
        .active_client(client_id)
        .await
        .map_err(|e| AuthzFailure::Server(e.to_string()))?
        .ok_or_else(|| show(format!("No active app is registered as '{client_id}'.")))?;
    let registered: Vec<String> = serde_json::from_str(&client.redirect_uris).unwrap_or_default();
    let redirect_uri = param(&params, "redirect_uri")
        .ok_or_else(|| show("The request has no redirect_uri.".into()))?
        .to_owned();
    if !registered.contains(&redirect_uri) {
        return Err(show(format!(
            "The redirect_uri '{redirect_uri}' is not registered for {}; it must match a registered URI exactly.",
            client.name
        )));
    }
    let state = param(&params, "state").map(str::to_owned);
    let back = |error: &'static str, description: String| AuthzFailure::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        error,
        description,
    };
    if param(&params, "response_type") != Some("code") {
        return Err(back(
            "unsupported_response_type",
            "response_type must be code".into(),
        ));
    }
    let Some(state_value) = state.clone() else {
        return Err(back("invalid_request", "state is missing".into()));
    };
    let code_challenge = param(&params, "code_challenge")
        .ok_or_else(|| {
            back(
                "invalid_request",
                "code_challenge is missing (PKCE with S256 is required)".into(),
            )
        })?
        .to_owned();
    match param(&params, "code_challenge_method") {
        Some("S256") => {}
        Some(other) => {
            return Err(back(
                "invalid_request",
                format!("code_challenge_method '{other}' is not supported; use S256"),
            ));
        }
        None => {
            return Err(back(
                "invalid_request",
                "code_challenge_method is missing; use S256 (plain is not supported)".into(),
            ));
        }
    }
    if code_challenge.len() != 43 {
        return Err(back(
            "invalid_request",
            "code_challenge is not a base64url SHA-256 digest".into(),
        ));
    }
    let aud = param(&params, "aud").unwrap_or_default();
    if aud.trim_end_matches('/') != auth.settings().fhir_base {
        return Err(back(
            "invalid_request",
            format!(
                "aud '{aud}' is not this FHIR server ({})",
                auth.settings().fhir_base
            ),
        ));
    }
    let requested = Scopes::parse(param(&params, "scope").unwrap_or_default());
    if requested.all.is_empty() {
        return Err(back("invalid_scope", "scope is missing".into()));
    }
    let launch = match param(&params, "launch") {
        Some(value) => Some(
            auth.launch_context(value)
                .await
                .map_err(|e| AuthzFailure::Server(e.description))?
                .ok_or_else(|| {
                    back(
                        "invalid_request",
                        "the launch value is unknown or has expired".into(),
                    )
                })?,
        ),
        None => None,
    };
    let nonce = param(&params, "nonce").map(str::to_owned);
    Ok(AuthzRequest {
        client,
        redirect_uri,
        state: state_value,
        code_challenge,
        requested,
        launch,
        nonce,
        params,
    })
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_owned())
}

/// The signed-in user and the session's CSRF token.
async fn signed_in(auth: &Auth, headers: &HeaderMap) -> Option<(User, String)> {
    let cookie = session_cookie(headers)?;
    let session = auth.accounts().session(&cookie).await.ok()??;
    Some((session.user?, session.csrf))
}

/// `GET /auth/authorize`: the authorization request (also by POST).
#[utoipa::path(get, path = "/auth/authorize", tag = "SMART",
    params(("response_type" = String, Query, description = "code"), ("client_id" = String, Query, description = "The client"),
        ("redirect_uri" = String, Query, description = "Exactly as registered"), ("scope" = String, Query, description = "SMART scopes"),
        ("state" = String, Query, description = "Returned as is"), ("aud" = String, Query, description = "This FHIR base URL"),
        ("code_challenge" = String, Query, description = "PKCE S256 challenge"), ("code_challenge_method" = String, Query, description = "S256"),
        ("launch" = Option<String>, Query, description = "EHR launch value"), ("nonce" = Option<String>, Query, description = "OpenID Connect nonce")),
    responses((status = 303, description = "To the login page, or back to the app with code and state (or error)"),
        (status = 200, description = "The consent page"), (status = 400, description = "Unknown client or redirect URI (shown, not redirected)")))]
pub async fn authorize_get(
    State(state): State<AuthState>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    authorize(&state, &headers, params).await
}

async fn authorize_post(
    State(state): State<AuthState>,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    authorize(&state, &headers, params).await
}

async fn authorize(
    state: &AuthState,
    headers: &HeaderMap,
    params: Vec<(String, String)>,
) -> Response {
    let request = match validate(&state.auth, params).await {
        Ok(r) => r,
        Err(f) => return f.into_response(),
    };
    let Some((user, csrf)) = signed_in(&state.auth, headers).await else {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.extend_pairs(request.params.iter());
        let next = format!("/auth/authorize?{}", query.finish());
        let login = format!(
            "/console/login?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("next", &next)
                .finish()
        );
        return Redirect::to(&login).into_response();
    };
    if let Err(f) = check_user(&request, &user) {
        return f.into_response();
    }
    let filter = param(&request.params, "patient_filter")
        .unwrap_or_default()
        .to_owned();
    consent_page(state, &request, &user, &csrf, &filter).await
}

fn check_user(request: &AuthzRequest, user: &User) -> Result<(), AuthzFailure> {
    let back = |error: &'static str, description: &str| AuthzFailure::Redirect {
        redirect_uri: request.redirect_uri.clone(),
        state: Some(request.state.clone()),
        error,
        description: description.to_owned(),
    };
    if user.status != Status::Active {
        return Err(back("access_denied", "the user's account is not active"));
    }
    if let Some(launch) = &request.launch
        && launch.user_id.as_ref().is_some_and(|u| u != &user.id)
    {
        return Err(back("access_denied", "the launch belongs to another user"));
    }
    if user.role == Role::Patient
        && !user
            .fhir_reference
            .as_deref()
            .unwrap_or_default()
            .starts_with("Patient/")
    {
        return Err(back(
            "access_denied",
            "this patient account has no patient record",
        ));
    }
    Ok(())
}

/// The scopes of the request that the client may have, in request order.
fn offered(request: &AuthzRequest) -> Scopes {
    request
        .requested
        .within(&Scopes::parse(&request.client.scope))
}

/// Whether the grant needs a patient chosen: patient scopes or `launch/patient` without one.
fn needs_patient(scopes: &Scopes) -> bool {
    scopes.has("launch/patient") || scopes.any_at(Level::Patient)
}

async fn consent_page(
    state: &AuthState,
    request: &AuthzRequest,
    user: &User,
    csrf: &str,
    filter: &str,
) -> Response {
    let offered = offered(request);
    let fixed_patient = request
        .launch
        .as_ref()
        .and_then(|l| l.patient.clone())
        .or_else(|| own_patient(user));
    let patients = if needs_patient(&offered) && fixed_patient.is_none() {
        match state.directory.patients(filter).await {
            Ok(list) => list,
            Err(e) => return AuthzFailure::Server(e).into_response(),
        }
    } else {
        Vec::new()
    };
    let hidden: Vec<(String, String)> = request
        .params
        .iter()
        .filter(|(k, _)| k != "patient_filter")
        .cloned()
        .collect();
    let scopes: Vec<Value> = offered
        .all
        .iter()
        .map(|s| json!({"scope": s, "label": describe_scope(s)}))
        .collect();
    let refused: Vec<&String> = request
        .requested
        .all
        .iter()
        .filter(|s| !offered.has(s))
        .collect();
    render(
        StatusCode::OK,
        "consent",
        minijinja::context! {
            title => format!("Allow {} to use your Hearth account?", request.client.name),
            app => request.client.name.clone(),
            user => user.display_name.clone(),
            csrf => csrf.to_owned(),
            query => hidden.iter().map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v))).collect::<Vec<_>>().join("&"),
            hidden => hidden,
            scopes => minijinja::Value::from(minijinja::value::Serde(&scopes)),
            refused => refused.into_iter().cloned().collect::<Vec<String>>(),
            pick_patient => needs_patient(&offered) && fixed_patient.is_none(),
            patients => patients,
            filter => filter.to_owned(),
        },
    )
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn own_patient(user: &User) -> Option<String> {
    if user.role != Role::Patient {
        return None;
    }
    user.fhir_reference
        .as_deref()
        .and_then(|r| r.strip_prefix("Patient/"))
        .map(str::to_owned)
}

/// Plain words for a scope on the consent page.
fn describe_scope(scope: &str) -> String {
    match scope {
        "openid" => return "Confirm who you are to the app".into(),
        "fhirUser" | "profile" => return "Tell the app which person record is yours".into(),
        "launch" => return "Open in the context of the EHR".into(),
        "launch/patient" => return "Choose a patient for the app to work with".into(),
        "launch/encounter" => return "Work with the current encounter".into(),
        "offline_access" => return "Keep access when you are not using the app".into(),
        "online_access" => return "Keep access while you are signed in".into(),
        _ => {}
    }
    match super::scopes::ResourceScope::parse(scope) {
        Some(s) => {
            let whose = match s.level {
                Level::Patient => "the chosen patient's",
                Level::User => "the",
                Level::System => "all",
            };
            let what = s
                .resource_type
                .clone()
                .map_or("records of every kind".to_owned(), |t| {
                    format!("{t} records")
                });
            let mut actions = Vec::new();
            for i in [
                super::Interaction::Read,
                super::Interaction::Search,
                super::Interaction::Create,
                super::Interaction::Update,
                super::Interaction::Delete,
            ] {
                if s.permits(s.resource_type.as_deref().unwrap_or("Patient"), i) {
                    actions.push(i.describe());
                }
            }
            let filter = if s.filter.is_empty() {
                String::new()
            } else {
                format!(
                    " where {}",
                    s.filter
                        .iter()
                        .map(|(k, v)| format!("{k} = {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            format!(
                "{} {whose} {what}{filter} you can access",
                capitalize(&actions.join(", "))
            )
        }
        None => format!("'{scope}'"),
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().collect::<String>() + chars.as_str(),
        None => String::new(),
    }
}

/// `POST /auth/authorize/decide`: the consent form.
async fn decide(
    State(state): State<AuthState>,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| param(&form, name).map(str::to_owned);
    let Some((user, csrf)) = signed_in(&state.auth, &headers).await else {
        return message_page(
            StatusCode::FORBIDDEN,
            "Signed out",
            "Your session has ended. Start again from the app.",
        );
    };
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        field("csrf").unwrap_or_default().as_bytes(),
        csrf.as_bytes(),
    )) {
        return message_page(
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form has expired or did not come from Hearth, so nothing was done. Start again from the app.",
        );
    }
    let params: Vec<(String, String)> = form
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "csrf" | "decision" | "grant" | "patient" | "patient_filter"
            )
        })
        .cloned()
        .collect();
    let request = match validate(&state.auth, params).await {
        Ok(r) => r,
        Err(f) => return f.into_response(),
    };
    if let Err(f) = check_user(&request, &user) {
        return f.into_response();
    }
    let back = |error: &'static str, description: &str| {
        AuthzFailure::Redirect {
            redirect_uri: request.redirect_uri.clone(),
            state: Some(request.state.clone()),
            error,
            description: description.to_owned(),
        }
        .into_response()
    };
    if field("decision").as_deref() != Some("allow") {
        return back("access_denied", "the user declined");
    }
    let offered = offered(&request);
    let chosen: Vec<&str> = form
        .iter()
        .filter(|(k, _)| k == "grant")
        .map(|(_, v)| v.as_str())
        .filter(|s| offered.has(s))
        .collect();
    let granted = Scopes::parse(&chosen.join(" "));
    if granted.all.is_empty() {
        return back("access_denied", "the user granted no scopes");
    }
    let patient = match request
        .launch
        .as_ref()
        .and_then(|l| l.patient.clone())
        .or_else(|| own_patient(&user))
    {
        Some(p) => Some(p),
        None if needs_patient(&granted) => {
            let Some(id) = field("patient") else {
                let filter = field("patient_filter").unwrap_or_default();
                return consent_page(&state, &request, &user, &csrf, &filter).await;
            };
            match state.directory.patient_exists(&id).await {
                Ok(true) => Some(id),
                Ok(false) => return back("invalid_request", "the chosen patient does not exist"),
                Err(e) => return AuthzFailure::Server(e).into_response(),
            }
        }
        None => None,
    };
    let grant = Grant {
        client_id: request.client.id.clone(),
        user_id: Some(user.id.clone()),
        scope: granted.to_string(),
        patient,
        encounter: request.launch.as_ref().and_then(|l| l.encounter.clone()),
        fhir_user: user.fhir_reference.clone(),
        role: Some(user.role.as_str().to_owned()),
        need_patient_banner: request.launch.is_none(),
        nonce: request.nonce.clone(),
        auth_time: Some(state.auth.now_ms() / 1000),
    };
    match state
        .auth
        .issue_code(&grant, &request.redirect_uri, &request.code_challenge)
        .await
    {
        Ok(code) => {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query.append_pair("code", &code);
            query.append_pair("state", &request.state);
            let joiner = if request.redirect_uri.contains('?') {
                '&'
            } else {
                '?'
            };
            no_store(
                Redirect::to(&format!(
                    "{}{joiner}{}",
                    request.redirect_uri,
                    query.finish()
                ))
                .into_response(),
            )
        }
        Err(e) => AuthzFailure::Server(e.description).into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Pages

fn templates() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        for (name, source) in [
            ("layout", include_str!("templates/layout.html")),
            ("consent", include_str!("templates/consent.html")),
            ("message", include_str!("templates/message.html")),
        ] {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!("auth template {name}: {e}");
            }
        }
        env
    })
}

fn render(status: StatusCode, name: &str, context: minijinja::Value) -> Response {
    let html = templates()
        .get_template(name)
        .and_then(|t| t.render(context))
        .unwrap_or_else(|e| {
            tracing::error!("rendering {name}: {e}");
            "<!doctype html><title>Error</title><p>The page could not be shown.</p>".to_owned()
        });
    let mut response = (status, axum::response::Html(html)).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; form-action 'self' http: https:",
        ),
    );
    response
}

fn message_page(status: StatusCode, title: &str, message: &str) -> Response {
    render(
        status,
        "message",
        minijinja::context! { title => title, message => message },
    )
}

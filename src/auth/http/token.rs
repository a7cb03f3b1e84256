//! The token endpoint (`/auth/token`), introspection (RFC 7662) and revocation (RFC 7009):
//! form posts answered with RFC 6749 JSON, open to the origins of registered apps.

use std::collections::HashMap;

use axum::extract::{RawForm, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{AuthState, allow_registered_origin, no_store};
use crate::auth::clients::{ClientCredentials, OAuthError, basic_credentials};
use crate::auth::grants::Grant;
use crate::auth::{Auth, hash_secret};

fn form_map(body: &[u8]) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    map
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
    answer(&state.auth, &headers, &body, async |form| {
        token_grant(&state.auth, &headers, form).await.map(Some)
    })
    .await
}

/// Answers a form post to one of these endpoints: the form checked and read, `work` done with
/// it, its JSON (or nothing) or its RFC 6749 error sent never to be stored, with CORS for
/// registered origins.
async fn answer(
    auth: &Auth,
    headers: &HeaderMap,
    body: &[u8],
    work: impl AsyncFnOnce(HashMap<String, String>) -> Result<Option<Value>, OAuthError>,
) -> Response {
    let result = match check_form_content(headers) {
        Ok(()) => work(form_map(body)).await,
        Err(e) => Err(e),
    };
    let mut response = match result {
        Ok(Some(value)) => no_store((StatusCode::OK, axum::Json(value)).into_response()),
        Ok(None) => no_store(StatusCode::OK.into_response()),
        Err(e) => e.into_response(),
    };
    allow_registered_origin(auth, headers, &mut response).await;
    response
}

async fn token_grant(
    auth: &Auth,
    headers: &HeaderMap,
    form: HashMap<String, String>,
) -> Result<Value, OAuthError> {
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
    answer(&state.auth, &headers, &body, async |form| {
        authorize_caller(&state.auth, &headers, &form).await?;
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::bad("invalid_request", "token is missing"))?;
        Ok(Some(introspection(&state.auth, token).await))
    })
    .await
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
            if let Ok(Some(row)) = auth.storage().refresh_token(&hash_secret(token)).await
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
    answer(&state.auth, &headers, &body, async |form| {
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
            let hash = hash_secret(token);
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
        Ok(None)
    })
    .await
}

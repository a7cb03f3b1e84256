//! `/auth/authorize` (GET and POST) and the consent form it shows: the request is checked, the
//! user signs in through the console session, chooses what to grant (and which patient), and
//! the browser goes back to the app with a code, or with an error where the spec says so.

use std::sync::OnceLock;

use axum::extract::{Query, RawForm, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};

use super::{AuthState, no_store};
use crate::accounts::{Role, Status, User};
use crate::auth::grants::{Grant, LaunchContext};
use crate::auth::{Auth, Level, Scopes};
use crate::storage::oauth::ClientRow;

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
    crate::accounts::session_cookie(
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
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

pub(super) async fn authorize_post(
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
    match crate::auth::scopes::ResourceScope::parse(scope) {
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
                crate::auth::Interaction::Read,
                crate::auth::Interaction::Search,
                crate::auth::Interaction::Create,
                crate::auth::Interaction::Update,
                crate::auth::Interaction::Delete,
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
pub(super) async fn decide(
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
            ("layout", include_str!("../templates/layout.html")),
            ("consent", include_str!("../templates/consent.html")),
            ("message", include_str!("../templates/message.html")),
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

//! Sessions as the browser sees them: the cookie, the CSRF check on every form, the client's
//! address, and the guard that sends a visitor without the right role to the login page or a
//! refusal.

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use subtle::ConstantTimeEq;

use super::fhir::Fhir;
use super::{ConsoleState, FormData};
use crate::accounts::{Actor, Role, Session, User};

use crate::accounts::SESSION_COOKIE as COOKIE;

/// The client's network address (the TCP peer).
pub struct ClientAddress(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip().to_string()),
        ))
    }
}

/// A request in its session (a new anonymous one when it has none): extracting it from a
/// request never fails but with a failure page.
pub struct Visit {
    /// The session.
    pub session: Session,
    /// The client's address.
    pub address: Option<String>,
}

impl Visit {
    /// The actor for audit records.
    pub fn actor(&self) -> Actor {
        Actor {
            user: self.session.user.clone(),
            address: self.address.clone(),
        }
    }

    /// `response` with the session cookie set when the session is new.
    pub fn respond(&self, state: &ConsoleState, response: Response) -> Response {
        let mut response = response;
        if let Some(value) = &self.session.cookie {
            // A cookie is set only on a new session: it lives as long as the session may.
            let max_age = state.accounts.settings().session_absolute_ms / 1000;
            let cookie = Cookie::build((COOKIE, value.clone()))
                .http_only(true)
                .same_site(SameSite::Lax)
                .secure(state.secure_cookies)
                .path("/")
                .max_age(cookie::time::Duration::seconds(max_age.max(0)))
                .build();
            if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        response
    }
}

impl FromRequestParts<ConsoleState> for Visit {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        let Ok(address) = ClientAddress::from_request_parts(parts, state).await;
        visit(state, &parts.headers, address).await
    }
}

/// A form post in its session, whose CSRF token matched; otherwise the refusal page.
pub struct Posted {
    /// The session.
    pub visit: Visit,
    /// The fields.
    pub form: FormData,
}

impl FromRequest<ConsoleState> for Posted {
    type Rejection = Response;

    async fn from_request(request: Request, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let Ok(address) = ClientAddress::from_request_parts(&mut parts, state).await;
        let headers = parts.headers.clone();
        let Form(form) = Form::<FormData>::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|e| {
                state.page(
                    e.status(),
                    "message.html",
                    minijinja::context! {
                        title => "Form not understood",
                        error => format!("The form could not be read ({}). Go back and try again.", e.body_text()),
                    },
                )
            })?;
        let visit = posted(state, &headers, address, &form).await?;
        Ok(Posted { visit, form })
    }
}

/// A header that removes the session cookie.
pub fn clear_cookie(state: &ConsoleState) -> HeaderValue {
    let cookie = Cookie::build((COOKIE, ""))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.secure_cookies)
        .path("/")
        .max_age(cookie::time::Duration::ZERO)
        .build();
    HeaderValue::from_str(&cookie.to_string()).unwrap_or(HeaderValue::from_static(""))
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    crate::accounts::session_cookie(
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
}

/// A page saying the server failed.
pub fn failure(state: &ConsoleState, error: &dyn std::fmt::Display) -> Response {
    tracing::error!("console: {error}");
    state.page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "message.html",
        minijinja::context! {
            title => "Something went wrong",
            error => "The server could not complete this request. Nothing was changed; try again in a moment, and tell an administrator if it persists.",
        },
    )
}

/// The session of the request, or a new anonymous one.
async fn visit(
    state: &ConsoleState,
    headers: &HeaderMap,
    address: ClientAddress,
) -> Result<Visit, Response> {
    if let Some(cookie) = cookie_value(headers) {
        match state.accounts.session(&cookie).await {
            Ok(Some(session)) => {
                return Ok(Visit {
                    session,
                    address: address.0,
                });
            }
            Ok(None) => {}
            Err(e) => return Err(failure(state, &e)),
        }
    }
    let session = state
        .accounts
        .start_session(None, None)
        .await
        .map_err(|e| failure(state, &e))?;
    Ok(Visit {
        session,
        address: address.0,
    })
}

/// The session of a form post, whose CSRF token must match; otherwise a refusal page.
async fn posted(
    state: &ConsoleState,
    headers: &HeaderMap,
    address: ClientAddress,
    form: &FormData,
) -> Result<Visit, Response> {
    let refuse = || {
        state.page(
            StatusCode::FORBIDDEN,
            "message.html",
            minijinja::context! {
                title => "Form expired",
                error => "This form has expired or did not come from Hearth, so nothing was done. Go back, reload the page and try again.",
                next => minijinja::context! { href => "/console", label => "Go to the console" },
            },
        )
    };
    let Some(cookie) = cookie_value(headers) else {
        return Err(refuse());
    };
    let session = match state.accounts.session(&cookie).await {
        Ok(Some(session)) => session,
        Ok(None) => return Err(refuse()),
        Err(e) => return Err(failure(state, &e)),
    };
    let sent = form.get("csrf").map_or("", String::as_str);
    if !bool::from(sent.as_bytes().ct_eq(session.csrf.as_bytes())) {
        return Err(refuse());
    }
    Ok(Visit {
        session,
        address: address.0,
    })
}

/// Checks the CSRF token of a form read by hand (multipart uploads) against the session of
/// `visit`; the refusal page when it does not match.
pub fn check_csrf(state: &ConsoleState, visit: &Visit, form: &FormData) -> Result<(), Response> {
    let sent = form.get("csrf").map_or("", String::as_str);
    if visit.session.cookie.is_none()
        && bool::from(sent.as_bytes().ct_eq(visit.session.csrf.as_bytes()))
    {
        return Ok(());
    }
    Err(state.page(
        StatusCode::FORBIDDEN,
        "message.html",
        minijinja::context! {
            title => "Form expired",
            error => "This form has expired or did not come from Hearth, so nothing was done. Go back, reload the page and try again.",
            next => minijinja::context! { href => "/console", label => "Go to the console" },
        },
    ))
}

/// A request from a signed-in member of staff (with `ADMIN`, an administrator), with the FHIR
/// API as them. Extracting it sends a visitor to the login page and gives any other role the
/// refusal page, so a handler that takes one has checked the role.
pub struct Staff<const ADMIN: bool = false> {
    /// The session.
    pub visit: Visit,
    /// The signed-in user.
    pub user: User,
    /// The FHIR API.
    pub fhir: Fhir,
}

/// A request from a signed-in administrator.
pub type Admin = Staff<true>;

/// A form post from a signed-in member of staff (with `ADMIN`, an administrator) whose CSRF
/// token matched, with the FHIR API as them.
pub struct StaffPost<const ADMIN: bool = false> {
    /// The session.
    pub visit: Visit,
    /// The signed-in user.
    pub user: User,
    /// The FHIR API.
    pub fhir: Fhir,
    /// The fields.
    pub form: FormData,
}

/// A form post from a signed-in administrator.
pub type AdminPost = StaffPost<true>;

/// The roles a page is for.
const fn audience(admin: bool) -> &'static [Role] {
    if admin { super::ADMINS } else { super::STAFF }
}

/// The user of `visit` when they have a role of the audience, and the FHIR API.
fn staff(state: &ConsoleState, visit: &Visit, admin: bool) -> Result<(User, Fhir), Response> {
    let user = require(state, visit, audience(admin))?;
    let fhir = state
        .fhir()
        .map_err(|e| state.fhir_failure(visit, &e))?
        .clone();
    Ok((user, fhir))
}

impl<const ADMIN: bool> FromRequestParts<ConsoleState> for Staff<ADMIN> {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        let visit = Visit::from_request_parts(parts, state).await?;
        let (user, fhir) = staff(state, &visit, ADMIN)?;
        Ok(Staff { visit, user, fhir })
    }
}

impl<const ADMIN: bool> FromRequest<ConsoleState> for StaffPost<ADMIN> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let Posted { visit, form } = Posted::from_request(request, state).await?;
        let (user, fhir) = staff(state, &visit, ADMIN)?;
        Ok(StaffPost {
            visit,
            user,
            fhir,
            form,
        })
    }
}

/// The signed-in user when they have one of `roles`: a visitor is sent to the login page, a
/// user without the role gets a refusal page.
pub fn require(state: &ConsoleState, visit: &Visit, roles: &[Role]) -> Result<User, Response> {
    let Some(user) = &visit.session.user else {
        return Err(visit.respond(state, Redirect::to("/console/login").into_response()));
    };
    if !roles.is_empty() && !roles.contains(&user.role) {
        return Err(state.page(
            StatusCode::FORBIDDEN,
            "message.html",
            minijinja::context! {
                title => "Not allowed",
                error => "Your role does not give access to this page.",
                user => super::ser(&super::UserView::from(user)),
                csrf => visit.session.csrf.clone(),
                next => minijinja::context! { href => "/console", label => "Go to the console" },
            },
        ));
    }
    Ok(user.clone())
}

//! The console under `/console`: server-rendered pages (minijinja templates built into the
//! binary) over the accounts service. Every page runs in a server-side session named by an
//! HttpOnly, SameSite=Lax cookie (Secure behind https); every form carries the session's CSRF
//! token; the session id changes at login. Errors are pages with a clear message, never JSON.

#![allow(
    clippy::result_large_err,
    reason = "a page is an early return, once per request: boxing it buys nothing"
)]

mod account_pages;
mod admin;
mod session;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::Environment;
use serde::Serialize;

use crate::accounts::{Accounts, Role, User};

pub use session::ClientAddress;

/// The console's state.
#[derive(Clone)]
pub struct ConsoleState {
    accounts: Accounts,
    templates: Arc<Environment<'static>>,
    /// Cookies get `Secure` when the public URL is https.
    secure_cookies: bool,
    /// Whether mail goes to `.eml` files (shown to administrators).
    mail_to_files: bool,
}

const TEMPLATES: [(&str, &str); 11] = [
    ("base.html", include_str!("templates/base.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("login.html", include_str!("templates/login.html")),
    ("register.html", include_str!("templates/register.html")),
    ("message.html", include_str!("templates/message.html")),
    (
        "set_password.html",
        include_str!("templates/set_password.html"),
    ),
    ("forgot.html", include_str!("templates/forgot.html")),
    ("home.html", include_str!("templates/home.html")),
    ("users.html", include_str!("templates/users.html")),
    ("outbox.html", include_str!("templates/outbox.html")),
    ("hearth.css", include_str!("templates/hearth.css")),
];

impl ConsoleState {
    /// The console over `accounts`.
    pub fn new(
        accounts: Accounts,
        public_url: &str,
        mail_to_files: bool,
    ) -> Result<ConsoleState, String> {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .map_err(|e| format!("console template {name}: {e}"))?;
        }
        Ok(ConsoleState {
            accounts,
            templates: Arc::new(env),
            secure_cookies: public_url.starts_with("https://"),
            mail_to_files,
        })
    }

    /// Renders a page with `status`.
    fn page(&self, status: StatusCode, name: &str, context: minijinja::Value) -> Response {
        match self
            .templates
            .get_template(name)
            .and_then(|t| t.render(context))
        {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!("console template {name} failed: {e:#}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Html("<!doctype html><title>Error</title><p>The page could not be shown. Try again; if it persists, tell an administrator.</p>".to_owned()),
                )
                    .into_response()
            }
        }
    }
}

/// A user as templates see it.
#[derive(Serialize)]
struct UserView {
    id: String,
    email: String,
    display_name: String,
    role: &'static str,
    status: &'static str,
    fhir_reference: Option<String>,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        UserView {
            id: user.id.clone(),
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            role: user.role.as_str(),
            status: user.status.as_str(),
            fhir_reference: user.fhir_reference.clone(),
        }
    }
}

/// A serializable value for a template.
fn ser<T: Serialize>(value: &T) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(value))
}

/// Field errors by field name.
type FieldErrors = HashMap<&'static str, String>;

/// A form body.
type FormData = HashMap<String, String>;

fn field<'a>(form: &'a FormData, name: &str) -> &'a str {
    form.get(name).map_or("", String::as_str)
}

/// Security headers on every console response: nothing cached, no framing, no referrer (links
/// carry tokens), scripts and styles only from Hearth.
async fn harden(response: Response) -> Response {
    let mut response = response;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    );
    response
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        TEMPLATES[10].1,
    )
        .into_response()
}

async fn not_found(axum::extract::State(state): axum::extract::State<ConsoleState>) -> Response {
    state.page(
        StatusCode::NOT_FOUND,
        "message.html",
        minijinja::context! {
            title => "Page not found",
            body => "There is no console page at this address.",
            next => minijinja::context! { href => "/console", label => "Go to the console" },
        },
    )
}

/// The console's routes.
pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route("/console", get(account_pages::home))
        .route("/console/", get(account_pages::home))
        .route("/console/static/hearth.css", get(stylesheet))
        .route(
            "/console/login",
            get(account_pages::login_form).post(account_pages::login),
        )
        .route("/console/logout", post(account_pages::logout))
        .route(
            "/console/register",
            get(account_pages::register_form).post(account_pages::register),
        )
        .route(
            "/console/verify",
            get(account_pages::verify_link).post(account_pages::accept_invitation),
        )
        .route("/console/resend", post(account_pages::resend))
        .route(
            "/console/forgot",
            get(account_pages::forgot_form).post(account_pages::forgot),
        )
        .route(
            "/console/reset",
            get(account_pages::reset_form).post(account_pages::reset),
        )
        .route(
            "/console/password",
            get(account_pages::password_form).post(account_pages::change_password),
        )
        .route("/console/admin/users", get(admin::users))
        .route("/console/admin/users/invite", post(admin::invite))
        .route("/console/admin/users/{id}/role", post(admin::set_role))
        .route("/console/admin/users/{id}/status", post(admin::set_status))
        .route("/console/admin/outbox", get(admin::outbox))
        .route("/console/admin/outbox/{id}/retry", post(admin::retry))
        .route("/console/{*rest}", get(not_found).post(not_found))
        .layer(axum::middleware::map_response(harden))
        .with_state(state)
}

/// Roles allowed on administration pages.
const ADMINS: &[Role] = &[Role::Admin];

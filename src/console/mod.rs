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
mod apps;
mod board;
mod dashboard;
mod desk;
mod echo;
pub mod fhir;
mod patients;
mod requests;
mod session;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::Environment;
use serde::Serialize;

use tokio::sync::watch;

use crate::accounts::{Accounts, Role, User};
use crate::storage::Storage;
use crate::triage::Triage;
use fhir::Fhir;

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
    clinical: Clinical,
    /// The change feed of ServiceRequests.
    changes: Option<watch::Receiver<i64>>,
}

const TEMPLATES: &[(&str, &str)] = &[
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
    ("board.html", include_str!("templates/board.html")),
    (
        "board_lanes.html",
        include_str!("templates/board_lanes.html"),
    ),
    ("extend.html", include_str!("templates/extend.html")),
    ("dashboard.html", include_str!("templates/dashboard.html")),
    ("desk.html", include_str!("templates/desk.html")),
    ("requests.html", include_str!("templates/requests.html")),
    ("request.html", include_str!("templates/request.html")),
    ("patients.html", include_str!("templates/patients.html")),
    ("patient.html", include_str!("templates/patient.html")),
    (
        "patient_form.html",
        include_str!("templates/patient_form.html"),
    ),
    ("apps.html", include_str!("templates/apps.html")),
    ("audit.html", include_str!("templates/audit.html")),
    ("settings.html", include_str!("templates/settings.html")),
    ("sentences.html", include_str!("templates/sentences.html")),
];

/// The stylesheet and script, served as they are.
const STYLESHEET: &str = include_str!("templates/hearth.css");
const SCRIPT: &str = include_str!("templates/console.js");

/// The clinical side of the console: the FHIR API it goes through, the triage rules (for the
/// settings page) and the change feed of echo requests.
#[derive(Clone, Default)]
struct Clinical {
    fhir: Option<Fhir>,
    triage: Option<Triage>,
    /// The site's triage guidelines (a PDF).
    guidelines_url: Option<String>,
}

/// Watches for changes to ServiceRequests (on any node: the write order is in the database),
/// once a second; the board's live updates listen to the receiver.
pub fn watch_changes(storage: Storage) -> (watch::Receiver<i64>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(0_i64);
    let task = tokio::spawn(async move {
        loop {
            match storage.latest_seq("ServiceRequest").await {
                Ok(seq) => {
                    let seq = seq.unwrap_or(0);
                    tx.send_if_modified(|seen| {
                        let changed = *seen != seq;
                        *seen = seq;
                        changed
                    });
                }
                Err(e) => tracing::warn!("console: cannot read the latest change: {e}"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
    (rx, task)
}

/// A query string, encoded.
fn query(pairs: &[(&str, &str)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        serializer.append_pair(k, v);
    }
    serializer.finish()
}

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
            clinical: Clinical::default(),
            changes: None,
        })
    }

    /// The console with its clinical pages: echo triage rules and the change feed.
    pub fn with_clinical(
        mut self,
        triage: Triage,
        changes: watch::Receiver<i64>,
        guidelines_url: Option<String>,
    ) -> Self {
        self.clinical.triage = Some(triage);
        self.clinical.guidelines_url = guidelines_url;
        self.changes = Some(changes);
        self
    }

    /// The console going through `fhir` for clinical data.
    pub fn connect(mut self, fhir: Fhir) -> Self {
        self.clinical.fhir = Some(fhir);
        self
    }

    /// The FHIR API.
    fn fhir(&self) -> Result<&Fhir, fhir::Failure> {
        self.clinical.fhir.as_ref().ok_or_else(|| fhir::Failure {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the console is not connected to the FHIR API".into(),
        })
    }

    /// The triage rules.
    fn triage(&self) -> Option<&Triage> {
        self.clinical.triage.as_ref()
    }

    /// Now, in milliseconds (the server's clock).
    fn now_ms(&self) -> i64 {
        match &self.clinical.fhir {
            Some(fhir) => fhir.auth().now_ms(),
            None => chrono::Utc::now().timestamp_millis(),
        }
    }

    /// The page for a FHIR request that failed: what the server said, in words.
    fn fhir_failure(&self, visit: &session::Visit, e: &fhir::Failure) -> Response {
        let (status, title) = match e.status {
            StatusCode::NOT_FOUND | StatusCode::GONE => (e.status, "Not found"),
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => {
                (StatusCode::FORBIDDEN, "Not allowed")
            }
            s if s.is_client_error() => (s, "Not done"),
            _ => {
                tracing::error!("console: {e}");
                (StatusCode::BAD_GATEWAY, "Something went wrong")
            }
        };
        let page = self.page(
            status,
            "message.html",
            minijinja::context! {
                title => title,
                error => format!("{}. Nothing was changed.", e.message.trim_end_matches('.')),
                user => ser(&visit.session.user.as_ref().map(UserView::from)),
                csrf => visit.session.csrf.clone(),
                next => minijinja::context! { href => "/console", label => "Go to the board" },
            },
        );
        visit.respond(self, page)
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
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        STYLESHEET,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SCRIPT,
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
        .route("/console", get(board::page))
        .route("/console/", get(board::page))
        .route("/console/home", get(account_pages::home))
        .route("/console/static/hearth.css", get(stylesheet))
        .route("/console/static/console.js", get(script))
        .route("/console/board/strips", get(board::strips))
        .route("/console/board/events", get(board::events))
        .route(
            "/console/requests/{id}/extend",
            get(board::extend_page).post(board::extend),
        )
        .route("/console/requests/{id}/{action}", post(board::set_status))
        .route("/console/requests", get(requests::table))
        .route("/console/requests.csv", get(requests::csv))
        .route("/console/requests/{id}", get(requests::one))
        .route("/console/dashboard", get(dashboard::page))
        .route("/console/triage", get(desk::page).post(desk::submit))
        .route("/console/triage/deadline", get(desk::preview))
        .route(
            "/console/admin/sentences",
            get(desk::sentences_page).post(desk::save_sentence),
        )
        .route("/console/admin/sentences/{id}", post(desk::save_sentence))
        .route("/console/patients", get(patients::list))
        .route(
            "/console/patients/new",
            get(patients::new_form).post(patients::save),
        )
        .route("/console/patients/{id}", get(patients::timeline))
        .route(
            "/console/patients/{id}/edit",
            get(patients::edit_form).post(patients::save),
        )
        .route(
            "/console/patients/{id}/images",
            post(patients::upload).layer(axum::extract::DefaultBodyLimit::max(
                patients::MAX_UPLOAD_BYTES + 64 * 1024,
            )),
        )
        .route("/console/binary/{id}", get(patients::binary))
        .route("/console/launch", post(apps::launch))
        .route("/console/admin/apps", get(apps::page).post(apps::register))
        .route("/console/admin/apps/{id}/status", post(apps::set_status))
        .route("/console/admin/audit", get(apps::audit))
        .route("/console/admin/settings", get(apps::settings))
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
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refuse_control_characters,
        ))
        .layer(axum::middleware::map_response(harden))
        .with_state(state)
}

/// The largest form read whole to be checked; the console's forms are a few kilobytes.
const FORM_LIMIT: usize = 2 * 1024 * 1024;

/// Answers a console request whose query or form holds a control character (but tab and line
/// breaks) with a page that says so: no field of the console can hold one, PostgreSQL's text
/// refuses U+0000, and such a login or registration failed as a server error. The image
/// upload's multipart form is not read here: its file is bytes.
async fn refuse_control_characters(
    axum::extract::State(state): axum::extract::State<ConsoleState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use crate::fhir::primitives::control_character;
    let holds_one = |bytes: &[u8]| {
        form_urlencoded::parse(bytes)
            .any(|(k, v)| control_character(&k).is_some() || control_character(&v).is_some())
    };
    let refused = |state: &ConsoleState| {
        state.page(
            StatusCode::BAD_REQUEST,
            "message.html",
            minijinja::context! {
                title => "The form could not be sent",
                body => "It holds a control character (an invisible character such as U+0000), which no field can store. Remove it, then send the form again.",
                next => minijinja::context! { href => "/console", label => "Go to the console" },
            },
        )
    };
    if request
        .uri()
        .query()
        .is_some_and(|q| holds_one(q.as_bytes()))
    {
        return refused(&state);
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
        return state.page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "message.html",
            minijinja::context! {
                title => "The form could not be sent",
                body => "It is larger than any form of the console.",
                next => minijinja::context! { href => "/console", label => "Go to the console" },
            },
        );
    };
    if holds_one(&bytes) {
        return refused(&state);
    }
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

/// Roles allowed on administration pages.
const ADMINS: &[Role] = &[Role::Admin];

/// Roles allowed on the clinical pages.
const STAFF: &[Role] = &[Role::Admin, Role::Physician, Role::Clinician];

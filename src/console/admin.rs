//! Administration: invite people, change roles, disable and enable accounts, and watch the
//! mail outbox (failed mail can be queued again).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;

use super::session::{Admin, AdminPost, Visit, failure};
use super::{ConsoleState, FieldErrors, FormData, UserView, field, ser};
use crate::accounts::{AccountError, Role};

struct Notice {
    notice: Option<String>,
    error: Option<String>,
}

async fn users_page(
    state: &ConsoleState,
    visit: &Visit,
    status: StatusCode,
    form: &FormData,
    errors: FieldErrors,
    notice: Notice,
) -> Response {
    let users = match state.accounts.users().await {
        Ok(users) => users,
        Err(e) => return failure(state, &e),
    };
    let context = context! {
        title => "Users",
        csrf => visit.session.csrf.clone(),
        user => ser(&visit.session.user.as_ref().map(UserView::from)),
        users => ser(&users.iter().map(UserView::from).collect::<Vec<_>>()),
        roles => Role::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        form => context! {
            name => field(form, "name"),
            email => field(form, "email"),
            role => Some(field(form, "role")).filter(|r| !r.is_empty()).unwrap_or("physician"),
            specialty => field(form, "specialty"),
        },
        errors => ser(&errors),
        notice => notice.notice,
        error => notice.error,
    };
    visit.respond(state, state.page(status, "users.html", context))
}

/// `GET /console/admin/users`.
pub async fn users(State(state): State<ConsoleState>, Admin { visit, .. }: Admin) -> Response {
    let none = Notice {
        notice: None,
        error: None,
    };
    users_page(
        &state,
        &visit,
        StatusCode::OK,
        &FormData::new(),
        FieldErrors::new(),
        none,
    )
    .await
}

/// `POST /console/admin/users/invite`.
pub async fn invite(
    State(state): State<ConsoleState>,
    AdminPost { visit, form, .. }: AdminPost,
) -> Response {
    let Some(role) = Role::parse(field(&form, "role")) else {
        let errors = FieldErrors::from([("role", "Choose a role.".to_owned())]);
        let none = Notice {
            notice: None,
            error: None,
        };
        return users_page(
            &state,
            &visit,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form,
            errors,
            none,
        )
        .await;
    };
    let specialty = Some(field(&form, "specialty")).filter(|s| !s.trim().is_empty());
    let result = state
        .accounts
        .invite(
            field(&form, "name"),
            field(&form, "email"),
            role,
            specialty,
            &visit.actor(),
        )
        .await;
    let (status, errors, notice) = match result {
        Ok(user) => (
            StatusCode::OK,
            FieldErrors::new(),
            Notice {
                notice: Some(format!("Invitation sent to {}.", user.email)),
                error: None,
            },
        ),
        Err(AccountError::Exists) => (
            StatusCode::CONFLICT,
            FieldErrors::from([(
                "email",
                "An account with this email already exists.".to_owned(),
            )]),
            Notice {
                notice: None,
                error: None,
            },
        ),
        Err(AccountError::Invalid { field, message }) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            FieldErrors::from([(field, message)]),
            Notice {
                notice: None,
                error: None,
            },
        ),
        Err(e) => return failure(&state, &e),
    };
    let form = if status == StatusCode::OK {
        FormData::new()
    } else {
        form
    };
    users_page(&state, &visit, status, &form, errors, notice).await
}

/// `POST /console/admin/users/{id}/role`.
pub async fn set_role(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    AdminPost { visit, form, .. }: AdminPost,
) -> Response {
    let outcome = match Role::parse(field(&form, "role")) {
        None => Err("Choose one of the roles.".to_owned()),
        Some(role) => match state.accounts.set_role(&id, role, &visit.actor()).await {
            Ok(user) => Ok(format!("{} is now {}.", user.email, user.role.as_str())),
            Err(AccountError::NotFound) => Err("That account no longer exists.".to_owned()),
            Err(AccountError::Invalid { message, .. }) => Err(message),
            Err(e) => return failure(&state, &e),
        },
    };
    outcome_page(&state, &visit, outcome).await
}

/// `POST /console/admin/users/{id}/status`: disable (sessions end at once) or enable.
pub async fn set_status(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    AdminPost { visit, form, .. }: AdminPost,
) -> Response {
    let disabled = field(&form, "disabled") == "true";
    let me = visit.session.user.as_ref().map(|u| u.id.as_str());
    let outcome = if disabled && me == Some(id.as_str()) {
        Err("You cannot disable your own account.".to_owned())
    } else {
        match state
            .accounts
            .set_disabled(&id, disabled, &visit.actor())
            .await
        {
            Ok(user) if disabled => Ok(format!(
                "{} is disabled; their sessions have ended.",
                user.email
            )),
            Ok(user) => Ok(format!(
                "{} is enabled ({}).",
                user.email,
                user.status.as_str()
            )),
            Err(AccountError::NotFound) => Err("That account no longer exists.".to_owned()),
            Err(e) => return failure(&state, &e),
        }
    };
    outcome_page(&state, &visit, outcome).await
}

async fn outcome_page(
    state: &ConsoleState,
    visit: &Visit,
    outcome: Result<String, String>,
) -> Response {
    let (status, notice) = match outcome {
        Ok(text) => (
            StatusCode::OK,
            Notice {
                notice: Some(text),
                error: None,
            },
        ),
        Err(text) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Notice {
                notice: None,
                error: Some(text),
            },
        ),
    };
    users_page(
        state,
        visit,
        status,
        &FormData::new(),
        FieldErrors::new(),
        notice,
    )
    .await
}

#[derive(serde::Serialize)]
struct MailView {
    id: i64,
    created: String,
    recipient: String,
    subject: String,
    status: String,
    attempts: i32,
    last_error: Option<String>,
}

async fn outbox_page(state: &ConsoleState, visit: &Visit, notice: Option<String>) -> Response {
    let mails = match state.accounts.outbox(200).await {
        Ok(mails) => mails,
        Err(e) => return failure(state, &e),
    };
    let london = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| {
                t.with_timezone(&chrono_tz::Europe::London)
                    .format("%Y-%m-%d %H:%M")
                    .to_string()
            })
            .unwrap_or_default()
    };
    let views: Vec<MailView> = mails
        .into_iter()
        .map(|m| MailView {
            id: m.id,
            created: london(m.created_ms),
            recipient: m.recipient,
            subject: m.subject,
            status: m.status,
            attempts: m.attempts,
            last_error: m.last_error,
        })
        .collect();
    let failed = views.iter().filter(|m| m.status == "failed").count();
    let transport = if state.mail_to_files {
        "SMTP is not configured: each message is written as an .eml file under the data folder's outbox/ (and its link is logged)."
    } else {
        "Messages are sent through the configured SMTP server."
    };
    let context = context! {
        title => "Mail",
        csrf => visit.session.csrf.clone(),
        user => ser(&visit.session.user.as_ref().map(UserView::from)),
        mails => ser(&views),
        transport => transport,
        notice => notice,
        error => (failed > 0).then(|| format!("{failed} message{} could not be sent; see the last error of each.", if failed == 1 { "" } else { "s" })),
    };
    visit.respond(state, state.page(StatusCode::OK, "outbox.html", context))
}

/// `GET /console/admin/outbox`.
pub async fn outbox(State(state): State<ConsoleState>, Admin { visit, .. }: Admin) -> Response {
    outbox_page(&state, &visit, None).await
}

/// `POST /console/admin/outbox/{id}/retry`.
pub async fn retry(
    State(state): State<ConsoleState>,
    Path(id): Path<i64>,
    AdminPost { visit, .. }: AdminPost,
) -> Response {
    if let Err(e) = state.accounts.retry_mail(id).await {
        return failure(&state, &e);
    }
    outbox_page(
        &state,
        &visit,
        Some("The message is queued again.".to_owned()),
    )
    .await
}

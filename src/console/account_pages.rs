//! The pages of one's own account: register, verify (and accept an invitation), resend, sign
//! in and out, forgotten password, reset, change password, and the console's home.

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;

use super::session::{self, Posted, Visit, failure, require};
use super::{ConsoleState, FieldErrors, FormData, UserView, field, ser};
use crate::accounts::{AccountError, LoginError, Registration, User};

/// The context every page shares.
fn base(visit: &Visit, title: &str) -> minijinja::Value {
    context! {
        title => title,
        csrf => visit.session.csrf.clone(),
        user => ser(&visit.session.user.as_ref().map(UserView::from)),
    }
}

fn page(
    state: &ConsoleState,
    visit: &Visit,
    status: StatusCode,
    name: &str,
    context: minijinja::Value,
) -> Response {
    visit.respond(state, state.page(status, name, context))
}

fn message(
    state: &ConsoleState,
    visit: &Visit,
    status: StatusCode,
    title: &str,
    extra: minijinja::Value,
) -> Response {
    let context = context! { ..extra, ..base(visit, title) };
    page(state, visit, status, "message.html", context)
}

/// `Invalid` errors beside their fields; anything else is a failure page.
fn field_errors(state: &ConsoleState, error: AccountError) -> Result<FieldErrors, Response> {
    match error {
        AccountError::Invalid { field, message } => Ok(FieldErrors::from([(field, message)])),
        other => Err(failure(state, &other)),
    }
}

/// `/console`: the home page of a signed-in user.
pub async fn home(State(state): State<ConsoleState>, visit: Visit) -> Response {
    if let Err(r) = require(&state, &visit, &[]) {
        return r;
    }
    home_page(&state, &visit)
}

/// The home page of a signed-in user without a clinical role (patients).
pub fn home_page(state: &ConsoleState, visit: &Visit) -> Response {
    page(
        state,
        visit,
        StatusCode::OK,
        "home.html",
        base(visit, "Hearth console"),
    )
}

fn login_page(
    state: &ConsoleState,
    visit: &Visit,
    status: StatusCode,
    email: &str,
    error: Option<String>,
    unverified: bool,
    next: &str,
) -> Response {
    let context = context! {
        email => email,
        next => next,
        error => error,
        unverified => unverified,
        errors => ser(&FieldErrors::new()),
        open_registration => state.accounts.settings().registration == Registration::Open,
        ..base(visit, "Sign in")
    };
    page(state, visit, status, "login.html", context)
}

/// `GET /console/login`.
pub async fn login_form(
    State(state): State<ConsoleState>,
    visit: Visit,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let next = query
        .iter()
        .find(|(k, _)| k == "next")
        .map(|(_, v)| safe_next(v))
        .unwrap_or("/console");
    if visit.session.user.is_some() {
        return Redirect::to(next).into_response();
    }
    login_page(&state, &visit, StatusCode::OK, "", None, false, next)
}

/// Where to go after signing in: a path on this server (an authorization request, a console
/// page), never another site.
fn safe_next(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control);
    if local { next } else { "/console" }
}

/// `POST /console/login`: on success the session is replaced by a new one for the user.
pub async fn login(State(state): State<ConsoleState>, Posted { visit, form }: Posted) -> Response {
    let email = field(&form, "email").trim();
    let next = safe_next(field(&form, "next"));
    match state
        .accounts
        .login(email, field(&form, "password"), &visit.actor())
        .await
    {
        Ok(user) => {
            match state
                .accounts
                .start_session(Some(&user), Some(&visit.session.id_hash))
                .await
            {
                Ok(session) => {
                    let signed_in = Visit {
                        session,
                        address: visit.address.clone(),
                    };
                    signed_in.respond(&state, Redirect::to(next).into_response())
                }
                Err(e) => failure(&state, &e),
            }
        }
        Err(LoginError::Account(e)) => failure(&state, &e),
        Err(e @ LoginError::Throttled { .. }) => login_page(
            &state,
            &visit,
            StatusCode::TOO_MANY_REQUESTS,
            email,
            Some(e.to_string()),
            false,
            next,
        ),
        Err(e @ LoginError::Unverified) => login_page(
            &state,
            &visit,
            StatusCode::FORBIDDEN,
            email,
            Some(e.to_string()),
            true,
            next,
        ),
        Err(e) => login_page(
            &state,
            &visit,
            if matches!(e, LoginError::Disabled) {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::UNAUTHORIZED
            },
            email,
            Some(e.to_string()),
            false,
            next,
        ),
    }
}

/// `POST /console/logout`.
pub async fn logout(State(state): State<ConsoleState>, Posted { visit, .. }: Posted) -> Response {
    if let Err(e) = state
        .accounts
        .end_session(&visit.session, &visit.actor())
        .await
    {
        return failure(&state, &e);
    }
    let mut response = Redirect::to("/console/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, session::clear_cookie(&state));
    response
}

fn register_page(
    state: &ConsoleState,
    visit: &Visit,
    status: StatusCode,
    form: &FormData,
    errors: FieldErrors,
) -> Response {
    let context = context! {
        form => context! {
            name => field(form, "name"),
            email => field(form, "email"),
            specialty => field(form, "specialty"),
        },
        errors => ser(&errors),
        policy => state.accounts.settings().policy.describe(),
        invite_only => state.accounts.settings().registration == Registration::InviteOnly,
        ..base(visit, "Register")
    };
    page(state, visit, status, "register.html", context)
}

/// `GET /console/register`.
pub async fn register_form(State(state): State<ConsoleState>, visit: Visit) -> Response {
    register_page(
        &state,
        &visit,
        StatusCode::OK,
        &FormData::new(),
        FieldErrors::new(),
    )
}

/// `POST /console/register`: the same answer whether or not the email has an account.
pub async fn register(
    State(state): State<ConsoleState>,
    Posted { visit, form }: Posted,
) -> Response {
    let specialty = Some(field(&form, "specialty")).filter(|s| !s.trim().is_empty());
    let result = state
        .accounts
        .register(
            field(&form, "name"),
            field(&form, "email"),
            field(&form, "password"),
            specialty,
            &visit.actor(),
        )
        .await;
    match result {
        Ok(()) => message(
            &state,
            &visit,
            StatusCode::OK,
            "Check your email",
            context! {
                notice => format!("We sent a link to {} to confirm the address. It works once, for 24 hours.", field(&form, "email").trim()),
                body => "Follow it to finish creating your account, then sign in. If no mail arrives within a few minutes, check your spam folder or ask for a new link.",
                resend => true,
            },
        ),
        Err(AccountError::InviteOnly) => register_page(
            &state,
            &visit,
            StatusCode::FORBIDDEN,
            &form,
            FieldErrors::new(),
        ),
        Err(e) => match field_errors(&state, e) {
            Ok(errors) => register_page(
                &state,
                &visit,
                StatusCode::UNPROCESSABLE_ENTITY,
                &form,
                errors,
            ),
            Err(r) => r,
        },
    }
}

/// A link that cannot be used: the reason and a way to get a new one.
fn bad_link(state: &ConsoleState, visit: &Visit, error: AccountError, resend: bool) -> Response {
    match error {
        AccountError::Token(problem) => message(
            state,
            visit,
            StatusCode::BAD_REQUEST,
            "Link not valid",
            context! {
                error => problem.to_string(),
                resend => resend,
                next => if resend { None } else { Some(context! { href => "/console/forgot", label => "Ask for a new reset link" }) },
            },
        ),
        other => failure(state, &other),
    }
}

fn verified(state: &ConsoleState, visit: &Visit, user: &User) -> Response {
    message(
        state,
        visit,
        StatusCode::OK,
        "Email address confirmed",
        context! {
            notice => format!("Thank you, {}: your account is active.", user.display_name),
            next => context! { href => "/console/login", label => "Sign in" },
        },
    )
}

#[derive(serde::Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

fn invitation_page(
    state: &ConsoleState,
    visit: &Visit,
    status: StatusCode,
    token: &str,
    user: Option<&User>,
    errors: FieldErrors,
) -> Response {
    let context = context! {
        intro => user.map(|u| format!("Welcome, {}. Choose a password for {} to accept the invitation.", u.display_name, u.email)),
        action => "/console/verify",
        token => token,
        errors => ser(&errors),
        policy => state.accounts.settings().policy.describe(),
        button => "Accept the invitation",
        ..base(visit, "Accept the invitation")
    };
    page(state, visit, status, "set_password.html", context)
}

/// `GET /console/verify?token=…`: confirms a registration at once; an invitation first asks
/// for a password.
pub async fn verify_link(
    State(state): State<ConsoleState>,
    visit: Visit,
    Query(query): Query<TokenQuery>,
) -> Response {
    let token = query.token.unwrap_or_default();
    match state.accounts.inspect_verification(&token).await {
        Ok(user) if !user.has_password => invitation_page(
            &state,
            &visit,
            StatusCode::OK,
            &token,
            Some(&user),
            FieldErrors::new(),
        ),
        Ok(_) => match state.accounts.verify(&token, None, &visit.actor()).await {
            Ok(user) => verified(&state, &visit, &user),
            Err(e) => bad_link(&state, &visit, e, true),
        },
        Err(e) => bad_link(&state, &visit, e, true),
    }
}

/// Checks that the two password fields agree.
fn confirmed(form: &FormData) -> Result<&str, FieldErrors> {
    let password = field(form, "password");
    if password != field(form, "confirm") {
        return Err(FieldErrors::from([(
            "confirm",
            "The two passwords are not the same.".to_owned(),
        )]));
    }
    Ok(password)
}

/// `POST /console/verify`: accepts an invitation with a password.
pub async fn accept_invitation(
    State(state): State<ConsoleState>,
    Posted { visit, form }: Posted,
) -> Response {
    let token = field(&form, "token");
    let password = match confirmed(&form) {
        Ok(p) => p,
        Err(errors) => {
            return invitation_page(
                &state,
                &visit,
                StatusCode::UNPROCESSABLE_ENTITY,
                token,
                None,
                errors,
            );
        }
    };
    match state
        .accounts
        .verify(token, Some(password), &visit.actor())
        .await
    {
        Ok(user) => verified(&state, &visit, &user),
        Err(e @ AccountError::Token(_)) => bad_link(&state, &visit, e, true),
        Err(e) => match field_errors(&state, e) {
            Ok(errors) => invitation_page(
                &state,
                &visit,
                StatusCode::UNPROCESSABLE_ENTITY,
                token,
                None,
                errors,
            ),
            Err(r) => r,
        },
    }
}

/// `POST /console/resend`: a new verification link, if one is waited for (silent otherwise).
pub async fn resend(State(state): State<ConsoleState>, Posted { visit, form }: Posted) -> Response {
    if let Err(e) = state
        .accounts
        .resend_verification(field(&form, "email"))
        .await
    {
        return failure(&state, &e);
    }
    message(
        &state,
        &visit,
        StatusCode::OK,
        "Check your email",
        context! {
            notice => "If an account with this address is waiting for verification, we sent it a new link. Earlier links no longer work.",
            next => context! { href => "/console/login", label => "Sign in" },
        },
    )
}

/// `GET /console/forgot`.
pub async fn forgot_form(State(state): State<ConsoleState>, visit: Visit) -> Response {
    let context = context! {
        email => "",
        errors => ser(&FieldErrors::new()),
        ..base(&visit, "Forgotten password")
    };
    page(&state, &visit, StatusCode::OK, "forgot.html", context)
}

/// `POST /console/forgot`: the same answer whether or not the email has an account.
pub async fn forgot(State(state): State<ConsoleState>, Posted { visit, form }: Posted) -> Response {
    if let Err(e) = state.accounts.forgot_password(field(&form, "email")).await {
        return failure(&state, &e);
    }
    message(
        &state,
        &visit,
        StatusCode::OK,
        "Check your email",
        context! {
            notice => "If an account exists for this address, we sent it a link to choose a new password. It works once, for one hour.",
            next => context! { href => "/console/login", label => "Sign in" },
        },
    )
}

fn reset_page(
    state: &ConsoleState,
    visit: &Visit,
    status: StatusCode,
    token: &str,
    errors: FieldErrors,
) -> Response {
    let context = context! {
        action => "/console/reset",
        token => token,
        errors => ser(&errors),
        policy => state.accounts.settings().policy.describe(),
        button => "Set the new password",
        ..base(visit, "Choose a new password")
    };
    page(state, visit, status, "set_password.html", context)
}

/// `GET /console/reset?token=…`: the form, if the link is still good (it is not used yet).
pub async fn reset_form(
    State(state): State<ConsoleState>,
    visit: Visit,
    Query(query): Query<TokenQuery>,
) -> Response {
    let token = query.token.unwrap_or_default();
    match state.accounts.inspect_reset(&token).await {
        Ok(()) => reset_page(&state, &visit, StatusCode::OK, &token, FieldErrors::new()),
        Err(e) => bad_link(&state, &visit, e, false),
    }
}

/// `POST /console/reset`.
pub async fn reset(State(state): State<ConsoleState>, Posted { visit, form }: Posted) -> Response {
    let token = field(&form, "token");
    let password = match confirmed(&form) {
        Ok(p) => p,
        Err(errors) => {
            return reset_page(
                &state,
                &visit,
                StatusCode::UNPROCESSABLE_ENTITY,
                token,
                errors,
            );
        }
    };
    match state
        .accounts
        .reset_password(token, password, &visit.actor())
        .await
    {
        Ok(_) => message(
            &state,
            &visit,
            StatusCode::OK,
            "Password changed",
            context! {
                notice => "Your password is changed and every session of your account has ended.",
                next => context! { href => "/console/login", label => "Sign in" },
            },
        ),
        Err(e @ AccountError::Token(_)) => bad_link(&state, &visit, e, false),
        Err(e) => match field_errors(&state, e) {
            Ok(errors) => reset_page(
                &state,
                &visit,
                StatusCode::UNPROCESSABLE_ENTITY,
                token,
                errors,
            ),
            Err(r) => r,
        },
    }
}

fn password_page(
    state: &ConsoleState,
    visit: &Visit,
    status: StatusCode,
    notice: Option<&str>,
    errors: FieldErrors,
) -> Response {
    let context = context! {
        action => "/console/password",
        ask_current => true,
        notice => notice,
        errors => ser(&errors),
        policy => state.accounts.settings().policy.describe(),
        button => "Change the password",
        ..base(visit, "Change your password")
    };
    page(state, visit, status, "set_password.html", context)
}

/// `GET /console/password`.
pub async fn password_form(State(state): State<ConsoleState>, visit: Visit) -> Response {
    if let Err(r) = require(&state, &visit, &[]) {
        return r;
    }
    password_page(&state, &visit, StatusCode::OK, None, FieldErrors::new())
}

/// `POST /console/password`: other sessions of the user end.
pub async fn change_password(
    State(state): State<ConsoleState>,
    Posted { visit, form }: Posted,
) -> Response {
    let user = match require(&state, &visit, &[]) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let password = match confirmed(&form) {
        Ok(p) => p,
        Err(errors) => {
            return password_page(
                &state,
                &visit,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                errors,
            );
        }
    };
    let result = state
        .accounts
        .change_password(
            &user,
            field(&form, "current"),
            password,
            &visit.session.id_hash,
            &visit.actor(),
        )
        .await;
    match result {
        Ok(()) => password_page(
            &state,
            &visit,
            StatusCode::OK,
            Some("Your password is changed. Your other sessions have ended."),
            FieldErrors::new(),
        ),
        Err(e) => match field_errors(&state, e) {
            Ok(errors) => password_page(
                &state,
                &visit,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                errors,
            ),
            Err(r) => r,
        },
    }
}

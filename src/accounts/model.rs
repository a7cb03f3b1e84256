//! What accounts are made of: roles, statuses, users, settings, errors, sessions.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use super::mails;
use super::password::{HashCost, PasswordPolicy};
use crate::storage::StorageError;
use crate::storage::accounts::UserRow;

/// A role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages users, apps and settings.
    Admin,
    /// A doctor.
    Physician,
    /// A nurse, sonographer or other clinical staff.
    Clinician,
    /// A portal user, who sees only their own record.
    Patient,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Physician, Role::Clinician, Role::Patient];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Physician => "physician",
            Role::Clinician => "clinician",
            Role::Patient => "patient",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// The FHIR resource type that represents a person of this role.
    pub fn resource_type(self) -> &'static str {
        match self {
            Role::Patient => "Patient",
            _ => "Practitioner",
        }
    }
}

/// Whether an account may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The email address is not confirmed yet.
    PendingVerification,
    /// May sign in.
    Active,
    /// Turned off by an administrator.
    Disabled,
}

impl Status {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::PendingVerification => "pending-verification",
            Status::Active => "active",
            Status::Disabled => "disabled",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Status> {
        [
            Status::PendingVerification,
            Status::Active,
            Status::Disabled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// An account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable id (a UUID).
    pub id: String,
    /// As typed.
    pub email: String,
    /// The person's name.
    pub display_name: String,
    /// The role.
    pub role: Role,
    /// Whether they may sign in.
    pub status: Status,
    /// `Practitioner/…` or `Patient/…`.
    pub fhir_reference: Option<String>,
    /// Whether a password is set (an invited person has none until they accept).
    pub has_password: bool,
    /// Created, ms since the epoch.
    pub created_ms: i64,
}

impl User {
    pub(super) fn from_row(row: &UserRow) -> User {
        User {
            id: row.id.clone(),
            email: row.email.clone(),
            display_name: row.display_name.clone(),
            // Rows are written only by this module, from these enums.
            role: Role::parse(&row.role).unwrap_or(Role::Patient),
            status: Status::parse(&row.status).unwrap_or(Status::Disabled),
            fhir_reference: row.fhir_reference.clone(),
            has_password: row.password_hash.is_some(),
            created_ms: row.created_ms,
        }
    }
}

/// Writes FHIR resources through the server's ordinary write path (validation, hooks,
/// indexing); provided by the composition root.
pub trait Records: Send + Sync + 'static {
    /// Creates `resource`; answers its reference (`Type/id`).
    fn create(
        &self,
        resource: Value,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>>;
}

/// Who may register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// Anyone may register (as a physician) and verify their email.
    Open,
    /// Only people an administrator invites.
    InviteOnly,
}

/// Account settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// External base URL, for links in mail.
    pub public_url: String,
    /// Who may register.
    pub registration: Registration,
    /// Password rules.
    pub policy: PasswordPolicy,
    /// Argon2 cost.
    pub cost: HashCost,
    /// A session ends after this long without a request.
    pub session_idle_ms: i64,
    /// A session ends this long after login whatever happens.
    pub session_absolute_ms: i64,
    /// Failed logins allowed per account within `throttle_window_ms`.
    pub max_failures_per_account: i64,
    /// Failed logins allowed per address within `throttle_window_ms`.
    pub max_failures_per_address: i64,
    /// The throttling window.
    pub throttle_window_ms: i64,
    /// Mail delivery retries.
    pub delivery: mails::Delivery,
}

/// Email verification and invitation links are valid this long.
pub const VERIFY_TTL_MS: i64 = 24 * 3600 * 1000;
/// Reset links are valid this long.
pub const RESET_TTL_MS: i64 = 3600 * 1000;

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Input that cannot be used; `field` names the form field.
    #[error("{message}")]
    Invalid {
        /// The form field.
        field: &'static str,
        /// What is wrong, for the person.
        message: String,
    },
    /// Only invited people may register.
    #[error("registration is by invitation only")]
    InviteOnly,
    /// No such account (administration only; never said to the public).
    #[error("no such account")]
    NotFound,
    /// The email already has an account (administration only).
    #[error("an account with this email already exists")]
    Exists,
    /// An emailed link that cannot be used.
    #[error("{0}")]
    Token(TokenProblem),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Something else failed (hashing, the FHIR record).
    #[error("{0}")]
    Internal(String),
}

/// Why an emailed link cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    /// Past its time.
    Expired,
    /// Used before.
    Spent,
    /// Not a link this server issued.
    Unknown,
}

impl std::fmt::Display for TokenProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenProblem::Expired => "This link has expired. Ask for a new one.",
            TokenProblem::Spent => {
                "This link has already been used. Ask for a new one if you still need it."
            }
            TokenProblem::Unknown => {
                "This link is not valid. Check that you copied all of it, or ask for a new one."
            }
        })
    }
}

/// Why a login was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong email or password (never which).
    #[error("The email or password is incorrect.")]
    Wrong,
    /// Too many failures recently.
    #[error("Too many failed attempts. Try again in {minutes} minute{}.", if *minutes == 1 { "" } else { "s" })]
    Throttled {
        /// Minutes until the next attempt is allowed.
        minutes: i64,
    },
    /// The password is right but the email is not verified yet.
    #[error(
        "Your email address is not verified yet. Follow the link in the email we sent you, or send a new one."
    )]
    Unverified,
    /// The password is right but the account is disabled.
    #[error("This account is disabled. Ask an administrator.")]
    Disabled,
    /// The server failed.
    #[error(transparent)]
    Account(#[from] AccountError),
}

/// A console session as the console sees it.
#[derive(Debug, Clone)]
pub struct Session {
    /// The cookie value (only known when the session was just started).
    pub cookie: Option<String>,
    /// The hashed id.
    pub id_hash: String,
    /// The CSRF token of its forms.
    pub csrf: String,
    /// The signed-in user.
    pub user: Option<User>,
    /// Absolute end, ms since the epoch.
    pub expires_ms: i64,
}

/// What a new account is.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Email address.
    pub email: String,
    /// Name.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// Password, or none for an invitation.
    pub password: Option<String>,
    /// A specialty (staff).
    pub specialty: Option<String>,
    /// Whether the email counts as verified already (command line, bootstrap).
    pub verified: bool,
}

/// The context of a request: who acts, from where.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    /// The signed-in user, if any.
    pub user: Option<User>,
    /// The client's network address.
    pub address: Option<String>,
}

//! Accounts wired into the server: the FHIR write path they record people and audit events
//! through, the mailer and its delivery task, the bootstrap administrator, and the settings
//! taken from the configuration.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::accounts::{
    self, Accounts, Actor, HashCost, NewAccount, PasswordPolicy, Records, Registration, Role,
};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::mail::Mailer;
use crate::rest::RestState;

use super::AppError;

/// Creates resources through the REST layer's write path: validated like a client's resource,
/// indexed, and passed through the write hooks.
struct RestRecords(RestState);

impl Records for RestRecords {
    fn create(
        &self,
        resource: Value,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>> {
        Box::pin(async move {
            let resource_type = resource["resourceType"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let bytes = serde_json::to_vec(&resource).map_err(|e| e.to_string())?;
            let resource = crate::fhir::parse_resource(
                &bytes,
                crate::fhir::Format::Json,
                Some(&resource_type),
            )
            .map_err(|issues| {
                let reasons: Vec<&str> = issues.iter().map(|i| i.diagnostics.as_str()).collect();
                format!("invalid {resource_type}: {}", reasons.join("; "))
            })?;
            let (version, _) = self
                .0
                .create_through_hooks(&resource_type, resource)
                .await
                .map_err(|e| format!("cannot store the {resource_type}: HTTP {}", e.status()))?;
            Ok(format!("{resource_type}/{}", version.id))
        })
    }
}

/// The account settings of the configuration.
pub fn settings(config: &Config, public_url: &str) -> accounts::Settings {
    let a = &config.accounts;
    accounts::Settings {
        public_url: public_url.to_owned(),
        registration: if a.open_registration {
            Registration::Open
        } else {
            Registration::InviteOnly
        },
        policy: PasswordPolicy {
            min_length: a.password_min_length as usize,
            require_classes: a.password_require_classes,
        },
        cost: HashCost {
            memory_kib: a.argon2_memory_kib,
            iterations: a.argon2_iterations,
        },
        session_idle_ms: i64::from(a.session_idle_minutes) * 60_000,
        session_absolute_ms: i64::from(a.session_absolute_hours) * 3_600_000,
        max_failures_per_account: i64::from(a.login_max_failures),
        max_failures_per_address: i64::from(a.login_max_failures_per_address),
        throttle_window_ms: i64::from(a.login_lockout_minutes) * 60_000,
        delivery: accounts::mails::Delivery {
            max_attempts: i32::try_from(a.mail_max_attempts).unwrap_or(i32::MAX),
            first_retry: Duration::from_secs(u64::from(a.mail_retry_seconds)),
        },
    }
}

/// The accounts service over the FHIR state.
pub fn accounts(
    config: &Config,
    state: &RestState,
    public_url: &str,
    clock: SharedClock,
) -> Result<Accounts, AppError> {
    Accounts::new(
        state.storage.clone(),
        Arc::new(RestRecords(state.clone())),
        settings(config, public_url),
        clock,
    )
    .map_err(|message| AppError::Config {
        name: "HEARTH_ARGON2_MEMORY_KIB",
        message,
    })
}

/// The mailer of the configuration.
pub fn mailer(config: &Config) -> Result<Mailer, AppError> {
    Mailer::new(
        config.accounts.smtp_url.as_deref(),
        &config.accounts.mail_from,
        config.data_dir.join("outbox"),
    )
    .map_err(|message| AppError::Config {
        name: "HEARTH_SMTP_URL / HEARTH_MAIL_FROM",
        message,
    })
}

/// Creates the configured administrator on first start (when no account has that email).
pub async fn bootstrap_admin(config: &Config, accounts: &Accounts) -> Result<(), AppError> {
    let (Some(email), Some(password)) = (
        &config.accounts.admin_email,
        &config.accounts.admin_password,
    ) else {
        return Ok(());
    };
    let account = NewAccount {
        email: email.clone(),
        display_name: "Administrator".to_owned(),
        role: Role::Admin,
        password: Some(password.clone()),
        specialty: None,
        verified: true,
    };
    match accounts.create(account, &Actor::default()).await {
        Ok(user) => {
            tracing::info!("created the administrator {}", user.email);
            Ok(())
        }
        Err(accounts::AccountError::Exists) => Ok(()),
        Err(e) => Err(AppError::Config {
            name: "HEARTH_ADMIN_EMAIL / HEARTH_ADMIN_PASSWORD",
            message: e.to_string(),
        }),
    }
}

/// `hearth user …`.
#[derive(Debug, Clone)]
pub enum UserCommand {
    /// Creates an active account (the email counts as verified).
    Add {
        /// Email.
        email: String,
        /// Name.
        name: String,
        /// Password.
        password: String,
        /// Role.
        role: String,
        /// Specialty (staff).
        specialty: Option<String>,
    },
    /// Lists accounts.
    List,
    /// Disables an account.
    Disable {
        /// Email.
        email: String,
    },
    /// Enables an account.
    Enable {
        /// Email.
        email: String,
    },
    /// Changes a role.
    SetRole {
        /// Email.
        email: String,
        /// Role.
        role: String,
    },
}

fn role(text: &str) -> Result<Role, AppError> {
    Role::parse(text).ok_or_else(|| {
        AppError::Accounts(format!(
            "'{text}' is not a role; use admin, physician, clinician or patient"
        ))
    })
}

fn user_json(user: &accounts::User) -> String {
    serde_json::json!({
        "id": user.id,
        "email": user.email,
        "name": user.display_name,
        "role": user.role.as_str(),
        "status": user.status.as_str(),
        "fhirUser": user.fhir_reference,
    })
    .to_string()
}

/// Runs a `hearth user` command against the configured database; answers what to print.
pub async fn user_command(config: &Config, command: UserCommand) -> Result<String, AppError> {
    let clock: SharedClock = Arc::new(crate::clock::SystemClock);
    let calendar = super::calendar_settings(&config.triage)?;
    let storage = super::open_storage(config, clock.clone()).await?;
    let public_url = config.public_url(config.addr);
    let state = super::rest_state(storage, &public_url, clock.clone(), calendar).await?;
    let accounts = accounts(config, &state, &public_url, clock)?;
    let actor = Actor {
        user: None,
        address: Some("command line".to_owned()),
    };
    let failed = |e: accounts::AccountError| AppError::Accounts(e.to_string());
    let by_email = |email: String| {
        let accounts = accounts.clone();
        async move {
            accounts
                .user_by_email(&email)
                .await
                .map_err(|e| AppError::Accounts(format!("{email}: {e}")))
        }
    };
    match command {
        UserCommand::Add {
            email,
            name,
            password,
            role: role_name,
            specialty,
        } => {
            let account = NewAccount {
                email,
                display_name: name,
                role: role(&role_name)?,
                password: Some(password),
                specialty,
                verified: true,
            };
            let user = accounts.create(account, &actor).await.map_err(failed)?;
            Ok(user_json(&user))
        }
        UserCommand::List => {
            let users = accounts.users().await.map_err(failed)?;
            Ok(users.iter().map(user_json).collect::<Vec<_>>().join("\n"))
        }
        UserCommand::Disable { email } => {
            let user = by_email(email).await?;
            let user = accounts
                .set_disabled(&user.id, true, &actor)
                .await
                .map_err(failed)?;
            Ok(user_json(&user))
        }
        UserCommand::Enable { email } => {
            let user = by_email(email).await?;
            let user = accounts
                .set_disabled(&user.id, false, &actor)
                .await
                .map_err(failed)?;
            Ok(user_json(&user))
        }
        UserCommand::SetRole {
            email,
            role: role_name,
        } => {
            let new_role = role(&role_name)?;
            let user = by_email(email).await?;
            let user = accounts
                .set_role(&user.id, new_role, &actor)
                .await
                .map_err(failed)?;
            Ok(user_json(&user))
        }
    }
}

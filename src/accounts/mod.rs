//! The people who use Hearth: accounts with roles and a FHIR resource each (a Practitioner, with
//! a PractitionerRole for a specialty, or a Patient), argon2id passwords, single-use emailed
//! tokens (verification and invitation 24 h, reset 1 h), console sessions with idle and
//! absolute timeouts, login throttling per account and per address, and an AuditEvent for
//! every security event. Mail goes through the durable outbox (`mails`).
//!
//! Failure answers never tell whether an email has an account: registration, resend and
//! forgotten-password requests answer the same either way, and a login with an unknown email
//! costs the same argon2 time as a wrong password.

pub mod audit;
pub mod mails;
pub mod password;
pub mod tokens;

mod model;
mod signin;

use std::sync::Arc;

use serde_json::{Value, json};

use crate::clock::SharedClock;
use crate::storage::Storage;
use crate::storage::accounts::{TokenRow, TokenUse, UserRow};

/// The name of the session cookie (console and authorization pages share the session).
pub const SESSION_COOKIE: &str = "hearth_session";

/// The session cookie's value among the values of a request's `Cookie` headers.
pub fn session_cookie<'a>(cookie_headers: impl IntoIterator<Item = &'a str>) -> Option<String> {
    cookie_headers
        .into_iter()
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_owned())
}

pub use audit::Event;
pub use model::{
    AccountError, Actor, LoginError, NewAccount, RESET_TTL_MS, Records, Registration, Role,
    Session, Settings, Status, TokenProblem, User, VERIFY_TTL_MS,
};
pub use password::{HashCost, Hasher, PasswordPolicy};

/// The accounts service. Cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    storage: Storage,
    records: Arc<dyn Records>,
    settings: Arc<Settings>,
    clock: SharedClock,
    hasher: Hasher,
    wake_outbox: Arc<tokio::sync::Notify>,
}

/// The lower-case key of an email, if it looks like one.
fn email_key(email: &str) -> Result<String, AccountError> {
    let email = email.trim();
    let plausible = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.starts_with('.')
        })
        && crate::mail::Mailer::valid_address(email);
    if !plausible {
        return Err(AccountError::Invalid {
            field: "email",
            message: "Enter an email address such as name@example.org.".into(),
        });
    }
    Ok(email.to_lowercase())
}

fn check_name(name: &str) -> Result<String, AccountError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(AccountError::Invalid {
            field: "name",
            message: "Enter your name (at most 200 characters).".into(),
        });
    }
    Ok(name.to_owned())
}

/// A FHIR HumanName from a display name: the last word is the family name.
fn human_name(name: &str) -> Value {
    let words: Vec<&str> = name.split_whitespace().collect();
    let mut human = json!({"use": "official", "text": name});
    if let Some((family, given)) = words.split_last() {
        human["family"] = json!(family);
        if !given.is_empty() {
            human["given"] = json!(given);
        }
    }
    human
}

impl Accounts {
    /// The service over `storage`, writing FHIR resources through `records`.
    pub fn new(
        storage: Storage,
        records: Arc<dyn Records>,
        settings: Settings,
        clock: SharedClock,
    ) -> Result<Accounts, String> {
        // Hashing gets half the cores: logins queue rather than starve FHIR requests.
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let hasher = Hasher::new(settings.cost, cores.div_ceil(2))?;
        Ok(Accounts {
            storage,
            records,
            settings: Arc::new(settings),
            clock,
            hasher,
            wake_outbox: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Delivers queued mail through `mailer` until the task is aborted.
    pub async fn deliver_mail(&self, mailer: Arc<crate::mail::Mailer>) {
        mails::deliver(
            self.storage.clone(),
            mailer,
            self.settings.delivery,
            self.wake_outbox.clone(),
            self.clock.clone(),
        )
        .await;
    }

    /// Removes ended sessions and old login failures.
    pub async fn sweep(&self) -> Result<(), AccountError> {
        let now = self.clock.now_millis();
        Ok(self
            .storage
            .sweep_accounts(
                now - self.settings.session_idle_ms,
                now - self.settings.throttle_window_ms,
            )
            .await?)
    }

    fn now(&self) -> i64 {
        self.clock.now_millis()
    }

    fn link(&self, page: &str, token: &str) -> String {
        format!("{}/console/{page}?token={token}", self.settings.public_url)
    }

    async fn queue(&self, mail: crate::storage::accounts::NewMail) -> Result<(), AccountError> {
        self.storage.enqueue_mail(mail).await?;
        self.wake_outbox.notify_one();
        Ok(())
    }

    /// Records an AuditEvent; a failure to record is logged, not fatal to the request.
    pub async fn audit(
        &self,
        event: Event,
        success: bool,
        actor: &Actor,
        acting_email: Option<&str>,
        subject: Option<&User>,
        description: &str,
    ) {
        let recorded = chrono::DateTime::from_timestamp_millis(self.now())
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let actor_party = match (&actor.user, acting_email) {
            (Some(user), _) => Some((user.fhir_reference.as_deref(), user.email.as_str())),
            (None, Some(email)) => Some((None, email)),
            (None, None) => None,
        };
        let parties = audit::Parties {
            actor: actor_party,
            address: actor.address.as_deref(),
            subject: subject.map(|u| (u.fhir_reference.as_deref(), u.email.as_str())),
        };
        let resource = audit::audit_event(event, success, &recorded, &parties, description);
        if let Err(e) = self.records.create(resource).await {
            tracing::error!("cannot record the audit event ({description}): {e}");
        }
    }

    /// Creates an account and the FHIR resource for the person. With a password and
    /// `verified`, it is active at once; otherwise it waits for its email to be verified.
    pub async fn create(&self, account: NewAccount, actor: &Actor) -> Result<User, AccountError> {
        let key = email_key(&account.email)?;
        let name = check_name(&account.display_name)?;
        let password_hash = match &account.password {
            Some(password) => Some(self.new_password_hash(password).await?),
            None => None,
        };
        if self.storage.user_by_email(&key).await?.is_some() {
            return Err(AccountError::Exists);
        }
        let reference = self
            .person_resource(&account, &name)
            .await
            .map_err(AccountError::Internal)?;
        let now = self.now();
        let row = UserRow {
            id: uuid::Uuid::new_v4().to_string(),
            email: account.email.trim().to_owned(),
            email_key: key,
            display_name: name,
            role: account.role.as_str().to_owned(),
            status: if account.verified && password_hash.is_some() {
                Status::Active
            } else {
                Status::PendingVerification
            }
            .as_str()
            .to_owned(),
            password_hash,
            fhir_reference: Some(reference),
            created_ms: now,
            updated_ms: now,
        };
        if !self.storage.insert_user(row.clone()).await? {
            return Err(AccountError::Exists);
        }
        let user = User::from_row(&row);
        self.audit(
            Event::AccountCreated,
            true,
            actor,
            None,
            Some(&user),
            &format!("account created with role {}", user.role.as_str()),
        )
        .await;
        Ok(user)
    }

    /// The Practitioner (and PractitionerRole for a specialty) or Patient of a new account.
    async fn person_resource(&self, account: &NewAccount, name: &str) -> Result<String, String> {
        let telecom = json!([{"system": "email", "value": account.email.trim(), "use": "work"}]);
        let person = json!({
            "resourceType": account.role.resource_type(),
            "active": true,
            "name": [human_name(name)],
            "telecom": telecom,
        });
        let reference = self.records.create(person).await?;
        if account.role != Role::Patient
            && let Some(specialty) = account.specialty.as_deref().map(str::trim)
            && !specialty.is_empty()
        {
            self.records
                .create(json!({
                    "resourceType": "PractitionerRole",
                    "active": true,
                    "practitioner": {"reference": reference, "display": name},
                    "specialty": [{"text": specialty}],
                }))
                .await?;
        }
        Ok(reference)
    }

    /// Why a new password breaks the site's policy, as an error beside the password field.
    fn check_password(&self, password: &str) -> Result<(), AccountError> {
        self.settings
            .policy
            .check(password)
            .map_err(|message| AccountError::Invalid {
                field: "password",
                message,
            })
    }

    /// The argon2id hash of a new password that meets the policy.
    async fn new_password_hash(&self, password: &str) -> Result<String, AccountError> {
        self.check_password(password)?;
        self.hasher
            .hash(password)
            .await
            .map_err(AccountError::Internal)
    }

    /// Issues a token and queues the mail that carries it.
    async fn send_token(&self, user: &UserRow, purpose: &'static str) -> Result<(), AccountError> {
        let secret = tokens::new_secret();
        let now = self.now();
        let ttl = if purpose == "reset" {
            RESET_TTL_MS
        } else {
            VERIFY_TTL_MS
        };
        self.storage
            .replace_token(TokenRow {
                token_hash: tokens::digest(&secret),
                user_id: user.id.clone(),
                purpose: purpose.to_owned(),
                created_ms: now,
                expires_ms: now + ttl,
                used_ms: None,
            })
            .await?;
        let mail = match purpose {
            "reset" => mails::reset(
                &user.email,
                &user.display_name,
                &self.link("reset", &secret),
            ),
            "invite" => mails::invitation(
                &user.email,
                &user.display_name,
                &user.role,
                &self.link("verify", &secret),
            ),
            _ => mails::verification(
                &user.email,
                &user.display_name,
                &self.link("verify", &secret),
            ),
        };
        self.queue(mail).await
    }

    /// Public registration (as a physician). The answer is the same whether or not the email
    /// has an account already: the owner of an existing account gets a mail saying so.
    pub async fn register(
        &self,
        name: &str,
        email: &str,
        password: &str,
        specialty: Option<&str>,
        actor: &Actor,
    ) -> Result<(), AccountError> {
        if self.settings.registration == Registration::InviteOnly {
            return Err(AccountError::InviteOnly);
        }
        let key = email_key(email)?;
        check_name(name)?;
        self.check_password(password)?;
        if let Some(existing) = self.storage.user_by_email(&key).await? {
            if existing.status == Status::PendingVerification.as_str() {
                self.send_token(&existing, "verify").await?;
            } else if existing.status == Status::Active.as_str() {
                let secret = tokens::new_secret();
                let now = self.now();
                self.storage
                    .replace_token(TokenRow {
                        token_hash: tokens::digest(&secret),
                        user_id: existing.id.clone(),
                        purpose: "reset".into(),
                        created_ms: now,
                        expires_ms: now + RESET_TTL_MS,
                        used_ms: None,
                    })
                    .await?;
                self.queue(mails::already_registered(
                    &existing.email,
                    &existing.display_name,
                    &self.link("reset", &secret),
                ))
                .await?;
            }
            return Ok(());
        }
        let account = NewAccount {
            email: email.to_owned(),
            display_name: name.to_owned(),
            role: Role::Physician,
            password: Some(password.to_owned()),
            specialty: specialty.map(str::to_owned),
            verified: false,
        };
        match self.create(account, actor).await {
            Ok(user) => {
                let row = self.row(&user.id).await?;
                self.send_token(&row, "verify").await
            }
            // Registered by someone else a moment ago: same answer.
            Err(AccountError::Exists) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn row(&self, id: &str) -> Result<UserRow, AccountError> {
        self.storage
            .user_by_id(id)
            .await?
            .ok_or(AccountError::NotFound)
    }

    /// An administrator invites a person: the account waits for them to verify their email
    /// and choose a password through the invitation mail.
    pub async fn invite(
        &self,
        name: &str,
        email: &str,
        role: Role,
        specialty: Option<&str>,
        actor: &Actor,
    ) -> Result<User, AccountError> {
        let user = self
            .create(
                NewAccount {
                    email: email.to_owned(),
                    display_name: name.to_owned(),
                    role,
                    password: None,
                    specialty: specialty.map(str::to_owned),
                    verified: false,
                },
                actor,
            )
            .await?;
        let row = self.row(&user.id).await?;
        self.send_token(&row, "invite").await?;
        Ok(user)
    }

    /// Sends a new verification (or invitation) link, if the email has an account waiting for
    /// one; silent otherwise.
    pub async fn resend_verification(&self, email: &str) -> Result<(), AccountError> {
        let Ok(key) = email_key(email) else {
            return Ok(());
        };
        if let Some(row) = self.storage.user_by_email(&key).await?
            && row.status == Status::PendingVerification.as_str()
        {
            let purpose = if row.password_hash.is_some() {
                "verify"
            } else {
                "invite"
            };
            self.send_token(&row, purpose).await?;
        }
        Ok(())
    }

    /// The token of a link that can still be used, without using it.
    async fn live_token(&self, token: &str, purposes: &[&str]) -> Result<TokenRow, AccountError> {
        let row = self
            .storage
            .token(&tokens::digest(token), purposes)
            .await?
            .ok_or(AccountError::Token(TokenProblem::Unknown))?;
        if row.used_ms.is_some() {
            return Err(AccountError::Token(TokenProblem::Spent));
        }
        if row.expires_ms <= self.now() {
            return Err(AccountError::Token(TokenProblem::Expired));
        }
        Ok(row)
    }

    /// What a verification link is for, without using it: an invitation needs a password
    /// first.
    pub async fn inspect_verification(&self, token: &str) -> Result<User, AccountError> {
        let row = self.live_token(token, &["verify", "invite"]).await?;
        Ok(User::from_row(&self.row(&row.user_id).await?))
    }

    /// Uses a verification or invitation link; an invitation sets `password` too.
    pub async fn verify(
        &self,
        token: &str,
        password: Option<&str>,
        actor: &Actor,
    ) -> Result<User, AccountError> {
        let pending = self.inspect_verification(token).await?;
        let password_hash = match password {
            Some(password) => Some(self.new_password_hash(password).await?),
            None if !pending.has_password => {
                return Err(AccountError::Invalid {
                    field: "password",
                    message: "Choose a password to accept the invitation.".into(),
                });
            }
            None => None,
        };
        let row = self.row(&pending.id).await?;
        let now = self.now();
        let used = self
            .storage
            .use_token(&tokens::digest(token), &["verify", "invite"], move |_| {
                let mut row = row.clone();
                if row.status == Status::PendingVerification.as_str() {
                    row.status = Status::Active.as_str().to_owned();
                }
                if let Some(hash) = &password_hash {
                    row.password_hash = Some(hash.clone());
                }
                row.updated_ms = now;
                Some(row)
            })
            .await?;
        let user = self.token_result(used).await?;
        self.audit(
            Event::Verified,
            true,
            actor,
            Some(&user.email),
            Some(&user),
            "email verified",
        )
        .await;
        Ok(user)
    }

    async fn token_result(&self, used: TokenUse) -> Result<User, AccountError> {
        match used {
            TokenUse::Consumed(token) => Ok(User::from_row(&self.row(&token.user_id).await?)),
            TokenUse::Expired => Err(AccountError::Token(TokenProblem::Expired)),
            TokenUse::Spent => Err(AccountError::Token(TokenProblem::Spent)),
            TokenUse::Unknown => Err(AccountError::Token(TokenProblem::Unknown)),
        }
    }

    /// Sends a reset link if the email has an active or pending account; silent otherwise.
    pub async fn forgot_password(&self, email: &str) -> Result<(), AccountError> {
        let Ok(key) = email_key(email) else {
            return Ok(());
        };
        if let Some(row) = self.storage.user_by_email(&key).await?
            && row.status != Status::Disabled.as_str()
        {
            self.send_token(&row, "reset").await?;
        }
        Ok(())
    }

    /// Whether a reset link can be used (before showing its form).
    pub async fn inspect_reset(&self, token: &str) -> Result<(), AccountError> {
        self.live_token(token, &["reset"]).await.map(|_| ())
    }

    /// Sets a new password through a reset link; it also proves the email, and ends every
    /// session of the account.
    pub async fn reset_password(
        &self,
        token: &str,
        password: &str,
        actor: &Actor,
    ) -> Result<User, AccountError> {
        let token_row = self.live_token(token, &["reset"]).await?;
        let hash = self.new_password_hash(password).await?;
        let row = self.row(&token_row.user_id).await?;
        let now = self.now();
        let used = self
            .storage
            .use_token(&token_row.token_hash, &["reset"], move |_| {
                let mut row = row.clone();
                row.password_hash = Some(hash.clone());
                if row.status == Status::PendingVerification.as_str() {
                    row.status = Status::Active.as_str().to_owned();
                }
                row.updated_ms = now;
                Some(row)
            })
            .await?;
        let user = self.token_result(used).await?;
        self.storage.end_user_sessions(&user.id, None).await?;
        self.audit(
            Event::PasswordReset,
            true,
            actor,
            Some(&user.email),
            Some(&user),
            "password reset by emailed link",
        )
        .await;
        Ok(user)
    }

    /// The signed-in user changes their password; their other sessions end.
    pub async fn change_password(
        &self,
        user: &User,
        current: &str,
        new: &str,
        keep_session: &str,
        actor: &Actor,
    ) -> Result<(), AccountError> {
        let mut row = self.row(&user.id).await?;
        if !self
            .hasher
            .verify(current, row.password_hash.as_deref())
            .await
        {
            return Err(AccountError::Invalid {
                field: "current",
                message: "The current password is incorrect.".into(),
            });
        }
        row.password_hash = Some(self.new_password_hash(new).await?);
        row.updated_ms = self.now();
        self.storage.update_user(row).await?;
        self.storage
            .end_user_sessions(&user.id, Some(keep_session))
            .await?;
        self.audit(
            Event::PasswordChanged,
            true,
            actor,
            None,
            Some(user),
            "password changed by its owner",
        )
        .await;
        Ok(())
    }

    /// Every account.
    pub async fn users(&self) -> Result<Vec<User>, AccountError> {
        Ok(self
            .storage
            .users()
            .await?
            .iter()
            .map(User::from_row)
            .collect())
    }

    /// One account by id.
    pub async fn user(&self, id: &str) -> Result<User, AccountError> {
        Ok(User::from_row(&self.row(id).await?))
    }

    /// One account by email.
    pub async fn user_by_email(&self, email: &str) -> Result<User, AccountError> {
        let key = email_key(email)?;
        let row = self
            .storage
            .user_by_email(&key)
            .await?
            .ok_or(AccountError::NotFound)?;
        Ok(User::from_row(&row))
    }

    /// Whether any administrator exists.
    pub async fn has_admin(&self) -> Result<bool, AccountError> {
        Ok(self
            .storage
            .any_user_with_role(Role::Admin.as_str())
            .await?)
    }

    /// Changes a role.
    pub async fn set_role(
        &self,
        id: &str,
        role: Role,
        actor: &Actor,
    ) -> Result<User, AccountError> {
        let mut row = self.row(id).await?;
        let before = row.role.clone();
        if before == role.as_str() {
            return Ok(User::from_row(&row));
        }
        if (before == "patient") != (role == Role::Patient) {
            return Err(AccountError::Invalid {
                field: "role",
                message: "A patient account cannot become a staff account or the reverse: their FHIR records differ. Create a new account.".into(),
            });
        }
        row.role = role.as_str().to_owned();
        row.updated_ms = self.now();
        self.storage.update_user(row.clone()).await?;
        let user = User::from_row(&row);
        self.audit(
            Event::RoleChanged,
            true,
            actor,
            None,
            Some(&user),
            &format!("role changed from {before} to {}", role.as_str()),
        )
        .await;
        Ok(user)
    }

    /// Disables an account (its sessions and unused links end at once) or enables it again.
    pub async fn set_disabled(
        &self,
        id: &str,
        disabled: bool,
        actor: &Actor,
    ) -> Result<User, AccountError> {
        let mut row = self.row(id).await?;
        let status = if disabled {
            Status::Disabled
        } else if row.password_hash.is_some() {
            Status::Active
        } else {
            Status::PendingVerification
        };
        row.status = status.as_str().to_owned();
        row.updated_ms = self.now();
        self.storage.update_user(row.clone()).await?;
        if disabled {
            self.storage.end_user_sessions(id, None).await?;
            self.storage.withdraw_tokens(id).await?;
        }
        let user = User::from_row(&row);
        let what = if disabled {
            "account disabled"
        } else {
            "account enabled"
        };
        self.audit(Event::StatusChanged, true, actor, None, Some(&user), what)
            .await;
        Ok(user)
    }

    /// The newest mails, for administrators.
    pub async fn outbox(
        &self,
        limit: i64,
    ) -> Result<Vec<crate::storage::accounts::OutboxRow>, AccountError> {
        Ok(self.storage.recent_mail(limit).await?)
    }

    /// Queues a failed mail again.
    pub async fn retry_mail(&self, id: i64) -> Result<(), AccountError> {
        self.storage.retry_mail(id).await?;
        self.wake_outbox.notify_one();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_keyed_in_lower_case_and_checked() {
        assert_eq!(
            email_key(" Ann.Smith@Example.ORG ").unwrap(),
            "ann.smith@example.org"
        );
        for bad in ["", "ann", "@x.org", "ann@", "a b@x.org", "ann@.org"] {
            assert!(email_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_split_into_given_and_family() {
        let name = human_name("Ann Mary Smith");
        assert_eq!(name["family"], "Smith");
        assert_eq!(name["given"], json!(["Ann", "Mary"]));
        assert!(human_name("Cher").get("given").is_none());
    }

    #[test]
    fn roles_and_statuses_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::Patient.resource_type(), "Patient");
        assert_eq!(Role::Clinician.resource_type(), "Practitioner");
        assert_eq!(
            Status::parse("pending-verification"),
            Some(Status::PendingVerification)
        );
        assert_eq!(Role::parse("root"), None);
    }
}

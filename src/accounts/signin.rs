//! Signing in and console sessions: throttling per account and per address, the password
//! check, and sessions with idle and absolute timeouts (ended at once for a user who is no
//! longer active).

use super::{
    AccountError, Accounts, Actor, Event, LoginError, Session, Status, User, email_key, tokens,
};
use crate::storage::accounts::SessionRow;

/// Sessions are touched at most this often (a write per request would be wasteful).
const TOUCH_EVERY_MS: i64 = 60_000;

impl Accounts {
    /// Signs in: checks throttling, then the password, then the account's status.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        actor: &Actor,
    ) -> Result<User, LoginError> {
        let key = email_key(email).unwrap_or_else(|_| email.trim().to_lowercase());
        let account_key = format!("account:{key}");
        let address_key = actor.address.as_ref().map(|a| format!("address:{a}"));
        let now = self.now();
        let since = now - self.settings.throttle_window_ms;
        let mut checks = vec![(account_key.clone(), self.settings.max_failures_per_account)];
        if let Some(address_key) = &address_key {
            checks.push((address_key.clone(), self.settings.max_failures_per_address));
        }
        for (throttle_key, limit) in &checks {
            let (count, earliest) = self
                .storage
                .login_failures(throttle_key, since)
                .await
                .map_err(AccountError::from)?;
            if count >= *limit {
                let free_at = earliest.unwrap_or(now) + self.settings.throttle_window_ms;
                let minutes = ((free_at - now).max(1) + 59_999) / 60_000;
                self.audit(
                    Event::LoginFailed,
                    false,
                    actor,
                    Some(&key),
                    None,
                    "throttled",
                )
                .await;
                return Err(LoginError::Throttled { minutes });
            }
        }
        let row = self
            .storage
            .user_by_email(&key)
            .await
            .map_err(AccountError::from)?;
        let hash = row.as_ref().and_then(|r| r.password_hash.as_deref());
        if !self.hasher.verify(password, hash).await {
            let mut keys = vec![account_key];
            keys.extend(address_key);
            self.storage
                .record_login_failure(keys)
                .await
                .map_err(AccountError::from)?;
            let reason = if row.is_some() {
                "wrong password"
            } else {
                "unknown email"
            };
            self.audit(Event::LoginFailed, false, actor, Some(&key), None, reason)
                .await;
            return Err(LoginError::Wrong);
        }
        // The password is right: only now may the answer depend on the account.
        let Some(row) = row else {
            return Err(LoginError::Wrong);
        };
        let user = User::from_row(&row);
        match user.status {
            Status::PendingVerification => {
                self.audit(
                    Event::LoginFailed,
                    false,
                    actor,
                    Some(&key),
                    Some(&user),
                    "email not verified",
                )
                .await;
                Err(LoginError::Unverified)
            }
            Status::Disabled => {
                self.audit(
                    Event::LoginFailed,
                    false,
                    actor,
                    Some(&key),
                    Some(&user),
                    "account disabled",
                )
                .await;
                Err(LoginError::Disabled)
            }
            Status::Active => {
                self.storage
                    .clear_login_failures(&account_key)
                    .await
                    .map_err(AccountError::from)?;
                let signed_in = Actor {
                    user: Some(user.clone()),
                    address: actor.address.clone(),
                };
                self.audit(Event::Login, true, &signed_in, None, None, "login")
                    .await;
                Ok(user)
            }
        }
    }

    /// Starts a session (anonymous, or for `user` at login), ending `replacing` in the same
    /// transaction: the id changes at login, so a session id planted before it is worthless.
    pub async fn start_session(
        &self,
        user: Option<&User>,
        replacing: Option<&str>,
    ) -> Result<Session, AccountError> {
        let cookie = tokens::new_secret();
        let now = self.now();
        let row = SessionRow {
            id_hash: tokens::digest(&cookie),
            user_id: user.map(|u| u.id.clone()),
            csrf: tokens::new_secret(),
            created_ms: now,
            last_seen_ms: now,
            expires_ms: now + self.settings.session_absolute_ms,
        };
        self.storage
            .replace_session(replacing, Some(row.clone()))
            .await?;
        Ok(Session {
            cookie: Some(cookie),
            id_hash: row.id_hash,
            csrf: row.csrf,
            user: user.cloned(),
            expires_ms: row.expires_ms,
        })
    }

    /// The live session of a cookie; an idle, expired or disabled user's session is ended.
    pub async fn session(&self, cookie: &str) -> Result<Option<Session>, AccountError> {
        let id_hash = tokens::digest(cookie);
        let Some((row, user)) = self.storage.session(&id_hash).await? else {
            return Ok(None);
        };
        let now = self.now();
        let idle = now - row.last_seen_ms > self.settings.session_idle_ms;
        let user = user.map(|u| User::from_row(&u));
        let disabled = user.as_ref().is_some_and(|u| u.status != Status::Active);
        if idle || now >= row.expires_ms || disabled {
            self.storage.replace_session(Some(&id_hash), None).await?;
            return Ok(None);
        }
        if now - row.last_seen_ms > TOUCH_EVERY_MS {
            self.storage.touch_session(&id_hash, now).await?;
        }
        Ok(Some(Session {
            cookie: None,
            id_hash,
            csrf: row.csrf,
            user,
            expires_ms: row.expires_ms,
        }))
    }

    /// Ends a session.
    pub async fn end_session(&self, session: &Session, actor: &Actor) -> Result<(), AccountError> {
        self.storage
            .replace_session(Some(&session.id_hash), None)
            .await?;
        if session.user.is_some() {
            self.audit(Event::Logout, true, actor, None, None, "logout")
                .await;
        }
        Ok(())
    }
}

//! The tables of `accounts`: users, one-time tokens, console sessions, failed logins and the mail
//! outbox. Rows are plain data; what they mean is the accounts module's business. Writes go
//! through the SQLite group-commit writer (or one PostgreSQL transaction), so they are durable
//! before the caller hears of them.

use diesel::prelude::*;

use super::connection::on_backend;
use super::schema::{account_tokens, login_failures, outbox, sessions, users};
use super::{Storage, StorageError, StorageResult};

/// A user row.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserRow {
    /// A UUID.
    pub id: String,
    /// As typed at registration.
    pub email: String,
    /// Lower case; unique.
    pub email_key: String,
    /// The person's name.
    pub display_name: String,
    /// `admin`, `physician`, `clinician` or `patient`.
    pub role: String,
    /// `pending-verification`, `active` or `disabled`.
    pub status: String,
    /// argon2id PHC string.
    #[diesel(treat_none_as_null = true)]
    pub password_hash: Option<String>,
    /// The FHIR resource for the person.
    #[diesel(treat_none_as_null = true)]
    pub fhir_reference: Option<String>,
    /// Created, ms since the epoch.
    pub created_ms: i64,
    /// Last changed, ms since the epoch.
    pub updated_ms: i64,
}

/// A one-time token row.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = account_tokens)]
pub struct TokenRow {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// Whose.
    pub user_id: String,
    /// `verify`, `invite` or `reset`.
    pub purpose: String,
    /// Issued.
    pub created_ms: i64,
    /// Valid until.
    pub expires_ms: i64,
    /// When it was used (or withdrawn).
    pub used_ms: Option<i64>,
}

/// What became of a token presented for use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenUse {
    /// It was valid and is now spent.
    Consumed(TokenRow),
    /// Its time ran out.
    Expired,
    /// It was used (or withdrawn) before.
    Spent,
    /// No such token for that purpose.
    Unknown,
}

/// A console session row.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    /// SHA-256 of the cookie value, hex.
    pub id_hash: String,
    /// The signed-in user; none before login.
    pub user_id: Option<String>,
    /// The CSRF token of the session's forms.
    pub csrf: String,
    /// Started.
    pub created_ms: i64,
    /// Last request.
    pub last_seen_ms: i64,
    /// Absolute end.
    pub expires_ms: i64,
}

/// A mail to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMail {
    /// The address.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text part.
    pub text_body: String,
    /// HTML part.
    pub html_body: String,
    /// The action link in the mail (logged when mail goes to files).
    pub link: Option<String>,
}

/// An outbox row.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = outbox)]
pub struct OutboxRow {
    /// Order of arrival.
    pub id: i64,
    /// The address.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text part.
    pub text_body: String,
    /// HTML part.
    pub html_body: String,
    /// The action link.
    pub link: Option<String>,
    /// `pending`, `sent` or `failed`.
    pub status: String,
    /// Sending attempts so far.
    pub attempts: i32,
    /// When the next attempt is due.
    pub next_attempt_ms: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Queued.
    pub created_ms: i64,
    /// Delivered to the transport.
    pub sent_ms: Option<i64>,
}

pub(super) fn is_unique_violation(e: &StorageError) -> bool {
    matches!(
        e,
        StorageError::Database(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _
        ))
    )
}

impl Storage {
    /// Adds a user; false when the email is taken.
    pub async fn insert_user(&self, user: UserRow) -> StorageResult<bool> {
        let result = self
            .small_write(move |conn, _| {
                Ok(on_backend!(conn, c => diesel::insert_into(users::table)
                    .values(&user)
                    .on_conflict_do_nothing()
                    .execute(c))?)
            })
            .await;
        match result {
            Ok(rows) => Ok(rows == 1),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Replaces a user's row (found by id).
    pub async fn update_user(&self, user: UserRow) -> StorageResult<()> {
        self.small_write(move |conn, _| {
            on_backend!(conn, c => diesel::update(users::table.find(&user.id))
                .set(&user)
                .execute(c))?;
            Ok(())
        })
        .await
    }

    /// The user with this lower-case email.
    pub async fn user_by_email(&self, email_key: &str) -> StorageResult<Option<UserRow>> {
        let key = email_key.to_owned();
        self.with_conn(move |conn, _| {
            Ok(on_backend!(conn, c => users::table
                .filter(users::email_key.eq(&key))
                .select(UserRow::as_select())
                .get_result(c)
                .optional())?)
        })
        .await
    }

    /// The user with this id.
    pub async fn user_by_id(&self, id: &str) -> StorageResult<Option<UserRow>> {
        let id = id.to_owned();
        self.with_conn(move |conn, _| {
            Ok(on_backend!(conn, c => users::table
                .find(&id)
                .select(UserRow::as_select())
                .get_result(c)
                .optional())?)
        })
        .await
    }

    /// Every user, by email.
    pub async fn users(&self) -> StorageResult<Vec<UserRow>> {
        self.with_conn(move |conn, _| {
            Ok(on_backend!(conn, c => users::table
                .order(users::email_key.asc())
                .select(UserRow::as_select())
                .load(c))?)
        })
        .await
    }

    /// Whether any user has this role.
    pub async fn any_user_with_role(&self, role: &str) -> StorageResult<bool> {
        let role = role.to_owned();
        self.with_conn(move |conn, _| {
            Ok(on_backend!(conn, c => diesel::select(diesel::dsl::exists(
                users::table.filter(users::role.eq(&role))))
                .get_result::<bool>(c))?)
        })
        .await
    }

    /// Stores a new token after withdrawing the user's unused tokens of the same purpose.
    pub async fn replace_token(&self, token: TokenRow) -> StorageResult<()> {
        self.small_write(move |conn, now| {
            on_backend!(conn, c => diesel::update(account_tokens::table
                .filter(account_tokens::user_id.eq(&token.user_id))
                .filter(account_tokens::purpose.eq(&token.purpose))
                .filter(account_tokens::used_ms.is_null()))
                .set(account_tokens::used_ms.eq(now))
                .execute(c))?;
            on_backend!(conn, c => diesel::insert_into(account_tokens::table)
                .values(&token)
                .execute(c))?;
            Ok(())
        })
        .await
    }

    /// Withdraws every unused token of a user.
    pub async fn withdraw_tokens(&self, user_id: &str) -> StorageResult<()> {
        let user_id = user_id.to_owned();
        self.small_write(move |conn, now| {
            on_backend!(conn, c => diesel::update(account_tokens::table
                .filter(account_tokens::user_id.eq(&user_id))
                .filter(account_tokens::used_ms.is_null()))
                .set(account_tokens::used_ms.eq(now))
                .execute(c))?;
            Ok(())
        })
        .await
    }

    /// A token, if it exists, without using it.
    pub async fn token(&self, hash: &str, purposes: &[&str]) -> StorageResult<Option<TokenRow>> {
        let hash = hash.to_owned();
        let purposes: Vec<String> = purposes.iter().map(|p| (*p).to_owned()).collect();
        self.with_conn(move |conn, _| {
            Ok(on_backend!(conn, c => account_tokens::table
                .find(&hash)
                .filter(account_tokens::purpose.eq_any(&purposes))
                .select(TokenRow::as_select())
                .get_result(c)
                .optional())?)
        })
        .await
    }

    /// Uses a token of one of `purposes` at most once, and in the same transaction runs
    /// `then` with it (to activate the account or set the password), so that a token is spent
    /// exactly when its effect is stored.
    pub async fn use_token<F>(
        &self,
        hash: &str,
        purposes: &[&str],
        then: F,
    ) -> StorageResult<TokenUse>
    where
        F: Fn(&TokenRow) -> Option<UserRow> + Send + 'static,
    {
        let hash = hash.to_owned();
        let purposes: Vec<String> = purposes.iter().map(|p| (*p).to_owned()).collect();
        self.small_write(move |conn, now| {
            let row = on_backend!(conn, c => account_tokens::table
                .find(&hash)
                .filter(account_tokens::purpose.eq_any(&purposes))
                .select(TokenRow::as_select())
                .get_result(c)
                .optional())?;
            let Some(row) = row else {
                return Ok(TokenUse::Unknown);
            };
            if row.used_ms.is_some() {
                return Ok(TokenUse::Spent);
            }
            if row.expires_ms <= now {
                return Ok(TokenUse::Expired);
            }
            let taken = on_backend!(conn, c => diesel::update(account_tokens::table
                .find(&hash)
                .filter(account_tokens::used_ms.is_null()))
                .set(account_tokens::used_ms.eq(now))
                .execute(c))?;
            if taken != 1 {
                return Ok(TokenUse::Spent);
            }
            if let Some(user) = then(&row) {
                on_backend!(conn, c => diesel::update(users::table.find(&user.id))
                    .set(&user)
                    .execute(c))?;
            }
            Ok(TokenUse::Consumed(TokenRow {
                used_ms: Some(now),
                ..row
            }))
        })
        .await
    }

    /// Stores a session.
    pub async fn insert_session(&self, session: SessionRow) -> StorageResult<()> {
        self.small_write(move |conn, _| {
            on_backend!(conn, c => diesel::insert_into(sessions::table)
                .values(&session)
                .execute(c))?;
            Ok(())
        })
        .await
    }

    /// A session by its hashed id, with its user when signed in.
    pub async fn session(
        &self,
        id_hash: &str,
    ) -> StorageResult<Option<(SessionRow, Option<UserRow>)>> {
        let id_hash = id_hash.to_owned();
        self.with_conn(move |conn, _| {
            Ok(on_backend!(conn, c => sessions::table
                .left_join(users::table)
                .filter(sessions::id_hash.eq(&id_hash))
                .select((SessionRow::as_select(), Option::<UserRow>::as_select()))
                .get_result(c)
                .optional())?)
        })
        .await
    }

    /// Records activity on a session.
    pub async fn touch_session(&self, id_hash: &str, at_ms: i64) -> StorageResult<()> {
        let id_hash = id_hash.to_owned();
        self.small_write(move |conn, _| {
            on_backend!(conn, c => diesel::update(sessions::table.find(&id_hash))
                .set(sessions::last_seen_ms.eq(at_ms))
                .execute(c))?;
            Ok(())
        })
        .await
    }

    /// Ends one session, and atomically starts `next` in its place when given (rotation).
    pub async fn replace_session(
        &self,
        id_hash: Option<&str>,
        next: Option<SessionRow>,
    ) -> StorageResult<()> {
        let id_hash = id_hash.map(str::to_owned);
        self.small_write(move |conn, _| {
            if let Some(id_hash) = &id_hash {
                on_backend!(conn, c => diesel::delete(sessions::table.find(id_hash))
                    .execute(c))?;
            }
            if let Some(next) = &next {
                on_backend!(conn, c => diesel::insert_into(sessions::table)
                    .values(next)
                    .execute(c))?;
            }
            Ok(())
        })
        .await
    }

    /// Ends every session of a user except `keep`.
    pub async fn end_user_sessions(&self, user_id: &str, keep: Option<&str>) -> StorageResult<()> {
        let user_id = user_id.to_owned();
        let keep = keep.unwrap_or_default().to_owned();
        self.small_write(move |conn, _| {
            on_backend!(conn, c => diesel::delete(sessions::table
                .filter(sessions::user_id.eq(&user_id))
                .filter(sessions::id_hash.ne(&keep)))
                .execute(c))?;
            Ok(())
        })
        .await
    }

    /// Records a failed login under each key.
    pub async fn record_login_failure(&self, keys: Vec<String>) -> StorageResult<()> {
        self.small_write(move |conn, now| {
            for key in &keys {
                on_backend!(conn, c => diesel::insert_into(login_failures::table)
                    .values((
                        login_failures::throttle_key.eq(key),
                        login_failures::at_ms.eq(now),
                    ))
                    .execute(c))?;
            }
            Ok(())
        })
        .await
    }

    /// How many failures a key has had since `since_ms`, and the earliest of them.
    pub async fn login_failures(
        &self,
        key: &str,
        since_ms: i64,
    ) -> StorageResult<(i64, Option<i64>)> {
        let key = key.to_owned();
        self.with_conn(move |conn, _| {
            Ok(on_backend!(conn, c => login_failures::table
                .filter(login_failures::throttle_key.eq(&key))
                .filter(login_failures::at_ms.gt(since_ms))
                .select((diesel::dsl::count_star(), diesel::dsl::min(login_failures::at_ms)))
                .get_result::<(i64, Option<i64>)>(c))?)
        })
        .await
    }

    /// Forgets the failures of a key (after a successful login).
    pub async fn clear_login_failures(&self, key: &str) -> StorageResult<()> {
        let key = key.to_owned();
        self.small_write(move |conn, _| {
            on_backend!(conn, c => diesel::delete(login_failures::table
                .filter(login_failures::throttle_key.eq(&key)))
                .execute(c))?;
            Ok(())
        })
        .await
    }

    /// Removes sessions past their end or idle since before `idle_before_ms`, and failures
    /// older than `failures_before_ms`.
    pub async fn sweep_accounts(
        &self,
        idle_before_ms: i64,
        failures_before_ms: i64,
    ) -> StorageResult<()> {
        self.small_write(move |conn, now| {
            on_backend!(conn, c => diesel::delete(sessions::table
                .filter(sessions::expires_ms.le(now).or(sessions::last_seen_ms.lt(idle_before_ms))))
                .execute(c))?;
            on_backend!(conn, c => diesel::delete(login_failures::table
                .filter(login_failures::at_ms.lt(failures_before_ms)))
                .execute(c))?;
            Ok(())
        })
        .await
    }

    /// Queues a mail, due at once.
    pub async fn enqueue_mail(&self, mail: NewMail) -> StorageResult<()> {
        self.small_write(move |conn, now| {
            on_backend!(conn, c => diesel::insert_into(outbox::table)
                .values((
                    outbox::recipient.eq(&mail.recipient),
                    outbox::subject.eq(&mail.subject),
                    outbox::text_body.eq(&mail.text_body),
                    outbox::html_body.eq(&mail.html_body),
                    outbox::link.eq(&mail.link),
                    outbox::status.eq("pending"),
                    outbox::attempts.eq(0),
                    outbox::next_attempt_ms.eq(now),
                    outbox::created_ms.eq(now),
                ))
                .execute(c))?;
            Ok(())
        })
        .await
    }

    /// Claims up to `limit` due mails for `lease_ms`: another node skips them meanwhile.
    pub async fn claim_due_mail(&self, limit: i64, lease_ms: i64) -> StorageResult<Vec<OutboxRow>> {
        self.small_write(move |conn, now| {
            let due = on_backend!(conn, c => outbox::table
                .filter(outbox::status.eq("pending"))
                .filter(outbox::next_attempt_ms.le(now))
                .order(outbox::id.asc())
                .limit(limit)
                .select(OutboxRow::as_select())
                .load(c))?;
            let mut claimed = Vec::with_capacity(due.len());
            for row in due {
                let taken = on_backend!(conn, c => diesel::update(outbox::table
                    .find(row.id)
                    .filter(outbox::next_attempt_ms.eq(row.next_attempt_ms)))
                    .set(outbox::next_attempt_ms.eq(now + lease_ms))
                    .execute(c))?;
                if taken == 1 {
                    claimed.push(row);
                }
            }
            Ok(claimed)
        })
        .await
    }

    /// Records the result of an attempt: sent, or the error and when to try again (none: give
    /// up).
    pub async fn mail_attempted(
        &self,
        id: i64,
        attempts: i32,
        outcome: Result<(), (String, Option<i64>)>,
    ) -> StorageResult<()> {
        self.small_write(move |conn, now| {
            let target = outbox::table.find(id);
            match &outcome {
                Ok(()) => on_backend!(conn, c => diesel::update(target)
                    .set((
                        outbox::status.eq("sent"),
                        outbox::attempts.eq(attempts),
                        outbox::sent_ms.eq(now),
                        outbox::last_error.eq(None::<String>),
                    ))
                    .execute(c))?,
                Err((error, next)) => on_backend!(conn, c => diesel::update(target)
                    .set((
                        outbox::status.eq(if next.is_some() { "pending" } else { "failed" }),
                        outbox::attempts.eq(attempts),
                        outbox::next_attempt_ms.eq(next.unwrap_or(now)),
                        outbox::last_error.eq(Some(error)),
                    ))
                    .execute(c))?,
            };
            Ok(())
        })
        .await
    }

    /// The newest mails, newest first.
    pub async fn recent_mail(&self, limit: i64) -> StorageResult<Vec<OutboxRow>> {
        self.with_conn(move |conn, _| {
            Ok(on_backend!(conn, c => outbox::table
                .order(outbox::id.desc())
                .limit(limit)
                .select(OutboxRow::as_select())
                .load(c))?)
        })
        .await
    }

    /// Puts a failed mail back in the queue, due at once.
    pub async fn retry_mail(&self, id: i64) -> StorageResult<()> {
        self.small_write(move |conn, now| {
            on_backend!(conn, c => diesel::update(outbox::table
                .find(id)
                .filter(outbox::status.eq("failed")))
                .set((
                    outbox::status.eq("pending"),
                    outbox::next_attempt_ms.eq(now),
                ))
                .execute(c))?;
            Ok(())
        })
        .await
    }
}

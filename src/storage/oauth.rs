//! The tables of the SMART authorization server: signing keys, client apps, authorization
//! codes, refresh tokens, EHR launch values, seen client-assertion ids and revoked access
//! tokens. Rows are plain data; what they mean is the `auth` module's business. Every write is
//! durable (SQLite: through the group-commit writer) before the caller hears of it.

use diesel::prelude::*;

use super::connection::{DbConnection, on_backend};
use super::schema::{
    oauth_assertions, oauth_clients, oauth_codes, oauth_launches, oauth_refresh_tokens,
    oauth_revocations, signing_keys,
};
use super::{Storage, StorageResult};

/// A signing key row.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct KeyRow {
    /// Key id (the JWT `kid`).
    pub kid: String,
    /// `ES256` or `RS256`.
    pub alg: String,
    /// PKCS#8 DER, base64.
    pub private_der: String,
    /// The public JWK, JSON.
    pub public_jwk: String,
    /// Generated.
    pub created_ms: i64,
    /// When it stopped signing (it is still published until its tokens have expired).
    pub retired_ms: Option<i64>,
}

/// A client app row.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_clients)]
pub struct ClientRow {
    /// The `client_id`.
    pub id: String,
    /// Shown to users on the consent page.
    pub name: String,
    /// `public`, `symmetric` or `asymmetric`.
    pub kind: String,
    /// SHA-256 of the client secret, hex (symmetric clients).
    pub secret_hash: Option<String>,
    /// The registered JWK Set, JSON (asymmetric clients).
    pub jwks: Option<String>,
    /// The registered JWK Set URL (asymmetric clients).
    pub jwks_url: Option<String>,
    /// Registered redirect URIs, a JSON array.
    pub redirect_uris: String,
    /// The scopes the client may be granted, space-separated.
    pub scope: String,
    /// `active` or `disabled`.
    pub status: String,
    /// Registered.
    pub created_ms: i64,
    /// Where the app starts an EHR launch (`?iss=…&launch=…`).
    pub launch_url: Option<String>,
}

/// An authorization code row.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_codes)]
pub struct CodeRow {
    /// SHA-256 of the code, hex.
    pub code_hash: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The redirect URI of the authorization request.
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// What was granted (JSON).
    pub grant_json: String,
    /// Issued.
    pub created_ms: i64,
    /// Valid until.
    pub expires_ms: i64,
    /// When it was exchanged.
    pub used_ms: Option<i64>,
}

/// A refresh token row.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_refresh_tokens)]
pub struct RefreshRow {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// The grant: every rotation of one authorization shares it.
    pub grant_id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// What was granted (JSON).
    pub grant_json: String,
    /// Issued.
    pub created_ms: i64,
    /// Valid until.
    pub expires_ms: i64,
    /// When it was used (rotated) or revoked.
    pub used_ms: Option<i64>,
}

/// What became of a single-use secret (code or refresh token) presented for use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spend<T> {
    /// It was valid and is now spent.
    Spent(T),
    /// It was used before (a replay); for refresh tokens the whole grant is now revoked.
    Reused,
    /// Its time ran out.
    Expired,
    /// No such secret.
    Unknown,
}

impl Storage {
    /// Every signing key, newest first.
    pub async fn signing_keys(&self) -> StorageResult<Vec<KeyRow>> {
        self.with_conn(|conn, _| {
            Ok(on_backend!(conn, c => signing_keys::table
                .order(signing_keys::created_ms.desc())
                .select(KeyRow::as_select())
                .load(c))?)
        })
        .await
    }

    /// Stores new signing keys; with `retire`, the keys signing until now stop signing, in the
    /// same transaction. Without it, nothing is stored when active keys exist already (two
    /// nodes starting at once keep one set).
    pub async fn add_signing_keys(&self, keys: Vec<KeyRow>, retire: bool) -> StorageResult<()> {
        self.small_write(move |conn, now| {
            let active: i64 = on_backend!(conn, c => signing_keys::table
                .filter(signing_keys::retired_ms.is_null())
                .count()
                .get_result(c))?;
            if active > 0 && !retire {
                return Ok(());
            }
            on_backend!(conn, c => diesel::update(signing_keys::table
                .filter(signing_keys::retired_ms.is_null()))
                .set(signing_keys::retired_ms.eq(now))
                .execute(c))?;
            on_backend!(conn, c => diesel::insert_into(signing_keys::table)
                .values(&keys)
                .execute(c))?;
            Ok(())
        })
        .await
    }

    /// Deletes keys retired before `before_ms` (their tokens have all expired).
    pub async fn drop_retired_keys(&self, before_ms: i64) -> StorageResult<usize> {
        self.small_write(move |conn, _| {
            Ok(on_backend!(conn, c => diesel::delete(signing_keys::table
                .filter(signing_keys::retired_ms.lt(before_ms)))
                .execute(c))?)
        })
        .await
    }

    /// Registers a client.
    pub async fn insert_client(&self, client: ClientRow) -> StorageResult<()> {
        self.small_write(move |conn, _| {
            on_backend!(conn, c => diesel::insert_into(oauth_clients::table)
                .values(&client)
                .execute(c))?;
            Ok(())
        })
        .await
    }

    /// Every client, oldest first.
    pub async fn clients(&self) -> StorageResult<Vec<ClientRow>> {
        self.with_conn(|conn, _| {
            Ok(on_backend!(conn, c => oauth_clients::table
                .order((oauth_clients::created_ms.asc(), oauth_clients::id.asc()))
                .select(ClientRow::as_select())
                .load(c))?)
        })
        .await
    }

    /// One client. No client id holds a NUL (PostgreSQL's text refuses one), so an id that
    /// does names none.
    pub async fn client(&self, id: &str) -> StorageResult<Option<ClientRow>> {
        if id.contains('\0') {
            return Ok(None);
        }
        let id = id.to_owned();
        self.with_conn(move |conn, _| {
            Ok(on_backend!(conn, c => oauth_clients::table
                .find(&id)
                .select(ClientRow::as_select())
                .get_result(c)
                .optional())?)
        })
        .await
    }

    /// Sets a client's status; false when there is no such client.
    pub async fn set_client_status(&self, id: &str, status: &str) -> StorageResult<bool> {
        if id.contains('\0') {
            return Ok(false);
        }
        let (id, status) = (id.to_owned(), status.to_owned());
        self.small_write(move |conn, _| {
            Ok(
                on_backend!(conn, c => diesel::update(oauth_clients::table.find(&id))
                .set(oauth_clients::status.eq(&status))
                .execute(c))?
                    == 1,
            )
        })
        .await
    }

    /// Stores an authorization code.
    pub async fn insert_code(&self, code: CodeRow) -> StorageResult<()> {
        self.small_write(move |conn, _| {
            on_backend!(conn, c => diesel::insert_into(oauth_codes::table)
                .values(&code)
                .execute(c))?;
            Ok(())
        })
        .await
    }

    /// Spends an authorization code, at most once.
    pub async fn spend_code(&self, hash: &str) -> StorageResult<Spend<CodeRow>> {
        let hash = hash.to_owned();
        self.small_write(move |conn, now| {
            let row = on_backend!(conn, c => oauth_codes::table
                .find(&hash)
                .select(CodeRow::as_select())
                .get_result(c)
                .optional())?;
            let Some(row) = row else {
                return Ok(Spend::Unknown);
            };
            if row.used_ms.is_some() {
                return Ok(Spend::Reused);
            }
            if row.expires_ms <= now {
                return Ok(Spend::Expired);
            }
            let taken = on_backend!(conn, c => diesel::update(oauth_codes::table
                .find(&hash)
                .filter(oauth_codes::used_ms.is_null()))
                .set(oauth_codes::used_ms.eq(now))
                .execute(c))?;
            Ok(if taken == 1 {
                Spend::Spent(row)
            } else {
                Spend::Reused
            })
        })
        .await
    }

    /// Stores a refresh token.
    pub async fn insert_refresh(&self, token: RefreshRow) -> StorageResult<()> {
        self.small_write(move |conn, _| {
            on_backend!(conn, c => diesel::insert_into(oauth_refresh_tokens::table)
                .values(&token)
                .execute(c))?;
            Ok(())
        })
        .await
    }

    /// A refresh token, without using it.
    pub async fn refresh_token(&self, hash: &str) -> StorageResult<Option<RefreshRow>> {
        let hash = hash.to_owned();
        self.with_conn(move |conn, _| {
            Ok(on_backend!(conn, c => oauth_refresh_tokens::table
                .find(&hash)
                .select(RefreshRow::as_select())
                .get_result(c)
                .optional())?)
        })
        .await
    }

    /// Rotates a refresh token: spends it and, in the same transaction, stores what `next`
    /// makes of it (the new token). A token used twice revokes its whole grant, since one of
    /// the two users holds a stolen copy.
    pub async fn rotate_refresh<F>(&self, hash: &str, next: F) -> StorageResult<Spend<RefreshRow>>
    where
        F: Fn(&RefreshRow) -> Option<RefreshRow> + Send + 'static,
    {
        let hash = hash.to_owned();
        self.small_write(move |conn, now| {
            let row = on_backend!(conn, c => oauth_refresh_tokens::table
                .find(&hash)
                .select(RefreshRow::as_select())
                .get_result(c)
                .optional())?;
            let Some(row) = row else {
                return Ok(Spend::Unknown);
            };
            if row.used_ms.is_some() {
                revoke_grant(conn, &row.grant_id, now)?;
                return Ok(Spend::Reused);
            }
            if row.expires_ms <= now {
                return Ok(Spend::Expired);
            }
            on_backend!(conn, c => diesel::update(oauth_refresh_tokens::table.find(&hash))
                .set(oauth_refresh_tokens::used_ms.eq(now))
                .execute(c))?;
            if let Some(new) = next(&row) {
                on_backend!(conn, c => diesel::insert_into(oauth_refresh_tokens::table)
                    .values(&new)
                    .execute(c))?;
            }
            Ok(Spend::Spent(row))
        })
        .await
    }

    /// Revokes the grant a refresh token belongs to; false when the token is unknown.
    pub async fn revoke_refresh(&self, hash: &str) -> StorageResult<bool> {
        let hash = hash.to_owned();
        self.small_write(move |conn, now| {
            let grant = on_backend!(conn, c => oauth_refresh_tokens::table
                .find(&hash)
                .select(oauth_refresh_tokens::grant_id)
                .get_result::<String>(c)
                .optional())?;
            match grant {
                Some(grant) => {
                    revoke_grant(conn, &grant, now)?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
        .await
    }

    /// Stores an EHR launch value.
    pub async fn insert_launch(
        &self,
        hash: String,
        context_json: String,
        expires_ms: i64,
    ) -> StorageResult<()> {
        self.small_write(move |conn, now| {
            on_backend!(conn, c => diesel::insert_into(oauth_launches::table)
                .values((
                    oauth_launches::launch_hash.eq(&hash),
                    oauth_launches::context_json.eq(&context_json),
                    oauth_launches::created_ms.eq(now),
                    oauth_launches::expires_ms.eq(expires_ms),
                ))
                .execute(c))?;
            Ok(())
        })
        .await
    }

    /// The context of a launch value that has not expired.
    pub async fn launch(&self, hash: &str) -> StorageResult<Option<String>> {
        let hash = hash.to_owned();
        self.with_conn(move |conn, storage| {
            let now = storage.clock.now_millis();
            Ok(on_backend!(conn, c => oauth_launches::table
                .find(&hash)
                .filter(oauth_launches::expires_ms.gt(now))
                .select(oauth_launches::context_json)
                .get_result(c)
                .optional())?)
        })
        .await
    }

    /// Records a client assertion's `jti`; false when the client used it before (a replay).
    pub async fn record_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires_ms: i64,
    ) -> StorageResult<bool> {
        let (client_id, jti) = (client_id.to_owned(), jti.to_owned());
        let result = self
            .small_write(move |conn, _| {
                Ok(
                    on_backend!(conn, c => diesel::insert_into(oauth_assertions::table)
                    .values((
                        oauth_assertions::client_id.eq(&client_id),
                        oauth_assertions::jti.eq(&jti),
                        oauth_assertions::expires_ms.eq(expires_ms),
                    ))
                    .on_conflict_do_nothing()
                    .execute(c))?,
                )
            })
            .await;
        match result {
            Ok(rows) => Ok(rows == 1),
            Err(e) if super::accounts::is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Revokes an access token by its `jti` until `expires_ms`.
    pub async fn revoke_access(&self, jti: &str, expires_ms: i64) -> StorageResult<()> {
        let jti = jti.to_owned();
        self.small_write(move |conn, now| {
            on_backend!(conn, c => diesel::insert_into(oauth_revocations::table)
                .values((
                    oauth_revocations::jti.eq(&jti),
                    oauth_revocations::revoked_ms.eq(now),
                    oauth_revocations::expires_ms.eq(expires_ms),
                ))
                .on_conflict_do_nothing()
                .execute(c))?;
            Ok(())
        })
        .await
    }

    /// Access tokens revoked at or after `since_ms` that have not expired: `(jti, revoked_ms)`.
    pub async fn revocations_since(&self, since_ms: i64) -> StorageResult<Vec<(String, i64)>> {
        self.with_conn(move |conn, storage| {
            let now = storage.clock.now_millis();
            Ok(on_backend!(conn, c => oauth_revocations::table
                .filter(oauth_revocations::revoked_ms.ge(since_ms))
                .filter(oauth_revocations::expires_ms.gt(now))
                .select((oauth_revocations::jti, oauth_revocations::revoked_ms))
                .load(c))?)
        })
        .await
    }

    /// Removes expired codes, refresh tokens, launch values, assertion ids and revocations.
    pub async fn sweep_oauth(&self) -> StorageResult<()> {
        self.small_write(|conn, now| {
            on_backend!(conn, c => diesel::delete(oauth_codes::table
                .filter(oauth_codes::expires_ms.lt(now)))
                .execute(c))?;
            on_backend!(conn, c => diesel::delete(oauth_refresh_tokens::table
                .filter(oauth_refresh_tokens::expires_ms.lt(now)))
                .execute(c))?;
            on_backend!(conn, c => diesel::delete(oauth_launches::table
                .filter(oauth_launches::expires_ms.lt(now)))
                .execute(c))?;
            on_backend!(conn, c => diesel::delete(oauth_assertions::table
                .filter(oauth_assertions::expires_ms.lt(now)))
                .execute(c))?;
            on_backend!(conn, c => diesel::delete(oauth_revocations::table
                .filter(oauth_revocations::expires_ms.lt(now)))
                .execute(c))?;
            Ok(())
        })
        .await
    }
}

fn revoke_grant(conn: &mut DbConnection, grant_id: &str, now: i64) -> StorageResult<()> {
    on_backend!(conn, c => diesel::update(oauth_refresh_tokens::table
        .filter(oauth_refresh_tokens::grant_id.eq(grant_id))
        .filter(oauth_refresh_tokens::used_ms.is_null()))
        .set(oauth_refresh_tokens::used_ms.eq(now))
        .execute(c))?;
    Ok(())
}

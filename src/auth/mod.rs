//! SMART on FHIR: the authorization server (App Launch 2.2 and Backend Services) and the
//! access decisions the FHIR API asks of it.
//!
//! - [`keys`]: the server's signing keys, stored in the database, published as a JWK Set.
//! - [`scopes`]: SMART scope syntax (v1 and v2, granular) and what a set of scopes permits.
//! - [`clients`]: registered client apps and how they authenticate at the token endpoint.
//! - [`grants`]: authorization codes, refresh tokens, launch values and the tokens issued.
//! - [`http`]: discovery, JWKS, authorize, token, introspection and revocation over HTTP.
//!
//! Access tokens are ES256 JWTs. The FHIR API checks them against keys held in memory and a
//! cache of tokens already verified, so a request costs no database round trip; revocations
//! reach every node through a table that each polls.

pub mod clients;
pub mod grants;
pub mod http;
pub mod keys;
pub mod scopes;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use jsonwebtoken::Validation;
use serde_json::{Value, json};

use crate::accounts::Accounts;
use crate::clock::SharedClock;
use crate::storage::{Storage, StorageError};
pub use scopes::{Interaction, Level, Scopes};

/// How many verified tokens a node remembers before it starts over.
const VERIFIED_CACHE_LIMIT: usize = 50_000;

/// Lifetimes and addresses of the authorization server.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The server's public URL: the token issuer.
    pub public_url: String,
    /// The FHIR base URL: the audience of every token.
    pub fhir_base: String,
    /// Access tokens of apps (seconds).
    pub access_lifetime_s: i64,
    /// Access tokens of backend services (seconds; the spec recommends 300).
    pub backend_lifetime_s: i64,
    /// Authorization codes (seconds).
    pub code_lifetime_s: i64,
    /// Refresh tokens with `offline_access` (seconds).
    pub offline_lifetime_s: i64,
    /// Refresh tokens with `online_access` (seconds).
    pub online_lifetime_s: i64,
    /// EHR launch values (seconds).
    pub launch_lifetime_s: i64,
    /// Whether a client's `jku` or JWKS URL may use plain http (tests on localhost).
    pub allow_http_jwks: bool,
}

impl AuthSettings {
    /// Defaults for a server at `public_url`.
    pub fn new(public_url: &str) -> AuthSettings {
        AuthSettings {
            public_url: public_url.to_owned(),
            fhir_base: format!("{public_url}/fhir"),
            access_lifetime_s: 3600,
            backend_lifetime_s: 300,
            code_lifetime_s: 60,
            offline_lifetime_s: 90 * 24 * 3600,
            online_lifetime_s: 12 * 3600,
            launch_lifetime_s: 600,
            allow_http_jwks: false,
        }
    }

    /// The token endpoint URL.
    pub fn token_url(&self) -> String {
        format!("{}/auth/token", self.public_url)
    }
}

/// Why a bearer token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejected {
    /// None was sent.
    #[error("this request needs a bearer token (Authorization: Bearer …); get one from {0}")]
    Missing(String),
    /// It is not a token this server issued, or it was altered.
    #[error("the bearer token is not valid: {0}")]
    Invalid(String),
    /// Its time ran out.
    #[error("the bearer token has expired")]
    Expired,
    /// It was revoked.
    #[error("the bearer token has been revoked")]
    Revoked,
}

/// Why the authorization server failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Keys could not be made or read.
    #[error("signing keys: {0}")]
    Keys(String),
}

/// Who is calling and what they may do: a verified access token.
#[derive(Debug, Clone)]
pub struct Access {
    /// The token's id.
    pub jti: String,
    /// The client app.
    pub client_id: String,
    /// The user's id, or the client's for backend services.
    pub subject: String,
    /// The granted scopes.
    pub scopes: Scopes,
    /// The patient in context.
    pub patient: Option<String>,
    /// The encounter in context.
    pub encounter: Option<String>,
    /// The user's FHIR resource (`Practitioner/…`, `Patient/…`).
    pub fhir_user: Option<String>,
    /// The user's role, for tokens issued to a user.
    pub role: Option<String>,
    /// Expiry, seconds since the epoch.
    pub expires_at: i64,
    /// Every claim, for introspection.
    pub claims: Value,
}

/// What a token permits for one interaction on one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permit {
    /// The patient whose compartment the interaction is confined to, if any.
    pub compartment: Option<String>,
    /// Granular search filters (each a set of parameters; a resource must match one set).
    pub filters: Vec<Vec<(String, String)>>,
}

impl Access {
    /// What the token permits for `interaction` on `resource_type`, or why it does not.
    pub fn permit(&self, resource_type: &str, interaction: Interaction) -> Result<Permit, String> {
        let Some((level, filters)) = self.scopes.decide(resource_type, interaction) else {
            return Err(format!(
                "the access token's scopes ({}) do not permit {} of {resource_type}",
                if self.scopes.all.is_empty() {
                    "none".to_owned()
                } else {
                    self.scopes.to_string()
                },
                interaction.describe(),
            ));
        };
        if resource_type == "AuditEvent"
            && level != Level::System
            && self.role.as_deref() != Some("admin")
        {
            return Err(
                "AuditEvents are for administrators and system-level tokens only".to_owned(),
            );
        }
        let own_patient = self
            .fhir_user
            .as_deref()
            .and_then(|u| u.strip_prefix("Patient/"))
            .map(str::to_owned);
        let compartment = match level {
            Level::System => None,
            Level::User => own_patient,
            Level::Patient => match self.patient.clone().or(own_patient) {
                Some(p) => Some(p),
                None => {
                    return Err(
                        "the access token has patient-level scopes but no patient in context"
                            .to_owned(),
                    );
                }
            },
        };
        Ok(Permit {
            compartment,
            filters,
        })
    }

    fn from_claims(claims: Value) -> Result<Access, String> {
        let text = |name: &str| claims[name].as_str().map(str::to_owned);
        Ok(Access {
            jti: text("jti").ok_or("no jti")?,
            client_id: text("client_id").ok_or("no client_id")?,
            subject: text("sub").ok_or("no sub")?,
            scopes: Scopes::parse(claims["scope"].as_str().unwrap_or_default()),
            patient: text("patient"),
            encounter: text("encounter"),
            fhir_user: text("fhirUser"),
            role: text("hearth_role"),
            expires_at: claims["exp"].as_i64().ok_or("no exp")?,
            claims,
        })
    }
}

/// The client id of tokens the console uses for its signed-in users.
pub const CONSOLE_CLIENT_ID: &str = "hearth-console";

/// The authorization server's state, shared by every request on a node.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Storage,
    accounts: Accounts,
    clock: SharedClock,
    settings: AuthSettings,
    keys: RwLock<Arc<keys::KeySet>>,
    verified: Mutex<HashMap<String, Arc<Access>>>,
    revoked: RwLock<HashSet<String>>,
    revocations_seen_ms: AtomicI64,
    last_key_reload_ms: AtomicI64,
    http: reqwest::Client,
    jwks_cache: Mutex<HashMap<String, (Value, i64)>>,
    /// The origins of registered redirect URIs, and when they were read (CORS).
    origins: Mutex<(i64, HashSet<String>)>,
}

/// SHA-256 of a secret, hex: how codes, refresh tokens and client secrets are stored (as
/// accounts store their emailed tokens).
pub use crate::accounts::tokens::digest as hash_secret;
/// A random secret of 32 bytes, base64url.
pub use crate::accounts::tokens::new_secret as random_secret;

impl Auth {
    /// Loads the signing keys, generating the first pair when there are none.
    pub async fn start(
        storage: Storage,
        accounts: Accounts,
        clock: SharedClock,
        settings: AuthSettings,
    ) -> Result<Auth, AuthError> {
        if !storage
            .signing_keys()
            .await?
            .iter()
            .any(|k| k.retired_ms.is_none())
        {
            let rows = tokio::task::spawn_blocking({
                let now = clock.now_millis();
                move || keys::generate(now)
            })
            .await
            .map_err(|e| AuthError::Keys(e.to_string()))?
            .map_err(AuthError::Keys)?;
            storage.add_signing_keys(rows, false).await?;
        }
        let keys = keys::KeySet::load(&storage.signing_keys().await?).map_err(AuthError::Keys)?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AuthError::Keys(format!("HTTP client: {e}")))?;
        Ok(Auth {
            inner: Arc::new(Inner {
                storage,
                accounts,
                clock,
                settings,
                keys: RwLock::new(Arc::new(keys)),
                verified: Mutex::new(HashMap::new()),
                revoked: RwLock::new(HashSet::new()),
                revocations_seen_ms: AtomicI64::new(0),
                last_key_reload_ms: AtomicI64::new(0),
                http,
                jwks_cache: Mutex::new(HashMap::new()),
                origins: Mutex::new((i64::MIN / 2, HashSet::new())),
            }),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &AuthSettings {
        &self.inner.settings
    }

    /// The storage.
    pub(crate) fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// The accounts service.
    pub(crate) fn accounts(&self) -> &Accounts {
        &self.inner.accounts
    }

    /// Now, ms since the epoch.
    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.clock.now_millis()
    }

    fn keys(&self) -> Arc<keys::KeySet> {
        match self.inner.keys.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The public JWK Set.
    pub fn jwks(&self) -> Value {
        self.keys().jwks().clone()
    }

    /// Reads the keys from the database again (after a rotation, here or on another node).
    pub async fn reload_keys(&self) -> Result<(), AuthError> {
        let keys = keys::KeySet::load(&self.inner.storage.signing_keys().await?)
            .map_err(AuthError::Keys)?;
        match self.inner.keys.write() {
            Ok(mut guard) => *guard = Arc::new(keys),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(keys),
        }
        self.inner
            .last_key_reload_ms
            .store(self.now_ms(), Ordering::Relaxed);
        Ok(())
    }

    /// Generates new signing keys; the old ones stop signing but stay published until the
    /// longest-lived token they may have signed has expired, then are dropped.
    pub async fn rotate_keys(&self) -> Result<(), AuthError> {
        let now = self.now_ms();
        let rows = tokio::task::spawn_blocking(move || keys::generate(now))
            .await
            .map_err(|e| AuthError::Keys(e.to_string()))?
            .map_err(AuthError::Keys)?;
        self.inner.storage.add_signing_keys(rows, true).await?;
        let longest = self
            .inner
            .settings
            .access_lifetime_s
            .max(self.inner.settings.backend_lifetime_s);
        self.inner
            .storage
            .drop_retired_keys(now - longest * 1000)
            .await?;
        self.reload_keys().await
    }

    /// Signs access token claims.
    pub fn sign_access(&self, claims: &Value) -> Result<String, AuthError> {
        self.keys()
            .access_signer()
            .sign(claims)
            .map_err(AuthError::Keys)
    }

    /// Signs id_token claims (RS256).
    pub fn sign_id_token(&self, claims: &Value) -> Result<String, AuthError> {
        self.keys()
            .id_token_signer()
            .sign(claims)
            .map_err(AuthError::Keys)
    }

    /// A token for operators and scripts (`hearth token`): `scope` for `lifetime_s` seconds,
    /// on behalf of the server itself.
    pub fn operator_token(&self, scope: &str, lifetime_s: i64) -> Result<String, AuthError> {
        let now = self.now_ms() / 1000;
        self.sign_access(&json!({
            "iss": self.inner.settings.public_url,
            "aud": self.inner.settings.fhir_base,
            "sub": "hearth-operator",
            "client_id": "hearth-operator",
            "scope": scope,
            "iat": now,
            "exp": now + lifetime_s,
            "jti": uuid::Uuid::new_v4().to_string(),
        }))
    }

    /// A token for the console acting for a signed-in user: the user's identity (`sub`,
    /// `fhirUser`, `hearth_role`) with the scopes of their role, so the console reads and writes
    /// through the FHIR API under the same rules and audit as any SMART app.
    pub fn console_token(
        &self,
        user: &crate::accounts::User,
        lifetime_s: i64,
    ) -> Result<(String, i64), AuthError> {
        let now = self.now_ms() / 1000;
        let scope = match user.role {
            crate::accounts::Role::Patient => "patient/*.rs",
            _ => "user/*.cruds",
        };
        let mut claims = json!({
            "iss": self.inner.settings.public_url,
            "aud": self.inner.settings.fhir_base,
            "sub": user.id,
            "client_id": CONSOLE_CLIENT_ID,
            "scope": scope,
            "hearth_role": user.role.as_str(),
            "iat": now,
            "exp": now + lifetime_s,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        if let Some(reference) = &user.fhir_reference {
            claims["fhirUser"] = json!(reference);
        }
        Ok((self.sign_access(&claims)?, now + lifetime_s))
    }

    /// Checks a bearer token: signed by this server for this FHIR base, not expired, not
    /// revoked. Tokens already verified are remembered until they expire.
    pub async fn verify(&self, token: &str) -> Result<Arc<Access>, TokenRejected> {
        let now_s = self.now_ms() / 1000;
        // Tokens are remembered by their signature: a short key, and a signature belongs to
        // one header and payload only.
        let key = token.rsplit('.').next().unwrap_or(token);
        let cached = self
            .inner
            .verified
            .lock()
            .ok()
            .and_then(|cache| cache.get(key).cloned());
        let access = match cached {
            Some(access) => access,
            None => {
                let access = Arc::new(self.verify_signature(token).await?);
                if let Ok(mut cache) = self.inner.verified.lock() {
                    if cache.len() >= VERIFIED_CACHE_LIMIT {
                        cache.retain(|_, a| a.expires_at > now_s);
                        if cache.len() >= VERIFIED_CACHE_LIMIT {
                            cache.clear();
                        }
                    }
                    cache.insert(key.to_owned(), access.clone());
                }
                access
            }
        };
        if access.expires_at <= now_s {
            return Err(TokenRejected::Expired);
        }
        if self.is_revoked(&access.jti) {
            return Err(TokenRejected::Revoked);
        }
        Ok(access)
    }

    async fn verify_signature(&self, token: &str) -> Result<Access, TokenRejected> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenRejected::Invalid("it is not a JWT".into()))?;
        let kid = header
            .kid
            .ok_or_else(|| TokenRejected::Invalid("it names no key (kid)".into()))?;
        let mut keys = self.keys();
        if keys.verifier(&kid).is_none() {
            // Another node may have rotated the keys: read them again, at most once a second.
            let last = self.inner.last_key_reload_ms.load(Ordering::Relaxed);
            if self.now_ms() - last > 1000 {
                let _ = self.reload_keys().await;
                keys = self.keys();
            }
        }
        let verifier = keys
            .verifier(&kid)
            .ok_or_else(|| TokenRejected::Invalid("it was not signed by this server".into()))?;
        if header.alg != verifier.alg || verifier.alg != jsonwebtoken::Algorithm::ES256 {
            return Err(TokenRejected::Invalid(
                "it is not an access token of this server".into(),
            ));
        }
        let mut validation = Validation::new(verifier.alg);
        validation.set_audience(&[&self.inner.settings.fhir_base]);
        validation.set_issuer(&[&self.inner.settings.public_url]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        // Expiry is checked against the server's clock in `verify`.
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<Value>(token, &verifier.key, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenRejected::Expired,
                jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                    TokenRejected::Invalid(format!(
                        "it was issued for another server (aud is not {})",
                        self.inner.settings.fhir_base
                    ))
                }
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    TokenRejected::Invalid("its signature does not match".into())
                }
                _ => TokenRejected::Invalid(e.to_string()),
            },
        )?;
        Access::from_claims(data.claims).map_err(TokenRejected::Invalid)
    }

    fn is_revoked(&self, jti: &str) -> bool {
        self.inner
            .revoked
            .read()
            .map(|set| set.contains(jti))
            .unwrap_or(false)
    }

    /// Revokes an access token everywhere: stored for other nodes, effective here at once.
    pub async fn revoke_access(&self, access: &Access) -> Result<(), AuthError> {
        self.inner
            .storage
            .revoke_access(&access.jti, access.expires_at * 1000)
            .await?;
        if let Ok(mut set) = self.inner.revoked.write() {
            set.insert(access.jti.clone());
        }
        Ok(())
    }

    /// Picks up revocations made on any node since the last look.
    pub async fn sync_revocations(&self) -> Result<(), AuthError> {
        let since = self.inner.revocations_seen_ms.load(Ordering::Relaxed);
        let rows = self.inner.storage.revocations_since(since).await?;
        if let Some(latest) = rows.iter().map(|(_, at)| *at).max() {
            // Revocations in the same millisecond as the latest are read again next time.
            self.inner
                .revocations_seen_ms
                .store(latest, Ordering::Relaxed);
        }
        if !rows.is_empty()
            && let Ok(mut set) = self.inner.revoked.write()
        {
            set.extend(rows.into_iter().map(|(jti, _)| jti));
        }
        Ok(())
    }

    /// Background work: revocations from other nodes every second, expired rows every ten
    /// minutes.
    pub fn spawn_maintenance(&self) -> tokio::task::JoinHandle<()> {
        let auth = self.clone();
        tokio::spawn(async move {
            let mut tick = 0u64;
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                if let Err(e) = auth.sync_revocations().await {
                    tracing::warn!("reading token revocations failed: {e}");
                }
                tick += 1;
                if tick.is_multiple_of(600) {
                    if let Err(e) = auth.inner.storage.sweep_oauth().await {
                        tracing::warn!("removing expired authorization data failed: {e}");
                    }
                    let now_s = auth.now_ms() / 1000;
                    if let Ok(mut cache) = auth.inner.verified.lock() {
                        cache.retain(|_, a| a.expires_at > now_s);
                    }
                }
            }
        })
    }
}
